"""The prediction log's contract, written against ``PredictionLog`` only and run against every backend."""

from __future__ import annotations

import pytest
from backends import Backend

from service.server.feedback_tokens import FeedbackTokens
from service.server.predlog import Budget, PredictionRecorder
from service.store.monitoring import DAY, Label, LabelCount, Labelled, LoggedPrediction, PredictionLog

NOW = 1_700_000_000.0
BUDGET = Budget(rows=10, bytes=1 << 20, per_request=100)  # a web worker's prediction log budget


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
    assert log.label("iris", [Label("a", "setosa")], source="key", key="k1") == Labelled(1, [], [])
    rows = {r.version: r for r in log.recent("iris", 10, labelled=True)}
    assert rows[2] == shadow._replace(
        target="setosa", labelled_at=rows[2].labelled_at, label_source="key", label_key="k1"
    )
    assert rows[3].output is None and rows[3].error == "RuntimeError: boom" and not rows[3].shadow
    assert not rows[1].shadow and rows[1].error is None and {r.target for r in rows.values()} == {"setosa"}


def test_labels_join_logged_rows_with_their_provenance_and_unknown_ones_come_back(log: PredictionLog) -> None:
    log.append([logged("a"), logged("b"), logged("b", row=1), logged("w", model="wine")])
    given = [Label("a", "setosa"), Label("b", "virginica", 1), Label("zz", "setosa"), Label("b", "setosa", 7)]
    done = log.label("iris", [*given, Label("w", "setosa")], source="key", key="k1", now=NOW + 5)
    assert done.accepted == 2 and done.conflicts == []
    assert done.unlogged == [
        Label("zz", "setosa"),
        Label("b", "setosa", 7),
        Label("w", "setosa"),
    ]  # wine's is not iris's
    labelled = log.recent("iris", 10, labelled=True)
    assert {(r.request_id, r.row, r.target, r.labelled_at, r.label_source, r.label_key) for r in labelled} == {
        ("a", 0, "setosa", NOW + 5, "key", "k1"),
        ("b", 1, "virginica", NOW + 5, "key", "k1"),
    }
    unlabelled = next(r for r in log.recent("iris", 10) if (r.request_id, r.row) == ("b", 0))
    assert (unlabelled.target, unlabelled.label_source, unlabelled.label_key) == (None, None, None)


def test_the_first_label_wins_and_a_second_is_a_conflict_that_changes_nothing(log: PredictionLog) -> None:
    shadow = LoggedPrediction("iris", "a", 0, 2, NOW, [5.1, 3.5, 1.4, 0.2], "versicolor", shadow=True)
    log.append([logged("a"), shadow, logged("b")])
    log.label("iris", [Label("a", "setosa")], source="token", now=NOW + 1)
    again = log.label("iris", [Label("a", "virginica"), Label("b", "setosa"), Label("b", "virginica")],
                      source="key", key="k2", now=NOW + 2)  # fmt: skip
    assert again == Labelled(1, [], [Label("a", "virginica"), Label("b", "virginica")])  # b's second, in one call
    rows = {(r.request_id, r.version): r for r in log.recent("iris", 10)}
    assert {(r.target, r.label_source, r.label_key, r.labelled_at) for k, r in rows.items() if k[0] == "a"} == {
        ("setosa", "token", None, NOW + 1)  # every version's row of the request kept the first label
    }
    assert (rows["b", 1].target, rows["b", 1].label_key) == ("setosa", "k2")


def test_replace_overwrites_a_label_and_records_who_replaced_it(log: PredictionLog) -> None:
    log.append([logged("a")])
    log.label("iris", [Label("a", "setosa")], source="token")
    done = log.label("iris", [Label("a", "virginica"), Label("gone", "setosa")], source="key", key="admin1",
                     replace=True, now=NOW + 9)  # fmt: skip
    assert done == Labelled(1, [Label("gone", "setosa")], [])
    row = log.recent("iris", 1)[0]
    assert (row.target, row.label_source, row.label_key, row.labelled_at) == ("virginica", "key", "admin1", NOW + 9)


def test_a_label_source_outside_key_and_token_is_refused(log: PredictionLog) -> None:
    log.append([logged("a")])
    with pytest.raises(ValueError, match="source"):
        log.label("iris", [Label("a", "setosa")], source="anyone")
    assert log.recent("iris", 10, labelled=True) == []


