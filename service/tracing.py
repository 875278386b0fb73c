"""OpenTelemetry traces: spans for requests, the data plane's stages, store and database calls, and jobs.

Off unless the standard variables ask for it (``OTEL_TRACES_EXPORTER=otlp`` or ``console``, or an
``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` with no exporter named; never with
``OTEL_SDK_DISABLED=true``), and off without the ``nnserve[otel]`` extra: then every function here is a
no-op that costs a global read, so call sites stay plain (``with tracing.span("infer"):``). The exporter,
sampler and batch settings read their own ``OTEL_*`` variables (docs/tracing.md).

``configure`` runs once in each process that serves or trains, after it forked (every gunicorn web worker,
the retraining worker): a ``BatchSpanProcessor``'s export thread does not survive a fork, so a provider a
parent made is dropped in the child (``os.register_at_fork``) and the child makes its own. Spans go to this
module's provider, not OpenTelemetry's global one, which can be set only once per process.

A W3C ``traceparent`` carries a trace between processes: a request's header starts the server span, and
``traceparent()`` of the span that enqueues a retrain is kept in the job, whose spans in the worker
continue that trace (``span(..., parent=...)``).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, Protocol, TypeVar

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")
Attributes = Mapping[str, str | bool | int | float]


class Span(Protocol):
    """What a call site may do with the span it is in (an OpenTelemetry span, or ``NO_SPAN``)."""

    def set_attribute(self, key: str, value: Any) -> None: ...


class _NoSpan:
    """``span()`` while tracing is off: enters and leaves, records nothing."""

    __slots__ = ()

    def __enter__(self) -> _NoSpan:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def set_attribute(self, key: str, value: Any) -> None:
        return None


NO_SPAN = _NoSpan()

_tracer: Any = None  # an opentelemetry Tracer while tracing is on in this process
_provider: Any = None
_propagator: Any = None


def _exporters(environ: Mapping[str, str]) -> set[str]:
    """The exporters ``OTEL_TRACES_EXPORTER`` names (none named: empty)."""
    return {name.strip().lower() for name in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if name.strip()}


def wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the ``OTEL_*`` variables ask for traces (whatever is installed)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    named = _exporters(environ)
    if named:
        return bool(named & {"otlp", "console"})  # "none" turns traces off
    return bool(environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def configure(process: str, version: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Start tracing in this process when the variables ask for it and the extra is installed; True when on.

    ``process`` (``web``, ``worker``) becomes the resource attribute ``nnserve.process``, beside ``process.pid``;
    ``service.name`` is ``OTEL_SERVICE_NAME``, else ``nnserve``. Calling it again in the same process changes nothing.
    """
    global _tracer, _provider, _propagator
    if _provider is not None:
        return True
    if not wanted(environ):
        return False
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    except ImportError:
        log.warning("the OTEL_* variables ask for traces, but nnserve[otel] is not installed: no traces")
        return False
    resource = Resource.create({"nnserve.process": process, "service.version": version, "process.pid": os.getpid()})
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "nnserve"}))
    provider = TracerProvider(resource=resource)
    named = _exporters(environ) or {"otlp"}  # an endpoint alone means OTLP
    exporters: list[SpanExporter] = []
    if "otlp" in named:
        exporters.append(OTLPSpanExporter())  # endpoint, headers, timeout, compression: OTEL_EXPORTER_OTLP_*
    if "console" in named:
        exporters.append(ConsoleSpanExporter())
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))  # OTEL_BSP_* settings
    _provider, _propagator = provider, TraceContextTextMapPropagator()
    _tracer = provider.get_tracer("nnserve", version)
    return True


def shutdown() -> None:
    """Export the spans still buffered and stop tracing in this process (a web worker or the worker exiting)."""
    global _tracer, _provider
    provider, _tracer, _provider = _provider, None, None
    if provider is not None:
        provider.shutdown()


def _forget() -> None:
    """In a child just forked: the parent's provider and its export thread are not ours (see ``configure``)."""
    global _tracer, _provider
    _tracer = _provider = None


os.register_at_fork(after_in_child=_forget)


