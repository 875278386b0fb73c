"""The Matrix field and its helpers used directly, outside any request."""

import numpy as np
import pytest
from marshmallow import ValidationError

from service.server.v1.fields import Matrix, NamedRows, columns_to_matrix, named_rows_to_matrix, to_matrix

VALID = {
    "ints": [[1, 2, 3], [4, 5, 6]],
    "floats": [[0.1, -2.5, 3e-300], [1e300, 5.0, -0.0]],
    "mixed": [[1, 2.5, -3], [0, 1e-3, 7]],
    "one_column": [[1], [2], [3]],
    "big_ints": [[2**53, -(2**53), 2**63 - 1]],
    "uint64": [[2**64 - 1, 0, 1]],
}


@pytest.mark.parametrize("case", sorted(VALID))
def test_to_matrix_is_an_exact_float64_matrix(case):
    rows = VALID[case]
    out = to_matrix(rows)
    assert isinstance(out, np.ndarray)
    assert out.dtype == np.float64
    assert out.flags.c_contiguous
    assert out.shape == (len(rows), len(rows[0]))
    assert out.tolist() == [[float(v) for v in row] for row in rows]


@pytest.mark.parametrize("case", sorted(VALID))
def test_matrix_field_deserialises_rows(case):
    rows = VALID[case]
    out = Matrix().deserialize(rows)
    assert out.dtype == np.float64 and out.flags.c_contiguous
    assert out.tolist() == [[float(v) for v in row] for row in rows]


def test_matrix_field_takes_one_row_without_the_outer_list():
    out = Matrix().deserialize([1, 2.5, 3])
    assert out.dtype == np.float64
    assert out.tolist() == [[1.0, 2.5, 3.0]]


def test_matrix_field_row_limit_counts_rows_not_values():
    field = Matrix(max_rows=2)
    assert Matrix(max_rows=2).deserialize([1, 2, 3, 4]).shape == (1, 4)
    assert field.deserialize([[1, 2], [3, 4]]).shape == (2, 2)
    with pytest.raises(ValidationError, match="has 3 rows; at most 2"):
        field.deserialize([[1], [2], [3]])


def test_matrix_field_row_limit_may_be_a_callable():
    limit = {"rows": 5}
    field = Matrix(max_rows=lambda: limit["rows"])
    assert field.deserialize([[1]] * 5).shape == (5, 1)
    limit["rows"] = 4
    with pytest.raises(ValidationError, match="at most 4"):
        field.deserialize([[1]] * 5)


def test_matrix_field_returns_object_rows_as_named_rows():
    rows = [{"a": 1, "b": 2}, {"b": 4, "a": 3}]
    out = Matrix().deserialize(rows)
    assert isinstance(out, NamedRows)
    assert list(out) == rows


BAD_MATRICES = {
    # name: (rows, fragment of the message)
    "string": ([[1, "2", 3]], "row 0, column 1 is a string"),
    "string_row": (["1,2,3"], "row 0 is a string"),
    "boolean": ([[True, False]], "row 0, column 0 is a boolean (true)"),
    "boolean_among_numbers": ([[1, 2], [3, False]], "row 1, column 1 is a boolean (false)"),
    "null": ([[1, None]], "row 0, column 1 is null"),
    "null_row": ([[1, 2], None], "row 1 is null"),
    "nested": ([[[1, 2]]], "nested too deep"),
    "nested_value": ([[1, [2]]], "row 0, column 1 is a list"),
    "ragged": ([[1, 2], [3]], "row 1 has 1 values, row 0 has 2"),
    "empty_row": ([[]], "row 0 is empty"),
    "nan": ([[1.0, float("nan")]], "row 0, column 1 is nan"),
    "inf": ([[float("inf"), 1.0]], "row 0, column 0 is inf"),
    "minus_inf": ([[1.0], [float("-inf")]], "row 1, column 0 is -inf"),
    "object_value": ([[1, {"a": 1}]], "row 0, column 1 is an object"),
    "object_row_among_lists": ([[1, 2], {"a": 1}], "row 1 is an object"),
    "huge_int": ([[10**400, 1]], "too large"),
}


