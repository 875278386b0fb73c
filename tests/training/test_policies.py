"""Retraining policies: which rule fires (by hand), and passes of the worker's runner over a real store, queue, log."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from datetime import datetime

import numpy as np
import pytest
from helpers import read_catalog_csv
from otlp_receiver import otlp_receiver

from service import tracing
from service.store import AuditEntry, Dataset, FileModelStore
from service.store.audit import SqliteAuditLog
from service.store.monitoring import DATABASE, LOCK, Label, LoggedPrediction, SqlitePredictionLog
from service.store.snapshots import FileSnapshots
from service.training.drift import Drift
from service.training.fitting import publish, train
from service.training.jobs import RetrainRequest, open_queue
from service.training.live import VersionReport, version_report
from service.training.policies import PolicyRunner, Settings, fires
from service.training.worker import Worker


def report(rows=0, labelled=0, metrics=None, features=None) -> VersionReport:
    drift = Drift(True, None, rows, features or {}) if features is not None else Drift(False, "none")
    return VersionReport(1, rows, labelled, metrics or {}, drift)


def test_drift_fires_at_the_threshold_once_enough_rows_are_logged() -> None:
    policy = {"on_drift_psi": 0.25, "drift_min_rows": 100}
    moved = {"sepal_length": 0.01, "petal_length": 0.31}
    assert fires(policy, report(rows=120, features=moved), 0) == "drift: PSI 0.31 on petal_length (>= 0.25, 120 rows)"
    assert fires(policy, report(rows=99, features=moved), 0) is None
    assert fires(policy, report(rows=500, features={"a": 0.249}), 0) is None
    assert fires(policy, report(rows=500), 0) is None  # no reference: no drift rule


def test_live_metric_feedback_count_and_schedule() -> None:
    metric = {"on_live_metric_below": {"metric": "accuracy", "threshold": 0.8, "min_rows": 50}}
    assert fires(metric, report(labelled=60, metrics={"accuracy": 0.7}), 0) == (
        "live accuracy 0.700 < 0.8 over 60 labelled rows"
    )
    assert fires(metric, report(labelled=40, metrics={"accuracy": 0.1}), 0) is None
    assert fires(metric, report(labelled=60, metrics={"accuracy": 0.85}), 0) is None
    assert fires({"every_n_feedback": 10}, report(labelled=10), 0) == "feedback: 10 labelled predictions (every 10)"
    assert fires({"every_n_feedback": 10}, report(labelled=9), 0) is None
    assert fires({"schedule": 3600.0}, report(), 3600.0) == "schedule: 3600 s since the last retrain (every 3600 s)"
    assert fires({"schedule": 3600.0}, report(), 3599.0) is None
    both = {"on_drift_psi": 0.1, "drift_min_rows": 1, "every_n_feedback": 1}
    assert fires(both, report(rows=5, labelled=5, features={"a": 0.5}), 0).startswith("drift")  # rules in order


@pytest.fixture
def iris_store(tmp_path):
    """iris trained into a fresh store with a drift policy in its manifest, as `nnserve train` would publish it."""
    X, y, names = read_catalog_csv("iris")
    data = Dataset(X, y, names)
    result = train("classification", {"hidden_layer_sizes": (8,), "max_iter": 100, "learning_rate_init": 0.01}, data)
    root = tmp_path / "store"
    policy = {"on_drift_psi": 0.25, "drift_min_rows": 50, "promote": "always"}
    publish(FileModelStore(root), "iris", result, spec_sections={"retrain": policy})
    return root


def shifted_logged(n: int, version: int, at: float) -> tuple[list[LoggedPrediction], list[Label]]:
    X, y, _ = read_catalog_csv("iris")
    rng = np.random.default_rng(1)
    rows = X[rng.integers(0, len(X), n)] + np.array([0.0, 0.0, 2.0, 1.0])  # petal length and width shifted
    truth = y[rng.integers(0, len(X), n)]
    logged = [LoggedPrediction("iris", f"r{i}", 0, version, at, r.tolist(), "setosa") for i, r in enumerate(rows)]
    return logged, [Label(f"r{i}", str(t)) for i, t in enumerate(truth)]


def test_a_firing_policy_enqueues_one_job_with_the_feedback_rows_and_its_trigger(iris_store) -> None:
    store, queue, log = FileModelStore(iris_store), open_queue(iris_store), SqlitePredictionLog(iris_store)
    settings = Settings(window=1000, max_window=100_000, keep_rows=10_000, keep_days=30, drift_min_rows=100)
    runner = PolicyRunner(store, queue, log, settings, FileSnapshots(store.root))
    assert runner.run() == []  # nothing logged: nothing fires
    logged, labels = shifted_logged(80, 1, time.time() + 1)
    log.append(logged)
    log.label("iris", labels[:60], source="key", key="k")
    log.label("iris", labels[60:], source="token")  # the spec trusts only keys: never trained on
    assert runner.run() == []  # 80 rows: below NNSERVE_DRIFT_MIN_ROWS, no drift, whatever the spec's 50 says
    runner = PolicyRunner(store, queue, log, replace(settings, drift_min_rows=50), FileSnapshots(store.root))
    (job,) = runner.run()
    assert job.request.trigger.startswith("drift: PSI ") and " on petal_" in job.request.trigger
    assert job.request.n_new_rows == 60 and job.request.promote == "always" and job.request.mode == "append"
    added = store.load_dataset("iris", job.request.data_sha256)
    assert len(added.X) == 60 and added.y.dtype.kind == "U" and added.feature_names[2] == "petal_length"
    assert runner.run() == []  # one queued: never a second
    assert queue.list_jobs("iris")[1] == 1

    assert Worker(iris_store).run_once()
    done = queue.get(job.id)
    assert done.status == "succeeded", done.error
    assert done.result.n_rows == 150 + 60 and done.result.promoted
    manifest = store.manifest("iris", 2)
    assert manifest["lineage"]["trigger"] == job.request.trigger
    assert manifest["retrain"]["on_drift_psi"] == 0.25  # the policy carries over to the new version
    assert runner.run() == []  # version 2 has logged nothing yet


def test_rows_from_before_a_retrain_that_was_not_promoted_do_not_fire_again_and_new_ones_wait_the_cooldown(
    iris_store,
) -> None:
    store, queue, log = FileModelStore(iris_store), open_queue(iris_store), SqlitePredictionLog(iris_store)
    # 80 shifted rows fire the spec's drift rule (drift_min_rows 50) with the setting lowered to match
    settings = Settings(window=1000, max_window=100_000, keep_rows=10_000, keep_days=30, drift_min_rows=50)
    runner = PolicyRunner(store, queue, log, settings, FileSnapshots(store.root))
    logged, _ = shifted_logged(80, 1, time.time())  # after the version's publication (stamped to the second)
    log.append(logged)
    (job,) = runner.run()
    time.sleep(0.05)
    queue.claim("w")
    queue.cancel(job.id)  # as if it ran and was not promoted: version 1 stays active
    queue.finish(job.id, "cancelled")
    assert runner.run() == []  # the evidence predates the job's end
    later, _ = shifted_logged(80, 1, time.time() + 5)
    log.append([LoggedPrediction(r.model, "new" + r.request_id, 0, 1, r.logged_at, r.inputs, r.output) for r in later])
    ended = datetime.fromisoformat(queue.get(job.id).finished_at).timestamp()
    assert runner.run(now=ended + 3599) == []  # new evidence, but the policy's candidate was not promoted 1 h ago
    assert len(runner.run(now=ended + 3600)) == 1  # the default cooldown is over


def test_a_policy_waits_its_cooldown_after_a_candidate_worse_on_the_frozen_set_and_not_after_an_admin_retrain(
    tmp_path,
) -> None:
    X, y, names = read_catalog_csv("iris")
    data = Dataset(X, y, names)
    result = train("classification", {"hidden_layer_sizes": (8,), "max_iter": 100, "learning_rate_init": 0.01}, data)
    root = tmp_path / "store"
    store, queue, log = FileModelStore(root), open_queue(root), SqlitePredictionLog(root)
    publish(store, "iris", result, spec_sections={"retrain": {"every_n_feedback": 20, "cooldown": 600.0}})
    settings = Settings(window=1000, max_window=100_000, keep_rows=10_000, keep_days=30, drift_min_rows=100)
    runner = PolicyRunner(store, queue, log, settings, FileSnapshots(root))
    rows, truth = X[:60], y[:60]
    wrong = {"setosa": "virginica", "versicolor": "setosa", "virginica": "versicolor"}
    at = time.time() + 1
    log.append([LoggedPrediction("iris", f"p{i}", 0, 1, at, r.tolist(), "x") for i, r in enumerate(rows)])
    log.label("iris", [Label(f"p{i}", wrong[str(t)]) for i, t in enumerate(truth)], source="key", key="k")  # forged
    (job,) = runner.run()
    assert Worker(root).run_once()
    done = queue.get(job.id)
    assert done.status == "succeeded" and not done.result.promoted, done.result
    assert done.result.trained_on["new"] == 60 and done.result.trained_on["new_from_feedback"]
    assert done.result.evaluated_on["new"] == 0 and done.result.evaluated_on["frozen"] == 38  # no feedback row
    assert store.active_version("iris") == 1
    ended = datetime.fromisoformat(done.finished_at).timestamp()
    more = [LoggedPrediction("iris", f"q{i}", 0, 1, ended + 1, r.tolist(), "x") for i, r in enumerate(rows)]
    log.append(more)
    log.label("iris", [Label(f"q{i}", wrong[str(t)]) for i, t in enumerate(truth)], source="key", key="k")
    assert runner.run(now=ended + 599) == []  # the spec's cooldown
    assert len(runner.run(now=ended + 600)) == 1
    assert Worker(root).run_once() and store.active_version("iris") == 1
    queue.enqueue("iris", RetrainRequest(promote="never"))  # an admin's retrain that is not promoted
    assert Worker(root).run_once()
    at = time.time() + 1
    log.append([LoggedPrediction("iris", f"s{i}", 0, 1, at, r.tolist(), "x") for i, r in enumerate(rows)])
    log.label("iris", [Label(f"s{i}", str(t)) for i, t in enumerate(truth)], source="key", key="k")
    assert len(runner.run(now=at + 1)) == 1  # no cooldown after it: it was no policy's candidate


def test_a_worker_creates_no_prediction_log_where_nothing_is_logged_and_no_spec_has_a_policy(tmp_path) -> None:
    X, y, names = read_catalog_csv("iris")
    data = Dataset(X, y, names)
    root = tmp_path / "store"
    publish(FileModelStore(root), "iris", train("classification", {"max_iter": 5}, data))
    worker = Worker(root)
    worker.run_policies()
    assert not (root / DATABASE).exists() and not (root / DATABASE).with_name(LOCK).exists()


def test_each_pass_writes_the_monitoring_snapshots_of_every_model_and_asked_window(iris_store) -> None:
    store, queue, log = FileModelStore(iris_store), open_queue(iris_store), SqlitePredictionLog(iris_store)
    snapshots = FileSnapshots(iris_store)
    runner = PolicyRunner(store, queue, log, Settings(100, 500, 10_000, 30, 100), snapshots)
    logged, labels = shifted_logged(80, 1, time.time())
    log.append(logged)
    log.label("iris", labels[:60], source="key", key="k")
    assert snapshots.ask("iris", 10, most=8) and snapshots.ask("iris", 600, most=8)  # 600: beyond the largest
    before = time.time()
    runner.run()
    assert snapshots.windows("iris") == [10, 100, 500, 600]
    assert snapshots.read("iris", 600).computed_at is None  # asked before the cap was lowered: never computed
    manifest = store.manifest("iris", 1)
    for window in (10, 100, 500):
        found = snapshots.read("iris", window)
        assert found.computed_at >= before
        assert found.figures == {
            "versions": [version_report(log, "iris", 1, manifest, window, drift_min_rows=100).to_json()],
            "labels": [{"source": "key", "key": "k", "rows": 60}],
            "rollout": None,
        }
    assert found.figures["versions"][0]["rows"] == 80 and found.figures["versions"][0]["labelled"] == 60


def test_a_pass_applies_the_audit_logs_retention_beside_the_prediction_logs(tmp_path) -> None:
    root = tmp_path / "store"
    FileModelStore(root)
    audit = SqliteAuditLog(root)
    now = time.time()
    for days in (40, 10, 0):
        audit.record(AuditEntry("feedback", "refused", None, "iris", 401, at=now - days * 86_400.0))
    settings = Settings(1000, 100_000, 10_000, 30, 100, audit_keep_rows=1000, audit_keep_days=30)
    PolicyRunner(
        FileModelStore(root), open_queue(root), SqlitePredictionLog(root), settings, FileSnapshots(root), audit
    ).run()
    assert sorted(round((now - e.at) / 86_400.0) for e in audit.entries()) == [0, 10]
    settings = Settings(1000, 100_000, 10_000, 30, 100, audit_keep_rows=1, audit_keep_days=30)
    PolicyRunner(
        FileModelStore(root), open_queue(root), SqlitePredictionLog(root), settings, FileSnapshots(root), audit
    ).run()
    assert [round((now - e.at) / 86_400.0) for e in audit.entries()] == [0]


def test_the_worker_prunes_the_audit_log_of_its_store(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NNSERVE_AUDIT_KEEP_DAYS", "1")
    root = tmp_path / "store"
    SqliteAuditLog(root).record(AuditEntry("gc", "ok", "cli", at=time.time() - 2 * 86_400.0))
    Worker(root).policies.run()
    assert SqliteAuditLog(root).entries() == []


def test_a_policys_job_continues_the_trace_of_the_pass_that_fired_it(iris_store, monkeypatch) -> None:
    """With tracing on, the job a policy queues keeps the traceparent of its ``policy.fired`` span: no request
    asked for it, and the worker's job spans still join the pass that decided it (service/tracing.py)."""
    for name in [name for name in os.environ if name.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    store, queue, log = FileModelStore(iris_store), open_queue(iris_store), SqlitePredictionLog(iris_store)
    settings = Settings(window=1000, max_window=100_000, keep_rows=10_000, keep_days=30, drift_min_rows=50)
    logged, _ = shifted_logged(80, 1, time.time() + 1)
    log.append(logged)
    with otlp_receiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        assert tracing.configure("worker", "test")
        try:
            (job,) = PolicyRunner(store, queue, log, settings, FileSnapshots(store.root)).run()
            assert Worker(iris_store).run_once()
        finally:
            tracing.shutdown()
        spans = receiver.received()
    [fired] = [s for s in spans if s.name == "policy.fired"]
    assert fired.attributes["nnserve.trigger"] == job.request.trigger and fired.attributes["nnserve.model"] == "iris"
    assert job.request.traceparent.split("-")[1:3] == [fired.trace_id, fired.span_id]
    [run] = [s for s in spans if s.name == "job"]
    assert (run.trace_id, run.parent_span_id) == (fired.trace_id, fired.span_id)
    assert any(s.name == "queue.enqueue" and s.parent_span_id == fired.span_id for s in spans)
