"""Who is calling and what they may do: API keys with scopes, the bootstrap admin token, ``NNSERVE_AUTH``.

HTTP's side of ``callers.Gate``: the one ``Authorization: Bearer`` header to a ``Caller`` (cached per
request), ``UnauthenticatedError`` to a JSON 401 with a challenge, ``PermissionDeniedError`` to a JSON 403.
In ``closed`` mode every v1/v2 call and dashboard page needs a key (``/healthz``, ``/readyz``, ``/metrics`` stay open).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from flask import Flask, Request, Response, current_app, g, request
from werkzeug.exceptions import HTTPException

from service.server.callers import HEADER, READ, Caller, Gate, PermissionDeniedError, UnauthenticatedError, bearer
from service.server.errors import abort
from service.store import ADMIN

F = TypeVar("F", bound=Callable[..., Any])

GATE = "nnserve.gate"  # the app.extensions key of the Gate
OPEN_PATHS = ("/healthz", "/readyz", "/metrics")
# Feedback's items may each carry their prediction's feedback token instead of a key: the view checks them.
TOKEN_ENDPOINTS = frozenset({"monitoring.Feedback"})
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="nnserve"'}
_UNSET = object()

__all__ = ["Caller", "authorize", "current_caller", "install", "is_admin", "require", "require_admin"]


def _gate() -> Gate:
    return current_app._get_current_object().extensions[GATE]  # type: ignore[attr-defined, no-any-return]


def _unauthenticated(exc: UnauthenticatedError) -> NoReturn:
    abort(401, exc.worded(HEADER), headers=_CHALLENGE)


def current_caller() -> Caller | None:
    """The authenticated caller of this request: None without a credential; a bad credential is a 401."""
    return _caller(_gate())


def _caller(gate: Gate) -> Caller | None:
    state = g._get_current_object()  # type: ignore[attr-defined]  # one proxy look-up: this runs on every call
    caller = state.get("nnserve_caller", _UNSET)
    if caller is _UNSET:
        try:
            environ = request._get_current_object().environ  # type: ignore[attr-defined]
            caller = gate.authenticate(bearer(environ.get("HTTP_AUTHORIZATION")))
        except UnauthenticatedError as exc:
            if exc.key_id:
                state.nnserve_key_id = exc.key_id  # the access log names it, whatever the answer
            _unauthenticated(exc)
        if caller is not None:
            state.nnserve_key_id = caller.key_id
        state.nnserve_caller = caller
    return caller  # type: ignore[no-any-return]


def authorize(scope: str, model: str | None = None) -> Caller | None:
    """Let this request through with ``scope`` on ``model`` or abort: 401 without a (valid) credential where one
    is needed, 403 with the wrong scope or model. Returns the caller (None: anonymous, where that is allowed)."""
    gate = _gate()
    try:
        gate.check_enabled(scope)  # before the credential is read: disabled admin calls are 403 whatever is sent
        return gate.authorize(_caller(gate), scope, model)
    except PermissionDeniedError as exc:
        abort(403, exc.message)
    except UnauthenticatedError as exc:
        _unauthenticated(exc)


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


def install(
    app: Flask, gate: Gate, locked: Callable[[], Response] | None = None
) -> Callable[[Request], Response | None] | None:
    """``gate`` is ``app``'s. In ``closed`` mode, the check app.py's ``before_request`` hook makes of every request:
    all but ``OPEN_PATHS`` (and feedback carrying tokens instead of a key, ``TOKEN_ENDPOINTS``) need a valid key
    (``read``), before any view runs; views ask for their own scope with ``require``. Access logs name the key id
    sent (``g.nnserve_key_id``). None in the other modes (read once: an open server pays nothing for the gate)."""

    app.extensions[GATE] = gate
    if not gate.closed:
        return None

    def gate_closed(req: Request) -> Response | None:
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

    return gate_closed


def _browser_page(req: Request) -> bool:
    """A browser's navigation to a dashboard page (it cannot send a key: ``locked`` answers it)."""
    return req.path.startswith("/ui/") and req.method == "GET" and "text/html" in req.headers.get("Accept", "")
