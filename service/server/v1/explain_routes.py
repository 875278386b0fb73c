"""v1 explanations: ``POST /v1/models/{name}/explain`` (also ``{name}:explain``) and a pinned version's.

The rows come in every form predict takes (``fields.request_rows``); the data plane resolves the version,
applies the input rules and the explanation budgets, and ``service.store.explain`` computes the answer.
"""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView

from service.server.auth import require
from service.server.blueprint import KEY, Blueprint
from service.server.current import call as current_call
from service.server.current import dataplane
from service.server.dataplane import InputError
from service.server.errors import abort
from service.server.jsonio import MODEL_VERSION_HEADER, json_response
from service.server.v1.fields import request_rows
from service.server.v1.schemas import ExplainRequestSchema, ExplainResponseSchema
from service.store import explanation_answer

blp = Blueprint("explanations", __name__, url_prefix="/v1/models", description="Explanations of predictions")
EXPLAIN_REQUEST = ExplainRequestSchema()
VERSION_HEADER_DOC = {
    MODEL_VERSION_HEADER: {"description": "The version explained (also in the body)", "schema": {"type": "string"}}
}


def explain(name: str, version: str | None, args: dict[str, Any]) -> Response:
    """Rows in, per row each feature's attribution, the prediction and the explained output out."""
    plane, call = dataplane(), current_call()
    loaded = plane.model(name, version, call)
    X, field = request_rows(loaded, args, plane.settings.max_rows)
    try:
        explained = plane.explain(
            loaded,
            X,
            method=args["method"],
            target=args.get("target"),
            steps=args.get("steps"),
            baseline=args["baseline"],
            field=field,
        )
    except InputError as exc:
        abort(422, exc.message, errors={exc.field: [exc.message]})
    body = explanation_answer(loaded, explained, args["baseline"])
    return json_response(body, headers={MODEL_VERSION_HEADER: str(loaded.version)})


@blp.route("/<name>/explain")
@blp.route("/<name>:explain", endpoint="ExplainColon")
class Explain(MethodView):
    @blp.doc(security=KEY)
    @blp.errors(400, 401, 403, 404, 409, 413, 415, 503)
    @require("predict")  # before the body is parsed
    @blp.body(EXPLAIN_REQUEST)
    @blp.response(200, ExplainResponseSchema, headers=VERSION_HEADER_DOC)
    def post(self, args: dict[str, Any], name: str) -> Response:
        """Explain the active version's predictions: attributions of each feature (integrated gradients by
        default, from the training rows' means)."""
        return explain(name, None, args)


@blp.route("/<name>/versions/<version>/explain")
class ExplainVersion(MethodView):
    @blp.doc(security=KEY)
    @blp.errors(400, 401, 403, 404, 409, 413, 415, 503)
    @require("predict")
    @blp.body(EXPLAIN_REQUEST)
    @blp.response(200, ExplainResponseSchema, headers=VERSION_HEADER_DOC)
    def post(self, args: dict[str, Any], name: str, version: str) -> Response:
        """Explain one pinned version's predictions."""
        return explain(name, version, args)
