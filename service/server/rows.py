"""Limits on the rows of a prediction request, shared by v1 and v2 so each says it the same way."""

from __future__ import annotations

import numpy as np

__all__ = ["first_beyond", "too_many_rows"]


def too_many_rows(n: int, limit: int | None) -> str | None:
    """The complaint about ``n`` rows against ``NNSERVE_MAX_ROWS`` (``limit``), or None when they fit."""
    if limit is None or n <= limit:
        return None
    return f"has {n} rows; at most {limit} are accepted per request"


def first_beyond(X: np.ndarray, dtype: np.dtype) -> tuple[int, ...] | None:
    """Index of the first value of float64 ``X`` outside the finite range of ``dtype``, or None.

    A model computes in its own dtype (float32 by default), where such a value
    would become infinite. Two reductions decide the usual case without
    allocating a copy of the payload.
    """
    limit = np.finfo(dtype).max
    if X.dtype.itemsize <= np.dtype(dtype).itemsize or (X.max() <= limit and X.min() >= -limit):
        return None
    return tuple(int(i) for i in np.argwhere(np.abs(X) > limit)[0])
