"""The SQLite prediction log on disk: its files shrink when rows go, and ``max_bytes`` caps the database and its WAL
(the oldest rows go first, counted as dropped). PostgreSQL manages its own space: no cap there."""

from __future__ import annotations

import sqlite3

import pytest

from service import telemetry
from service.store.monitoring import DATABASE, LoggedPrediction, SqlitePredictionLog

NOW = 1_700_000_000.0


def batch(model: str, start: int, count: int, at: float = NOW) -> list[LoggedPrediction]:
    return [
        LoggedPrediction(model, f"{model}-{i}", 0, 1, at + i, [float(i), 3.5, 1.4, 0.2] * 4, "setosa", [0.9, 0.1])
        for i in range(start, start + count)
    ]


def dropped_on_disk(model: str) -> float:  # names of their own: the counters are the process's
    labels = {"model": model, "reason": "disk"}
    return telemetry.REGISTRY.get_sample_value("nnserve_prediction_log_dropped_total", labels) or 0.0


def test_a_new_log_vacuums_incrementally(tmp_path) -> None:
    SqlitePredictionLog(tmp_path).append(batch("capped-iris", 0, 1))
    with sqlite3.connect(tmp_path / DATABASE) as db:
        assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # INCREMENTAL


def test_pruning_shrinks_the_database_and_truncates_the_wal(tmp_path) -> None:
    log = SqlitePredictionLog(tmp_path)
    for start in range(0, 20_000, 1000):
        log.append(batch("capped-iris", start, 1000))
    full = log.disk_bytes()
    assert full > 2_000_000
    assert log.prune(keep_rows=1000, keep_days=30 * 365, now=NOW) == {"capped-iris": 19_000}
    assert log.disk_bytes() < full / 5  # a twentieth of the rows left: the files give the rest back
    assert log.wal.stat().st_size == 0  # checkpointed and truncated
    assert len(log.recent("capped-iris", 100_000)) == 1000


@pytest.mark.slow  # megabytes of rows written until the cap holds: left out of `make test-fast`
def test_the_log_stays_under_its_cap_and_the_oldest_rows_go_first(tmp_path) -> None:
    cap = 2 * 1024 * 1024
    log = SqlitePredictionLog(tmp_path, max_bytes=cap)
    before = {model: dropped_on_disk(model) for model in ("capped-iris", "capped-wine")}
    appended = 0
    for start in range(0, 40_000, 1000):
        log.append(batch("capped-iris", start, 900) + batch("capped-wine", start, 100))
        appended += 1000
        assert log.disk_bytes() <= cap
    iris, wine = log.recent("capped-iris", 100_000), log.recent("capped-wine", 100_000)
    assert 0 < len(iris) + len(wine) < appended  # the cap removed rows, and the newest stayed
    assert iris[0].request_id == "capped-iris-39899" and wine[0].request_id == "capped-wine-39099"
    kept = sorted(int(r.request_id.rsplit("-", 1)[1]) for r in iris)
    assert kept == [i for i in range(kept[0], 40_000) if i % 1000 < 900]  # every row from the oldest kept one on
    removed = {model: dropped_on_disk(model) - before[model] for model in ("capped-iris", "capped-wine")}
    assert removed == {"capped-iris": 36_000 - len(iris), "capped-wine": 4000 - len(wine)}


def test_a_log_from_before_incremental_vacuum_is_rebuilt_with_its_rows(tmp_path) -> None:
    with sqlite3.connect(tmp_path / DATABASE) as db:  # as the third schema left it: no incremental vacuum
        db.executescript(SqlitePredictionLog._TABLE + SqlitePredictionLog._INDEXES + "PRAGMA user_version = 3;")
        db.execute(
            "INSERT INTO predictions (model, request_id, row, version, logged_at, inputs, output) "
            "VALUES ('iris', 'old', 0, 1, 1700000000.0, '[5.1, 3.5, 1.4, 0.2]', '\"setosa\"')"
        )
        assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    log = SqlitePredictionLog(tmp_path)
    assert [(r.request_id, r.output) for r in log.recent("iris", 100)] == [("old", "setosa")]
    with sqlite3.connect(tmp_path / DATABASE) as db:
        assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
        assert db.execute("PRAGMA user_version").fetchone()[0] == SqlitePredictionLog.SCHEMA_VERSION
