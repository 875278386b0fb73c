"""A prediction log written by an older schema (the first: one row per request id and row; the second: labels
without provenance) is upgraded in place on open."""

from __future__ import annotations

import sqlite3

from service.store.monitoring import DATABASE, Label, LabelCount, Labelled, LoggedPrediction, SqlitePredictionLog

FIRST_SCHEMA = """
CREATE TABLE predictions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    model TEXT NOT NULL,
    request_id TEXT NOT NULL,
    row INTEGER NOT NULL,
    version INTEGER NOT NULL,
    logged_at REAL NOT NULL,
    inputs TEXT NOT NULL,
    output TEXT NOT NULL,
    probabilities TEXT,
    target TEXT,
    labelled_at REAL,
    UNIQUE (model, request_id, row)
);
CREATE INDEX predictions_model_seq ON predictions (model, seq);
CREATE INDEX predictions_model_version_seq ON predictions (model, version, seq);
INSERT INTO predictions (model, request_id, row, version, logged_at, inputs, output, probabilities, target, labelled_at)
VALUES ('iris', 'old', 0, 1, 1700000000.0, '[5.1, 3.5, 1.4, 0.2]', '"setosa"', '[0.9, 0.05, 0.05]', '"setosa"',
        1700000001.0);
"""
SECOND_SCHEMA = (
    FIRST_SCHEMA.replace(
        "UNIQUE (model, request_id, row)",
        "shadow INTEGER NOT NULL DEFAULT 0, error TEXT, UNIQUE (model, request_id, row, version)",
    ).replace("output TEXT NOT NULL", "output TEXT")
    + "PRAGMA user_version = 2;"
)


def test_a_first_schema_log_keeps_its_rows_and_takes_a_shadow_row_beside_them(tmp_path) -> None:
    with sqlite3.connect(tmp_path / DATABASE) as db:
        db.executescript(FIRST_SCHEMA)
    log = SqlitePredictionLog(tmp_path)
    (kept,) = log.recent("iris", 10)
    assert kept == LoggedPrediction(
        "iris", "old", 0, 1, 1700000000.0, [5.1, 3.5, 1.4, 0.2], "setosa", [0.9, 0.05, 0.05], "setosa", 1700000001.0
    )
    shadow = LoggedPrediction("iris", "old", 0, 2, 1700000002.0, [5.1, 3.5, 1.4, 0.2], "virginica", shadow=True)
    assert log.append([shadow]) == 1  # the first schema's key would have refused it
    assert log.label("iris", [Label("old", "versicolor")], source="key", key="admin", replace=True).accepted == 1
    assert {r.version: r.target for r in log.recent("iris", 10)} == {1: "versicolor", 2: "versicolor"}
    with sqlite3.connect(tmp_path / DATABASE) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SqlitePredictionLog.SCHEMA_VERSION
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'predictions_v1'").fetchone() is None
    assert SqlitePredictionLog(tmp_path).recent("iris", 10)[0].version == 2  # opening again changes nothing


def test_a_second_schema_log_keeps_its_labels_without_a_source_which_no_source_filter_trusts(tmp_path) -> None:
    with sqlite3.connect(tmp_path / DATABASE) as db:
        db.executescript(SECOND_SCHEMA)
    log = SqlitePredictionLog(tmp_path)
    (kept,) = log.recent("iris", 10, labelled=True)
    assert (kept.target, kept.label_source, kept.label_key) == ("setosa", None, None)
    assert log.recent("iris", 10, labelled=True, sources=["key", "token"]) == []
    assert log.label_counts("iris") == [LabelCount(None, None, 1)]
    assert log.label("iris", [Label("old", "virginica")], source="token") == Labelled(
        0, [], [Label("old", "virginica")]
    )
    assert len(log.secret("feedback_token")) == 32
    with sqlite3.connect(tmp_path / DATABASE) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SqlitePredictionLog.SCHEMA_VERSION


def test_a_new_log_file_is_readable_by_its_owner_only(tmp_path) -> None:
    SqlitePredictionLog(tmp_path).secret("feedback_token")
    assert (tmp_path / DATABASE).stat().st_mode & 0o077 == 0  # it keeps the feedback tokens' secret
