"""Fixtures of the dashboard tests: a store with a classifier, a regressor, hostile class labels and an old
manifest, and a Flask test client over it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import copy_store

from service.server.app import create_app
from service.store import Dataset, open_store
from service.training import fitting

TOKEN = "ui-test-token"
HOSTILE = ["<script>alert(1)</script>", "a&b"]


def add_hostile_model(root: Path) -> None:
    """Model ``labels``: class labels that are markup, to prove they are shown as text."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(80, 3))
    y = np.where(X[:, 0] > 0, HOSTILE[0], HOSTILE[1])
    result = fitting.train(
        "classification",
        {"max_iter": 5, "hidden_layer_sizes": (4,), "random_state": 0},
        Dataset(X, y, ["f0", "f1", "f2"]),
    )
    fitting.publish(open_store(root), "labels", result)


def add_old_version(root: Path) -> None:
    """A second iris version published the way nnserve did before evaluations: no history, evaluation, lineage."""
    store = open_store(root)
    estimator = store.load("iris").estimator
    store.publish("iris", estimator, {"task": "classification", "metrics": {"accuracy": 0.5}})


@pytest.fixture(scope="session")
def ui_store_base(trained_store, tmp_path_factory) -> Path:
    root = copy_store(trained_store("iris", "diabetes", epochs=12), tmp_path_factory.mktemp("ui-base"))
    add_hostile_model(root)
    add_old_version(root)
    return root


@pytest.fixture
def ui_store(ui_store_base, tmp_path) -> Path:
    return copy_store(ui_store_base, tmp_path)


@pytest.fixture
def client(ui_store):
    app = create_app({"TESTING": True, "NNSERVE_STORE": str(ui_store), "NNSERVE_ADMIN_TOKEN": TOKEN})
    return app.test_client()
