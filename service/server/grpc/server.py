"""One gRPC server per gunicorn web worker: built after the fork, drained on SIGTERM, stopped when the worker exits.

gunicorn's hooks (``gunicorn_conf.py``) call ``start_in_worker`` once a worker has loaded the app and
``stop_in_worker`` when it exits. The master never imports grpc: gRPC's threads and sockets do not survive a
fork. Every worker binds ``NNSERVE_GRPC_PORT`` with ``SO_REUSEPORT`` (gRPC's default on Linux), so the kernel
spreads new connections over the workers; a worker whose server cannot bind fails to boot, which stops
``nnserve serve`` with the error in its log (gunicorn halts on a worker that cannot boot). A dead worker is
replaced by gunicorn, its gRPC server with it.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from service.server.grpc import GrpcState, set_state
from service.server.grpc import grpc_predict_v2_pb2_grpc as pb2_grpc
from service.server.grpc.calls import CallInterceptor, RefusedError
from service.server.grpc.servicer import InferenceServicer

log = logging.getLogger(__name__)

SERVICE = "inference.GRPCInferenceService"


@dataclass(frozen=True)
class GrpcSettings:
    """What a worker's gRPC server is built with (``service/config.py`` documents each)."""

    host: str  # the address part of gunicorn's bind
    port: int  # NNSERVE_GRPC_PORT; 0: no gRPC server
    threads: int  # NNSERVE_GRPC_THREADS
    max_concurrent: int  # NNSERVE_GRPC_MAX_CONCURRENT
    max_message_bytes: int  # NNSERVE_MAX_BODY_BYTES
    grace: float  # NNSERVE_GRACEFUL_TIMEOUT: seconds calls in flight may take after SIGTERM


class Health(health.HealthServicer):
    """``grpc.health.v1``: SERVING while the worker is ready (as ``/readyz``: store readable, active models loaded)
    and not draining, NOT_SERVING otherwise; for the server (``""``) and ``inference.GRPCInferenceService``.

    ``Check`` asks at every call; ``Watch`` streams the statuses ``Check`` last found (and NOT_SERVING from the
    drain on).
    """

    def __init__(self, ready: Callable[[], bool]) -> None:
        super().__init__(experimental_non_blocking=True)
        self._ready = ready

    def Check(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 (the protocol's name)
        if request.service not in ("", SERVICE):
            raise RefusedError(404, f"unknown service {request.service!r}; ask for '' or {SERVICE!r}")
        if self._ready():
            self.set(request.service, health_pb2.HealthCheckResponse.SERVING)  # ignored once draining
        else:
            self.set(request.service, health_pb2.HealthCheckResponse.NOT_SERVING)
        return super().Check(request, context)


class GrpcServer:
    """A web worker's gRPC server over its data plane."""

    def __init__(self, servicer: InferenceServicer, settings: GrpcSettings) -> None:
        self.settings = settings
        self.state = GrpcState(settings.port)
        self.health = Health(lambda: servicer.dataplane.readiness().ready and self.state.serving)
        self._server = grpc.server(
            futures.ThreadPoolExecutor(settings.threads, thread_name_prefix="grpc"),
            interceptors=[CallInterceptor()],
            options=[
                ("grpc.so_reuseport", 1),
                ("grpc.max_receive_message_length", settings.max_message_bytes),
                ("grpc.max_send_message_length", -1),
            ],
            maximum_concurrent_rpcs=settings.max_concurrent,
        )
        pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        self._stopped: Any = None

    def start(self) -> None:
        """Bind and serve; ``RuntimeError`` when the port cannot be bound."""
        address = f"{self.settings.host}:{self.settings.port}"
        try:
            bound = self._server.add_insecure_port(address)
        except RuntimeError as exc:
            raise RuntimeError(f"gRPC: cannot bind {address} (NNSERVE_GRPC_PORT): {exc}") from None
        if not bound:
            raise RuntimeError(f"gRPC: cannot bind {address} (NNSERVE_GRPC_PORT)")
        self._server.start()
        set_state(self.state)

    def drain(self) -> None:
        """Stop taking calls (health turns NOT_SERVING, new calls are refused); calls in flight get the grace."""
        if self._stopped is None:
            log.info("gRPC: draining (calls in flight have %s s)", self.settings.grace)
            self.state.serving = False
            self.health.enter_graceful_shutdown()
            self._stopped = self._server.stop(self.settings.grace)

    def stop(self) -> None:
        """Drain, and wait until the calls in flight have finished or the grace is over."""
        self.drain()
        self._stopped.wait(self.settings.grace + 1)
        log.info("gRPC: stopped")


_server: GrpcServer | None = None


def start_in_worker(worker: Any, settings: GrpcSettings) -> None:
    """gunicorn's ``post_worker_init``: serve gRPC over the worker's app's data plane, and drain it on SIGTERM
    alongside gunicorn's own graceful stop."""
    global _server
    from service.server.auth import GATE
    from service.server.current import DATAPLANE

    app = worker.wsgi
    _server = GrpcServer(InferenceServicer(app.extensions[DATAPLANE], app.extensions[GATE]), settings)
    _server.start()
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: Any) -> None:
        if _server is not None:
            _server.drain()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.siginterrupt(signal.SIGTERM, False)
    worker.log.info("gRPC: serving %s on %s:%s", SERVICE, settings.host, settings.port)


def stop_in_worker() -> None:
    """gunicorn's ``worker_exit``: let gRPC calls in flight finish (within the grace), then stop."""
    if _server is not None:
        _server.stop()
