"""The numeric-matrix field: JSON rows of numbers to a float64 array in one numpy step.

Validating a 10,000 x 64 payload element by element with ``List(List(Float))``
is 70-100x slower than letting numpy convert it once and checking the result's
dtype kind, ndim and finiteness. Only when that fails (or booleans might hide
among numbers, which numpy would silently turn into 0/1) is the payload walked
in Python, to name the first offending value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from flask import has_request_context, request
from marshmallow import ValidationError, fields

from service.server.dataplane import too_many_rows
from service.server.errors import abort
from service.server.jsonvalues import describe, is_number
from service.store import LoadedModel


class NamedRows(list):
    """Rows given as objects keyed by feature name; ordered by the model's names later."""


class Matrix(fields.Field):
    """A list of rows of numbers (or one row, or rows as objects keyed by feature name).

    Deserialises to a C-contiguous float64 ndarray of shape (n_rows, n_columns),
    or to ``NamedRows`` for object rows. ``max_rows`` may be a callable, read per
    request (the limit is configuration).
    """

    def __init__(self, max_rows: Any = None, **kwargs: Any) -> None:
        kwargs.setdefault(
            "metadata",
            {
                "type": "array",
                "description": "Rows of numbers, one row, or rows as objects keyed by feature name.",
                "items": {
                    "oneOf": [{"type": "array", "items": {"type": "number"}}, {"type": "object"}, {"type": "number"}]
                },
                "example": [[5.1, 3.5, 1.4, 0.2]],
            },
        )
        super().__init__(**kwargs)
        self.max_rows = max_rows

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> np.ndarray | NamedRows:
        if not isinstance(value, list):
            raise ValidationError(f"must be a list of rows, got {_kind(value)}")
        if not value:
            raise ValidationError("is empty: send at least one row")
        if is_number(value[0]):
            value = [value]  # one row without the outer list: its length is the width, not a row count
        limit = self.max_rows() if callable(self.max_rows) else self.max_rows
        problem = too_many_rows(len(value), limit)
        if problem is not None:
            raise ValidationError(problem)
        if isinstance(value[0], dict):
            return _named_rows(value)
        return to_matrix(value)


def to_matrix(rows: list[Any]) -> np.ndarray:
    """Rows of numbers to float64 (n, m); ``ValidationError`` naming the first bad value."""
    if not isinstance(rows, list) or not rows:  # callers check this first; the contract holds without them
        raise ValidationError(f"must be a non-empty list of rows, got {_kind(rows) if rows else 'nothing'}")
    try:
        arr = np.array(rows)
    except (ValueError, TypeError, OverflowError):
        arr = None
    if arr is not None and arr.dtype.kind in "iuf" and arr.ndim == 2 and not _may_hold_booleans():
        arr = arr.astype(np.float64, copy=False)
        if np.isfinite(arr).all():
            return arr
    problem = _first_problem(rows)
    if problem is not None:
        raise ValidationError(problem)
    try:
        arr = np.array(rows, dtype=np.float64)
    except OverflowError:
        raise ValidationError("holds a number too large to represent") from None
    if not np.isfinite(arr).all():
        raise ValidationError("holds a number too large to represent (it overflows to infinity)")
    return arr


def _may_hold_booleans() -> bool:
    # JSON booleans become Python bools, which numpy mixes into numbers as 0/1.
    # A request body without the tokens cannot hold one: skip the Python walk.
    if not has_request_context():
        return True
    body = request._get_current_object().get_data(cache=True)  # type: ignore[attr-defined]
    return b"true" in body or b"false" in body


def _kind(value: Any) -> str:
    return describe(value, array="a list")


def _first_problem(rows: list[Any]) -> str | None:
    width = None
    for i, row in enumerate(rows):
        if not isinstance(row, list):
            return f"row {i} is {_kind(row)}, expected a list of numbers"
        if width is None:
            width = len(row)
            if width == 0:
                return f"row {i} is empty"
        elif len(row) != width:
            return f"row {i} has {len(row)} values, row 0 has {width}: rows must have equal length"
        for j, v in enumerate(row):
            if isinstance(v, list):
                return f"row {i}, column {j} is a list: rows must be flat lists of numbers (nested too deep)"
            if not is_number(v):
                return f"row {i}, column {j} is {_kind(v)}, expected a number"
            if isinstance(v, float) and not math.isfinite(v):
                return f"row {i}, column {j} is {v}, expected a finite number"
    return None


