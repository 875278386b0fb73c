"""What happens around every gRPC call: its request id, its ``Call`` for the data plane, its status, its metrics
and its access log line (``CallInterceptor``).

A call's facts come from its metadata, as HTTP's come from headers: ``x-request-id`` (a well-formed one is kept,
else one is made; it goes back at once in the initial metadata, as HTTP's header, and again in the trailing
metadata), ``x-routing-key`` (a canary's sticky split) and ``authorization`` (``Bearer <key>``; read by the
servicer, ``credential``). A method fails by raising: the data plane's, the gate's and the store's errors, and
``RefusedError``, leave with the status code of the HTTP status they have in the HTTP APIs (``CODES``) and the
same message (a credential's refusal names metadata where HTTP's names a header); anything else is INTERNAL with
the request id, and logged.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable
from typing import Any

import grpc

from service import telemetry, tracing
from service.logs import ACCESS
from service.server import app, errors
from service.server.callers import METADATA, PermissionDeniedError, UnauthenticatedError, bearer
from service.server.dataplane import Call, InputError
from service.server.v2.tensors import TensorError
from service.store import StoreError

log = logging.getLogger(__name__)

REQUEST_ID = "x-request-id"
ROUTING_KEY = "x-routing-key"
MODEL_VERSION = "x-model-version"
AUTHORIZATION = "authorization"

# The HTTP statuses of the HTTP APIs' errors, as gRPC status codes.
CODES: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}

_current: contextvars.ContextVar[Call] = contextvars.ContextVar("nnserve_grpc_call")
# The codes of calls the server failed (OpenTelemetry's rule for a gRPC server span's error status).
SERVER_FAILURES = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


class RefusedError(Exception):
    """Ends a call with the HTTP APIs' ``status`` for the same refusal (as a gRPC code, ``CODES``) and ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def current() -> Call:
    """The running call's ``Call`` (its request id, routing key, caller, and what the data plane resolved)."""
    return _current.get()


def credential(context: grpc.ServicerContext) -> str | None:
    """The call's bearer credential (``authorization`` metadata, as HTTP's header): None without one;
    ``UnauthenticatedError`` unless it is exactly one ``Bearer <token>``."""
    given = [value for key, value in context.invocation_metadata() if key == AUTHORIZATION]
    if len(given) > 1:
        raise UnauthenticatedError(send=True)
    return bearer(given[0] if given else None)


def status_of(exc: Exception, call: Call) -> tuple[grpc.StatusCode, str]:
    """The status code and message a method's exception leaves with."""
    if isinstance(exc, RefusedError):
        return CODES.get(exc.status, grpc.StatusCode.UNKNOWN), exc.message
    if isinstance(exc, (InputError, TensorError)):
        return grpc.StatusCode.INVALID_ARGUMENT, exc.message
    if isinstance(exc, UnauthenticatedError):
        return grpc.StatusCode.UNAUTHENTICATED, exc.worded(METADATA)
    if isinstance(exc, PermissionDeniedError):
        return grpc.StatusCode.PERMISSION_DENIED, exc.message
    if isinstance(exc, StoreError):
        _, status = errors.handle_store_error(exc)
        return CODES[status], str(exc)
    log.error("unhandled error in a gRPC call (request id %s)", call.request_id, exc_info=exc)
    return grpc.StatusCode.INTERNAL, f"internal error; quote request id {call.request_id} when reporting it"


class CallInterceptor(grpc.ServerInterceptor):
    """Wraps every unary method (the health service's ``Watch`` stream passes untouched)."""

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Any], details: grpc.HandlerCallDetails
    ) -> Any:
        handler = continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        method: str = details.method  # type: ignore[attr-defined]
        behaviour, deserialize = handler.unary_unary, handler.request_deserializer

        def lenient(data: bytes) -> Any:
            """The request, or ``Undecodable``: grpc answers a deserializer's exception INTERNAL."""
            try:
                return deserialize(data)
            except Exception:  # protobuf's DecodeError, or whatever else bytes that are no message raise
                return Undecodable(getattr(deserialize, "__self__", None))

        def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
            return _serve(method, behaviour, request, context)

        return grpc.unary_unary_rpc_method_handler(
            wrapped,
            request_deserializer=lenient if deserialize is not None else None,
            response_serializer=handler.response_serializer,
        )


class Undecodable:
    """A request whose bytes are no message of its method's type (``kind``, the message class)."""

    def __init__(self, kind: Any) -> None:
        self.name = kind.DESCRIPTOR.full_name if kind is not None else "protobuf"


def _serve(method: str, behaviour: Callable[[Any, grpc.ServicerContext], Any], request: Any, context: Any) -> Any:
    started = time.perf_counter()
    metadata = dict(context.invocation_metadata())
    request_id, id_given = app.request_id(metadata.get(REQUEST_ID, ""))
    call = Call(request_id, id_given, metadata.get(ROUTING_KEY) or None)
    context.send_initial_metadata(((REQUEST_ID, call.request_id),))  # at once, as HTTP's header: before any answer
    service, _, name = method.lstrip("/").partition("/")
    rpc = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}
    opened = tracing.start_server(method.lstrip("/"), metadata, rpc)  # continues a traceparent metadata entry
    token = _current.set(call)
    code, message, response, key_id = grpc.StatusCode.OK, "", None, None
    try:
        if isinstance(request, Undecodable):
            raise RefusedError(400, f"the request's bytes are no {request.name} message")
        response = behaviour(request, context)
    except Exception as exc:
        code, message = status_of(exc, call)
        key_id = exc.key_id if isinstance(exc, UnauthenticatedError) else None  # the key id it named, if any
    finally:
        _current.reset(token)
    trailing = [(REQUEST_ID, call.request_id)]
    if code is grpc.StatusCode.OK and call.resolved is not None:
        trailing.append((MODEL_VERSION, str(call.resolved[1])))
    context.set_trailing_metadata(trailing)
    _record(method, call, code, time.perf_counter() - started, key_id)
    if opened is not None:
        answered = {"rpc.grpc.status_code": code.value[0], "nnserve.request_id": call.request_id}
        opened.respond(answered, code.name if code in SERVER_FAILURES else None)
        opened.end()
    if code is not grpc.StatusCode.OK:
        context.abort(code, errors.clip(message))
    return response


def _record(method: str, call: Call, code: grpc.StatusCode, seconds: float, key_id: str | None) -> None:
    """One count and duration per method (``nnserve_requests_total``'s endpoint is the method's path, its status
    the code's name), and one access log line of the HTTP lines' shape (``method`` POST: a gRPC call is an HTTP/2
    POST to ``path``)."""
    name, version = call.resolved if call.resolved is not None else ("", "")
    status = code.name
    telemetry.request_answered(method, name, str(version), status, seconds)
    if ACCESS.isEnabledFor(logging.INFO):
        if call.caller is not None:
            key_id = call.caller.key_id
        ACCESS.info(
            "POST %s %s",
            method,
            status,
            extra={
                "request_id": call.request_id,
                "method": "POST",
                "path": method,
                "endpoint": method,
                "model": name,
                "version": int(version) if version != "" else None,
                "status": code.value[0],  # the gRPC status code's number (0 OK), an integer as HTTP's are
                "grpc_status": status,
                "duration_ms": round(seconds * 1000, 3),
                "key_id": key_id,  # the credential's public id, never the key itself
            },
        )
