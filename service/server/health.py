"""Liveness and readiness."""

from __future__ import annotations

import time
from typing import Any

from flask.views import MethodView

from service.server.blueprint import Blueprint
from service.server.current import dataplane, job_queue, settings
from service.server.grpc import status as grpc_status
from service.server.v1.schemas import HealthSchema, ReadinessSchema
from service.store import StoreError
from service.training.jobs import QueueUnavailableError

blp = Blueprint("health", __name__, description="Liveness and readiness probes")


@blp.route("/healthz")
class Liveness(MethodView):
    @blp.response(200, HealthSchema)
    def get(self) -> dict[str, str]:
        """The process is up and answering."""
        return {"status": "ok"}


def retraining_worker() -> dict[str, Any]:
    """Whether a retraining worker of this store showed a sign of life lately, and how long ago its last one was.

    Reported, not required: predictions need no worker, so a dead one does not make this replica unready.
    """
    try:
        last = job_queue().last_heartbeat()
    except (QueueUnavailableError, StoreError):  # StoreError: a shared queue's database is down
        return {"alive": False, "heartbeat_age_seconds": None}
    age = None if last is None else max(0.0, time.time() - last)
    live = age is not None and age <= settings().worker_stale_after
    return {"alive": live, "heartbeat_age_seconds": None if age is None else round(age, 3)}


@blp.route("/readyz")
class Readiness(MethodView):
    @blp.response(200, ReadinessSchema)
    @blp.alt_response(503, schema=ReadinessSchema, description="Not ready; `reasons` says why")
    def get(self) -> tuple[dict[str, Any], int]:
        """Ready to serve: store readable, active models loaded. Problems are listed in `reasons`."""
        state = dataplane().readiness()
        grpc = grpc_status()  # this worker's gRPC server: a draining one is not ready either
        ready = state.ready and (grpc is None or grpc["serving"])
        reasons = state.reasons if grpc is None or grpc["serving"] else [*state.reasons, "the gRPC server is draining"]
        body = {
            "ready": ready,
            "models": state.models,
            "reasons": reasons,
            "retraining_worker": retraining_worker(),
            "grpc": grpc,
        }
        return body, 200 if ready else 503
