"""What publish keeps for explanations (the training means, global importance) reads back the same from every
store backend, and a version loaded from it explains from its mean baseline."""

from __future__ import annotations

import numpy as np
from backends import Backend
from helpers import read_catalog_csv
from numpy.testing import assert_allclose

from nn.attribution import integrated_gradients
from service.store import Dataset, explain, recorded_importance
from service.training import fitting
from service.training.importance import ImportanceBudget


def test_the_explanation_section_round_trips_and_explains(store_backend: Backend) -> None:
    X, y, names = read_catalog_csv("iris")
    result = fitting.train("classification", {"hidden_layer_sizes": (4,), "max_iter": 20}, Dataset(X, y, names))
    store = store_backend.store()
    version = fitting.publish(store, "iris", result, importance=ImportanceBudget(rows=6, steps=4))
    manifest = store.manifest("iris", version)
    means = np.asarray(result.training.X, np.float64).mean(axis=0)
    assert_allclose(manifest["explanations"]["baseline_mean"], means, rtol=1e-12)
    importance = recorded_importance(manifest)
    assert importance is not None and importance["rows"] == 6
    assert [f["name"] for f in importance["features"]] == names
    loaded = store.load("iris", version)
    explained = explain(loaded, X[:2], steps=8)
    assert_allclose(explained.attributions, integrated_gradients(loaded.estimator, X[:2], means, steps=8).values)
