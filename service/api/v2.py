"""HTTP API v2: the Open Inference Protocol (KServe v2 / Triton HTTP), with the binary tensor data extension.

``tritonclient.http`` works against these routes unchanged. Every model has one
input and up to three outputs (DESIGN.md section 7):

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
request, 404 for an unknown model or version, 413 for a body over
``NNSERVE_MAX_BODY_BYTES`` (also after gzip/deflate decoding), 409 for a version
whose artifact is broken, 503 when not ready; never the v1 error shape, not
even for werkzeug's own 404, 405 and 413 under ``/v2``.
"""

from __future__ import annotations

import logging
import zlib
from typing import Any, NoReturn

import numpy as np
import orjson
from flask import Blueprint, Response, current_app, g, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge

from .. import errors, metrics, tensors
from ..jsonio import BodyError, decode_body, read_body
from ..registry import ModelRegistry
from ..store import (
    CorruptVersionError,
    LoadedModel,
    NotFoundError,
    StoreError,
    StoreUnavailableError,
    validate_name,
    validate_version,
)
from .health import readiness

log = logging.getLogger(__name__)

blp = Blueprint("v2", __name__, url_prefix="/v2")

INPUT_NAME = "input"
PLATFORM = "nnserve_numpy"
EXTENSIONS = ["binary_tensor_data"]
_DUMP = orjson.OPT_SERIALIZE_NUMPY


class ProtocolError(Exception):
    """Stops a v2 request with ``{"error": message}`` and ``status``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def fail(status: int, message: str) -> NoReturn:
    raise ProtocolError(status, message)


def _json(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body, option=_DUMP), status, headers, mimetype="application/json")


# -- errors ----------------------------------------------------------------------


def _error_response(exc: ProtocolError) -> Response:
    return _json({"error": errors.clip(exc.message)}, exc.status, exc.headers)


def _too_large() -> ProtocolError:
    limit = int(current_app.config["NNSERVE_MAX_BODY_BYTES"])
    return ProtocolError(413, f"the request body is larger than the {limit} bytes accepted (NNSERVE_MAX_BODY_BYTES)")


def _from_http(exc: HTTPException) -> ProtocolError:
    if isinstance(exc, RequestEntityTooLarge):
        return _too_large()
    headers = {}
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        headers["Allow"] = ", ".join(sorted(exc.valid_methods))
        message = f"{request.method} is not allowed on {request.path}; use {headers['Allow']}"
    elif exc.code == 404:
        message = f"no such endpoint: {request.path}"
    else:
        message = exc.description or "request failed"
    return ProtocolError(exc.code or 500, message, headers)


@blp.errorhandler(Exception)
def _handle(exc: Exception) -> Response:
    """Everything raised while serving a v2 route leaves as ``{"error": ...}``."""
    if isinstance(exc, ProtocolError):
        return _error_response(exc)
    if isinstance(exc, HTTPException):
        return _error_response(_from_http(exc))
    if isinstance(exc, StoreError):
        _, status = errors.handle_store_error(exc)
        return _error_response(ProtocolError(status, str(exc)))
    request_id = g.get("request_id", "-")
    log.exception("unhandled error in %s (request id %s)", request.path, request_id)
    return _json({"error": f"internal error; quote request id {request_id} when reporting it"}, 500)


blp.app_errorhandler(ProtocolError)(_error_response)  # routing errors below are raised outside the blueprint


@blp.before_app_request
def _routing_errors() -> None:
    """Turn werkzeug's 404/405 for URLs under /v2 into protocol errors (Flask raises them after this hook)."""
    exc = request.routing_exception
    if isinstance(exc, HTTPException) and (exc.code or 0) >= 400 and _under_v2(request.path):
        request.routing_exception = _from_http(exc)


def _under_v2(path: str) -> bool:
    return path == "/v2" or path.startswith("/v2/")


# -- models ----------------------------------------------------------------------


def registry() -> ModelRegistry:
    return current_app.extensions["nnserve.registry"]


def resolve(name: str, version: str | None) -> LoadedModel:
    """The active version of ``name``, or the pinned ``version``; StoreError (404/409) otherwise."""
    name = validate_name(name)
    loaded = registry().active(name) if version is None else registry().version(name, validate_version(version))
    metrics.model_resolved(loaded.name, loaded.version)
    return loaded


def _is_classifier(loaded: LoadedModel) -> bool:
    return hasattr(loaded.estimator, "classes_")


def _float_type(loaded: LoadedModel) -> str:
    return tensors.datatype_of(np.dtype(loaded.manifest.get("dtype", "float32")))


def output_specs(loaded: LoadedModel) -> dict[str, tuple[str, list[int]]]:
    """Output name -> (datatype, shape with -1 for the batch), in response order."""
    est = loaded.estimator
    if _is_classifier(loaded):
        return {
            "predictions": ("INT64", [-1]),
            "labels": ("BYTES", [-1]),
            "probabilities": (_float_type(loaded), [-1, len(est.classes_)]),
        }
    n_outputs = int(loaded.manifest.get("n_outputs", 1))
    one_d = int(loaded.manifest.get("target_ndim", 1)) == 1
    return {"predictions": (_float_type(loaded), [-1] if one_d else [-1, n_outputs])}


