"""Reading a v2 inference request: body, JSON header and binary tensor data, the input matrix, the outputs asked for.

The body may be gzip/deflate encoded and is never read past
``NNSERVE_MAX_BODY_BYTES`` (also after decoding). With Triton's binary tensor
data extension the ``Inference-Header-Content-Length`` header splits it into the
JSON header and the raw tensor bytes. Transport problems stop the request via
``fail``; a malformed tensor or output request raises ``tensors.TensorError``.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from flask import request

from service.server.dataplane import INPUT_NAME, NUMERIC_INPUTS, DataPlane, Inference, datatype_of
from service.server.jsonio import BodyError, decode_body, max_containers, max_values, read_body
from service.server.jsonvalues import describe
from service.server.settings import ServerSettings
from service.server.v2 import tensors
from service.server.v2.protocol_errors import fail, too_large
from service.store import LoadedModel


@dataclass(frozen=True)
class InferenceRequest:
    """A decoded inference request: its JSON object and the binary tensor data that followed it."""

    json: dict[str, Any]
    binary: bytes
    header_given: bool  # whether Inference-Header-Content-Length was sent
    may_hold_booleans: bool  # whether the JSON header could contain true/false at all


def read_request(loaded: LoadedModel, settings: ServerSettings) -> InferenceRequest:
    """The current request's body for ``loaded`` decoded into an ``InferenceRequest``; 400/413/415 if it cannot be."""
    header, binary, header_given = _split(_read_body(settings.max_body_bytes))
    rows = settings.max_rows
    try:
        req = decode_body(header, max_containers(rows), max_values(rows, int(loaded.estimator.n_features_in_)))
    except BodyError as exc:
        hint = ""
        if not header_given and ("UTF-8" in exc.message or "trailing characters" in exc.message):
            hint = "; binary tensor data after the JSON needs the Inference-Header-Content-Length header"
        fail(400, exc.message + hint)
    if not isinstance(req, dict):
        fail(400, f"the inference request must be a JSON object, got {describe(req)}")
    return InferenceRequest(req, binary, header_given, b"true" in header or b"false" in header)


def _read_body(limit: int) -> bytes:
    """The request body, gzip/deflate decoded, never longer than ``limit`` (NNSERVE_MAX_BODY_BYTES)."""
    try:
        body = read_body(request, limit)
    except BodyError:
        raise too_large() from None
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
        raise too_large()
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


def input_matrix(loaded: LoadedModel, inference: InferenceRequest, plane: DataPlane) -> tuple[np.ndarray, str]:
    """The request's one input tensor as the float64 matrix v1 would have built, and its name; its shape checked
    by the data plane before its values are decoded."""
    req = inference.json
    if "id" in req and not isinstance(req["id"], str):
        raise tensors.TensorError(f"'id' must be a string, got {describe(req['id'])}")
    parameters = req.get("parameters", {})
    if not isinstance(parameters, dict):
        raise tensors.TensorError(f"'parameters' must be an object, got {describe(parameters)}")
    inputs = req.get("inputs")
    if not isinstance(inputs, list):
        raise tensors.TensorError(f"the request needs 'inputs', an array of tensors, got {describe(inputs)}")
    parsed = [tensors.parse_input(obj, i) for i, obj in enumerate(inputs)]
    tensors.attach_binary(parsed, inference.binary, inference.header_given)
    if len(parsed) != 1:
        given = ", ".join(repr(t.name) for t in parsed) or "none"
        raise tensors.TensorError(
            f"model {loaded.name!r} takes exactly one input tensor ({INPUT_NAME!r}, shape [-1, "
            f"{loaded.estimator.n_features_in_}]), got {len(parsed)}: {given}"
        )
    (tensor,) = parsed
    if tensor.datatype not in NUMERIC_INPUTS:
        known = "unknown datatype" if tensor.datatype not in tensors.DATATYPES else "datatype"
        raise tensors.TensorError(
            f"input {tensor.name!r} has {known} {tensor.datatype!r}; model {loaded.name!r} takes "
            f"{', '.join(NUMERIC_INPUTS)}"
        )
    if len(tensor.shape) != 2:
        raise tensors.TensorError(
            f"input {tensor.name!r} has shape {tensor.shape}, model {loaded.name!r} expects "
            f"[-1, {loaded.estimator.n_features_in_}]"
        )
    plane.check_shape(loaded, tensor.shape[0], tensor.shape[1], tensor.name)
    values = tensors.decode(tensor, inference.may_hold_booleans)
    return np.asarray(values, dtype=np.float64), tensor.name


def requested_outputs(loaded: LoadedModel, specs: Mapping[str, object], req: dict[str, Any]) -> list[tuple[str, bool]]:
    """(output name, as binary) in response order: the request's ``outputs`` among ``specs``, else every output."""
    default = req.get("parameters", {}).get("binary_data_output", False)
    if not isinstance(default, bool):
        raise tensors.TensorError(f"parameters.binary_data_output must be a boolean, got {default!r}")
    requested = req.get("outputs")
    if requested is None:
        return [(name, default) for name in specs]
    if not isinstance(requested, list):
        raise tensors.TensorError(f"'outputs' must be an array of objects, got {describe(requested)}")
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


def output_tensors(
    plane: DataPlane, answered: Inference, wanted: list[tuple[str, bool]]
) -> list[tuple[str, Any, str, list[int], bool]]:
    """(name, values, datatype, shape, as binary) of each output asked for, in order, as the version that answered
    gives them: numbers in the dtype its estimator returned, one row per input row."""
    specs, values = plane.output_specs(answered.model), answered.outputs()
    made = []
    for name, as_binary in wanted:
        spec, arr = specs[name], values[name]
        datatype = spec.datatype if spec.datatype == "BYTES" else datatype_of(arr.dtype)
        made.append((name, arr, datatype, [len(arr), *spec.shape[1:]], as_binary))
    return made
