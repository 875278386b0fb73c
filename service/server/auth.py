"""Who is calling and what they may do: API keys with scopes, the bootstrap admin token, ``NNSERVE_AUTH``.

A credential is one ``Authorization: Bearer <credential>`` header: an API key (``nns_<id>_<secret>``,
verified by the worker's ``KeyRing``) or ``NNSERVE_ADMIN_TOKEN`` (the bootstrap admin, compared in constant
time). ``NNSERVE_AUTH=open-predict`` lets predictions and reads through without one; ``closed`` wants a key
for every v1/v2 call and dashboard page (``/healthz``, ``/readyz``, ``/metrics`` stay open). A missing or bad
credential is a JSON 401, a valid one without the scope or the model a JSON 403.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask, Request, Response, current_app, g, request
from werkzeug.exceptions import HTTPException

from service.server.errors import abort
from service.store import ADMIN, SCOPES, InvalidKeyError, KeyRecord, KeyRing
from service.store import split_key as split

F = TypeVar("F", bound=Callable[..., Any])

BOOTSTRAP = "bootstrap"
READ = "read"  # model reads, monitoring, jobs and dashboard pages: open in open-predict, any valid key in closed
OPEN_PATHS = ("/healthz", "/readyz", "/metrics")
# Feedback's items may each carry their prediction's feedback token instead of a key: the view checks them.
TOKEN_ENDPOINTS = frozenset({"monitoring.Feedback"})
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="nnserve"'}
_UNSET = object()


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: a key's public id (``bootstrap`` for NNSERVE_ADMIN_TOKEN), its scopes and models."""

    key_id: str
    scopes: frozenset[str]  # of SCOPES; admin implies the others
    models: frozenset[str] = frozenset()  # empty: every model

    def allows(self, scope: str, model: str | None = None) -> bool:
        """Whether this caller may act with ``scope`` (``read``: any scope) on ``model`` (None: no model)."""
        if model is not None and self.models and model not in self.models:
            return False
        return scope == READ or scope in self.scopes or ADMIN in self.scopes


def _keyring() -> KeyRing | None:
    return current_app.extensions.get("nnserve.keys")  # type: ignore[no-any-return]


def _credential() -> str | None:
    """The bearer credential of this request; None without an Authorization header, 401 for a malformed one."""
    raw = request.environ.get("HTTP_AUTHORIZATION")  # one look-up: this runs on every request that sends one
    if raw is None:
        return None
    # repeated headers reach WSGI joined by ", " (a bearer credential never holds a comma)
    if "," in raw:
        abort(401, "send exactly one 'Authorization: Bearer <token>' header", headers=_CHALLENGE)
    scheme, _, given = raw.partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not given:
        abort(401, "missing or invalid bearer token", headers=_CHALLENGE)
    return given


# Caller of each key record, made once per record (a record is replaced, never changed, when keys reload).
_callers: dict[str, tuple[KeyRecord, Caller]] = {}


def _authenticate(given: str) -> Caller:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    token = app.config.get("NNSERVE_ADMIN_TOKEN")
    if token and hmac.compare_digest(given.encode(), token.encode()):
        g.nnserve_key_id = BOOTSTRAP
        return Caller(BOOTSTRAP, frozenset(SCOPES))
    ring: KeyRing | None = app.extensions.get("nnserve.keys")
    try:
        key_id, secret = split(given)
    except InvalidKeyError:
        key_id = ""
    if ring is None or not key_id:
        abort(401, "missing or invalid bearer token", headers=_CHALLENGE)
    g.nnserve_key_id = key_id  # the access log names it, whatever the answer
    try:
        record = ring.verify(key_id, secret)
    except InvalidKeyError as exc:
        abort(401, f"invalid bearer token: {exc}", headers=_CHALLENGE)
    cached = _callers.get(key_id)
    if cached is None or cached[0] is not record:
        cached = _callers[key_id] = (record, Caller(record.id, frozenset(record.scopes), frozenset(record.models)))
    return cached[1]


