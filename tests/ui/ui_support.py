"""What the dashboard tests share (imported by name: ``conftest`` is ambiguous across the suite): the admin
token, class labels that are markup, and the models the dashboard's test store adds to the trained one."""

from __future__ import annotations

from pathlib import Path

import numpy as np

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
