"""HTTP API v2: the Open Inference Protocol (KServe v2 / Triton HTTP), with the binary tensor data extension.

``tritonclient.http`` works against these routes unchanged. Every model has one
input and up to three outputs:

- input ``input``: shape ``[-1, n_features]``, datatype of the model's network
  (``FP32`` for the default float32 networks); requests may send FP32, FP64,
  INT8..INT64 or UINT8..UINT64, and the single input is used whatever its name.
- ``predictions``: the class index (INT64, into the model's classes) for a
  classifier, the predicted values for a regressor (shape ``[-1]``, or
  ``[-1, n_outputs]`` for a multi-output regressor).
- ``labels`` (classifiers): the class labels as BYTES.
- ``probabilities`` (classifiers): ``[-1, n_classes]``, columns in class order.

The numbers come from the same estimator calls as ``POST /v1/models/<name>/predict``,
so both APIs answer the same. Errors are ``{"error": "<message>"}``: 400 for a bad
request, 422 for rows whose outputs are not finite (naming the row), 404 for an
unknown model or version, 413 for a body over ``NNSERVE_MAX_BODY_BYTES`` (also
after gzip/deflate decoding), 409 for a version whose artifact is broken, 503
when not ready; never the v1 error shape, not even for werkzeug's own 404, 405
and 413 under ``/v2``.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import Blueprint, Response

from service import tracing
from service.server.auth import require
from service.server.callers import READ
from service.server.current import call, dataplane
from service.server.dataplane import InputError, TensorSpec, UnanswerableInputError
from service.server.jsonio import MODEL_VERSION_HEADER, json_response
from service.server.v2 import protocol_errors, tensors
from service.server.v2 import request as v2_request
from service.server.v2.protocol_errors import fail

blp = Blueprint("v2", __name__, url_prefix="/v2")

protocol_errors.install(blp)

EXTENSIONS = ["binary_tensor_data"]


def _tensor(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "datatype": spec.datatype, "shape": list(spec.shape)}


# -- routes: server --------------------------------------------------------------


@blp.get("")
def server_metadata() -> Response:
    """Server name, nnserve's version and the protocol extensions supported."""
    name, version = dataplane().server_metadata()
    return json_response({"name": name, "version": version, "extensions": EXTENSIONS})


@blp.get("/health/live")
def live() -> Response:
    """Always live while the process answers."""
    return json_response({"live": True})


@blp.get("/health/ready")
def ready() -> Response:
    """Ready = the store is readable and every model with an active version has it loaded (as /readyz)."""
    state = dataplane().readiness()
    return (
        json_response({"ready": True})
        if state.ready
        else json_response({"ready": False, "reasons": state.reasons}, 503)
    )


# -- routes: models --------------------------------------------------------------


@blp.get("/models/<name>")
@blp.get("/models/<name>/versions/<version>")
@require(READ)
def model_metadata(name: str, version: str | None = None) -> Response:
    """The model's (version's) input and output tensors and its serving versions."""
    meta = dataplane().metadata(name, version, call())
    return json_response(
        {
            "name": meta.name,
            "versions": list(meta.versions),
            "platform": meta.platform,
            "inputs": [_tensor(spec) for spec in meta.inputs],
            "outputs": [_tensor(spec) for spec in meta.outputs],
        }
    )


@blp.get("/models/<name>/ready")
@blp.get("/models/<name>/versions/<version>/ready")
@require(READ)
def model_ready(name: str, version: str | None = None) -> Response:
    """200 when the model (version) can serve; 404 when unknown; 503 when it exists but cannot serve."""
    state = dataplane().model_ready(name, version, call())
    if not state.ready:
        return json_response({"name": state.name, "ready": False, "error": state.error}, 503)
    return json_response({"name": state.name, "version": str(state.version), "ready": True})


# -- routes: inference -----------------------------------------------------------


@blp.post("/models/<name>/infer")
@blp.post("/models/<name>/versions/<version>/infer")
@require("predict")
def infer(name: str, version: str | None = None) -> Response:
    """Run the request's input through the model; outputs as JSON or binary tensor data."""
    plane, facts = dataplane(), call()
    chosen = plane.route(name, version, facts)
    loaded = chosen.model
    try:
        with tracing.span("decode"):
            inference = v2_request.read_request(loaded, plane.settings)
            X, input_name = v2_request.input_matrix(loaded, inference, plane)
            wanted = v2_request.requested_outputs(loaded, plane.output_specs(loaded), inference.json)
        answered = plane.predict(chosen, X, facts, input_name)
    except tensors.TensorError as exc:
        fail(400, exc.message)
    except UnanswerableInputError as exc:
        fail(422, exc.message)
    except InputError as exc:
        fail(400, exc.message)
    with tracing.span("encode"):
        loaded, logged = answered.model, answered.logged
        response: dict[str, Any] = {"model_name": loaded.name, "model_version": str(loaded.version)}
        if "id" in inference.json:
            response["id"] = inference.json["id"]
        if logged is not None:  # what v1 feedback quotes, in the protocol's free-form response parameters
            response["parameters"] = {k: v for k, v in logged._asdict().items() if v is not None}
        outputs, raws = [], []
        for out_name, arr, datatype, shape, as_binary in v2_request.output_tensors(plane, answered, wanted):
            tensor, raw = tensors.encode_output(out_name, arr, datatype, shape, as_binary)
            outputs.append(tensor)
            if raw is not None:
                raws.append(raw)
        response["outputs"] = outputs
        head = orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY)
        headers = {MODEL_VERSION_HEADER: str(loaded.version)}
        if not raws:
            return Response(head, 200, headers, mimetype="application/json")
        headers["Inference-Header-Content-Length"] = str(len(head))
        return Response(b"".join([head, *raws]), 200, headers, mimetype="application/octet-stream")
