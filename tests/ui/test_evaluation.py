"""The held-out evaluation stored in manifests, checked against scikit-learn's metrics on real held-out rows."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from service.store import Dataset, open_store, predict
from service.training import evaluation, fitting


@pytest.mark.parametrize("name", ["iris", "wine"])
def test_classification_report_matches_scikit_learn(dataset, name):
    X, y, features = dataset(name)
    # few epochs on purpose: an imperfect model has off-diagonal cells to check
    result = fitting.train(
        "classification", {"max_iter": 3, "hidden_layer_sizes": (4,), "random_state": 0}, Dataset(X, y, features)
    )
    X_test, y_test = result.evaluation.X, result.evaluation.y
    report = evaluation.evaluation_report(result.estimator, X_test, y_test)
    y_pred = predict(result.estimator, X_test).values
    labels = list(result.estimator.classes_)
    assert report["labels"] == [lab.item() if hasattr(lab, "item") else lab for lab in labels]
    assert report["n_test"] == len(y_test)
    expected = confusion_matrix(y_test, y_pred, labels=labels)
    assert report["confusion_matrix"] == expected.tolist()
    precision, recall, f1, support = precision_recall_fscore_support(y_test, y_pred, labels=labels, zero_division=0)
    per_class = report["per_class"]
    np.testing.assert_allclose([c["precision"] for c in per_class], precision)
    np.testing.assert_allclose([c["recall"] for c in per_class], recall)
    np.testing.assert_allclose([c["f1"] for c in per_class], f1)
    assert [c["support"] for c in per_class] == support.tolist()


def test_a_class_never_predicted_scores_zero_as_scikit_learn_does():
    y_true = np.array(["a", "a", "b", "c"])
    y_pred = np.array(["a", "a", "a", "c"])
    report = evaluation.classification_report(y_true, y_pred, ["a", "b", "c"])
    precision, recall, f1, _ = precision_recall_fscore_support(y_true, y_pred, labels=["a", "b", "c"], zero_division=0)
    assert [c["precision"] for c in report["per_class"]] == pytest.approx(precision.tolist())
    assert [c["recall"] for c in report["per_class"]] == pytest.approx(recall.tolist())
    assert [c["f1"] for c in report["per_class"]] == pytest.approx(f1.tolist())


def test_regression_report_quantiles_and_sample(dataset):
    X, y, features = dataset("diabetes")
    result = fitting.train("regression", {"max_iter": 5, "random_state": 0}, Dataset(X, y, features))
    X_test, y_test = result.evaluation.X, result.evaluation.y
    report = evaluation.evaluation_report(result.estimator, X_test, y_test)
    residual = np.asarray(predict(result.estimator, X_test).values, dtype=np.float64) - y_test
    for q, value in report["residual_quantiles"].items():
        assert value == pytest.approx(np.quantile(residual, float(q)))
    assert report["sample"]["actual"] == pytest.approx(y_test.tolist())  # 111 rows: all kept


def test_regression_sample_is_capped_and_pairs_stay_aligned():
    actual = np.arange(1000, dtype=np.float64)
    report = evaluation.regression_report(actual, actual * 2)
    sample = report["sample"]
    assert len(sample["actual"]) == evaluation.SAMPLE_POINTS
    assert sample["predicted"] == [2 * a for a in sample["actual"]]


def test_publish_records_history_evaluation_and_lineage(tmp_path, dataset):
    X, y, features = dataset("iris")
    data = Dataset(X, y, features)
    result = fitting.train("classification", {"max_iter": 7, "random_state": 0, "early_stopping": True}, data)
    store = open_store(tmp_path / "store")
    version = fitting.publish(store, "iris", result, parent_version=3, trigger="retrain (append)", job_id="j1")
    manifest = store.manifest("iris", version)
    history = manifest["epoch_history"]
    assert history["loss"] == pytest.approx(result.estimator.loss_curve_)
    assert len(history["loss"]) == result.epochs
    assert history["val_accuracy"] == pytest.approx(result.estimator.validation_scores_)
    assert manifest["evaluation"]["n_test"] == len(result.evaluation.y) == manifest["training"]["n_test"]
    assert sum(map(sum, manifest["evaluation"]["confusion_matrix"])) == len(result.evaluation.y)
    lineage = manifest["lineage"]
    assert lineage == {
        "parent_version": 3,
        "trigger": "retrain (append)",
        "job_id": "j1",
        "dataset_sha256": manifest["dataset_sha256"],
        "hyperparameters": manifest["training"]["params"],
    }
