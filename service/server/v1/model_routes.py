"""v1 model endpoints: list, detail, predict (active or pinned version), activate."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView

from service import tracing
from service.server.auditing import audited, note
from service.server.auth import current_caller, require, require_admin
from service.server.blueprint import ADMIN, KEY, Blueprint
from service.server.callers import READ, listed
from service.server.current import ROUTING_KEY_HEADER, dataplane, registry
from service.server.current import call as current_call
from service.server.dataplane import InputError
from service.server.errors import abort
from service.server.jsonio import MODEL_VERSION_HEADER, json_response
from service.server.v1.fields import request_rows
from service.server.v1.monitoring_routes import rollout_state
from service.server.v1.schemas import (
    ActivateResponseSchema,
    ModelDetailSchema,
    ModelListSchema,
    PredictRequestSchema,
    PredictResponseSchema,
)
from service.store import (
    LoadedModel,
    NotFoundError,
    StoreError,
    recorded_importance,
    validate_name,
    validate_version,
)
from service.training.fitting import task_of

blp = Blueprint("models", __name__, url_prefix="/v1/models", description="Models, predictions and versions")
# The body of both predict views.
PREDICT_REQUEST = PredictRequestSchema()
VERSION_HEADER_DOC = {
    MODEL_VERSION_HEADER: {"description": "The version that answered (also in the body)", "schema": {"type": "string"}}
}


def summary(loaded: LoadedModel) -> dict[str, Any]:
    m = loaded.manifest
    out = {
        "name": loaded.name,
        "version": loaded.version,
        "task": task_of(m),
        "n_features": m["n_features"],
        "metrics": m.get("metrics", {}),
    }
    if "classes" in m:
        out["classes"] = m["classes"]
    return out


@blp.route("")
class Models(MethodView):
    @blp.errors(401)
    @blp.response(200, ModelListSchema)
    def get(self) -> dict[str, Any]:
        """Every model with an active version, with its task, width, classes and metrics (a key limited to models:
        those models only)."""
        reg = registry()
        models = []
        for name in listed(current_caller(), reg.store.model_names()):
            try:
                models.append(summary(reg.active(name)))
            except StoreError:  # nothing servable (none active, broken, unreadable): /readyz says why
                continue
        return {"models": models}


@blp.route("/<name>")
class ModelDetail(MethodView):
    @blp.errors(401, 403, 404, 503)
    @blp.response(200, ModelDetailSchema)
    @require(READ)
    def get(self, name: str) -> dict[str, Any]:
        """Active version, every version (broken ones flagged), input and output description, metrics."""
        reg = registry()
        name = validate_name(name)
        infos = reg.store.version_info(name)
        if not infos:
            raise NotFoundError(f"model {name!r} not found")
        active = next((i for i in infos if i.active and i.ok), None)
        reference = active or next((i for i in reversed(infos) if i.ok), None)
        m: dict[str, Any] = (reference.manifest or {}) if reference else {}
        return {
            "name": name,
            "task": task_of(m),
            "description": m.get("description"),
            "active_version": reg.store.active_version(name),
            "versions": [
                {
                    "version": i.version,
                    "active": i.active,
                    "ok": i.ok,
                    "created_at": (i.manifest or {}).get("created_at"),
                    "metrics": (i.manifest or {}).get("metrics"),
                    "error": i.error,
                    "importance": recorded_importance(i.manifest),
                }
                for i in infos
            ],
            "input": {"n_features": m.get("n_features", 0), "feature_names": m.get("feature_names")},
            "output": {"classes": m.get("classes"), "n_outputs": m.get("n_outputs", 0)},
            "metrics": m.get("metrics", {}),
            "rollout": rollout_state(name),
        }


def predict(name: str, version: str | None, args: dict[str, Any]) -> Response:
    """Rows in, predictions out (probabilities for classifiers): v1's JSON shapes around the data plane."""
    plane, call = dataplane(), current_call()
    chosen = plane.route(name, version, call)
    loaded = chosen.model
    X, field = request_rows(loaded, args, plane.settings.max_rows)
    try:
        answered = plane.predict(chosen, X, call, field)
    except InputError as exc:
        abort(422, exc.message, errors={exc.field: [exc.message]})
    with tracing.span("encode"):
        loaded, prediction, logged = answered.model, answered.prediction, answered.logged
        body: dict[str, Any] = {"model": loaded.name, "version": loaded.version}
        values = prediction.values
        body["predictions"] = values if values.dtype.kind in "iuf" else values.tolist()
        if prediction.probabilities is not None:
            body["probabilities"] = prediction.probabilities
        if logged is not None:  # feedback quotes them
            body["request_id"] = logged.request_id
            if logged.feedback_token is not None:
                body["feedback_token"] = logged.feedback_token
        return json_response(body, headers={MODEL_VERSION_HEADER: str(loaded.version)})


ROUTING_KEY_DOC = {
    "in": "header",
    "name": ROUTING_KEY_HEADER,
    "required": False,
    "description": "During a canary, requests with the same key are answered by the same version "
    "(default: the request id decides).",
    "schema": {"type": "string"},
}


# Function views, not MethodViews: a MethodView's dispatch looks up the app twice more on every prediction.
@blp.route("/<name>/predict", endpoint="Predict", methods=["POST"])
@blp.route("/<name>:predict", endpoint="PredictColon", methods=["POST"])
@blp.doc(parameters=[ROUTING_KEY_DOC], security=KEY)
@blp.errors(400, 401, 403, 404, 409, 413, 415, 503)
@require("predict")  # before the body is parsed
@blp.body(PREDICT_REQUEST)
@blp.answers(200, PredictResponseSchema, headers=VERSION_HEADER_DOC)
def predict_active(args: dict[str, Any], name: str) -> Response:
    """Predict with the active version (or, during a canary, its candidate for a share of requests)."""
    return predict(name, None, args)


@blp.route("/<name>/versions/<version>/predict", endpoint="PredictVersion", methods=["POST"])
@blp.doc(security=KEY)
@blp.errors(400, 401, 403, 404, 409, 413, 415, 503)
@require("predict")
@blp.body(PREDICT_REQUEST)
@blp.answers(200, PredictResponseSchema, headers=VERSION_HEADER_DOC)
def predict_version(args: dict[str, Any], name: str, version: str) -> Response:
    """Predict with one pinned version."""
    return predict(name, version, args)


@blp.route("/<name>/versions/<version>/activate")
class Activate(MethodView):
    @audited("activate")
    @blp.doc(security=ADMIN)
    @blp.errors(401, 403, 404, 409, 503)
    @blp.response(200, ActivateResponseSchema)
    @require_admin
    def post(self, name: str, version: str) -> dict[str, Any]:
        """Make a version the active one: roll forward or back (admin). Broken versions are refused with 409."""
        reg = registry()
        name, number = validate_name(name), validate_version(version)
        previous = reg.store.activate(name, number)
        note(detail=f"version {number} active (was {previous})")
        reg.active(name, refresh=True)
        return {"model": name, "version": number, "previous_version": previous}
