"""The store's contract for moving versions and datasets between stores, and ``copy_store`` both ways.

Each backend is copied to and from the filesystem store (for the filesystem backend: another directory),
so with PostgreSQL this is the directory -> database -> directory round trip of ``nnserve store copy``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from backends import Backend
from test_store_contract import fitted
from test_store_retention_contract import publish_with_data, rows

from service.store import (
    AuditEntry,
    CorruptVersionError,
    FileModelStore,
    InvalidKeyError,
    KeyRing,
    ModelStore,
    Rollout,
    StoreError,
    split_key,
)
from service.store.copy import (
    NOT_COPIED,
    Beside,
    CopyReport,
    copy_audit,
    copy_beside,
    copy_keys,
    copy_predictions,
    copy_store,
)
from service.store.monitoring import FEEDBACK_SECRET, Label, LoggedPrediction
from service.training.jobs import JobResult, RetrainRequest, copy_jobs

JOB_RESULT = JobResult(2, 1, {"accuracy": 0.9}, 0.9, True, "better", 5, 1.5, 150, {"request": 150}, {"holdout": 30})


@pytest.fixture
def store(store_backend: Backend) -> ModelStore:
    return store_backend.store()


@pytest.fixture
def other(tmp_path: Path) -> FileModelStore:
    return FileModelStore(tmp_path / "other")


def test_an_imported_version_keeps_its_number_and_bytes(store: ModelStore, other: FileModelStore) -> None:
    for seed in range(3):
        other.publish("iris", fitted(seed))
    files = other.version_files("iris", 3)
    assert store.import_version("iris", 3, files) is True
    assert store.versions("iris") == [3]  # numbers are kept, gaps and all
    assert store.version_files("iris", 3) == files
    assert store.manifest("iris", 3) == other.manifest("iris", 3)
    x = np.zeros((2, 3))
    np.testing.assert_array_equal(
        store.load("iris", 3).estimator.predict(x), other.load("iris", 3).estimator.predict(x)
    )
    assert store.import_version("iris", 3, files) is False  # already here, identical: nothing to do
    assert store.publish("iris", fitted(9)) == 4  # the next publish numbers after it


def test_a_different_version_under_a_taken_number_is_refused(store: ModelStore, other: FileModelStore) -> None:
    store.publish("iris", fitted(0))
    other.publish("iris", fitted(1))
    with pytest.raises(StoreError, match="different version 1"):
        store.import_version("iris", 1, other.version_files("iris", 1))
    assert store.version_files("iris", 1) != other.version_files("iris", 1)


@pytest.mark.parametrize(
    "damage",
    [
        lambda files: {**files, "weights.npz": files["weights.npz"] + b"x"},  # fails its checksum
        lambda files: {**files, "../escape.npz": b"x"},  # not a plain file name
        lambda files: {**files, "extra.txt": b"x"},  # not listed by the manifest
        lambda files: {k: v for k, v in files.items() if k != "weights.npz"},
    ],
    ids=["checksum", "path", "unlisted", "missing"],
)
def test_a_damaged_import_is_refused_and_leaves_nothing(store: ModelStore, other: FileModelStore, damage) -> None:
    other.publish("iris", fitted(0))
    with pytest.raises(CorruptVersionError):
        store.import_version("iris", 1, damage(other.version_files("iris", 1)))
    assert "iris" not in store.model_names() or store.versions("iris") == []


def test_an_import_for_another_model_or_number_is_refused(store: ModelStore, other: FileModelStore) -> None:
    other.publish("iris", fitted(0))
    files = other.version_files("iris", 1)
    with pytest.raises(CorruptVersionError, match="manifest is for 'iris' version 1"):
        store.import_version("wine", 1, files)
    with pytest.raises(CorruptVersionError):
        store.import_version("iris", 2, files)


def test_dataset_digests_list_every_dataset(store: ModelStore) -> None:
    digests = {store.save_dataset("iris", rows(0, n)) for n in (10, 20)} | {store.save_dataset("iris", rows(50, 5))}
    assert store.dataset_digests("iris") == sorted(digests)


@pytest.mark.parametrize("direction", ["into", "out of"])
def test_copy_store_moves_everything_and_verifies_it(store: ModelStore, other: FileModelStore, direction: str) -> None:
    source, target = (other, store) if direction == "into" else (store, other)
    for i, n in enumerate((10, 20, 30)):  # appended datasets, as append retrains make them
        publish_with_data(source, "iris", rows(0, n), seed=i)
    publish_with_data(source, "wine", rows(100, 8))
    source.activate("iris", 1)
    source.activate("iris", 3)  # previous: 1
    source.activate("wine", 1)
    source.pin("iris", 2)

    report = copy_store(source, target)
    assert (report.versions_copied, report.versions_present, report.datasets) == (4, 0, 4)
    assert target.model_names() == ["iris", "wine"] and target.versions("iris") == [1, 2, 3]
    assert (target.active_version("iris"), target.previous_version("iris"), target.pinned("iris")) == (3, 1, [2])
    for v in (1, 2, 3):
        assert target.version_files("iris", v) == source.version_files("iris", v)
        digest = json.loads(target.version_files("iris", v)["manifest.json"])["dataset_sha256"]
        np.testing.assert_array_equal(target.load_dataset("iris", digest).X, source.load_dataset("iris", digest).X)

    again = copy_store(source, target)  # idempotent: an interrupted copy is finished by running it again
    assert (again.versions_copied, again.versions_present, again.activated) == (0, 4, [])


@pytest.mark.parametrize("direction", ["into", "out of"])
def test_copy_store_moves_a_running_rollout_and_names_what_it_leaves(
    store: ModelStore, other: FileModelStore, direction: str
) -> None:
    source, target = (other, store) if direction == "into" else (store, other)
    for seed in range(2):
        source.publish("iris", fitted(seed))
        source.publish("wine", fitted(seed))
    source.activate("iris", 1)
    source.activate("wine", 1)
    running = Rollout("canary", 2, 1, 0.25, 100, 600.0, 1_700_000_000.0, job_id="j1")
    source.start_rollout("iris", running)
    ended = Rollout("shadow", 2, 1, 1.0, 50, 60.0, 1_700_000_000.0)
    source.start_rollout("wine", ended)
    source.end_rollout("wine", ended.ended("rolled_back", "stopped by an admin", 1_700_000_100.0))

    report = copy_store(source, target)
    assert target.rollout("iris") == running  # it runs on in the target, as it was
    assert report.rollouts == ["iris"]
    assert report.not_copied == [*NOT_COPIED, "the record of wine's ended shadow of version 2"]
    assert target.rollout("wine") is None and target.active_version("wine") == 1
    assert copy_store(source, target).rollouts == ["iris"]  # again: already there, nothing to do
    assert target.rollout("iris") == running


@pytest.fixture
def other_backend(tmp_path: Path) -> Backend:
    (tmp_path / "other").mkdir()
    return Backend("filesystem", tmp_path / "other")


def _ends(store_backend: Backend, other_backend: Backend, direction: str) -> tuple[Backend, Backend]:
    store_backend.root.mkdir(exist_ok=True)  # the SQLite logs' directory
    return (other_backend, store_backend) if direction == "into" else (store_backend, other_backend)


@pytest.mark.parametrize("direction", ["into", "out of"])
def test_copy_keys_moves_every_key_usable_in_the_target(
    store_backend: Backend, other_backend: Backend, direction: str
) -> None:
    source_end, target_end = _ends(store_backend, other_backend, direction)
    source, target = source_end.keys(), target_end.keys()
    kept, key = source.create("app", ["predict"], ["iris"], expires_days=30)
    gone, gone_key = source.create("old", ["admin"])
    source.revoke(gone.id)
    used = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    source.touch({kept.id: used})
    mine, mine_key = target.create("theirs", ["feedback"])

    assert copy_keys(source, target) == 2
    assert {r.id: r for r in target.records()} == {**{r.id: r for r in source.records()}, mine.id: mine}
    ring = KeyRing(target_end.keys())  # a fresh reader of the target, as a server's
    assert ring.verify(*split_key(key)).models == ("iris",)
    assert ring.verify(*split_key(mine_key)).name == "theirs"
    with pytest.raises(InvalidKeyError):  # revoked in the source: revoked in the target
        ring.verify(*split_key(gone_key))
    assert copy_keys(source, target) == 0  # again: nothing to add, nothing changed
    assert len(target.records()) == 3


def _entries(n: int, start: float = 1_700_000_000.0) -> list[AuditEntry]:
    return [
        AuditEntry("activate", "ok", actor=f"key{i}", model="iris", status=200, detail=f"step {i}", at=start + i)
        for i in range(n)
    ]


@pytest.mark.parametrize("direction", ["into", "out of"])
def test_copy_audit_keeps_numbers_and_times_in_chunks(
    store_backend: Backend, other_backend: Backend, direction: str
) -> None:
    source_end, target_end = _ends(store_backend, other_backend, direction)
    source, target = source_end.audit(), target_end.audit()
    for e in _entries(7):
        source.record(e)
    source.prune(keep_rows=5, keep_days=10_000, now=1_700_000_100.0)  # numbers 3..7 are left: a gap before them
    expected = source.export(0, 100)
    assert [e.seq for e in expected] == [3, 4, 5, 6, 7]

    assert copy_audit(source, target, chunk_rows=2) == 5
    assert target.export(0, 100) == expected
    assert copy_audit(source, target, chunk_rows=2) == 0  # rerun: already there
    assert target.export(0, 100) == expected
    target.record(AuditEntry("gc", "ok", detail="after the copy"))
    assert target.entries(limit=1)[0].seq == 8  # the target numbers on after the copied entries


@pytest.mark.parametrize("direction", ["into", "out of"])
def test_copy_audit_refuses_a_target_with_other_entries_under_the_numbers(
    store_backend: Backend, other_backend: Backend, direction: str
) -> None:
    source_end, target_end = _ends(store_backend, other_backend, direction)
    source, target = source_end.audit(), target_end.audit()
    for e in _entries(3):
        source.record(e)
    target.record(AuditEntry("gc", "ok", detail="the target's own"))
    with pytest.raises(StoreError, match=r"other entries numbered \[1\]"):
        copy_audit(source, target)
    assert target.export(0, 100)[0].detail == "the target's own"  # left alone


def _logged(model: str, request_id: str, version: int = 1, **extra: Any) -> LoggedPrediction:
    fields: dict[str, Any] = {"output": "setosa", "probabilities": [0.9, 0.1], **extra}
    return LoggedPrediction(model, request_id, 0, version, 1_700_000_000.5, [1.0, 2.5], **fields)


@pytest.mark.parametrize("direction", ["into", "out of"])
def test_copy_predictions_keeps_rows_times_and_label_provenance(
    store_backend: Backend, other_backend: Backend, direction: str
) -> None:
    source_end, target_end = _ends(store_backend, other_backend, direction)
    source, target = source_end.prediction_log(), target_end.prediction_log()
    source.append([_logged("iris", f"r{i}") for i in range(5)])
    source.append([_logged("iris", "r0", version=2, shadow=True), _logged("wine", "w0", output=None, error="boom")])
    source.label(
        "iris", [Label("r0", "setosa"), Label("r1", "virginica")], source="key", key="abc", now=1_700_000_050.0
    )
    source.label("iris", [Label("r2", "setosa")], source="token", now=1_700_000_060.0)
    target.append([_logged("iris", "r3", target=None)])  # already there, unlabelled: left alone

    assert copy_predictions(source, target, chunk_rows=2) == 6
    rows = [row for _, row in target.export(0, 100)]
    assert rows[0] == _logged("iris", "r3")
    assert sorted(rows[1:]) == sorted(row for _, row in source.export(0, 100) if row.request_id != "r3")
    labelled = {r.request_id: r for r in target.recent("iris", 10, labelled=True)}
    assert (labelled["r0"].label_source, labelled["r0"].label_key, labelled["r0"].labelled_at) == (
        "key",
        "abc",
        1_700_000_050.0,
    )
    assert (labelled["r2"].label_source, labelled["r2"].label_key) == ("token", None)
    assert target.label_counts("iris") == source.label_counts("iris")
    assert copy_predictions(source, target, chunk_rows=2) == 0  # rerun: already there
    assert len(target.export(0, 100)) == 7


@pytest.mark.parametrize("direction", ["into", "out of"])
def test_copy_beside_with_history_copies_the_feedback_secret_or_names_it(
    store_backend: Backend, other_backend: Backend, direction: str, tmp_path: Path
) -> None:
    source_end, target_end = _ends(store_backend, other_backend, direction)
    source = Beside(source_end.keys(), source_end.audit(), source_end.prediction_log())
    source.predictions.append([_logged("iris", "r0")])
    secret = source.predictions.secret(FEEDBACK_SECRET)
    source.audit.record(AuditEntry("gc", "ok", actor="cli"))

    report = CopyReport()
    copy_beside(source, Beside(target_end.keys(), target_end.audit(), target_end.prediction_log()), report, True)
    assert (report.predictions, report.audit_entries) == (1, 1)
    assert report.not_copied == ["the job history"]
    assert target_end.prediction_log().secret(FEEDBACK_SECRET) == secret  # its tokens authorize feedback there
    rerun = CopyReport()
    copy_beside(source, Beside(target_end.keys(), target_end.audit(), target_end.prediction_log()), rerun, True)
    assert (rerun.predictions, rerun.audit_entries, rerun.not_copied) == (0, 0, ["the job history"])

    own = Backend("filesystem", tmp_path / "own")
    own.root.mkdir()
    own.prediction_log().secret(FEEDBACK_SECRET)  # a target that has its own secret keeps it, and says so
    again = CopyReport()
    copy_beside(source, Beside(own.keys(), own.audit(), own.prediction_log()), again, True)
    assert again.not_copied == ["the job history", "the feedback tokens' secret (the target has its own)"]
    assert own.prediction_log().secret(FEEDBACK_SECRET) != secret

    plain = CopyReport()
    copy_beside(source, Beside(own.keys(), own.audit(), own.prediction_log()), plain, False)
    assert (plain.predictions, plain.audit_entries, plain.not_copied) == (None, None, list(NOT_COPIED))


@pytest.mark.parametrize("direction", ["into", "out of"])
def test_copy_jobs_moves_finished_jobs_with_their_results_and_leaves_unfinished_ones(
    store_backend: Backend, other_backend: Backend, direction: str
) -> None:
    source_end, target_end = _ends(store_backend, other_backend, direction)
    source, target = source_end.queue(), target_end.queue()
    request = RetrainRequest(mode="replace", promote="never", hyperparameters={"max_iter": 5})
    done, broken, dropped, waiting = (source.enqueue(m, request) for m in ("iris", "wine", "iris", "wine"))
    for job, finish in ((done, "succeeded"), (broken, "failed")):
        claimed = source.claim("w:1")
        assert claimed is not None and claimed.id == job.id
        source.update(job.id, {"epoch": 3})
        source.finish(
            job.id, finish, JOB_RESULT if finish == "succeeded" else None, None if finish == "succeeded" else "boom"
        )
    source.cancel(dropped.id)
    finished = [j for _, j in source.export(0, 100) if j.id != waiting.id]
    assert [j.status for j in finished] == ["succeeded", "failed", "cancelled"]

    assert copy_jobs(source, target, chunk_rows=2) == (3, 1)  # the queued one would run again there: left
    assert [j for _, j in target.export(0, 100)] == finished  # results, progress, workers and times as they were
    assert (target.get(done.id).result, target.get(broken.id).error) == (JOB_RESULT, "boom")
    assert target.claim("w:2") is None  # nothing to run in the target
    assert copy_jobs(source, target, chunk_rows=2) == (0, 1)  # rerun: already there
    with pytest.raises(ValueError, match="only finished jobs"):
        target.import_jobs([waiting])
    assert len(target.export(0, 100)) == 3