def enabled() -> bool:
    """Whether this process records spans."""
    return _tracer is not None


def span(name: str, attributes: Attributes | None = None, parent: str | None = None) -> Any:
    """A context manager around a span named ``name``, a child of the current span or, given a ``traceparent``,
    of that remote one; it yields the span (``Span``). An exception leaving it marks the span as failed."""
    if _tracer is None:
        return NO_SPAN
    context = None if parent is None else _propagator.extract({"traceparent": parent})
    return _tracer.start_as_current_span(name, context=context, attributes=attributes)


def child(name: str, attributes: Attributes | None = None) -> Any:
    """``span``, but only inside a span: for calls that also run on their own, unasked (a database connection of a
    poll or a heartbeat would otherwise start a trace of its own every few seconds)."""
    if _tracer is None:
        return NO_SPAN
    from opentelemetry import trace

    if not trace.get_current_span().get_span_context().is_valid:
        return NO_SPAN
    return _tracer.start_as_current_span(name, attributes=attributes)


def traced(name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A method as a span named ``name``, its first argument (a model's name) as ``nnserve.model``."""

    def decorate(method: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(method)
        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            if _tracer is None:
                return method(*args, **kwargs)
            model = args[1] if len(args) > 1 and isinstance(args[1], str) else ""
            with _tracer.start_as_current_span(name, attributes={"nnserve.model": model}):
                return method(*args, **kwargs)

        return call

    return decorate


def record(
    name: str, start: float, end: float, parent: str | None = None, attributes: Attributes | None = None
) -> None:
    """A span of something that already happened, from ``start`` to ``end`` (Unix seconds): a job's wait in the
    queue, or a claim (recorded only when it found a job: the idle polls would be noise)."""
    if _tracer is None:
        return
    context = None if parent is None else _propagator.extract({"traceparent": parent})
    recorded = _tracer.start_span(name, context=context, attributes=attributes, start_time=int(start * 1e9))
    recorded.end(end_time=int(max(start, end) * 1e9))


def failed(current: Span, description: str) -> None:
    """Mark ``current`` as failed with ``description`` (an error the code handled, so no exception left it)."""
    if _tracer is None:
        return
    from opentelemetry.trace import Status, StatusCode

    current.set_status(Status(StatusCode.ERROR, description))  # type: ignore[attr-defined]


def traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, to continue its trace in another process; None when off."""
    if _tracer is None:
        return None
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent")


def ids() -> tuple[str, str] | None:
    """(trace id, span id) of the current span in hex, for a log line; None when off or outside a span."""
    if _tracer is None:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


class ServerSpan:
    """A request's server span, opened by one hook (``start_server``), answered and closed by others."""

    __slots__ = ("answered", "span", "token")

    def __init__(self, span: Any, token: Any) -> None:
        self.span, self.token, self.answered = span, token, False

    def respond(self, attributes: Attributes, error: str | None = None) -> None:
        """Record how the request was answered (its status, as the transport says it); ``error``: the server
        failed it (an HTTP 5xx, a gRPC INTERNAL...), which marks the span failed."""
        from opentelemetry.trace import Status, StatusCode

        self.answered = True
        self.span.set_attributes(attributes)
        if error is not None:
            self.span.set_status(Status(StatusCode.ERROR, error))

    def end(self) -> None:
        """Close the span and restore the context it replaced; a request never answered is failed."""
        from opentelemetry import context
        from opentelemetry.trace import Status, StatusCode

        if not self.answered:
            self.span.set_status(Status(StatusCode.ERROR, "no response"))
        context.detach(self.token)
        self.span.end()


def start_server(name: str, headers: Any, attributes: Attributes | None = None) -> ServerSpan | None:
    """Open a server span for a request and make it current, continuing the trace of its ``traceparent`` header
    (``headers``: any mapping with ``get``); None while tracing is off."""
    if _tracer is None:
        return None
    from opentelemetry import context, trace

    parent = _propagator.extract(headers)
    opened = _tracer.start_span(name, context=parent, kind=trace.SpanKind.SERVER, attributes=attributes)
    return ServerSpan(opened, context.attach(trace.set_span_in_context(opened, parent)))
