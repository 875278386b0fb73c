"""Property tests (hypothesis) for what parses untrusted input: matrix field, artifact loader, body parser.

Each property has one allowed failure type: anything else escaping is a bug
(it would become a 500 in the service or crash a loader). Runs are
derandomized and bounded so the module takes seconds and fails the same way
everywhere.
"""

from __future__ import annotations

import copy
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

import nn
from service.server.jsonio import BodyError, decode_body
from service.server.v1.fields import Matrix, NamedRows, to_matrix
from service.store import FileModelStore, StoreError

pytestmark = pytest.mark.slow  # hundreds of generated inputs per property: left out of `make test-fast`

SETTINGS = settings(
    max_examples=300, derandomize=True, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

# -- JSON-like values --------------------------------------------------------------------------------------------

numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=-(10**400), max_value=10**400),  # beyond any float: must be refused, not overflow
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -0.0, 2**53 + 1, 2**63, 2**64 - 1, -(2**63), 1.7976931348623157e308, 5e-324]),
)
leaves = st.one_of(numbers, st.booleans(), st.none(), st.text(max_size=3))
json_like = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=2), children, max_size=3)
    ),
    max_leaves=20,
)


@st.composite
def near_matrices(draw):
    """Rows of numbers of one width, sometimes with one cell, row or width spoiled: most are valid."""
    width = draw(st.integers(1, 4))
    rows = draw(st.lists(st.lists(numbers, min_size=width, max_size=width), min_size=1, max_size=4))
    if draw(st.booleans()):
        i = draw(st.integers(0, len(rows) - 1))
        spoil = draw(st.sampled_from(["cell", "row", "width"]))
        if spoil == "cell":
            rows[i][draw(st.integers(0, width - 1))] = draw(leaves | st.lists(numbers, max_size=2))
        elif spoil == "row":
            rows[i] = draw(json_like)
        else:
            rows[i] = rows[i] + [0] if draw(st.booleans()) else rows[i][:-1]
    return rows


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _finite(v) -> bool:
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False


def reference_rows(rows):
    """The float64 matrix ``rows`` denotes, or None when it denotes none (written without numpy's help)."""
    if not isinstance(rows, list) or not rows or not all(isinstance(r, list) for r in rows):
        return None
    width = len(rows[0])
    if width == 0 or any(len(r) != width for r in rows):
        return None
    if not all(_number(v) and _finite(v) for r in rows for v in r):
        return None
    out = np.empty((len(rows), width), dtype=np.float64)
    for i, r in enumerate(rows):
        for j, v in enumerate(r):
            out[i, j] = float(v)
    return out


def reference_field(value):
    """What ``Matrix`` must give for ``value``: an ndarray, NamedRows, or None (a ValidationError)."""
    if not isinstance(value, list) or not value:
        return None
    if _number(value[0]):
        value = [value]
    if isinstance(value[0], dict):
        return NamedRows(value) if all(isinstance(r, dict) for r in value) else None
    return reference_rows(value)


def assert_same_matrix(got, expected):
    assert isinstance(got, np.ndarray) and got.dtype == np.float64 and got.shape == expected.shape
    assert got.flags.c_contiguous
    np.testing.assert_array_equal(got, expected)
    assert np.array_equal(np.signbit(got), np.signbit(expected))  # even -0.0 is kept


@SETTINGS
@given(st.one_of(json_like, near_matrices()))
def test_to_matrix_accepts_exactly_the_matrices(rows):
    expected = reference_rows(rows)
    try:
        got = to_matrix(copy.deepcopy(rows))
    except ValidationError as exc:
        assert expected is None, f"refused a valid matrix: {exc.messages}"
        assert all(isinstance(m, str) and m for m in exc.messages)
        return
    assert expected is not None, f"accepted {rows!r} as {got!r}"
    assert_same_matrix(got, expected)


@SETTINGS
@given(st.one_of(json_like, near_matrices(), st.lists(numbers, min_size=1, max_size=5)))
def test_matrix_field_accepts_exactly_the_matrices(value):
    expected = reference_field(value)
    try:
        got = Matrix().deserialize(copy.deepcopy(value))
    except ValidationError as exc:
        assert expected is None, f"refused a valid value: {exc.messages}"
        return
    assert expected is not None, f"accepted {value!r} as {got!r}"
    if isinstance(expected, NamedRows):
        assert isinstance(got, NamedRows) and got == expected
    else:
        assert_same_matrix(got, expected)


