"""Errors of the v2 API (Open Inference Protocol): every failure under ``/v2`` leaves as ``{"error": message}``.

A v2 route stops a request with ``fail(status, message)``; ``install`` makes the
blueprint answer in that shape for everything else too: store errors (404, 409,
503), werkzeug's own 404, 405 and 413 (also for URLs under ``/v2`` that match no
route: ``routing_error``) and unexpected exceptions (500, logged with the request id). Never the v1
error shape.
"""

from __future__ import annotations

import logging
from typing import NoReturn

from flask import Blueprint, Request, Response, g, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge

from service.server import errors
from service.server.current import settings
from service.server.jsonio import json_response
from service.store import StoreError

log = logging.getLogger("service.server.v2.routes")  # the v2 blueprint's logger, whichever module logs


class ProtocolError(Exception):
    """Stops a v2 request with ``{"error": message}`` and ``status``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def fail(status: int, message: str) -> NoReturn:
    """Stop the current v2 request with ``status`` and ``{"error": message}``."""
    raise ProtocolError(status, message)


def too_large() -> ProtocolError:
    """The 413 for a body over ``NNSERVE_MAX_BODY_BYTES``."""
    limit = settings().max_body_bytes
    return ProtocolError(413, f"the request body is larger than the {limit} bytes accepted (NNSERVE_MAX_BODY_BYTES)")


def install(blp: Blueprint) -> None:
    """Make everything raised under ``blp``, and every routing error under ``/v2`` (``routing_error``), answer
    ``{"error": ...}``."""
    blp.errorhandler(Exception)(_handle)
    blp.app_errorhandler(ProtocolError)(_error_response)  # routing errors are raised outside the blueprint


def _error_response(exc: ProtocolError) -> Response:
    return json_response({"error": errors.clip(exc.message)}, exc.status, exc.headers)


def _from_http(exc: HTTPException) -> ProtocolError:
    if isinstance(exc, RequestEntityTooLarge):
        return too_large()
    headers = {}
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        headers["Allow"] = ", ".join(sorted(exc.valid_methods))
        message = f"{request.method} is not allowed on {request.path}; use {headers['Allow']}"
    elif exc.code == 404:
        message = f"no such endpoint: {request.path}"
    else:  # nnserve's own aborts (401, 403) carry their message and headers in ``data``
        data = getattr(exc, "data", None) or {}
        message = data.get("message") or exc.description or "request failed"
        headers.update(data.get("headers") or {})
    return ProtocolError(exc.code or 500, message, headers)


def _handle(exc: Exception) -> Response:
    """Everything raised while serving a v2 route leaves as ``{"error": ...}``."""
    if isinstance(exc, ProtocolError):
        return _error_response(exc)
    if isinstance(exc, HTTPException):
        return _error_response(_from_http(exc))
    if isinstance(exc, StoreError):
        _, status = errors.handle_store_error(exc)
        return _error_response(ProtocolError(status, str(exc)))
    request_id = g.get("request_id", "-")
    log.exception("unhandled error in %s (request id %s)", request.path, request_id)
    return json_response({"error": f"internal error; quote request id {request_id} when reporting it"}, 500)


def routing_error(req: Request) -> None:
    """Turn werkzeug's 404/405 for a URL under /v2 into a protocol error: called by app.py's ``before_request``
    hook for a request that matched no route (Flask raises ``req.routing_exception`` after the hook)."""
    exc = req.routing_exception
    if isinstance(exc, HTTPException) and (exc.code or 0) >= 400 and _under_v2(req.path):
        # Flask raises whatever is stored here; the app's handler answers a ProtocolError.
        req.routing_exception = _from_http(exc)  # type: ignore[assignment]


def _under_v2(path: str) -> bool:
    return path == "/v2" or path.startswith("/v2/")
