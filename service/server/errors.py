"""One error shape for every failure: ``{"code", "status", "message", "errors"?}``.

Flask's and werkzeug's own errors (404 route, 405, 413, 415), validation errors
(422), store errors and unexpected exceptions all leave through here, so no
request ever answers HTML or a traceback. Unexpected exceptions are logged
with their traceback and answered 500 with the request id, nothing more.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any, NoReturn

from flask import Flask, g
from flask_smorest import abort as smorest_abort
from werkzeug.exceptions import HTTPException, InternalServerError

from service.store import CorruptVersionError, InvalidNameError, NotFoundError, StoreError, StoreUnavailableError

log = logging.getLogger(__name__)


MAX_TEXT = 1000  # characters of one message, field name or field message in an error body


def clip(text: str) -> str:
    """``text`` cut to ``MAX_TEXT`` characters: messages quote client input, which may be megabytes long."""
    if len(text) <= MAX_TEXT:
        return text
    return f"{text[:MAX_TEXT]}... ({len(text)} characters in all)"


def _clip_tree(value: Any) -> Any:
    if isinstance(value, str):
        return clip(value)
    if isinstance(value, dict):
        return {clip(str(k)): _clip_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clip_tree(v) for v in value]
    return value


def error_body(code: int, message: str, errors: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "status": HTTPStatus(code).phrase, "message": clip(message)}
    if errors:
        body["errors"] = _clip_tree(errors)
    return body


def abort(
    code: int, message: str, errors: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> NoReturn:
    """Stop the request with an error response of the common shape."""
    kwargs: dict[str, Any] = {"message": message}
    if errors:
        kwargs["errors"] = errors
    if headers:
        kwargs["headers"] = headers
    smorest_abort(code, **kwargs)
    raise AssertionError("unreachable")  # smorest_abort always raises


def refuse_body(messages: Any) -> NoReturn:
    """Stop the request with the 422 of a request body its schema refused: marshmallow's ``messages`` (per field)
    as ``errors``, the first of them in the message."""
    abort(422, f"invalid request: {_summarise(messages)}", errors=messages if isinstance(messages, dict) else None)


def _summarise(errors: Any) -> str:
    """One human sentence out of marshmallow's nested error messages."""
    if isinstance(errors, dict):
        for key, value in errors.items():
            inner = _summarise(value)
            return inner if key == "_schema" else f"{key}: {inner}"
    if isinstance(errors, list) and errors:
        return _summarise(errors[0])
    return str(errors)


def handle_http_exception(error: HTTPException) -> tuple[dict[str, Any], int, dict[str, str]]:
    code = error.code or 500
    data = getattr(error, "data", None) or {}
    errors = data.get("errors") or data.get("messages")
    message = data.get("message")
    if message is None:
        message = f"invalid request: {_summarise(errors)}" if errors else (error.description or HTTPStatus(code).phrase)
    # werkzeug's own headers (Allow on 405, which RFC 9110 requires), but our body's content type
    headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
    headers.update(data.get("headers") or {})
    return error_body(code, message, errors if isinstance(errors, dict) else None), code, headers


def handle_store_error(error: StoreError) -> tuple[dict[str, Any], int]:
    code = 404 if isinstance(error, (NotFoundError, InvalidNameError)) else 409
    if isinstance(error, CorruptVersionError):
        code = 409
    elif isinstance(error, StoreUnavailableError):
        code = 503  # the machine's fault, not the request's: another worker or a retry may succeed
    return error_body(code, str(error)), code


def handle_unexpected(error: Exception) -> tuple[dict[str, Any], int]:
    if isinstance(error, HTTPException):
        return handle_http_exception(error)[:2]
    request_id = g.get("request_id", "-")
    log.exception("unhandled error (request id %s)", request_id)
    message = f"internal error; quote request id {request_id} when reporting it"
    return error_body(InternalServerError.code, message), InternalServerError.code


def register(app: Flask) -> None:
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(StoreError, handle_store_error)
    app.register_error_handler(Exception, handle_unexpected)