def _named_rows(rows: list[Any]) -> NamedRows:
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValidationError(f"row {i} is {_kind(row)}; when row 0 is an object, every row must be one")
    return NamedRows(rows)


def named_rows_to_matrix(rows: NamedRows, names: Sequence[str]) -> np.ndarray:
    """Order object rows by ``names``; missing or unknown keys are a ``ValidationError``."""
    expected = set(names)
    for i, row in enumerate(rows):
        if row.keys() != expected:
            missing = sorted(expected - row.keys())
            unknown = sorted(row.keys() - expected)
            parts = [f"missing {missing}" if missing else "", f"unknown {unknown}" if unknown else ""]
            raise ValidationError(f"row {i} does not match the model's features: " + ", ".join(p for p in parts if p))
    return to_matrix([[row[n] for n in names] for row in rows])


def columns_to_matrix(columns: dict[str, Any], names: Sequence[str], max_rows: int | None) -> np.ndarray:
    """Columnar input ``{feature: [values]}`` to (n, len(names)); the keys must equal ``names``."""
    if columns.keys() != set(names):
        missing = sorted(set(names) - columns.keys())
        unknown = sorted(columns.keys() - set(names))
        parts = [f"missing {missing}" if missing else "", f"unknown {unknown}" if unknown else ""]
        raise ValidationError("columns do not match the model's features: " + ", ".join(p for p in parts if p))
    lengths = {len(c) if isinstance(c, list) else -1 for c in columns.values()}
    if -1 in lengths:
        bad = next(k for k, c in columns.items() if not isinstance(c, list))
        raise ValidationError(f"column {bad!r} must be a list of numbers")
    if len(lengths) != 1:
        raise ValidationError(f"columns have different lengths {sorted(lengths)}")
    (n,) = lengths
    if n == 0:
        raise ValidationError("columns are empty: send at least one row")
    problem = too_many_rows(n, max_rows)
    if problem is not None:
        raise ValidationError(problem)
    try:
        return np.ascontiguousarray(to_matrix([columns[name] for name in names]).T)
    except ValidationError:
        # to_matrix saw the columns as rows: find the problem again row-wise so its position is the client's
        problem = _first_problem([list(row) for row in zip(*(columns[name] for name in names), strict=True)])
        if problem is None:
            raise
        raise ValidationError(problem) from None


class Timestamp(fields.Field):
    """A moment kept as Unix seconds, shown as ISO 8601 UTC like every other time in the API (jobs' included)."""

    def __init__(self, **kwargs: Any) -> None:
        metadata = {"type": "string", "format": "date-time", **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if value is None or isinstance(value, str):
            return value
        return datetime.fromtimestamp(float(value), UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def request_rows(loaded: LoadedModel, args: dict[str, Any], max_rows: int | None) -> tuple[np.ndarray, str]:
    """A v1 request's rows for ``loaded`` as float64 (n, m), and the field they came in (``instances`` or
    ``inputs``); rows or columns keyed by name are put in the model's feature order. A 422 naming the field
    when they cannot be."""
    names = loaded.manifest.get("feature_names") or []
    field = "inputs" if "inputs" in args else "instances"
    try:
        if field == "inputs" or isinstance(args[field], NamedRows):
            if not names:
                raise ValidationError(f"model {loaded.name!r} has no feature names; send rows as lists of numbers")
            if field == "inputs":
                return columns_to_matrix(args["inputs"], names, max_rows), field
            return named_rows_to_matrix(args["instances"], names), field
    except ValidationError as exc:
        abort(422, f"invalid {field}: {exc.messages[0]}", errors={field: exc.messages})
    X: np.ndarray = args["instances"]
    return X, field
