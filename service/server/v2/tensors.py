"""Tensors of the Open Inference Protocol (KServe v2 / Triton HTTP): datatypes, input decoding, output encoding.

Input tensors arrive either as JSON (``data``: numbers, flat or nested,
row-major) or, with Triton's binary tensor data extension, as raw
little-endian row-major bytes after the JSON header, sized by the input's
``parameters.binary_data_size``. Outputs go back the same two ways; ``BYTES``
elements are written as a 4-byte little-endian length followed by the bytes.

Everything a client can get wrong raises ``TensorError`` with one sentence
that names the tensor and the problem; nothing here knows about models.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.datatypes import from_binary, to_binary
from service.server.dataplane import DATATYPES, NUMERIC_INPUTS
from service.server.jsonvalues import describe, is_number


class TensorError(Exception):
    """A malformed tensor in a request: answered 400 with ``message``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class InputTensor:
    """One ``$request_input``, checked for form; its data is decoded by ``decode``."""

    name: str
    datatype: str
    shape: list[int]
    data: Any  # the JSON ``data``, or None when the data is binary
    binary_size: int | None  # ``parameters.binary_data_size``, None for JSON data
    raw: bytes = b""  # this input's slice of the binary data, set by ``attach_binary``

    @property
    def count(self) -> int:
        return math.prod(self.shape)


def parse_input(obj: Any, index: int) -> InputTensor:
    """A ``$request_input`` object checked for form: name, datatype, shape, and where its data is."""
    if not isinstance(obj, dict):
        raise TensorError(f"inputs[{index}] must be an object, got {describe(obj)}")
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        raise TensorError(f"inputs[{index}] needs a 'name' (a non-empty string), got {describe(name)}")
    label = f"input {name!r}"
    datatype = obj.get("datatype")
    if not isinstance(datatype, str):
        raise TensorError(f"{label} needs a 'datatype' (a string such as \"FP32\"), got {describe(datatype)}")
    shape = obj.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise TensorError(f"{label} needs a 'shape' (an array of integers), got {describe(shape)}")
    if any(d < 0 for d in shape):
        raise TensorError(f"{label} has shape {shape}: dimensions cannot be negative")
    parameters = obj.get("parameters", {})
    if not isinstance(parameters, dict):
        raise TensorError(f"{label}: 'parameters' must be an object, got {describe(parameters)}")
    if "shared_memory_region" in parameters:
        raise TensorError(f"{label} uses shared memory, which nnserve does not support; send the data in the body")
    size = parameters.get("binary_data_size")
    has_data = "data" in obj
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise TensorError(f"{label}: parameters.binary_data_size must be a non-negative integer, got {size!r}")
        if has_data:
            raise TensorError(f"{label} has both 'data' and parameters.binary_data_size; send one or the other")
    elif not has_data:
        raise TensorError(f"{label} has no data: give 'data', or binary data with parameters.binary_data_size")
    return InputTensor(name, datatype, shape, obj.get("data"), size)


def attach_binary(inputs: Sequence[InputTensor], binary: bytes, header_given: bool) -> None:
    """Hand each binary input its slice of the bytes after the JSON header, in input order."""
    declared = sum(t.binary_size or 0 for t in inputs)
    if declared != len(binary):
        sized = [t for t in inputs if t.binary_size is not None]
        if sized and not header_given:
            raise TensorError(
                f"input {sized[0].name!r} has parameters.binary_data_size {sized[0].binary_size}, but the request "
                "has no binary data: send the JSON header's length in the Inference-Header-Content-Length header"
            )
        raise TensorError(
            f"the request has {len(binary)} bytes of binary tensor data after its JSON header, "
            f"but its inputs' binary_data_size add up to {declared}"
        )
    offset = 0
    for tensor in inputs:
        if tensor.binary_size is not None:
            tensor.raw = binary[offset : offset + tensor.binary_size]
            offset += tensor.binary_size


