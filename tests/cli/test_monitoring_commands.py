"""``nnserve monitoring prune``, ``nnserve feedback purge`` and ``nnserve feedback rotate-secret``: the prediction
log's retention, a key's labels and the feedback tokens' secret from the command line."""

from __future__ import annotations

import time

from click.testing import CliRunner

from service.cli.main import main
from service.store.monitoring import DAY, FEEDBACK_SECRET, Label, LabelCount, LoggedPrediction, SqlitePredictionLog


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


def test_purge_removes_every_label_one_key_gave(tmp_path) -> None:
    root = tmp_path / "store"
    root.mkdir()
    log = SqlitePredictionLog(root)
    log.append([row(f"r{i}", 1.0) for i in range(4)])
    log.label("iris", [Label("r0", "setosa"), Label("r1", "setosa")], source="key", key="k_bad")
    log.label("iris", [Label("r2", "setosa")], source="key", key="k_good")
    result = CliRunner().invoke(main, ["feedback", "purge", "iris", "--key", "k_bad", "--store", str(root)], env={})
    assert result.exit_code == 0, result.output
    assert result.output == "iris: 2 logged rows lost the label key k_bad gave\n"
    assert log.label_counts("iris") == [LabelCount("key", "k_good", 1)]
    refused = CliRunner().invoke(main, ["feedback", "purge", "../x", "--key", "k", "--store", str(root)], env={})
    assert refused.exit_code == 1 and "../x" in refused.output
    missing = CliRunner().invoke(main, ["feedback", "purge", "iris", "--store", str(root)], env={})
    assert missing.exit_code == 2 and "--key" in missing.output


def test_rotate_secret_replaces_the_feedback_tokens_secret(tmp_path) -> None:
    root = tmp_path / "store"
    root.mkdir()
    before = SqlitePredictionLog(root).secret(FEEDBACK_SECRET)
    result = CliRunner().invoke(main, ["feedback", "rotate-secret", "--store", str(root)], env={})
    assert result.exit_code == 0, result.output
    assert SqlitePredictionLog(root).secret(FEEDBACK_SECRET) != before
