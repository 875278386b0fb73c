"""Live metrics and drift maths, against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nn import MLPClassifier
from service.store.monitoring import Label, LoggedPrediction, SqlitePredictionLog
from service.training.drift import bin_edges, drift, proportions, psi, reference_statistics
from service.training.live import live_metrics, version_report, window_reports

CLASSES = ["a", "b"]


def row(output, target, probabilities=None) -> LoggedPrediction:
    return LoggedPrediction("m", "r", 0, 1, 0.0, [0.0], output, probabilities, target)


def test_classifier_accuracy_and_log_loss_by_hand() -> None:
    rows = [
        row("a", "a", [0.8, 0.2]),
        row("a", "b", [0.6, 0.4]),
        row("b", "b", [0.1, 0.9]),
        row("b", "b", [0.3, 0.7]),
        row("a", None, [0.9, 0.1]),  # not labelled: not counted
    ]
    metrics = live_metrics("classification", rows, CLASSES)
    assert metrics["accuracy"] == 0.75
    assert metrics["log_loss"] == pytest.approx(-(math.log(0.8) + math.log(0.4) + math.log(0.9) + math.log(0.7)) / 4)


def test_regressor_mae_rmse_r2_by_hand() -> None:
    rows = [row(2.0, 1.0), row(2.0, 3.0), row(5.0, 5.0)]
    metrics = live_metrics("regression", rows, None)
    assert metrics["mae"] == pytest.approx(2 / 3)
    assert metrics["rmse"] == pytest.approx(math.sqrt(2 / 3))
    # mean target 3: total sum of squares 4 + 0 + 4 = 8, residual 1 + 1 + 0 = 2
    assert metrics["r2"] == pytest.approx(1 - 2 / 8)


def test_no_labels_no_metrics_and_r2_needs_distinct_targets() -> None:
    assert live_metrics("classification", [row("a", None, [1.0, 0.0])], CLASSES) == {}
    assert "r2" not in live_metrics("regression", [row(1.0, 2.0)], None)


def test_psi_by_hand() -> None:
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5) = 0.25 ln 2 + 0.25 ln 1.5
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.25 * math.log(2) + 0.25 * math.log(1.5))
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.274653, abs=1e-6)
    assert psi([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0
    # an empty reference bin counts as 1e-4: (0.25 - 1e-4) ln(0.25 / 1e-4) + the two others
    expected = 0.25 * math.log(2) + (0.25 - 1e-4) * math.log(0.25 / 1e-4)
    assert psi([0.5, 0.5, 0.0], [0.5, 0.25, 0.25]) == pytest.approx(expected)


def test_decile_bins_by_hand() -> None:
    values = np.arange(1.0, 11.0)  # 1..10: the inner deciles are 1.9, 2.8, ..., 9.1
    edges = bin_edges(values)
    assert edges == pytest.approx([1.9, 2.8, 3.7, 4.6, 5.5, 6.4, 7.3, 8.2, 9.1])
    assert proportions(values, edges).tolist() == [0.1] * 10
    assert proportions([0.0, 100.0, 5.5], edges).tolist() == pytest.approx(
        [1 / 3] + [0] * 4 + [1 / 3] + [0] * 3 + [1 / 3]
    )
    assert bin_edges(np.array([1.0, 1.0, 1.0, 1.0, 2.0])) == pytest.approx([1.0, 1.2, 1.6])  # repeated edges merge
    assert bin_edges(np.ones(5)) == [1.0]


def test_reference_statistics_and_drift_of_a_classifier() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 2))
    y = np.where(X[:, 0] > 0, "hi", "lo")
    model = MLPClassifier((8,), max_iter=200, learning_rate_init=0.01, random_state=0).fit(X, y)
    reference = reference_statistics(model, X, y, ["a", "b"])
    assert [f["name"] for f in reference["features"]] == ["a", "b"] and reference["n_rows"] == 400
    assert all(len(f["edges"]) == 9 and sum(f["proportions"]) == pytest.approx(1) for f in reference["features"])
    assert reference["targets"]["classes"] == ["hi", "lo"]
    assert reference["targets"]["proportions"] == pytest.approx([np.mean(y == "hi"), np.mean(y == "lo")])

    def logged(rows):
        outputs = model.predict(rows)
        return [
            LoggedPrediction("m", str(i), 0, 1, 0.0, r.tolist(), o)
            for i, (r, o) in enumerate(zip(rows, outputs, strict=True))
        ]

    manifest = {"reference": reference}
    same = drift(manifest, logged(X), min_rows=100)
    assert same.available and same.rows == 400 and max(same.features.values()) < 1e-9 and same.predictions < 1e-9
    moved = X + np.array([3.0, 0.0])
    shifted = drift(manifest, logged(moved), min_rows=100)
    assert shifted.features["a"] > 1.0 and shifted.features["b"] < 1e-9
    assert shifted.worst() == ("a", shifted.features["a"])
    assert shifted.predictions > 0.25  # almost everything is now "hi"
    assert not drift({}, logged(X), min_rows=100).available and not drift(manifest, [], min_rows=100).available
    few = drift(manifest, logged(moved[:99]), min_rows=100)  # PSI on 99 rows would read as a major shift
    assert (few.available, few.rows, few.features, few.predictions) == (False, 99, {}, None)
    assert few.reason.startswith("not enough rows: 99 logged, drift needs 100")
    assert drift(manifest, logged(moved[:100]), min_rows=100).available


@pytest.mark.parametrize("versions", [(1,), (1, 2), (2, 1, 1, 1)])
def test_window_reports_are_each_windows_version_reports(tmp_path, versions) -> None:
    """One read at the largest window, sliced, gives what a ``version_report`` per version and window gives: when
    the read holds all the model's rows, rows of one version only, or several versions beyond it."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 2))
    y = np.where(X[:, 0] > 0, "hi", "lo")
    model = MLPClassifier((4,), max_iter=20, learning_rate_init=0.01, random_state=0).fit(X, y)
    reference = reference_statistics(model, X, y, ["a", "b"])
    manifest = {"task": "classification", "classes": ["hi", "lo"], "reference": reference}
    log = SqlitePredictionLog(tmp_path)
    outputs, probabilities = model.predict(X[:60]), model.predict_proba(X[:60])
    log.append(
        [
            LoggedPrediction("m", f"r{i}", 0, versions[i % len(versions)], float(i), X[i].tolist(), str(outputs[i]),
                             probabilities[i].tolist(), error="failed" if i % 11 == 5 else None)
            for i in range(60)
        ]
    )  # fmt: skip
    log.label("m", [Label(f"r{i}", str(y[i])) for i in range(0, 60, 3)], source="key", key="k")
    log.label("m", [Label(f"r{i}", str(y[i])) for i in range(1, 60, 3)], source="token")  # not trusted: left out
    for windows in ([7, 30, 59], [7, 60, 200]):  # the largest below the model's rows, at and beyond them
        reports = window_reports(log, "m", 3, lambda version: manifest, windows, drift_min_rows=20)  # 3: active
        for window in windows:
            expected = sorted({r.version for r in log.recent("m", window)} | {3}, reverse=True)
            by_one = [version_report(log, "m", v, manifest, window, drift_min_rows=20) for v in expected]
            assert reports[window] == by_one
            assert reports[window][0].rows == 0 and sum(r.rows for r in reports[window]) > 0
        assert 0 < sum(r.labelled for r in reports[windows[-1]]) <= 20  # the keys' labels only
