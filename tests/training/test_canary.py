"""The rollout rule (by hand), its evidence from a real prediction log, and the worker's passes that act on it."""

from __future__ import annotations

import time

import numpy as np
import pytest
from helpers import read_catalog_csv

from service.store import Dataset, FileModelStore, Rollout
from service.store.monitoring import Label, LoggedPrediction, SqlitePredictionLog
from service.store.snapshots import FileSnapshots
from service.training.canary import MIN_LABELLED, Evidence, Frozen, Side, evidence, frozen_scores, judge
from service.training.fitting import publish, train
from service.training.jobs import RetrainRequest, open_queue
from service.training.policies import PolicyRunner, Settings
from service.training.worker import Worker

NOW = 1_700_000_000.0


def rollout(mode: str = "canary", min_requests: int = 100, max_duration: float = 600.0) -> Rollout:
    return Rollout(mode, 2, 1, 0.2 if mode == "canary" else 1.0, min_requests, max_duration, NOW)  # type: ignore[arg-type]


def side(version: int, requests: int, errors: int = 0, wrong: int = 0, labelled: int = 0) -> Side:
    """A classifier's side: ``wrong`` of its ``labelled`` rows mislabelled."""
    losses = np.array([1.0] * wrong + [0.0] * (labelled - wrong))
    accuracy = {"accuracy": 1 - wrong / labelled} if labelled else {}
    var = float(losses.var(ddof=1)) if labelled > 1 else None
    return Side(version, requests, errors, labelled, accuracy, float(losses.mean()) if labelled else None, var)


def test_a_canary_waits_for_min_requests_and_is_rolled_back_without_them_at_max_duration() -> None:
    few = Evidence(side(1, 900, labelled=500), side(2, 99, labelled=99))
    assert judge(rollout(), "classification", few, NOW + 599) is None
    verdict = judge(rollout(), "classification", few, NOW + 600)
    assert verdict is not None and verdict.state == "rolled_back"
    assert verdict.reason == "only 99 of 100 requests answered in 600 s"


def test_a_worse_error_rate_rolls_back_at_once_and_a_rare_failure_does_not() -> None:
    failing = Evidence(side(1, 900), side(2, 0, errors=100))
    verdict = judge(rollout(min_requests=50), "classification", failing, NOW + 1)
    assert verdict is None  # nothing answered yet: min_requests counts answers
    failing = Evidence(side(1, 900), side(2, 100, errors=100))
    verdict = judge(rollout(), "classification", failing, NOW + 1)
    assert verdict is not None and verdict.state == "rolled_back"
    assert verdict.reason.startswith("error rate 50.0% (100 of 200 requests) is worse than the active version's 0.0%")
    rare = Evidence(side(1, 900, labelled=100), side(2, 200, errors=1, labelled=100))
    verdict = judge(rollout(), "classification", rare, NOW + 1)
    assert verdict is not None and verdict.state == "promoted"  # 1 in 201 is within chance of 0 in 900


def test_live_accuracy_decides_once_both_sides_have_labelled_rows() -> None:
    bad = Evidence(side(1, 900, wrong=20, labelled=600), side(2, 120, wrong=80, labelled=120))
    verdict = judge(rollout(), "classification", bad, NOW + 1)
    assert verdict is not None and verdict.state == "rolled_back"
    assert verdict.reason.startswith("live accuracy 0.333 vs active 0.967 is worse (120 and 600 labelled rows)")
    good = Evidence(side(1, 900, wrong=20, labelled=600), side(2, 120, wrong=5, labelled=120))
    verdict = judge(rollout(), "classification", good, NOW + 1)
    assert verdict is not None and verdict.state == "promoted" and "is no worse" in verdict.reason
    close = Evidence(side(1, 900, wrong=20, labelled=600), side(2, 120, wrong=6, labelled=120))
    verdict = judge(rollout(), "classification", close, NOW + 1)  # 0.950 vs 0.967: within chance
    assert verdict is not None and verdict.state == "promoted"


def test_without_feedback_a_canary_runs_its_time_then_is_judged_on_errors_alone() -> None:
    unlabelled = Evidence(side(1, 900), side(2, 150, labelled=MIN_LABELLED - 1))
    assert judge(rollout(), "classification", unlabelled, NOW + 599) is None
    verdict = judge(rollout(), "classification", unlabelled, NOW + 600)
    assert verdict is not None and verdict.state == "promoted" and "too few labelled rows" in verdict.reason


