"""The rollout record's contract (``ModelStore.rollout``, ``start_rollout``, ``end_rollout``), run against every
backend: it survives a new store object (a restart), it shows in the activation stamp, and it ends atomically."""

from __future__ import annotations

import pytest
from backends import Backend
from test_store_contract import fitted

from service.store import (
    ActiveVersionChangedError,
    ModelStore,
    NotFoundError,
    Rollout,
    RolloutConflictError,
)

NOW = 1_700_000_000.0


def canary(candidate: int = 2, baseline: int = 1, **changes: object) -> Rollout:
    fields = {"mode": "canary", "candidate": candidate, "baseline": baseline, "fraction": 0.2, "min_requests": 50}
    return Rollout(**{**fields, "max_duration": 600.0, "started_at": NOW, "job_id": "j1", **changes})  # type: ignore[arg-type]


@pytest.fixture
def store(store_backend: Backend) -> ModelStore:
    store = store_backend.store()
    for seed in (0, 1, 2):
        store.publish("iris", fitted(seed))
    store.activate("iris", 1)
    return store


def test_a_started_rollout_is_read_back_by_a_new_store_and_changes_the_stamp(
    store: ModelStore, store_backend: Backend
) -> None:
    assert store.rollout("iris") is None
    before = store.active_stamp("iris")
    store.start_rollout("iris", canary())
    assert store.active_stamp("iris") != before  # every web worker notices and routes by it
    assert store.active_stamps()["iris"] == store.active_stamp("iris")
    assert store_backend.store().rollout("iris") == canary()  # what a restarted process reads
    assert store.active_version("iris") == 1


def test_only_one_rollout_runs_and_only_from_the_active_version(store: ModelStore) -> None:
    with pytest.raises(ActiveVersionChangedError):
        store.start_rollout("iris", canary(baseline=3))
    store.start_rollout("iris", canary())
    with pytest.raises(RolloutConflictError):
        store.start_rollout("iris", canary(candidate=3, started_at=NOW + 1))
    assert store.rollout("iris") == canary()
    with pytest.raises(NotFoundError):
        store.start_rollout("iris", canary(candidate=9))
    with pytest.raises(NotFoundError):
        store.rollout("nosuchmodel")


def test_a_promoted_rollout_activates_its_candidate_in_the_same_step(store: ModelStore) -> None:
    store.start_rollout("iris", canary())
    ended = canary().ended("promoted", "no worse", NOW + 60, {"requests": 50})
    store.end_rollout("iris", ended)
    assert store.active_version("iris") == 2 and store.previous_version("iris") == 1
    assert store.rollout("iris") == ended
    with pytest.raises(RolloutConflictError):  # ended already: a second verdict changes nothing
        store.end_rollout("iris", canary().ended("rolled_back", "late", NOW + 61))
    assert store.rollout("iris") == ended


def test_a_rolled_back_rollout_keeps_the_baseline_and_says_why(store: ModelStore) -> None:
    store.start_rollout("iris", canary())
    before = store.active_stamp("iris")
    store.end_rollout("iris", canary().ended("rolled_back", "accuracy 0.30 < active 0.95", NOW + 60))
    assert store.active_version("iris") == 1
    assert store.active_stamp("iris") != before
    ended = store.rollout("iris")
    assert ended is not None and ended.state == "rolled_back" and ended.reason == "accuracy 0.30 < active 0.95"
    store.start_rollout("iris", canary(candidate=3, started_at=NOW + 100))  # the next one may start
    assert store.rollout("iris") == canary(candidate=3, started_at=NOW + 100)


def test_activating_by_hand_supersedes_a_running_rollout(store: ModelStore) -> None:
    store.start_rollout("iris", canary())
    store.activate("iris", 3)
    ended = store.rollout("iris")
    assert ended is not None and ended.state == "superseded" and "version 3 was activated" in (ended.reason or "")
    with pytest.raises(RolloutConflictError):
        store.end_rollout("iris", canary().ended("promoted", "too late", NOW + 60))
    assert store.active_version("iris") == 3


def test_a_promotion_after_the_baseline_changed_is_refused(store: ModelStore) -> None:
    store.start_rollout("iris", canary())
    store.activate("iris", 3)  # supersedes; a verdict computed before that must not activate version 2
    with pytest.raises(RolloutConflictError):
        store.end_rollout("iris", canary().ended("promoted", "no worse", NOW + 60))
    assert store.active_version("iris") == 3


def test_gc_keeps_a_running_candidate(store: ModelStore) -> None:
    store.start_rollout("iris", canary(candidate=2))
    report = store.gc("iris", keep_versions=1)
    assert ("iris", 2) not in report.versions
    assert 2 in store.versions("iris")