def decode(tensor: InputTensor, body_may_hold_booleans: bool = True) -> np.ndarray:
    """The tensor's values as an array of its datatype and shape (whether they are finite, and within the model's
    range, is the data plane's rule: ``DataPlane.check_values``).

    ``body_may_hold_booleans=False`` (no ``true``/``false`` token in the JSON)
    lets numbers convert in one numpy step; otherwise, or when that step does
    not give numbers of the right kind, the values are walked to name the
    first bad one.
    """
    dtype = DATATYPES[tensor.datatype]
    assert dtype is not None and tensor.datatype in NUMERIC_INPUTS, "check the datatype before decoding"
    if tensor.binary_size is not None:
        needed = tensor.count * dtype.itemsize
        if tensor.binary_size != needed:
            raise TensorError(
                f"input {tensor.name!r} has binary_data_size {tensor.binary_size}, but shape {tensor.shape} "
                f"of {tensor.datatype} needs {needed} bytes"
            )
        values = from_binary(tensor.raw, dtype)
    else:
        values = _from_json(tensor, dtype, body_may_hold_booleans)
    return values.reshape(tensor.shape)


def _from_json(tensor: InputTensor, dtype: np.dtype, body_may_hold_booleans: bool) -> np.ndarray:
    data = tensor.data
    if not isinstance(data, list):
        raise TensorError(f"input {tensor.name!r}: 'data' must be an array of numbers, got {describe(data)}")
    integer = dtype.kind in "iu"
    arr = None
    if not body_may_hold_booleans:
        try:
            arr = np.array(data)
        except (ValueError, TypeError, OverflowError):  # ragged nesting, or values of mixed kinds
            arr = None
    if arr is None or arr.dtype.kind not in ("iu" if integer else "iuf"):
        flat: list[Any] = _flatten(tensor, data, integer)
        if len(flat) != tensor.count:
            raise _count_error(tensor, len(flat))
        if integer:
            _check_range(tensor, flat, dtype)
            return np.array(flat, dtype=dtype)
        with np.errstate(over="ignore"):  # out-of-range values become inf, reported by decode
            return np.array(flat, dtype=np.float64).astype(dtype)
    if arr.size != tensor.count:
        raise _count_error(tensor, arr.size)
    arr = arr.reshape(-1)
    if integer:
        _check_range(tensor, arr, dtype)
    with np.errstate(over="ignore"):
        return arr.astype(dtype)


def _count_error(tensor: InputTensor, n: int) -> TensorError:
    return TensorError(f"input {tensor.name!r} has {n} values, but its shape {tensor.shape} needs {tensor.count}")


def _flatten(tensor: InputTensor, data: list[Any], integer: bool) -> list[Any]:
    """Nested arrays to one row-major list, naming the first value that is not a number of the right kind."""
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for value in stack[-1]:
            if isinstance(value, list):
                stack.append(iter(value))
                break
            if not is_number(value):
                raise TensorError(f"input {tensor.name!r}: value {len(flat)} is {describe(value)}, expected a number")
            if integer and not isinstance(value, int):
                raise TensorError(
                    f"input {tensor.name!r}: value {len(flat)} is {value!r}, expected an integer for {tensor.datatype}"
                )
            flat.append(value)
        else:
            stack.pop()
    return flat


def _check_range(tensor: InputTensor, values: Sequence[Any] | np.ndarray, dtype: np.dtype) -> None:
    info = np.iinfo(dtype)
    if isinstance(values, np.ndarray):
        if not values.size or (int(values.min()) >= info.min and int(values.max()) <= info.max):
            return
        values = values.tolist()
    for i, v in enumerate(values):
        if not info.min <= v <= info.max:
            raise TensorError(
                f"input {tensor.name!r}: value {i} is {v}, outside the range of {tensor.datatype} "
                f"[{info.min}, {info.max}]"
            )


# -- outputs ---------------------------------------------------------------------


def encode_bytes(items: Sequence[str]) -> bytes:
    """BYTES elements as the binary extension writes them: 4-byte little-endian length, then UTF-8."""
    parts = []
    for item in items:
        raw = item.encode()
        parts.append(struct.pack("<I", len(raw)))
        parts.append(raw)
    return b"".join(parts)


def encode_output(
    name: str, values: np.ndarray | list[str], datatype: str, shape: list[int], binary: bool
) -> tuple[dict[str, Any], bytes | None]:
    """A ``$response_output`` and, when ``binary``, its raw bytes (which then replace ``data``)."""
    out: dict[str, Any] = {"name": name, "datatype": datatype, "shape": shape}
    if datatype == "BYTES":
        items = list(values)
        if not binary:
            out["data"] = items
            return out, None
        raw = encode_bytes(items)
    else:
        arr = np.ascontiguousarray(values).reshape(-1)
        if not binary:
            out["data"] = arr
            return out, None
        raw = to_binary(arr)
    out["parameters"] = {"binary_data_size": len(raw)}
    return out, raw