def _versions(name: str) -> list[str]:
    return [str(info.version) for info in registry().store.version_info(name) if info.ok]


# -- routes: server --------------------------------------------------------------


@blp.get("")
def server_metadata() -> Response:
    return _json({"name": "nnserve", "version": current_app.config["API_VERSION"], "extensions": EXTENSIONS})


@blp.get("/health/live")
def live() -> Response:
    return _json({"live": True})


@blp.get("/health/ready")
def ready() -> Response:
    """Ready = the store is readable and every model with an active version has it loaded (as /readyz)."""
    ok, _, reasons = readiness()
    return _json({"ready": True}) if ok else _json({"ready": False, "reasons": reasons}, 503)


# -- routes: models --------------------------------------------------------------


@blp.get("/models/<name>")
@blp.get("/models/<name>/versions/<version>")
def model_metadata(name: str, version: str | None = None) -> Response:
    loaded = resolve(name, version)
    outputs = [{"name": n, "datatype": d, "shape": s} for n, (d, s) in output_specs(loaded).items()]
    n_features = int(loaded.estimator.n_features_in_)
    return _json(
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
        return _json({"name": name, "ready": False, "error": str(exc)}, 503)
    return _json({"name": loaded.name, "version": str(loaded.version), "ready": True})


# -- routes: inference -----------------------------------------------------------


@blp.post("/models/<name>/infer")
@blp.post("/models/<name>/versions/<version>/infer")
def infer(name: str, version: str | None = None) -> Response:
    loaded = resolve(name, version)
    body = _read_body()
    header, binary, header_given = _split(body)
    try:
        req = decode_body(header)
    except BodyError as exc:
        hint = ""
        if not header_given and ("UTF-8" in exc.message or "trailing characters" in exc.message):
            hint = "; binary tensor data after the JSON needs the Inference-Header-Content-Length header"
        fail(400, exc.message + hint)
    if not isinstance(req, dict):
        fail(400, f"the inference request must be a JSON object, got {tensors.describe(req)}")
    try:
        X, input_name = _input_matrix(loaded, req, binary, header_given, b"true" in header or b"false" in header)
        wanted = _requested_outputs(loaded, req)
    except tensors.TensorError as exc:
        fail(400, exc.message)
    values = _run(loaded, X, input_name)
    metrics.model_served(loaded.name, loaded.version, len(X))

    response: dict[str, Any] = {"model_name": loaded.name, "model_version": str(loaded.version)}
    if "id" in req:
        response["id"] = req["id"]
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
    head = orjson.dumps(response, option=_DUMP)
    if not raws:
        return Response(head, 200, mimetype="application/json")
    headers = {"Inference-Header-Content-Length": str(len(head))}
    return Response(b"".join([head, *raws]), 200, headers, mimetype="application/octet-stream")


def _read_body() -> bytes:
    """The request body, gzip/deflate decoded, never longer than NNSERVE_MAX_BODY_BYTES."""
    limit = int(current_app.config["NNSERVE_MAX_BODY_BYTES"])
    try:
        body = read_body(request, limit)
    except BodyError:
        raise _too_large() from None
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        fail(415, f"Content-Encoding {encoding!r} is not supported; use gzip, deflate or none")
    inflater = zlib.decompressobj(31 if encoding == "gzip" else 15)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        fail(400, f"the request body is not valid {encoding} data: {exc}")
    if len(out) > limit:
        raise _too_large()
    if not inflater.eof:
        fail(400, f"the request body is truncated {encoding} data")
    return out


def _split(body: bytes) -> tuple[bytes, bytes, bool]:
    """(JSON header, binary tensor data, whether Inference-Header-Content-Length was given)."""
    raw = request.headers.get("Inference-Header-Content-Length")
    if raw is None:
        return body, b"", False
    if not raw.strip().isdigit() or int(raw) > len(body):
        fail(
            400,
            f"Inference-Header-Content-Length is {raw!r}; it must be the JSON header's length in bytes, "
            f"at most the body's {len(body)}",
        )
    n = int(raw)
    return body[:n], body[n:], True


def _input_matrix(
    loaded: LoadedModel, req: dict[str, Any], binary: bytes, header_given: bool, may_hold_booleans: bool
) -> tuple[np.ndarray, str]:
    """The request's one input tensor as the float64 matrix v1 would have built, and its name."""
    if "id" in req and not isinstance(req["id"], str):
        raise tensors.TensorError(f"'id' must be a string, got {tensors.describe(req['id'])}")
    parameters = req.get("parameters", {})
    if not isinstance(parameters, dict):
        raise tensors.TensorError(f"'parameters' must be an object, got {tensors.describe(parameters)}")
    inputs = req.get("inputs")
    if not isinstance(inputs, list):
        raise tensors.TensorError(f"the request needs 'inputs', an array of tensors, got {tensors.describe(inputs)}")
    parsed = [tensors.parse_input(obj, i) for i, obj in enumerate(inputs)]
    tensors.attach_binary(parsed, binary, header_given)
    if len(parsed) != 1:
        given = ", ".join(repr(t.name) for t in parsed) or "none"
        raise tensors.TensorError(
            f"model {loaded.name!r} takes exactly one input tensor ({INPUT_NAME!r}, shape [-1, "
            f"{loaded.estimator.n_features_in_}]), got {len(parsed)}: {given}"
        )
    (tensor,) = parsed
    if tensor.datatype not in tensors.NUMERIC_INPUTS:
        known = "unknown datatype" if tensor.datatype not in tensors.DATATYPES else "datatype"
        raise tensors.TensorError(
            f"input {tensor.name!r} has {known} {tensor.datatype!r}; model {loaded.name!r} takes "
            f"{', '.join(tensors.NUMERIC_INPUTS)}"
        )
    n_features = int(loaded.estimator.n_features_in_)
    if len(tensor.shape) != 2 or tensor.shape[1] != n_features:
        raise tensors.TensorError(
            f"input {tensor.name!r} has shape {tensor.shape}, model {loaded.name!r} expects [-1, {n_features}]"
        )
    rows = tensor.shape[0]
    max_rows = int(current_app.config["NNSERVE_MAX_ROWS"])
    if rows == 0:
        raise tensors.TensorError(f"input {tensor.name!r} has shape {tensor.shape}: send at least one row")
    if rows > max_rows:
        raise tensors.TensorError(f"input {tensor.name!r} has {rows} rows; at most {max_rows} are accepted per request")
    values = tensors.decode(tensor, may_hold_booleans)
    X = values.astype(np.float64)
    # The network computes in its own dtype: a value beyond its range would become infinite there.
    network = np.dtype(loaded.manifest.get("dtype", "float32"))
    with np.errstate(over="ignore"):
        overflow = ~np.isfinite(X.astype(network))
    if overflow.any():
        where = [int(i) for i in np.argwhere(overflow)[0]]
        raise tensors.TensorError(
            f"input {tensor.name!r} holds {float(X[tuple(where)])} at index {where}, beyond the range of the "
            f"{tensors.datatype_of(network)} numbers model {loaded.name!r} computes with"
        )
    return X, tensor.name


def _requested_outputs(loaded: LoadedModel, req: dict[str, Any]) -> list[tuple[str, bool]]:
    """(output name, as binary) in response order: the request's ``outputs``, else every output."""
    default = req.get("parameters", {}).get("binary_data_output", False)
    if not isinstance(default, bool):
        raise tensors.TensorError(f"parameters.binary_data_output must be a boolean, got {default!r}")
    specs = output_specs(loaded)
    requested = req.get("outputs")
    if requested is None:
        return [(name, default) for name in specs]
    if not isinstance(requested, list):
        raise tensors.TensorError(f"'outputs' must be an array of objects, got {tensors.describe(requested)}")
    wanted: list[tuple[str, bool]] = []
    for i, out in enumerate(requested):
        if not isinstance(out, dict) or not isinstance(out.get("name"), str):
            raise tensors.TensorError(f"outputs[{i}] must be an object with a 'name' string")
        name = out["name"]
        if name not in specs:
            raise tensors.TensorError(
                f"model {loaded.name!r} has no output {name!r}; its outputs are {', '.join(map(repr, specs))}"
            )
        if any(name == w for w, _ in wanted):
            raise tensors.TensorError(f"output {name!r} is requested twice")
        parameters = out.get("parameters", {})
        if not isinstance(parameters, dict):
            raise tensors.TensorError(f"output {name!r}: 'parameters' must be an object")
        if "classification" in parameters:
            raise tensors.TensorError(
                f"output {name!r} asks for the classification extension, which nnserve does not support; "
                "request 'labels' and 'probabilities' instead"
            )
        if "shared_memory_region" in parameters:
            raise tensors.TensorError(f"output {name!r} asks for shared memory, which nnserve does not support")
        as_binary = parameters.get("binary_data", default)
        if not isinstance(as_binary, bool):
            raise tensors.TensorError(f"output {name!r}: parameters.binary_data must be a boolean")
        wanted.append((name, as_binary))
    return wanted


def _run(loaded: LoadedModel, X: np.ndarray, input_name: str) -> dict[str, Any]:
    """Every output's values, from the same estimator calls as v1's predict."""
    est = loaded.estimator
    try:
        if _is_classifier(loaded):
            proba = est.predict_proba(X)
            index = proba.argmax(axis=1)
            labels = est.classes_[index]
            return {
                "predictions": index.astype(np.int64),
                "labels": [str(label) for label in labels.tolist()],
                "probabilities": proba,
            }
        return {"predictions": np.asarray(est.predict(X))}
    except ValueError as exc:  # the estimator's own input checks: still the client's input
        fail(400, f"input {input_name!r} was refused by model {loaded.name!r}: {exc}")
