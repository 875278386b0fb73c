"""Canonical form, content hash and pickle-free npz encoding of a training ``Dataset``.

The store files datasets under their sha256, so equal content must always give
the same hash: the hash covers dtype, shape and raw bytes of canonicalised
arrays plus the feature names, never the npz bytes (zip timestamps vary).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.store.exceptions import InvalidNameError
from service.store.names import validate_sha256

_ARRAYS = {"X", "y", "feature_names"}


@dataclass(frozen=True)
class Dataset:
    X: np.ndarray  # float64 (n_samples, n_features)
    y: np.ndarray  # str/int labels (n_samples,), or float64 targets (n_samples,) or (n_samples, k)
    feature_names: list[str]  # one per column, or empty when the columns are unnamed


def manifest_datasets(manifest: Mapping[str, Any]) -> set[str]:
    """The datasets a version's manifest names (its training rows, its frozen evaluation set), which gc keeps
    while the version exists; malformed names are left out."""
    kept = manifest.get("evaluation_set")
    named = [manifest.get("dataset_sha256"), kept.get("sha256") if isinstance(kept, Mapping) else None]
    found = set()
    for digest in named:
        try:
            found.add(validate_sha256(digest))
        except (InvalidNameError, TypeError, AttributeError):
            continue
    return found


def canonical(dataset: Dataset) -> Dataset:
    """One representation per content (little-endian float64 X; unicode, int64 or float64 y); ValueError if unfit."""
    X = np.asarray(dataset.X)
    if X.dtype.kind not in "biuf" or X.ndim != 2 or 0 in X.shape:
        raise ValueError(f"dataset X must be a non-empty 2-D numeric array, got {X.dtype} of shape {X.shape}")
    X = np.ascontiguousarray(X, dtype="<f8")
    # Python lists go through object dtype so that ["a", 1] is refused instead of silently becoming ["a", "1"].
    y = dataset.y if isinstance(dataset.y, np.ndarray) else np.asarray(dataset.y, dtype=object)
    if y.dtype == object:  # never stored as object dtype, which would need pickle
        items = y.ravel().tolist()
        if all(isinstance(v, str) for v in items):
            y = y.astype(str)
        elif all(isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool) for v in items):
            y = np.asarray(items).reshape(y.shape)
        else:
            raise ValueError("dataset y mixes label types; use all str, all int or all float")
    kind = y.dtype.kind
    if kind not in "Uiuf" or y.ndim not in (1, 2) or len(y) != len(X) or (kind == "U" and y.ndim != 1):
        raise ValueError(f"dataset y must hold {len(X)} labels or targets, got {y.dtype} of shape {y.shape}")
    if kind == "U":
        y = y.astype(f"<U{max(1, int(np.char.str_len(y).max()))}")  # the narrowest width, so equal labels hash equal
    else:
        y = y.astype("<f8" if kind == "f" else "<i8")
    names = list(dataset.feature_names)
    if names and (len(names) != X.shape[1] or not all(isinstance(n, str) and n and "\0" not in n for n in names)):
        raise ValueError(f"dataset needs {X.shape[1]} non-empty feature names or none, got {names!r}")
    return Dataset(X, np.ascontiguousarray(y), names)


def sha256(dataset: Dataset) -> str:
    """The content hash of an already canonical ``dataset`` (see ``canonical``)."""
    header = {
        "format": 1,
        "X": [dataset.X.dtype.str, list(dataset.X.shape)],
        "y": [dataset.y.dtype.str, list(dataset.y.shape)],
        "feature_names": dataset.feature_names,
    }
    h = hashlib.sha256(json.dumps(header, sort_keys=True, separators=(",", ":")).encode() + b"\0")
    h.update(np.ascontiguousarray(dataset.X).tobytes())
    h.update(np.ascontiguousarray(dataset.y).tobytes())
    return h.hexdigest()


def encode(dataset: Dataset) -> bytes:
    """npz bytes of a canonical ``dataset``: plain arrays only."""
    buffer = io.BytesIO()
    names = np.asarray(dataset.feature_names, dtype=str)
    np.savez_compressed(buffer, X=dataset.X, y=dataset.y, feature_names=names)
    return buffer.getvalue()


def decode(raw: bytes) -> Dataset:
    """The dataset in npz bytes, read with ``allow_pickle=False``; ValueError (or zip errors) if malformed."""
    with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
        if set(npz.files) != _ARRAYS:
            raise ValueError(f"it holds arrays {sorted(npz.files)}, expected {sorted(_ARRAYS)}")
        names = npz["feature_names"]
        if names.dtype.kind != "U" or names.ndim != 1:
            raise ValueError("its feature names are not a list of strings")
        return Dataset(npz["X"], npz["y"], [str(n) for n in names.tolist()])
