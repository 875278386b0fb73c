"""The Open Inference Protocol's tensor datatypes, as numpy sees them, and their binary form.

Shared by the v2 server (``server/v2/tensors.py``) and the Python client (``client/oip.py``), which may not
import each other: the names, the dtypes and the little-endian row-major bytes of the binary tensor data
extension are one table and two functions here.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DATATYPES", "INPUT_NAME", "datatype_of", "from_binary", "to_binary"]

INPUT_NAME = "input"  # the one input tensor of every nnserve model (GET /v2/models/<name>)

# Every datatype of the protocol, to numpy. BF16 has no numpy type; it is only ever rejected.
DATATYPES: dict[str, np.dtype | None] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "BF16": None,
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
_NAMES = {dtype: name for name, dtype in DATATYPES.items() if dtype is not None and name != "BYTES"}


def datatype_of(dtype: np.dtype) -> str:
    """The protocol's name of a numeric numpy dtype (``float32`` -> ``FP32``); KeyError for any other."""
    return _NAMES[np.dtype(dtype)]


def to_binary(values: np.ndarray) -> bytes:
    """A numeric tensor's bytes as the binary extension sends them: little-endian, row-major."""
    arr = np.ascontiguousarray(values)
    return arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()


def from_binary(raw: bytes, dtype: np.dtype) -> np.ndarray:
    """A numeric tensor's values (flat, native byte order) from the bytes of ``to_binary``."""
    return np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype)