# -- the request body parser -------------------------------------------------------------------------------------

json_texts = st.builds(
    lambda v, junk: json.dumps(v, allow_nan=True).encode() + junk,
    json_like,
    st.sampled_from([b"", b" ", b"x", b"}", b"\xff", b"NaN", b",", b"\x00"]),
)


@SETTINGS
@given(st.one_of(st.binary(max_size=64), json_texts, st.binary(max_size=8).map(lambda b: b"[" * 2000 + b)))
def test_decode_body_returns_or_raises_body_error(body):
    try:
        decode_body(body)
    except BodyError as exc:
        assert exc.status in (400, 422) and exc.message and "\n" not in exc.message


# -- the artifact loader -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    """(manifest dict, weights bytes) of a small fitted classifier."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = np.where(X[:, 0] > 0, "a", "b")
    est = nn.MLPClassifier((4,), max_iter=3, random_state=0).fit(X, y, feature_names=["p", "q", "r"])
    root = tmp_path_factory.mktemp("artifact")
    nn.save(est, root, metadata={"name": "m", "version": 1})
    return json.loads((root / nn.serialization.MANIFEST).read_text()), (root / nn.serialization.WEIGHTS).read_bytes()


manifest_values = st.one_of(
    json_like,
    st.sampled_from(
        ["Dense", "ReLU", "MLPRegressor", "float16", "int8", "weights.npz", "../weights.npz", "/etc/passwd"]
    ),
    st.integers(-3, 70),
)


@st.composite
def manifest_edits(draw, manifest):
    """A manifest with a few random edits: a value replaced or a key removed, anywhere in the tree."""
    manifest = copy.deepcopy(manifest)
    for _ in range(draw(st.integers(1, 3))):
        node = manifest
        while True:
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            if not keys:
                break
            key = draw(st.sampled_from(keys))
            child = node[key]
            if isinstance(child, (dict, list)) and child and draw(st.booleans()):
                node = child
                continue
            if isinstance(node, dict) and draw(st.integers(0, 4)) == 0:
                del node[key]
            else:
                node[key] = draw(manifest_values)
            break
    return manifest


def _flip(data: bytes, flips: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for pos, mask in flips:
        out[pos % len(out)] ^= mask
    return bytes(out)


def _load_both(manifest: dict, weights: bytes) -> tuple[bool, bool]:
    """Write the artifact as a store version, then load it with nn and with the store: allowed errors only.

    Returns whether nn and the store each accepted it.
    """
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "m" / "1"
        root.mkdir(parents=True)
        (root / nn.serialization.WEIGHTS).write_bytes(weights)
        (root / nn.serialization.MANIFEST).write_text(json.dumps(manifest))
        try:
            est = nn.load(root)
        except nn.ArtifactError:
            est = None
        if est is not None:
            assert hasattr(est, "network_")
        try:
            FileModelStore(tmp).load("m", 1)
        except StoreError:
            return est is not None, False
        return est is not None, True


@SETTINGS
@given(
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=4),
    fix_checksum=st.booleans(),
    truncate=st.one_of(st.none(), st.integers(0, 10**6)),
)
def test_flipped_weights_load_or_raise_artifact_error(artifact, flips, fix_checksum, truncate):
    manifest, original = artifact
    manifest = copy.deepcopy(manifest)
    weights = _flip(original, flips)
    if truncate is not None:
        weights = weights[: truncate % (len(weights) + 1)]
    if fix_checksum:
        manifest["files"]["weights.npz"] = nn.serialization.sha256_bytes(weights)
    accepted = _load_both(manifest, weights)
    if weights == original:  # the flips cancelled out: the artifact is the good one
        assert accepted == (True, True)
    elif not fix_checksum:  # changed bytes under the original checksum are refused by both, always
        assert accepted == (False, False)


@SETTINGS
@given(data=st.data())
def test_edited_manifest_loads_or_raises_artifact_error(artifact, data):
    manifest, weights = artifact
    _load_both(data.draw(manifest_edits(manifest)), weights)


@SETTINGS
@given(body=st.binary(max_size=300) | st.builds(lambda v: json.dumps(v).encode(), json_like))
def test_any_manifest_bytes_load_or_raise_artifact_error(artifact, body):
    _, weights = artifact
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / nn.serialization.WEIGHTS).write_bytes(weights)
        (root / nn.serialization.MANIFEST).write_bytes(body)
        with pytest.raises(nn.ArtifactError):
            nn.load(root)
