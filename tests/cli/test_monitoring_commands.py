"""``nnserve monitoring prune``: the prediction log's retention from the command line."""

from __future__ import annotations

import time

from click.testing import CliRunner

from service.cli.main import main
from service.store.monitoring import DAY, LoggedPrediction, SqlitePredictionLog


def row(request_id: str, at: float, model: str = "iris") -> LoggedPrediction:
    return LoggedPrediction(model, request_id, 0, 1, at, [1.0], "setosa")


def test_prune_keeps_the_newest_rows_and_days(tmp_path) -> None:
    root = tmp_path / "store"
    root.mkdir()
    log = SqlitePredictionLog(root)
    now = time.time()
    log.append([row("ancient", now - 60 * DAY)] + [row(f"r{i}", now - 100 + i) for i in range(5)])
    log.append([row("w", now, "wine")])
    result = CliRunner().invoke(main, ["monitoring", "prune", "--keep-rows", "3", "--store", str(root)], env={})
    assert result.exit_code == 0, result.output
    assert "iris: 3 rows removed" in result.output and "wine" not in result.output.splitlines()[0]
    assert sorted(r.request_id for r in log.recent("iris", 10)) == ["r2", "r3", "r4"]
    result = CliRunner().invoke(main, ["monitoring", "prune", "--keep-days", "0.0001", "--store", str(root)])
    assert result.exit_code == 0 and "removed" in result.output
    assert [r.request_id for r in log.recent("iris", 10)] == [] and len(log.recent("wine", 10)) == 1


def test_prune_needs_a_store(tmp_path) -> None:
    result = CliRunner().invoke(main, ["monitoring", "prune", "--store", str(tmp_path / "nope")])
    assert result.exit_code == 1 and "no such store" in result.output
