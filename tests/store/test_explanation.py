"""The one explanation path: baselines, the explained class, the row budget in time, the answer's form."""

import numpy as np
import pytest
from helpers import read_catalog_csv
from numpy.testing import assert_allclose

from nn.attribution import integrated_gradients, saliency
from service.store import Dataset, ExplainError, FileModelStore, class_named, explain, explanation_answer
from service.training import fitting
from service.training.importance import ImportanceBudget


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """iris published twice: version 1 as publish does now, version 2 the way versions were kept before."""
    X, y, names = read_catalog_csv("iris")
    result = fitting.train("classification", {"hidden_layer_sizes": (6,), "max_iter": 40}, Dataset(X, y, names))
    store = FileModelStore(tmp_path_factory.mktemp("explain"))
    fitting.publish(store, "iris", result, importance=ImportanceBudget(rows=5, steps=4))
    store.publish("iris", result.estimator, {"task": "classification", "metrics": {}})
    return store, X


def test_integrated_gradients_from_the_training_means_for_the_predicted_class(stored):
    store, X = stored
    loaded = store.load("iris", 1)
    explained = explain(loaded, X[:3], steps=16)
    means = loaded.manifest["explanations"]["baseline_mean"]
    expected = integrated_gradients(loaded.estimator, X[:3], means, steps=16)
    assert_allclose(explained.attributions, expected.values, rtol=1e-12)
    assert explained.target == loaded.estimator.predict(X[:3]).tolist() == explained.prediction.values.tolist()
    assert_allclose(explained.completeness_gap, expected.completeness_gap, rtol=1e-12)
    body = explanation_answer(loaded, explained, "mean")
    assert (body["model"], body["version"], body["method"], body["steps"], body["baseline"]) == (
        "iris", 1, "integrated_gradients", 16, "mean"
    )  # fmt: skip
    row = body["explanations"][0]
    assert row["attributions"] == dict(zip(loaded.manifest["feature_names"], expected.values[0].tolist(), strict=True))
    assert (row["prediction"], row["target"]) == (explained.target[0], explained.target[0])
    assert row["output"] == pytest.approx(loaded.estimator.predict_proba(X[:1]).max())


def test_a_target_class_a_zero_baseline_and_saliency(stored):
    store, X = stored
    loaded = store.load("iris", 1)
    explained = explain(loaded, X[:2], method="saliency", target="virginica", baseline="zeros")
    expected = saliency(loaded.estimator, X[:2], np.zeros(4), target=2)
    assert_allclose(explained.attributions, expected.values, rtol=1e-12)
    assert explained.target == ["virginica", "virginica"] and explained.completeness_gap is None
    assert "completeness_gap" not in explanation_answer(loaded, explained, "zeros")["explanations"][0]


@pytest.mark.parametrize(
    ("kwargs", "field", "fragment"),
    [
        ({"method": "shap"}, "method", "method must be one of"),
        ({"target": "rose"}, "target", "unknown class 'rose'"),
        ({"target": 1}, "target", "unknown class 1"),
        ({"baseline": "median"}, "baseline", "baseline must be one of"),
        ({"baseline": [1.0, 2.0]}, "baseline", "a baseline row has 4 numbers"),
        ({"baseline": [1.0, 2.0, float("nan"), 1.0]}, "baseline", "finite numbers only"),
    ],
)
def test_what_a_version_cannot_explain_names_the_field(stored, kwargs, field, fragment):
    store, X = stored
    with pytest.raises(ExplainError, match=fragment) as info:
        explain(store.load("iris", 1), X[:2], **kwargs)
    assert info.value.field == field


def test_the_steps_cap_is_one_rule_here_for_every_caller(stored):
    """The HTTP API, the dashboard and ``nnserve explain`` all reach this rule: its message is theirs."""
    store, X = stored
    loaded = store.load("iris", 1)
    with pytest.raises(
        ExplainError, match=r"^steps is 9; at most 8 are accepted \(NNSERVE_EXPLAIN_MAX_STEPS\)$"
    ) as info:
        explain(loaded, X[:1], steps=9, max_steps=8, method="shap")  # refused before anything else is looked at
    assert info.value.field == "steps"
    assert explain(loaded, X[:1], max_steps=8).steps == 8  # the default, 32, is capped
    assert explain(loaded, X[:1], max_steps=100).steps == explain(loaded, X[:1]).steps == 32
    assert explain(loaded, X[:1], steps=8, max_steps=8).steps == 8


def test_a_target_given_as_text_is_the_class_that_reads_so(stored, tmp_path):
    """The dashboard's form and ``nnserve explain`` give a target as text: the class whose text it is (of its own
    type), or the text as it is, which ``explain`` refuses naming the classes."""
    store, X = stored
    loaded = store.load("iris", 1)
    assert class_named(loaded, "virginica") == "virginica" and class_named(loaded, None) is None
    assert class_named(loaded, "rose") == "rose"
    numbered = fitting.train(  # integer labels
        "classification", {"hidden_layer_sizes": (4,), "max_iter": 5}, Dataset(X, np.arange(len(X)) % 3, list("abcd"))
    )
    other = FileModelStore(tmp_path)
    fitting.publish(other, "numbered", numbered)
    three = class_named(other.load("numbered", 1), "2")
    assert three == 2 and isinstance(three, int)
    assert explain(other.load("numbered", 1), X[:1], target=three).target == [2]


def test_a_version_published_before_the_means_were_kept_explains_from_another_baseline(stored):
    store, X = stored
    old = store.load("iris", 2)
    with pytest.raises(ExplainError, match="published before the training means were kept") as info:
        explain(old, X[:1])
    assert info.value.field == "baseline"
    assert explain(old, X[:1], baseline="zeros").attributions.shape == (1, 4)


def test_past_its_time_an_explanation_stops_between_rows(stored, monkeypatch):
    store, X = stored
    from service.store import explanation

    monkeypatch.setattr(explanation, "CHUNK_POINTS", 10)  # one row per chunk at 8 steps
    with pytest.raises(ExplainError, match=r"longer than 1e-09 s \(NNSERVE_EXPLAIN_MAX_SECONDS\) after 1 of 5 rows"):
        explain(store.load("iris", 1), X[:5], steps=8, max_seconds=1e-9)
    assert explain(store.load("iris", 1), X[:5], steps=8, max_seconds=60).attributions.shape == (5, 4)