def test_a_shadow_completes_with_its_agreement_and_never_promotes() -> None:
    found = Evidence(side(1, 100, wrong=2, labelled=40), side(2, 100, wrong=10, labelled=40), agreement=0.8)
    verdict = judge(rollout("shadow"), "classification", found, NOW + 1)
    assert verdict is not None and verdict.state == "completed"
    assert verdict.reason == (
        "shadow has its evidence: 100 copies answered, agreement 80.0%, live accuracy 0.750 vs active 0.950 "
        "(40 and 40 labelled rows)"
    )
    assert judge(rollout("shadow"), "classification", Evidence(side(1, 50), side(2, 50)), NOW + 1) is None
    verdict = judge(rollout("shadow"), "classification", Evidence(side(1, 50), side(2, 50)), NOW + 600)
    assert verdict is not None and verdict.reason.startswith("shadow ran its time: 50 copies answered")


def test_a_canary_worse_on_the_frozen_set_is_rolled_back_whatever_its_live_figures_and_reasons_name_both() -> None:
    forged = Evidence(side(1, 900, wrong=600, labelled=600), side(2, 120, wrong=0, labelled=120))  # live: 1.0 vs 0.0
    worse = Frozen("accuracy", 0.3158, 0.9737, 38)
    verdict = judge(rollout(), "classification", forged, NOW + 1, worse)
    assert verdict is not None and verdict.state == "rolled_back"
    assert verdict.reason.startswith(
        "frozen evaluation accuracy 0.3158 vs active 0.9737 (38 rows) is worse, whatever the live figures say "
        "(live accuracy 1.000 vs active 0.000 is no worse"
    )
    unlabelled = Evidence(side(1, 900), side(2, 150))
    verdict = judge(rollout(), "classification", unlabelled, NOW + 600, worse)  # promoted on errors alone: not now
    assert verdict is not None and verdict.state == "rolled_back"
    good = Evidence(side(1, 900, wrong=20, labelled=600), side(2, 120, wrong=5, labelled=120))
    verdict = judge(rollout(), "classification", good, NOW + 1, Frozen("accuracy", 0.9737, 0.9737, 38))
    assert verdict is not None and verdict.state == "promoted"  # a tie on the frozen set is not worse
    assert verdict.reason.endswith("; frozen evaluation accuracy 0.9737 vs active 0.9737 (38 rows)")
    assert judge(rollout(), "classification", Evidence(side(1, 900), side(2, 10)), NOW + 1, worse) is None
    found = Evidence(side(1, 100, labelled=40), side(2, 100, labelled=40), agreement=0.8)
    verdict = judge(rollout("shadow"), "classification", found, NOW + 1, worse)
    assert verdict is not None and verdict.state == "completed" and verdict.reason.endswith("(38 rows)")


def test_the_frozen_figures_come_from_the_candidates_manifest_when_it_was_scored_against_the_baseline() -> None:
    manifest = {
        "primary_metric": "r2",
        "metrics": {"r2": 0.41},
        "lineage": {"parent_version": 1},
        "evaluation_set": {"sha256": "0" * 64, "rows": 111, "parent_metric": 0.45},
    }
    assert frozen_scores(manifest, rollout()) == Frozen("r2", 0.41, 0.45, 111)
    assert frozen_scores({**manifest, "lineage": {"parent_version": 3}}, rollout()) is None  # another baseline
    assert frozen_scores({"primary_metric": "r2", "metrics": {"r2": 0.4}}, rollout()) is None  # an older version


def row(request_id: str, version: int, output: object, **fields: object) -> LoggedPrediction:
    given = {"logged_at": NOW + 1, "inputs": [5.0, 3.0, 1.5, 0.2], "output": output, **fields}
    return LoggedPrediction("iris", request_id, 0, version, **given)  # type: ignore[arg-type]


def test_evidence_counts_each_side_since_the_start_and_a_shadow_agreement(tmp_path) -> None:
    log = SqlitePredictionLog(tmp_path)
    log.append([row("old", 1, "setosa", logged_at=NOW - 5)])  # before the rollout: not evidence
    log.append([row(f"a{i}", 1, "setosa") for i in range(6)])
    log.append([row(f"a{i}", 2, "setosa" if i < 3 else "virginica", shadow=True) for i in range(4)])
    log.append([row("a5", 2, None, error="RuntimeError: boom")])
    log.label("iris", [Label(f"a{i}", "setosa") for i in range(4)], source="key", key="k")
    manifest = {"task": "classification", "classes": ["setosa", "versicolor", "virginica"]}
    found = evidence(log, "iris", rollout("shadow"), manifest, window=100)
    assert (found.active.requests, found.active.labelled, found.active.metrics["accuracy"]) == (6, 4, 1.0)
    assert (found.candidate.requests, found.candidate.errors, found.candidate.labelled) == (4, 1, 4)
    assert found.candidate.metrics["accuracy"] == 0.75
    assert found.agreement == 0.75  # 3 of the 4 copies it answered said what the active version said


