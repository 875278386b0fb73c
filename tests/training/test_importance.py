"""What publish keeps for explanations: the training means and each feature's global importance."""

import numpy as np
import pytest
from helpers import read_catalog_csv
from numpy.testing import assert_allclose

from nn.attribution import integrated_gradients
from service.store import Dataset, FileModelStore, recorded_importance
from service.training import fitting
from service.training.importance import SAMPLE_SEED, ImportanceBudget


@pytest.fixture(scope="module")
def wine():
    X, y, names = read_catalog_csv("wine")
    params = {"hidden_layer_sizes": (8,), "max_iter": 40, "random_state": 0}
    return fitting.train("classification", params, Dataset(X, y, names)), names


def test_publish_keeps_the_training_means_and_the_mean_absolute_attributions(wine, tmp_path):
    result, names = wine
    store = FileModelStore(tmp_path)
    version = fitting.publish(store, "wine", result, importance=ImportanceBudget(rows=1000, steps=16))
    section = store.manifest("wine", version)["explanations"]
    means = np.asarray(result.training.X, np.float64).mean(axis=0)
    assert_allclose(section["baseline_mean"], means, rtol=1e-12)
    importance = recorded_importance(store.manifest("wine", version))
    held_out = np.asarray(result.evaluation.X, np.float64)
    assert importance["method"] == "integrated_gradients" and importance["baseline"] == "mean"
    assert (importance["steps"], importance["rows"]) == (16, len(held_out))
    expected = np.abs(integrated_gradients(result.estimator, held_out, means, steps=16).values).mean(axis=0)
    assert [f["name"] for f in importance["features"]] == names
    assert_allclose([f["mean_abs_attribution"] for f in importance["features"]], expected, rtol=1e-9)
    assert expected.max() > 3 * expected.min()  # features matter unequally: the figures say something


def test_the_importance_rows_are_capped_by_a_seeded_sample(wine, tmp_path):
    result, _ = wine
    store = FileModelStore(tmp_path)
    budget = ImportanceBudget(rows=7, steps=4)
    first = recorded_importance(store.manifest("wine", fitting.publish(store, "wine", result, importance=budget)))
    again = recorded_importance(store.manifest("wine", fitting.publish(store, "wine", result, importance=budget)))
    assert first["rows"] == 7 and first == again
    held_out = np.asarray(result.evaluation.X, np.float64)
    chosen = np.sort(np.random.default_rng(SAMPLE_SEED).choice(len(held_out), 7, replace=False))
    means = np.asarray(result.training.X, np.float64).mean(axis=0)
    expected = np.abs(integrated_gradients(result.estimator, held_out[chosen], means, steps=4).values).mean(axis=0)
    assert_allclose([f["mean_abs_attribution"] for f in first["features"]], expected, rtol=1e-9)


def test_the_budget_comes_from_the_settings():
    budget = ImportanceBudget.from_settings({"NNSERVE_IMPORTANCE_ROWS": 12, "NNSERVE_IMPORTANCE_STEPS": 3})
    assert budget == ImportanceBudget(rows=12, steps=3)


@pytest.mark.parametrize("manifest", [None, {}, {"explanations": {}}, {"explanations": {"importance": {}}}])
def test_a_version_published_before_has_no_importance(manifest):
    assert recorded_importance(manifest) is None
