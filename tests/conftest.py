"""Shared test fixtures. Keep this file small and generic: other suites add to it."""

from pathlib import Path

import pytest
from helpers import copy_store, read_catalog_csv, train_store

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def dataset():
    """Loader ``dataset(name) -> (X, y, feature_names)`` for the shipped CSVs, cached per session."""
    cache = {}

    def load(name):
        if name not in cache:
            cache[name] = read_catalog_csv(name)
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