def test_evidence_counts_only_the_labels_of_the_sources_the_spec_trusts(tmp_path) -> None:
    log = SqlitePredictionLog(tmp_path)
    log.append([row(f"a{i}", 1, "setosa") for i in range(4)] + [row(f"a{i}", 2, "setosa") for i in range(4)])
    log.label("iris", [Label("a0", "setosa")], source="key", key="k")
    log.label("iris", [Label(f"a{i}", "virginica") for i in (1, 2, 3)], source="token")  # forged, say
    manifest = {"task": "classification", "classes": ["setosa", "versicolor", "virginica"]}
    found = evidence(log, "iris", rollout("canary"), manifest, window=100)
    assert (found.candidate.labelled, found.candidate.metrics["accuracy"]) == (1, 1.0)
    trusting = {**manifest, "monitoring": {"trusted_labels": ["key", "token"]}}
    found = evidence(log, "iris", rollout("canary"), trusting, window=100)
    assert (found.candidate.labelled, found.candidate.metrics["accuracy"]) == (4, 0.25)


@pytest.fixture
def iris(tmp_path):
    """iris published twice into a fresh store: version 1 active, version 2 a candidate."""
    X, y, names = read_catalog_csv("iris")
    data = Dataset(X, y, names)
    store = FileModelStore(tmp_path / "store")
    for seed in (0, 1):
        params = {"hidden_layer_sizes": (8,), "max_iter": 150, "learning_rate_init": 0.01, "random_state": seed}
        publish(store, "iris", train("classification", params, data), spec_sections={"retrain": {"schedule": 1.0}})
    store.activate("iris", 1)
    return store, data


def runner(store: FileModelStore) -> PolicyRunner:
    settings = Settings(window=1000, max_window=100_000, keep_rows=10_000, keep_days=30, drift_min_rows=100)
    log, snapshots = SqlitePredictionLog(store.root), FileSnapshots(store.root)
    return PolicyRunner(store, open_queue(store.root), log, settings, snapshots)


def test_the_worker_pass_promotes_a_canary_that_is_no_worse_and_retrains_nothing_meanwhile(iris) -> None:
    store, data = iris
    store.start_rollout("iris", rollout(min_requests=40))
    policies = runner(store)
    assert policies.run(now=NOW + 1) == []  # the schedule rule is due, but a rollout runs: no retrain
    assert store.rollout("iris").running
    log = policies.log
    for version, n in ((1, 160), (2, 40)):
        log.append([row(f"v{version}-{i}", version, str(data.y[i % 150])) for i in range(n)])
        log.label("iris", [Label(f"v{version}-{i}", str(data.y[i % 150])) for i in range(n)], source="key", key="k")
    assert policies.run(now=NOW + 2) == []
    ended = store.rollout("iris")
    assert ended.state == "promoted" and store.active_version("iris") == 2
    assert ended.figures["candidate"]["requests"] == 40 and ended.figures["active"]["labelled"] == 160
    assert len(policies.run(now=time.time() + 5)) == 1  # ended: the schedule rule retrains again


def test_the_worker_pass_rolls_back_a_canary_that_answers_worse(iris) -> None:
    store, data = iris
    store.start_rollout("iris", rollout(min_requests=40))
    policies = runner(store)
    for version, n in ((1, 160), (2, 40)):
        wrong = (lambda i: "virginica" if str(data.y[i % 150]) != "virginica" else "setosa") if version == 2 else None
        log_rows = [
            row(f"v{version}-{i}", version, wrong(i % 150) if wrong else str(data.y[i % 150])) for i in range(n)
        ]
        policies.log.append(log_rows)
        policies.log.label(
            "iris", [Label(f"v{version}-{i}", str(data.y[i % 150])) for i in range(n)], source="key", key="k"
        )
    policies.run(now=NOW + 2)
    ended = store.rollout("iris")
    assert ended.state == "rolled_back" and store.active_version("iris") == 1
    assert ended.reason.startswith("live accuracy 0.000 vs active 1.000 is worse")


