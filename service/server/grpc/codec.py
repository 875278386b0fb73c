"""A ``ModelInferRequest`` as the HTTP v2 API's ``InferenceRequest``, and outputs back into a ``ModelInferResponse``.

Each input becomes the JSON object the HTTP API parses (name, datatype, shape, parameters), its values from the
``InferTensorContents`` field of its datatype (``data``) or from ``raw_input_contents`` (binary tensor data, sized by
``binary_data_size``); requested outputs and parameters become the JSON's ``outputs`` and ``parameters``. So both
transports read a request with the same functions (``v2.request.input_matrix``, ``requested_outputs``) and say the
same about it; only what gRPC alone can get wrong (typed and raw contents mixed, raw contents that do not match
the inputs one to one, values in another datatype's field) is said here.
Outputs go back raw (``raw_output_contents``, the binary extension's bytes) when the request's inputs were raw,
else as typed contents.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from service.server.v2 import tensors
from service.server.v2.request import InferenceRequest
from service.server.v2.tensors import TensorError

# The InferTensorContents field that holds each datatype's values (FP16 and BF16 have none: raw only).
CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


_FIELDS = sorted(set(CONTENTS.values()))


def parameters(params: Mapping[str, Any]) -> dict[str, Any]:
    """An ``InferParameter`` map as the JSON API's ``parameters`` object."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        choice = value.WhichOneof("parameter_choice")
        out[key] = None if choice is None else getattr(value, choice)
    return out


def inference_request(request: Any, max_values: int) -> InferenceRequest:
    """The ``ModelInferRequest`` as the JSON API's ``InferenceRequest``: its JSON object, and its raw contents as the
    binary tensor data after it.

    Typed values become Python numbers here (~30 bytes each, against 4 or 8 in the message): like a JSON body's,
    more than ``max_values`` of them (``jsonio.max_values``, the model's budget) are refused before that.
    """
    raw: Sequence[bytes] = request.raw_input_contents
    count = sum(len(getattr(t.contents, field)) for t in request.inputs for field in _FIELDS)
    if count > max_values:
        raise TensorError(
            f"the request holds {count} typed values; a request for this model may hold at most {max_values} "
            "(NNSERVE_MAX_ROWS rows of its inputs and a target, and 1024 more): send raw_input_contents"
        )
    if raw:
        typed = [t.name for t in request.inputs if t.HasField("contents")]
        if typed:
            raise TensorError(
                f"input {typed[0]!r} has typed contents, but the request has raw_input_contents: "
                "send every input one way or the other"
            )
        if len(raw) != len(request.inputs):
            raise TensorError(
                f"the request has {len(raw)} raw_input_contents for {len(request.inputs)} inputs: "
                "send one per input, in the order of the inputs"
            )
    inputs = []
    for i, tensor in enumerate(request.inputs):
        obj: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": list(tensor.shape),
            "parameters": parameters(tensor.parameters),
        }
        if raw:
            obj["parameters"]["binary_data_size"] = len(raw[i])
        else:
            obj["data"] = _typed(tensor)
        inputs.append(obj)
    body: dict[str, Any] = {"inputs": inputs, "parameters": parameters(request.parameters)}
    if request.outputs:
        body["outputs"] = [{"name": out.name, "parameters": parameters(out.parameters)} for out in request.outputs]
    return InferenceRequest(body, b"".join(raw), header_given=True, may_hold_booleans=False)


def _typed(tensor: Any) -> list[Any]:
    """An input's values from the ``InferTensorContents`` field of its datatype; none may be in another field.
    A datatype without a field (FP16, unknown ones) is left for the datatype rule to refuse."""
    field = CONTENTS.get(tensor.datatype)
    if field is None:
        return []
    for descriptor, _ in tensor.contents.ListFields():
        if descriptor.name != field:
            raise TensorError(
                f"input {tensor.name!r} has datatype {tensor.datatype!r}, whose values go in contents.{field}, "
                f"but it has contents.{descriptor.name}"
            )
    return list(getattr(tensor.contents, field))


def add_output(
    response: Any, name: str, values: np.ndarray | list[str], datatype: str, shape: list[int], raw: bool
) -> None:
    """Append one output tensor to ``response``: its bytes to ``raw_output_contents``, or its values typed."""
    out = response.outputs.add(name=name, datatype=datatype, shape=shape)
    if raw:
        _, data = tensors.encode_output(name, values, datatype, shape, binary=True)
        response.raw_output_contents.append(data)
    elif datatype == "BYTES":
        out.contents.bytes_contents.extend(item.encode() for item in values)
    else:
        getattr(out.contents, CONTENTS[datatype]).extend(np.asarray(values).reshape(-1).tolist())
