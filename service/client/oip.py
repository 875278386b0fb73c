"""The Open Inference Protocol (v2) from the client's side: an array as the model's input tensor, as JSON or with
Triton's binary tensor data extension, and the answer's output tensors back as numpy arrays."""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from service.client.results import InferResult, NnserveError
from service.datatypes import DATATYPES, INPUT_NAME, datatype_of, from_binary, to_binary

HEADER_LENGTH = "Inference-Header-Content-Length"


def matrix(data: Any) -> np.ndarray:
    """``data`` as the 2-D numeric array the input tensor carries (one row of a 1-D one)."""
    X = np.asarray(data)
    if X.ndim == 1:
        X = X.reshape(1, -1)
    if X.ndim != 2:
        raise ValueError(f"infer takes rows of numbers (a 2-D array), got an array of {X.ndim} dimensions")
    try:
        datatype_of(X.dtype)
    except KeyError:
        raise TypeError(f"infer takes numbers, got an array of {X.dtype}") from None
    return X


def request(data: Any, outputs: Sequence[str] | None, binary: bool) -> tuple[bytes, dict[str, str]]:
    """The body and headers of an inference of ``data``; ``binary`` sends the input and asks for every output as
    raw bytes after the JSON header instead of JSON numbers."""
    X = matrix(data)
    tensor: dict[str, Any] = {"name": INPUT_NAME, "shape": list(X.shape), "datatype": datatype_of(X.dtype)}
    raw = to_binary(X) if binary else b""
    if binary:
        tensor["parameters"] = {"binary_data_size": len(raw)}
    else:
        tensor["data"] = X.reshape(-1).tolist()
    body: dict[str, Any] = {"inputs": [tensor], "parameters": {"binary_data_output": binary}}
    if outputs is not None:
        body["outputs"] = [{"name": name} for name in outputs]
    head = json.dumps(body, allow_nan=False).encode()
    if not binary:
        return head, {}
    return head + raw, {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(head))}


def result(headers: Mapping[str, str], body: bytes) -> InferResult:
    """The outputs of an inference answer, JSON or binary, as arrays of their datatype and shape."""
    length = headers.get(HEADER_LENGTH.lower())
    head, rest = (body, b"") if length is None else (body[: int(length)], body[int(length) :])
    try:
        found = json.loads(head)
    except ValueError:
        raise NnserveError(0, "the inference answer's header is not JSON") from None
    outputs, offset = {}, 0
    for out in found["outputs"]:
        size = (out.get("parameters") or {}).get("binary_data_size")
        if size is None:
            values = _from_json(out)
        else:
            values = _from_bytes(out["datatype"], rest[offset : offset + size])
            offset += size
        outputs[out["name"]] = values.reshape(out["shape"])
    logged = found.get("parameters") or {}
    return InferResult(
        found["model_name"], found["model_version"], outputs, logged.get("request_id"), logged.get("feedback_token")
    )


def _from_json(out: Mapping[str, Any]) -> np.ndarray:
    if out["datatype"] == "BYTES":
        return np.array(out["data"], dtype=object)
    return np.array(out["data"], dtype=DATATYPES[out["datatype"]])


def _from_bytes(datatype: str, raw: bytes) -> np.ndarray:
    if datatype != "BYTES":
        dtype = DATATYPES[datatype]
        assert dtype is not None, f"no numpy type for {datatype}"
        return from_binary(raw, dtype)
    items, offset = [], 0
    while offset < len(raw):  # each element: its 4-byte little-endian length, then its UTF-8 bytes
        (size,) = struct.unpack_from("<I", raw, offset)
        items.append(raw[offset + 4 : offset + 4 + size].decode())
        offset += 4 + size
    return np.array(items, dtype=object)
