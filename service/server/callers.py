"""Who is calling and what they may do, for every transport: a bearer credential in, a ``Caller`` out.

A credential is an API key (``nns_<id>_<secret>``, verified by the worker's ``KeyRing``) or
``NNSERVE_ADMIN_TOKEN`` (the bootstrap admin, compared in constant time). ``NNSERVE_AUTH=open-predict`` lets
predictions and reads through without one; ``closed`` wants a key for every call. A missing or bad credential
is ``UnauthenticatedError`` (HTTP 401, gRPC UNAUTHENTICATED), a valid one without the scope or the model
``PermissionDeniedError`` (403, PERMISSION_DENIED). HTTP's ``Authorization`` header and gRPC's ``authorization``
metadata entry carry the same ``Bearer <credential>`` value (``bearer``); a refusal that asks for one names the
transport's way of sending it (``UnauthenticatedError.worded``).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from service.server.settings import ServerSettings
from service.store import ADMIN, SCOPES, InvalidKeyError, KeyRecord, KeyRing
from service.store import split_key as split

BOOTSTRAP = "bootstrap"
READ = "read"  # model reads, monitoring, jobs and dashboard pages: open in open-predict, any valid key in closed
PREDICT = "predict"
HEADER = "'Authorization: Bearer <token>' header"  # how HTTP sends a credential
METADATA = "'authorization: Bearer <token>' metadata entry"  # how gRPC sends one


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: a key's public id (``bootstrap`` for NNSERVE_ADMIN_TOKEN), its scopes and models."""

    key_id: str
    scopes: frozenset[str]  # of SCOPES; admin implies the others
    models: frozenset[str] = frozenset()  # empty: every model

    def sees(self, model: str) -> bool:
        """Whether this caller's key reaches ``model`` at all: a key limited to models reaches only those."""
        return not self.models or model in self.models

    def allows(self, scope: str, model: str | None = None) -> bool:
        """Whether this caller may act with ``scope`` (``read``: any scope) on ``model`` (None: no model)."""
        if model is not None and not self.sees(model):
            return False
        return scope == READ or scope in self.scopes or ADMIN in self.scopes


def limited_to(caller: Caller | None) -> list[str] | None:
    """The models a listing read from a store or queue is narrowed to for ``caller`` (``listed``'s rule, where the
    names are not at hand): a key limited to models, theirs; None (every model) otherwise."""
    return sorted(caller.models) if caller is not None and caller.models else None


def listed(caller: Caller | None, names: Iterable[str]) -> list[str]:
    """The models of ``names`` a listing shows ``caller``: every one to a caller without a key (where reads need
    none) or with a key for every model, only its own to a key limited to models (what it may not call, such a
    key does not see: naming another model is a 403, as ``Gate.authorize`` answers)."""
    return [name for name in names if caller is None or caller.sees(name)]


class UnauthenticatedError(Exception):
    """No valid credential where one is needed; ``key_id`` is the key id it named, if any (logs name it).
    ``send``: the caller is told to send exactly one credential, in its transport's words (``worded``)."""

    def __init__(self, message: str = "", key_id: str | None = None, *, send: bool = False) -> None:
        super().__init__(message)
        self.message, self.key_id, self.send = message, key_id, send

    def worded(self, carrier: str) -> str:
        """The sentence a caller gets, naming how its transport sends a credential (``HEADER``, ``METADATA``)."""
        if not self.send:
            return self.message
        return f"send exactly one {carrier}: {self.message}" if self.message else f"send exactly one {carrier}"


class PermissionDeniedError(Exception):
    """A valid credential without the scope or the model a call needs (or admin calls are off)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def bearer(value: str | None) -> str | None:
    """The credential of one ``Bearer <credential>`` value; None when none was sent, ``UnauthenticatedError`` when
    malformed (repeated headers reach WSGI joined by ", ", and a bearer credential never holds a comma)."""
    if value is None:
        return None
    if "," in value:
        raise UnauthenticatedError(send=True)
    scheme, _, given = value.partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not given:
        raise UnauthenticatedError("missing or invalid bearer token")
    return given


class Gate:
    """Authentication and authorization of one worker: its key ring and its settings, read once."""

    def __init__(self, keyring: KeyRing | None, settings: ServerSettings) -> None:
        self.keyring = keyring
        self.admin_token = settings.admin_token
        self.closed = settings.auth == "closed"
        # Caller of each key record, made once per record (a record is replaced, never changed, when keys reload)
        self._callers: dict[str, tuple[KeyRecord, Caller]] = {}

    def authenticate(self, token: str | None) -> Caller | None:
        """The caller ``token`` (a bearer credential) names; None without one; ``UnauthenticatedError`` if invalid."""
        if token is None:
            return None
        if self.admin_token and hmac.compare_digest(token.encode(), self.admin_token.encode()):
            return Caller(BOOTSTRAP, frozenset(SCOPES))
        try:
            key_id, secret = split(token)
        except InvalidKeyError:
            key_id = ""
        if self.keyring is None or not key_id:
            raise UnauthenticatedError("missing or invalid bearer token")
        try:
            record = self.keyring.verify(key_id, secret)
        except InvalidKeyError as exc:
            raise UnauthenticatedError(f"invalid bearer token: {exc}", key_id) from None
        cached = self._callers.get(key_id)
        if cached is None or cached[0] is not record:
            cached = (record, Caller(record.id, frozenset(record.scopes), frozenset(record.models)))
            self._callers[key_id] = cached
        return cached[1]

    def check_enabled(self, scope: str) -> None:
        """``PermissionDeniedError`` for an admin call when no NNSERVE_ADMIN_TOKEN and no key exist, whatever is
        sent."""
        if scope != ADMIN or self.admin_token:
            return
        if self.keyring is None or not self.keyring.any():
            raise PermissionDeniedError(
                "admin endpoints are disabled: set NNSERVE_ADMIN_TOKEN or create an admin key (nnserve keys)"
            )

    def authorize(self, caller: Caller | None, scope: str, model: str | None = None) -> Caller | None:
        """Let ``caller`` (None: anonymous) act with ``scope`` on ``model``, or raise ``UnauthenticatedError`` (a
        credential is needed) or ``PermissionDeniedError`` (the wrong scope or model). Returns the caller."""
        self.check_enabled(scope)
        if caller is None:
            if scope in (READ, PREDICT) and not self.closed:
                return None
            needed = "any key" if scope == READ else f"a key with the {scope!r} scope"
            raise UnauthenticatedError(f"this call needs {needed}", send=True)
        if not caller.allows(scope, model):
            if scope in (READ, PREDICT) and not self.closed and caller.allows(READ, model):
                return caller  # open-predict: what needs no key is not refused to a key limited elsewhere
            what = f"access to model {model!r}" if caller.allows(scope) else f"the {scope!r} scope"
            raise PermissionDeniedError(f"key {caller.key_id!r} lacks {what}")
        return caller