@pytest.mark.parametrize("case", sorted(BAD_MATRICES))
def test_to_matrix_rejects(case):
    rows, fragment = BAD_MATRICES[case]
    with pytest.raises(ValidationError) as info:
        to_matrix(rows)
    assert fragment in info.value.messages[0], info.value.messages


@pytest.mark.parametrize("case", sorted(BAD_MATRICES))
def test_matrix_field_rejects(case):
    rows, fragment = BAD_MATRICES[case]
    with pytest.raises(ValidationError) as info:
        Matrix().deserialize(rows)
    assert fragment in info.value.messages[0], info.value.messages


@pytest.mark.parametrize(
    "value, fragment",
    [
        (5, "must be a list of rows"),
        ("1,2,3", "a string"),
        ({"a": [1]}, "an object"),
        (True, "a boolean"),
        ([], "empty"),
        (None, "null"),
        ([{"a": 1}, [1]], "row 1 is a list"),
        ([True, 1, 2], "boolean"),
    ],
)
def test_matrix_field_rejects_values(value, fragment):
    with pytest.raises(ValidationError) as info:
        Matrix().deserialize(value)
    assert fragment in info.value.messages[0], info.value.messages


def test_named_rows_are_ordered_by_feature_names():
    rows = NamedRows([{"b": 2, "a": 1, "c": 3}, {"c": 6, "b": 5, "a": 4}])
    out = named_rows_to_matrix(rows, ["a", "b", "c"])
    assert out.dtype == np.float64
    assert out.tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]


@pytest.mark.parametrize(
    "rows, fragments",
    [
        ([{"a": 1, "b": 2}], ["row 0", "missing ['c']"]),
        ([{"a": 1, "b": 2, "c": 3, "d": 4}], ["unknown ['d']"]),
        ([{"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 2, "x": 3}], ["row 1", "missing ['c']", "unknown ['x']"]),
        ([{"a": 1, "b": "2", "c": 3}], ["string"]),
        ([{"a": 1, "b": True, "c": 3}], ["boolean"]),
    ],
)
def test_named_rows_reject(rows, fragments):
    with pytest.raises(ValidationError) as info:
        named_rows_to_matrix(NamedRows(rows), ["a", "b", "c"])
    for fragment in fragments:
        assert fragment in info.value.messages[0]


def test_columns_are_transposed_into_rows():
    out = columns_to_matrix({"b": [2, 5], "a": [1, 4], "c": [3.5, 6]}, ["a", "b", "c"], None)
    assert out.dtype == np.float64 and out.flags.c_contiguous
    assert out.tolist() == [[1.0, 2.0, 3.5], [4.0, 5.0, 6.0]]


@pytest.mark.parametrize(
    "columns, max_rows, fragment",
    [
        ({"a": [1], "b": [2]}, None, "missing ['c']"),
        ({"a": [1], "b": [2], "c": [3], "d": [4]}, None, "unknown ['d']"),
        ({"a": [1, 2], "b": [2], "c": [3]}, None, "different lengths [1, 2]"),
        ({"a": 1, "b": [2], "c": [3]}, None, "column 'a' must be a list"),
        ({"a": [], "b": [], "c": []}, None, "empty"),
        ({"a": [1, 2, 3], "b": [1, 2, 3], "c": [1, 2, 3]}, 2, "at most 2"),
        ({"a": [1, 2], "b": [1, 2], "c": [1, "x"]}, None, "row 1, column 2 is a string"),
        ({"a": [1, 2], "b": [None, 2], "c": [1, 2]}, None, "row 0, column 1 is null"),
        ({"a": [1, 2], "b": [1, 2], "c": [float("nan"), 2]}, None, "row 0, column 2 is nan"),
        ({"a": [1, [2]], "b": [1, 2], "c": [1, 2]}, None, "row 1, column 0 is a list"),
    ],
)
def test_columns_reject(columns, max_rows, fragment):
    with pytest.raises(ValidationError) as info:
        columns_to_matrix(columns, ["a", "b", "c"], max_rows)
    assert fragment in info.value.messages[0], info.value.messages
