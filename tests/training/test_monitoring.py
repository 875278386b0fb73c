"""Live metrics and drift maths, against values computed by hand."""

from __future__ import annotations

import math

import pytest

from service.store.monitoring import LoggedPrediction
from service.training.monitoring import live_metrics

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
