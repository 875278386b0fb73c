"""The prediction log's contract, written against ``PredictionLog`` only and run against every backend."""

from __future__ import annotations

import pytest
from backends import Backend

from service.store.monitoring import DAY, Label, LoggedPrediction, PredictionLog

NOW = 1_700_000_000.0


def logged(request_id: str, row: int = 0, version: int = 1, at: float = NOW, model: str = "iris") -> LoggedPrediction:
    return LoggedPrediction(model, request_id, row, version, at, [5.1, 3.5, 1.4, 0.2], "setosa", [0.9, 0.05, 0.05])


@pytest.fixture
def log(log_backend: Backend) -> PredictionLog:
    return log_backend.prediction_log()


def test_append_then_recent_newest_first_with_every_field(log: PredictionLog) -> None:
    assert log.append([logged("a"), logged("b", row=1, version=2), logged("c", model="wine")]) == 3
    rows = log.recent("iris", 10)
    assert [(r.request_id, r.row, r.version) for r in rows] == [("b", 1, 2), ("a", 0, 1)]
    assert rows[1] == logged("a")  # inputs, output and probabilities come back as they went in
    assert [r.request_id for r in log.recent("iris", 1)] == ["b"]
    assert [r.request_id for r in log.recent("iris", 10, version=1)] == ["a"]
    assert [r.request_id for r in log.recent("wine", 10)] == ["c"]


def test_a_request_id_used_twice_keeps_its_first_prediction_per_version(log: PredictionLog) -> None:
    log.append([logged("a")])
    again = LoggedPrediction("iris", "a", 0, 1, NOW + 1, [0.0] * 4, "virginica", [0.1, 0.1, 0.8])
    assert log.append([again, logged("a", row=1)]) == 1
    assert sorted((r.row, r.version, r.output) for r in log.recent("iris", 10)) == [(0, 1, "setosa"), (1, 1, "setosa")]


def test_a_shadow_answer_and_a_failure_sit_beside_the_answer_and_one_label_joins_them_all(log: PredictionLog) -> None:
    shadow = LoggedPrediction("iris", "a", 0, 2, NOW, [5.1, 3.5, 1.4, 0.2], "versicolor", [0.2, 0.7, 0.1], shadow=True)
    failed = LoggedPrediction("iris", "a", 0, 3, NOW, [5.1, 3.5, 1.4, 0.2], None, error="RuntimeError: boom")
    assert log.append([logged("a"), shadow, failed]) == 3
    assert log.label("iris", [Label("a", "setosa")]) == []
    rows = {r.version: r for r in log.recent("iris", 10, labelled=True)}
    assert rows[2] == shadow._replace(target="setosa", labelled_at=rows[2].labelled_at)
    assert rows[3].output is None and rows[3].error == "RuntimeError: boom" and not rows[3].shadow
    assert not rows[1].shadow and rows[1].error is None and {r.target for r in rows.values()} == {"setosa"}


def test_labels_join_logged_rows_and_unknown_ones_come_back(log: PredictionLog) -> None:
    log.append([logged("a"), logged("b"), logged("b", row=1), logged("w", model="wine")])
    unknown = log.label("iris", [Label("a", "setosa"), Label("b", "virginica", 1), Label("zz", "setosa"),
                                 Label("b", "setosa", 7), Label("w", "setosa")], now=NOW + 5)  # fmt: skip
    assert unknown == [Label("zz", "setosa"), Label("b", "setosa", 7), Label("w", "setosa")]  # wine's is not iris's
    labelled = log.recent("iris", 10, labelled=True)
    assert {(r.request_id, r.row, r.target, r.labelled_at) for r in labelled} == {
        ("a", 0, "setosa", NOW + 5),
        ("b", 1, "virginica", NOW + 5),
    }
    log.label("iris", [Label("a", "versicolor")])  # a correction replaces the label
    assert next(r.target for r in log.recent("iris", 10) if r.request_id == "a") == "versicolor"


def test_recent_since_filters_by_log_time(log: PredictionLog) -> None:
    log.append([logged("old", at=NOW - 10), logged("new", at=NOW + 10)])
    assert [r.request_id for r in log.recent("iris", 10, since=NOW)] == ["new"]


def test_regression_and_integer_targets_round_trip(log: PredictionLog) -> None:
    log.append(
        [
            LoggedPrediction("diabetes", "r", 0, 1, NOW, [0.1] * 3, 151.5),
            LoggedPrediction("digits", "d", 0, 1, NOW, [0.0], 7, [0.1] * 10),
        ]
    )
    log.label("diabetes", [Label("r", 148.25)])
    log.label("digits", [Label("d", 3)])
    assert log.recent("diabetes", 1)[0].target == 148.25 and log.recent("diabetes", 1)[0].probabilities is None
    assert log.recent("digits", 1)[0].target == 3 and log.recent("digits", 1)[0].output == 7


def test_prune_keeps_the_newest_rows_and_the_young_ones_per_model(log: PredictionLog) -> None:
    log.append([logged(f"old{i}", at=NOW - 40 * DAY) for i in range(3)])
    log.append([logged(f"new{i}", at=NOW - 5 + i) for i in range(5)])
    log.append([logged(f"w{i}", model="wine") for i in range(2)])
    assert log.prune(keep_rows=4, keep_days=30, now=NOW) == {"iris": 4}  # 3 too old, then 1 beyond the newest 4
    assert sorted(r.request_id for r in log.recent("iris", 100)) == ["new1", "new2", "new3", "new4"]
    assert len(log.recent("wine", 100)) == 2
    assert log.prune(keep_rows=4, keep_days=30, now=NOW) == {}
