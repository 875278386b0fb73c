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

import numpy as np
import orjson
from flask import Blueprint, Response, current_app

from nn import MLPClassifier
from service import telemetry
from service.server.auth import require
from service.server.health import readiness
from service.server.jsonio import MODEL_VERSION_HEADER, json_response
from service.server.registry import Route, registry
from service.server.routing import Logged, answer, route
from service.server.v2 import protocol_errors, tensors
from service.server.v2 import request as v2_request
from service.server.v2.protocol_errors import fail
from service.server.v2.request import INPUT_NAME
from service.store import (
    CorruptVersionError,
    LoadedModel,
    NonFiniteOutputError,
    NotFoundError,
    Prediction,
    StoreUnavailableError,
    validate_name,
    validate_version,
)

blp = Blueprint("v2", __name__, url_prefix="/v2")

protocol_errors.install(blp)

PLATFORM = "nnserve_numpy"
EXTENSIONS = ["binary_tensor_data"]


# -- models ----------------------------------------------------------------------


def resolve(name: str, version: str | None) -> LoadedModel:
    """The active version of ``name``, or the pinned ``version``; StoreError (404/409) otherwise."""
    name = validate_name(name)
    loaded = registry().active(name) if version is None else registry().version(name, validate_version(version))
    telemetry.model_resolved(loaded.name, loaded.version)
    return loaded


def _chosen(name: str, version: str | None) -> Route:
    """Who answers an inference of ``name``: the route of an unpinned one (a canary may answer it), or the
    pinned ``version``."""
    if version is not None:
        return Route(resolve(name, version))
    chosen = route(validate_name(name))
    telemetry.model_resolved(chosen.model.name, chosen.model.version)
    return chosen


def _classifier(loaded: LoadedModel) -> MLPClassifier | None:
    """The model's estimator when it is a classifier (with classes and probabilities), else None."""
    return loaded.estimator if isinstance(loaded.estimator, MLPClassifier) else None


def _float_type(loaded: LoadedModel) -> str:
    return tensors.datatype_of(np.dtype(loaded.manifest.get("dtype", "float32")))


def output_specs(loaded: LoadedModel) -> dict[str, tuple[str, list[int]]]:
    """Output name -> (datatype, shape with -1 for the batch), in response order."""
    classifier = _classifier(loaded)
    if classifier is not None:
        return {
            "predictions": ("INT64", [-1]),
            "labels": ("BYTES", [-1]),
            "probabilities": (_float_type(loaded), [-1, len(classifier.classes_)]),
        }
    n_outputs = int(loaded.manifest.get("n_outputs", 1))
    one_d = int(loaded.manifest.get("target_ndim", 1)) == 1
    return {"predictions": (_float_type(loaded), [-1] if one_d else [-1, n_outputs])}


def _versions(name: str) -> list[str]:
    return [str(info.version) for info in registry().store.version_info(name) if info.ok]


# -- routes: server --------------------------------------------------------------


@blp.get("")
def server_metadata() -> Response:
    """Server name, nnserve's version and the protocol extensions supported."""
    return json_response({"name": "nnserve", "version": current_app.config["API_VERSION"], "extensions": EXTENSIONS})


@blp.get("/health/live")
def live() -> Response:
    """Always live while the process answers."""
    return json_response({"live": True})


@blp.get("/health/ready")
def ready() -> Response:
    """Ready = the store is readable and every model with an active version has it loaded (as /readyz)."""
    ok, _, reasons = readiness()
    return json_response({"ready": True}) if ok else json_response({"ready": False, "reasons": reasons}, 503)


# -- routes: models --------------------------------------------------------------


@blp.get("/models/<name>")
@blp.get("/models/<name>/versions/<version>")
def model_metadata(name: str, version: str | None = None) -> Response:
    """The model's (version's) input and output tensors and its serving versions."""
    loaded = resolve(name, version)
    outputs = [{"name": n, "datatype": d, "shape": s} for n, (d, s) in output_specs(loaded).items()]
    n_features = int(loaded.estimator.n_features_in_)
    return json_response(
        {
            "name": loaded.name,
            "versions": _versions(loaded.name),
            "platform": PLATFORM,
            "inputs": [{"name": INPUT_NAME, "datatype": _float_type(loaded), "shape": [-1, n_features]}],
            "outputs": outputs,
        }
    )


@blp.get("/models/<name>/ready")
@blp.get("/models/<name>/versions/<version>/ready")
def model_ready(name: str, version: str | None = None) -> Response:
    """200 when the model (version) can serve; 404 when unknown; 503 when it exists but cannot serve."""
    try:
        loaded = resolve(name, version)
    except (NotFoundError, CorruptVersionError, StoreUnavailableError) as exc:
        store = registry().store
        wanted = store.versions(validate_name(name))  # unknown model: NotFoundError -> 404
        if version is not None and validate_version(version) not in wanted:
            raise
        return json_response({"name": name, "ready": False, "error": str(exc)}, 503)
    return json_response({"name": loaded.name, "version": str(loaded.version), "ready": True})


# -- routes: inference -----------------------------------------------------------


@blp.post("/models/<name>/infer")
@blp.post("/models/<name>/versions/<version>/infer")
@require("predict")
def infer(name: str, version: str | None = None) -> Response:
    """Run the request's input through the model; outputs as JSON or binary tensor data."""
    chosen = _chosen(name, version)
    loaded = chosen.model
    inference = v2_request.read_request(loaded)
    try:
        X, input_name = v2_request.input_matrix(loaded, inference)
        wanted = v2_request.requested_outputs(loaded, output_specs(loaded), inference.json)
    except tensors.TensorError as exc:
        fail(400, exc.message)
    loaded, prediction, logged = _run(chosen, X, input_name)
    values = _outputs(prediction)

    response: dict[str, Any] = {"model_name": loaded.name, "model_version": str(loaded.version)}
    if "id" in inference.json:
        response["id"] = inference.json["id"]
    if logged is not None:  # what v1 feedback quotes, in the protocol's free-form response parameters
        response["parameters"] = {k: v for k, v in logged._asdict().items() if v is not None}
    specs = output_specs(loaded)
    outputs, raws = [], []
    for out_name, as_binary in wanted:
        datatype, shape = specs[out_name]
        arr = values[out_name]
        if datatype != "BYTES":  # name the dtype the estimator actually returned
            datatype = tensors.datatype_of(arr.dtype)
        shape = [len(arr), *shape[1:]]
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


def _run(chosen: Route, X: np.ndarray, input_name: str) -> tuple[LoadedModel, Prediction, Logged | None]:
    """The same path as v1's predict: who answered, what it said, and how feedback quotes it if logged."""
    try:
        return answer(chosen, X)
    except NonFiniteOutputError as exc:
        fail(422, f"input {input_name!r}: {exc}")
    except ValueError as exc:  # the estimator's own input checks: still the client's input
        fail(400, f"input {input_name!r} was refused by model {chosen.model.name!r}: {exc}")


def _outputs(prediction: Prediction) -> dict[str, Any]:
    """Every output's values."""
    if prediction.index is not None:
        return {
            "predictions": prediction.index.astype(np.int64),
            "labels": [str(label) for label in prediction.values.tolist()],
            "probabilities": prediction.probabilities,
        }
    return {"predictions": prediction.values}
