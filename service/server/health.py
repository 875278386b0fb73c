"""Liveness and readiness."""

from __future__ import annotations

import os
from typing import Any

from flask import current_app
from flask.views import MethodView

from service.server.blueprint import Blueprint
from service.server.v1.schemas import HealthSchema, ReadinessSchema

blp = Blueprint("health", __name__, description="Liveness and readiness probes")


@blp.route("/healthz")
class Liveness(MethodView):
    @blp.response(200, HealthSchema)
    def get(self) -> dict[str, str]:
        """The process is up and answering."""
        return {"status": "ok"}


def readiness() -> tuple[bool, dict[str, Any], list[str]]:
    """Ready = the store is readable and every model with an active version has one loaded here."""
    registry = current_app.extensions["nnserve.registry"]
    reasons: list[str] = []
    try:
        os.listdir(registry.store.root)
    except OSError as exc:
        return False, {}, [f"store {registry.store.root} is not readable: {exc.strerror}"]
    models = registry.status()
    for name, info in models.items():
        if info["error"]:
            reasons.append(f"model {name!r}: {info['error']}")
        if info["active_version"] is not None and info["loaded_version"] is None:
            reasons.append(f"model {name!r}: active version {info['active_version']} is not loaded")
    # not ready while a model that should serve has nothing loaded here: its active version is known, or
    # it cannot be known (ACTIVE or the model's directory unreadable); a loaded model keeps it ready
    ready = not any(
        info["loaded_version"] is None and (info["active_version"] is not None or info["error"])
        for info in models.values()
    )
    return ready, models, reasons


@blp.route("/readyz")
class Readiness(MethodView):
    @blp.response(200, ReadinessSchema)
    @blp.alt_response(503, schema=ReadinessSchema, description="Not ready; `reasons` says why")
    def get(self) -> tuple[dict[str, Any], int]:
        """Ready to serve: store readable, active models loaded. Problems are listed in `reasons`."""
        ready, models, reasons = readiness()
        return {"ready": ready, "models": models, "reasons": reasons}, 200 if ready else 503
