"""Admin authorisation: ``Authorization: Bearer <NNSERVE_ADMIN_TOKEN>``, compared in constant time."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, request

from service.server.errors import abort

F = TypeVar("F", bound=Callable[..., Any])


def is_admin() -> bool:
    """Whether this request carries the admin token (for views that show more to admins, never 401)."""
    token = current_app.config.get("NNSERVE_ADMIN_TOKEN")
    headers = request.headers.getlist("Authorization")
    if not token or len(headers) != 1:
        return False
    scheme, _, given = headers[0].partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def require_admin(view: F) -> F:
    """403 when no token is configured (admin calls disabled), 401 for a missing or wrong token."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = current_app.config.get("NNSERVE_ADMIN_TOKEN")
        if not token:
            abort(403, "admin endpoints are disabled: set NNSERVE_ADMIN_TOKEN on the server to enable them")
        headers = request.headers.getlist("Authorization")
        challenge = {"WWW-Authenticate": 'Bearer realm="nnserve"'}
        # repeated headers reach WSGI joined by ", " (a bearer token never holds a comma)
        if len(headers) != 1 or "," in headers[0]:
            abort(401, "send exactly one 'Authorization: Bearer <token>' header", headers=challenge)
        scheme, _, given = headers[0].partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            abort(401, "missing or invalid bearer token", headers=challenge)
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
