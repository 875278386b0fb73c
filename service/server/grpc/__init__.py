"""The Open Inference Protocol over gRPC: ``inference.GRPCInferenceService`` and ``grpc.health.v1``, in each web worker.

``nnserve serve`` starts one gRPC server in every gunicorn web worker, after the fork (``server.start_in_worker``,
a gunicorn hook); they all bind ``NNSERVE_GRPC_PORT`` with ``SO_REUSEPORT`` and the kernel spreads connections over
them, so gRPC uses every core like HTTP does. The servicer (``servicer.py``) is an adapter over the worker's data
plane: it decodes protobuf tensors (``codec.py``), asks the data plane, encodes the answer. Request ids, credentials,
errors as status codes, metrics and the access log are ``calls.py``'s, around every method.

The generated modules (``grpc_predict_v2_pb2*.py``, from ``grpc_predict_v2.proto`` by ``make protos``) register
the protocol's messages under their standard names (``inference.*``) in protobuf's default pool, as
``tritonclient.grpc`` does with its own copy: the two cannot be imported into one process. Nothing imports them
but the gRPC server, which runs in the web workers; tests talk to it from another process.

This module imports no grpc: ``/readyz`` reads the worker's gRPC state (``status``) without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["GrpcState", "status"]


@dataclass
class GrpcState:
    """This web worker's gRPC server as ``/readyz`` shows it: its port, and whether it still takes calls."""

    port: int
    serving: bool = True


_state: GrpcState | None = None  # set by server.start_in_worker; None: no gRPC server in this process


def set_state(state: GrpcState | None) -> None:
    global _state
    _state = state


def status() -> dict[str, Any] | None:
    """This worker's gRPC server for ``/readyz``: ``{"port", "serving"}``, or None when it runs none (off, or
    not under ``nnserve serve``)."""
    return None if _state is None else {"port": _state.port, "serving": _state.serving}