def test_purge_removes_every_label_one_key_gave_and_counts_show_each_source(log: PredictionLog) -> None:
    shadow = LoggedPrediction("iris", "a", 0, 2, NOW, [5.1, 3.5, 1.4, 0.2], "versicolor", shadow=True)
    log.append([logged("a"), shadow, logged("b"), logged("c"), logged("d"), logged("w", model="wine")])
    log.label("iris", [Label("a", "setosa"), Label("b", "setosa")], source="key", key="bad")
    log.label("iris", [Label("c", "setosa")], source="key", key="good")
    log.label("iris", [Label("d", "setosa")], source="token")
    log.label("wine", [Label("w", "setosa")], source="key", key="bad")
    assert log.label_counts("iris") == [LabelCount("key", "bad", 2), LabelCount("key", "good", 1),
                                        LabelCount("token", None, 1)]  # fmt: skip
    assert log.purge_labels("iris", "bad") == 3  # a's two versions and b
    assert {r.request_id for r in log.recent("iris", 10, labelled=True)} == {"c", "d"}
    assert log.label_counts("iris") == [LabelCount("key", "good", 1), LabelCount("token", None, 1)]
    assert log.label_counts("wine") == [LabelCount("key", "bad", 1)]  # another model's labels stay
    assert log.label("iris", [Label("a", "virginica")], source="token").accepted == 1  # purged: free to label again
    assert log.purge_labels("iris", "nobody") == 0


def test_recent_labelled_rows_from_the_trusted_sources_only(log: PredictionLog) -> None:
    log.append([logged("k"), logged("t"), logged("n")])
    log.label("iris", [Label("k", "setosa")], source="key", key="k1")
    log.label("iris", [Label("t", "setosa")], source="token")
    assert {r.request_id for r in log.recent("iris", 10, labelled=True, sources=["key"])} == {"k"}
    assert {r.request_id for r in log.recent("iris", 10, labelled=True, sources=["key", "token"])} == {"k", "t"}
    assert log.recent("iris", 10, labelled=True, sources=[]) == []
    assert len(log.recent("iris", 10, sources=["key"])) == 3  # only labelled rows are filtered


def test_logged_says_whether_a_request_id_is_taken_for_a_model(log: PredictionLog) -> None:
    log.append([logged("a", row=1, version=2)])
    assert log.logged("iris", "a")
    assert not log.logged("iris", "b")
    assert not log.logged("wine", "a")


def test_a_secret_is_made_once_shared_by_every_opener_and_rotated_on_demand(log_backend: Backend) -> None:
    first, second = log_backend.prediction_log(), log_backend.prediction_log()
    secret = first.secret("feedback_token")
    assert len(secret) >= 32 and second.secret("feedback_token") == secret == first.secret("feedback_token")
    assert first.secret("other") != secret
    rotated = second.secret("feedback_token", rotate=True)
    assert rotated != secret and len(rotated) >= 32
    assert first.secret("feedback_token") == rotated


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
    log.label("diabetes", [Label("r", 148.25)], source="key", key="k")
    log.label("digits", [Label("d", 3)], source="key", key="k")
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


def test_feedback_tokens_sign_with_the_logs_secret_and_verify_only_their_prediction(log_backend: Backend) -> None:
    tokens = FeedbackTokens(log_backend.prediction_log, ttl=60)
    token = tokens.issue("iris", 3, "req-1", now=NOW)
    assert token is not None and token.startswith(f"3.{int(NOW) + 60}.")
    assert tokens.valid(token, "iris", "req-1", now=NOW + 59)
    assert FeedbackTokens(log_backend.prediction_log, ttl=60).valid(token, "iris", "req-1", now=NOW)  # any worker
    assert not tokens.valid(token, "iris", "req-2", now=NOW)  # another prediction
    assert not tokens.valid(token, "wine", "req-1", now=NOW)  # another model
    assert not tokens.valid(token, "iris", "req-1", now=NOW + 61)  # expired
    version, expires, mac = token.split(".")
    for forged in (f"4.{expires}.{mac}", f"{version}.{int(expires) + 3600}.{mac}", f"{version}.{expires}.{mac[::-1]}"):
        assert not tokens.valid(forged, "iris", "req-1", now=NOW)
    tokens.rotate()
    assert not tokens.valid(token, "iris", "req-1", now=NOW)
    assert not FeedbackTokens(log_backend.prediction_log, ttl=60).valid(token, "iris", "req-1", now=NOW)


def test_a_request_id_a_client_chose_that_is_logged_is_logged_under_a_fresh_one(log_backend: Backend) -> None:
    log = log_backend.prediction_log()
    worker = PredictionRecorder(log_backend.prediction_log, budget=BUDGET, override=1.0)
    assert worker.log_id("iris", "mine", given=True) == "mine"  # free: the client's own id
    assert worker.log_id("iris", "mine", given=True) != "mine"  # queued here, not written yet: taken
    log.append([logged("squatted")])
    other = PredictionRecorder(log_backend.prediction_log, budget=BUDGET, override=1.0)  # another web worker
    fresh = other.log_id("iris", "squatted", given=True)
    assert fresh != "squatted" and len(fresh) == 32
    assert other.log_id("wine", "squatted", given=True) == "squatted"  # per model
    assert other.log_id("iris", "squatted", given=False) == "squatted"  # one nnserve made is never reused
