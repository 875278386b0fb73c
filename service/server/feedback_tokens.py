"""Feedback tokens: a logged prediction's presigned permission to label that prediction's rows, without a key.

A token is ``<version>.<expires>.<mac>``: the HMAC-SHA256, under the server secret the prediction log keeps
(``PredictionLog.secret``, the same for every worker and replica of a store), of the model, the version that
answered, the request id and the expiry (unix seconds). Feedback quotes the request id beside the token and
the model is in its URL, so a token labels nothing but the rows it was issued with, until it expires.
Rotating the secret (``nnserve feedback rotate-secret``) voids every token issued before.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import threading
import time
from collections.abc import Callable

from service.store import StoreError, StoreUnavailableError
from service.store.monitoring import FEEDBACK_SECRET, PredictionLog

log = logging.getLogger(__name__)
SECRET_REFRESH = 10.0  # seconds a web worker signs with the secret it read before reading it again (rotation)
RETRY_AFTER = 1.0  # a token that fails against a secret read longer ago is checked again against a fresh read
_TOKEN = re.compile(r"^([0-9]{1,9})\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})$")

__all__ = ["FeedbackTokens", "sign"]


def sign(secret: bytes, model: str, version: int, request_id: str, expires: int) -> str:
    """The token for ``request_id`` of ``model`` answered by ``version``, valid until ``expires`` (unix s)."""
    message = "\0".join(("nnserve-feedback-v1", model, str(version), request_id, str(expires))).encode()
    mac = base64.urlsafe_b64encode(hmac.digest(secret, message, hashlib.sha256)).rstrip(b"=").decode()
    return f"{version}.{expires}.{mac}"


class FeedbackTokens:
    """Issues and checks one store's feedback tokens, with the secret read from its prediction log and kept a
    few seconds: a prediction never waits for the log (a stale secret is read again by a background thread;
    only the first token of a process waits for it), and a rotation reaches every worker within
    ``SECRET_REFRESH`` s."""

    def __init__(self, prediction_log: Callable[[], PredictionLog], ttl: float) -> None:
        self._log = prediction_log
        self.ttl = ttl
        self._lock = threading.Lock()
        self._secret: bytes | None = None
        self._read_at = float("-inf")
        self._refreshing = False

    def _read(self) -> bytes | None:
        """Read the secret now; the last one read while the log cannot give it."""
        try:
            secret: bytes | None = self._log().secret(FEEDBACK_SECRET)
        except (StoreError, OSError) as exc:
            log.error("feedback tokens: the secret cannot be read: %s", exc)
            secret = None
        with self._lock:
            self._secret = secret or self._secret
            self._read_at = time.monotonic()
            self._refreshing = False
            return self._secret

    def _current(self, fresh_after: float, wait: bool) -> bytes | None:
        """The secret, read again when older than ``fresh_after`` s: now with ``wait``, else in the background."""
        with self._lock:
            if time.monotonic() - self._read_at < fresh_after:
                return self._secret
            if self._secret is not None and not wait:
                if not self._refreshing:
                    self._refreshing = True
                    threading.Thread(target=self._read, name="nnserve-feedback-secret", daemon=True).start()
                return self._secret
        return self._read()

    def issue(self, model: str, version: int, request_id: str, now: float | None = None) -> str | None:
        """A token for this logged prediction; None when the secret was never readable (the log is down)."""
        secret = self._current(SECRET_REFRESH, wait=False)
        if secret is None:
            return None
        expires = int((time.time() if now is None else now) + self.ttl)
        return sign(secret, model, version, request_id, expires)

    def valid(self, token: str, model: str, request_id: str, now: float | None = None) -> bool:
        """Whether ``token`` was issued for ``request_id`` of ``model`` under the current secret and has not
        expired (compared in constant time). ``StoreUnavailableError`` when no secret could ever be read: the
        token cannot be checked, which is not the same as a bad one."""
        found = _TOKEN.match(token)
        if found is None or int(found[2]) < (time.time() if now is None else now):
            return False
        version, expires = int(found[1]), int(found[2])
        for fresh_after in (SECRET_REFRESH, RETRY_AFTER):  # the second: a rotation elsewhere, seen at once
            secret = self._current(fresh_after, wait=True)
            if secret is None:
                raise StoreUnavailableError("feedback tokens cannot be checked: the prediction log cannot be read")
            if hmac.compare_digest(sign(secret, model, version, request_id, expires), token):
                return True
        return False

    def rotate(self) -> None:
        """Replace the secret: every token issued before stops working, on every worker within seconds."""
        secret = self._log().secret(FEEDBACK_SECRET, rotate=True)
        with self._lock:
            self._secret, self._read_at = secret, time.monotonic()
