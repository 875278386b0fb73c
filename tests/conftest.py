"""Shared test fixtures. Keep this file small and generic: other suites add to it."""

import csv
from pathlib import Path

import numpy as np
import pytest
from helpers import copy_store, train_store

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = REPO / "models" / "data"


def _parse_target(values):
    """Target column as int, else float, else str array (labels are returned as written)."""
    for kind in (int, float):
        try:
            return np.array([kind(v) for v in values])
        except ValueError:
            continue
    return np.array(values)


def read_dataset(name):
    """``models/data/<name>.csv`` as ``(X float64, y, feature_names)``; the target is the last column."""
    with open(DATA_DIR / f"{name}.csv", newline="") as f:
        header, *rows = list(csv.reader(f))
    X = np.array([[float(v) for v in row[:-1]] for row in rows], dtype=np.float64)
    return X, _parse_target([row[-1] for row in rows]), header[:-1]


@pytest.fixture(scope="session")
def dataset():
    """Loader ``dataset(name) -> (X, y, feature_names)`` for the shipped CSVs, cached per session."""
    cache = {}

    def load(name):
        if name not in cache:
            cache[name] = read_dataset(name)
        X, y, names = cache[name]
        return X.copy(), y.copy(), list(names)

    return load


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory):
    """Factory ``trained_store(*models, epochs=N) -> Path``: a store trained by the CLI (``nnserve train``),
    once per session for each (models, epochs) asked for. Shared between tests: copy it before changing it."""
    cache = {}

    def get(*models, epochs):
        if (models, epochs) not in cache:
            cache[(models, epochs)] = train_store(tmp_path_factory.mktemp("trained") / "store", *models, epochs=epochs)
        return cache[(models, epochs)]

    return get


@pytest.fixture
def store_copy(tmp_path):
    """Factory ``store_copy(base) -> Path``: this test's own copy of the store ``base``, at ``tmp_path / "store"``."""
    return lambda base: copy_store(base, tmp_path)