def test_a_canary_retrain_starts_a_rollout_instead_of_promoting(iris) -> None:
    store, _ = iris
    queue = open_queue(store.root)
    job = queue.enqueue(
        "iris",
        RetrainRequest(promote="canary", canary_fraction=0.25, min_requests=30, max_duration=120.0,
                       hyperparameters={"max_iter": 20}),
    )  # fmt: skip
    Worker(store.root).run_once()
    done = queue.get(job.id)
    assert done.status == "succeeded", done.error
    assert not done.result.promoted
    assert done.result.reason.startswith("canary started: version 3 gets 25% of unpinned requests until 30 requests")
    started = store.rollout("iris")
    assert (started.mode, started.candidate, started.baseline, started.fraction) == ("canary", 3, 1, 0.25)
    assert (started.min_requests, started.max_duration, started.job_id) == (30, 120.0, job.id)
    assert store.active_version("iris") == 1


def test_a_policy_with_promote_canary_queues_a_retrain_that_carries_its_options(tmp_path) -> None:
    X, y, names = read_catalog_csv("iris")
    data = Dataset(X, y, names)
    store = FileModelStore(tmp_path / "store")
    policy = {"schedule": 1.0, "promote": "canary", "canary_fraction": 0.3, "min_requests": 20, "max_duration": 60.0}
    params = {"hidden_layer_sizes": (4,), "max_iter": 5}
    publish(store, "iris", train("classification", params, data), spec_sections={"retrain": policy})
    (job,) = runner(store).run(now=time.time() + 5)
    request = job.request
    assert (request.promote, request.canary_fraction, request.min_requests, request.max_duration) == (
        "canary",
        0.3,
        20,
        60.0,
    )
    assert request.trigger.startswith("schedule: ")


def test_a_rollout_left_running_after_its_candidate_became_active_ends_as_superseded(iris) -> None:
    store, _ = iris
    store.start_rollout("iris", rollout())
    (store.root / "iris" / "ACTIVE").write_text("2\n")  # a crash between a promotion's ACTIVE and ROLLOUT writes
    ended = runner(store).judge_rollout("iris", store.rollout("iris"), NOW + 1)
    assert ended is not None and ended.state == "superseded" and ended.reason == "version 2 is active, not its baseline"
    assert store.rollout("iris") == ended and store.active_version("iris") == 2


def test_a_regressor_side_without_labelled_rows_is_not_enough_evidence_yet(tmp_path) -> None:
    log = SqlitePredictionLog(tmp_path)
    log.append([LoggedPrediction("diabetes", f"a{i}", 0, 1, NOW + 1, [0.1] * 10, 150.0) for i in range(40)])
    log.append([LoggedPrediction("diabetes", f"c{i}", 0, 2, NOW + 1, [0.1] * 10, 140.0) for i in range(40)])
    log.label("diabetes", [Label(f"a{i}", 151.0) for i in range(40)], source="key", key="k")  # the active side only
    found = evidence(log, "diabetes", rollout(min_requests=30), {"task": "regression"}, window=100)
    assert (found.candidate.requests, found.candidate.labelled, found.candidate.loss) == (40, 0, None)
    assert found.active.loss == pytest.approx(1.0) and found.active.metrics["mae"] == pytest.approx(1.0)
    assert judge(rollout(min_requests=30), "regression", found, NOW + 10) is None
    ended = judge(rollout(min_requests=30), "regression", found, NOW + 600)
    assert ended is not None and ended.state == "promoted" and "too few labelled rows (0 and 40" in ended.reason


def test_a_rollout_whose_evidence_cannot_be_read_is_rolled_back_at_its_max_duration(iris) -> None:
    store, _ = iris
    store.start_rollout("iris", rollout(max_duration=600))
    (store.root / "iris" / "2" / "manifest.json").write_text("{}")  # the candidate's manifest no longer reads
    policies = runner(store)
    assert policies.judge_rollout("iris", store.rollout("iris"), NOW + 599) is None
    assert policies.run(now=NOW + 599) == [] and store.rollout("iris").running  # tried again next pass
    policies.run(now=NOW + 600)
    ended = store.rollout("iris")
    assert ended.state == "rolled_back" and store.active_version("iris") == 1
    assert ended.reason.startswith("its evidence could not be read or judged in 600 s (CorruptVersionError: ")


@pytest.mark.parametrize("fraction", [0.0, -0.5, 1.5, float("nan")])
def test_a_canary_job_with_a_fraction_outside_zero_to_one_fails_before_training(iris, fraction) -> None:
    store, _ = iris
    queue = open_queue(store.root)
    job = queue.enqueue("iris", RetrainRequest(promote="canary", canary_fraction=fraction))
    Worker(store.root).run_once()
    done = queue.get(job.id)
    assert done.status == "failed" and done.error.startswith("canary_fraction must be in (0, 1], got ")
    assert store.versions("iris") == [1, 2] and store.rollout("iris") is None