def current_caller() -> Caller | None:
    """The authenticated caller of this request: None without a credential; a bad credential is a 401."""
    caller = g.get("nnserve_caller", _UNSET)
    if caller is _UNSET:
        given = _credential()
        caller = None if given is None else _authenticate(given)
        g.nnserve_caller = caller
    return caller  # type: ignore[return-value]


def _closed() -> bool:
    return current_app.config.get("NNSERVE_AUTH") == "closed"


def _admin_disabled() -> bool:
    """No NNSERVE_ADMIN_TOKEN and no key at all: admin calls are off (403), whatever is sent."""
    if current_app.config.get("NNSERVE_ADMIN_TOKEN"):
        return False
    ring = _keyring()
    return ring is None or not ring.any()


def authorize(scope: str, model: str | None = None) -> Caller | None:
    """Let this request through with ``scope`` on ``model`` or abort: 401 without a (valid) credential where one
    is needed, 403 with the wrong scope or model. Returns the caller (None: anonymous, where that is allowed)."""
    if scope == ADMIN and _admin_disabled():
        abort(403, "admin endpoints are disabled: set NNSERVE_ADMIN_TOKEN or create an admin key (nnserve keys)")
    caller = current_caller()
    if caller is None:
        if scope in (READ, "predict") and not _closed():
            return None
        needed = "any key" if scope == READ else f"a key with the {scope!r} scope"
        abort(
            401,
            f"send exactly one 'Authorization: Bearer <token>' header: this call needs {needed}",
            headers=_CHALLENGE,
        )
    if not caller.allows(scope, model):
        if scope in (READ, "predict") and not _closed() and caller.allows(READ, model):
            return caller  # open-predict: what needs no key is not refused to a key limited elsewhere
        what = f"access to model {model!r}" if caller.allows(scope) else f"the {scope!r} scope"
        abort(403, f"key {caller.key_id!r} lacks {what}")
    return caller


def require(scope: str) -> Callable[[F], F]:
    """A view decorator: ``authorize(scope, <the view's model name>)`` before the view (and its body) runs."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            name = kwargs.get("name", kwargs.get("model_name"))
            authorize(scope, name if isinstance(name, str) else None)
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


require_admin = require(ADMIN)


def is_admin() -> bool:
    """Whether this request carries an admin credential (for views that show more to admins, never 401)."""
    try:
        caller = current_caller()
    except HTTPException:  # a bad credential here only means "not an admin"; the view decides what it answers
        return False
    return caller is not None and caller.allows(ADMIN)


def install(app: Flask, locked: Callable[[], Response] | None = None) -> None:
    """In ``closed`` mode every request but ``OPEN_PATHS`` (and feedback carrying tokens instead of a key,
    ``TOKEN_ENDPOINTS``) needs a valid key (``read``), before any view runs; views ask for their own scope with
    ``require``. Access logs name the key id sent (``g.nnserve_key_id``)."""

    @app.before_request
    def gate() -> Response | None:
        if app.config.get("NNSERVE_AUTH") != "closed":
            return None
        req = request._get_current_object()  # type: ignore[attr-defined]  # one proxy look-up on every request
        path, authorization = req.path, req.environ.get("HTTP_AUTHORIZATION")
        if path in OPEN_PATHS or path.startswith("/ui/static/"):
            return None
        if authorization is None and req.endpoint in TOKEN_ENDPOINTS:
            return None  # the view checks each item's feedback token
        if authorization is None and locked is not None and _browser_page(req):
            return locked()
        args = req.view_args or {}
        name = args.get("name", args.get("model_name"))
        authorize(READ, name if isinstance(name, str) else None)
        return None


def _browser_page(req: Request) -> bool:
    """A browser's navigation to a dashboard page (it cannot send a key: ``locked`` answers it)."""
    return req.path.startswith("/ui/") and req.method == "GET" and "text/html" in req.headers.get("Accept", "")
