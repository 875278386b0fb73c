"""The store's contract for activation history, pins, retention (gc) and appended datasets, on every backend."""

from __future__ import annotations

import os
import time

import numpy as np
import psycopg
import pytest
from backends import Backend
from test_store_contract import FEATURES, fitted

from service.store import Dataset, InvalidNameError, ModelStore, NotFoundError


@pytest.fixture
def store(store_backend: Backend) -> ModelStore:
    return store_backend.store()


def rows(start: int, n: int) -> Dataset:
    X = np.arange(start * 3, (start + n) * 3, dtype=float).reshape(n, 3)
    return Dataset(X, np.where(X[:, 0] % 2 == 0, "even", "odd"), FEATURES)


def publish_with_data(store: ModelStore, name: str, data: Dataset, seed: int = 0) -> int:
    return store.publish(name, fitted(seed), {"dataset_sha256": store.save_dataset(name, data)})


def age(backend: Backend, name: str, version: int, days: float) -> None:
    """Make a version look ``days`` old where the backend keeps its creation time."""
    if backend.kind == "filesystem":
        then = time.time() - days * 86_400
        os.utime(backend.root / name / str(version), (then, then))
        return
    with psycopg.connect(str(backend.database_url), autocommit=True) as conn, conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")  # past the immutability trigger (superuser)
        conn.execute(
            "UPDATE versions SET created_at = created_at - make_interval(secs => %s) WHERE name = %s AND version = %s",
            (days * 86_400, name, version),
        )


def test_activate_returns_the_version_it_replaced_and_remembers_it(store: ModelStore) -> None:
    for s in range(3):
        store.publish("iris", fitted(s))
    assert store.previous_version("iris") is None
    assert store.activate("iris", 1) is None
    assert store.activate("iris", 3) == 1
    assert store.previous_version("iris") == 1
    assert store.activate("iris", 2) == 3
    assert store.previous_version("iris") == 3
    assert store.activate("iris", 2) == 2  # activating the active version changes nothing
    assert store.previous_version("iris") == 3


def test_a_refused_activation_changes_neither_pointer(store: ModelStore) -> None:
    store.publish("iris", fitted())
    store.activate("iris", 1)
    with pytest.raises(NotFoundError):
        store.activate("iris", 5)
    assert store.active_version("iris") == 1 and store.previous_version("iris") is None


def test_pins_are_listed_and_validated(store: ModelStore) -> None:
    store.publish("iris", fitted(0))
    store.publish("iris", fitted(1))
    store.pin("iris", 2)
    store.pin("iris", 2)
    store.pin("iris", 1)
    assert store.pinned("iris") == [1, 2]
    store.unpin("iris", 1)
    store.unpin("iris", 1)
    assert store.pinned("iris") == [2]
    with pytest.raises(NotFoundError):
        store.pin("iris", 9)
    with pytest.raises(NotFoundError):
        store.pin("wine", 1)
    with pytest.raises(InvalidNameError):
        store.pin("../x", 1)


def test_gc_keeps_the_newest_versions_and_the_protected_ones(store: ModelStore) -> None:
    for s in range(8):
        store.publish("iris", fitted(s))
    store.activate("iris", 2)
    store.activate("iris", 1)  # active 1, previous 2
    store.pin("iris", 4)
    report = store.gc("iris", keep_versions=2)
    assert sorted(v for _, v in report.versions) == [3, 5, 6]
    assert store.versions("iris") == [1, 2, 4, 7, 8]
    assert store.load("iris").version == 1 and store.load("iris", 8).version == 8
    assert store.gc("iris", keep_versions=2).versions == []  # nothing more to do


def test_gc_by_age_and_either_rule_keeps(store_backend: Backend, store: ModelStore) -> None:
    for s in range(5):
        store.publish("iris", fitted(s))
    for v in (1, 2, 3):
        age(store_backend, "iris", v, days=10)
    store.activate("iris", 5)
    assert sorted(v for _, v in store.gc("iris", keep_days=30).versions) == []
    assert sorted(v for _, v in store.gc("iris", keep_days=7, keep_versions=3, dry_run=True).versions) == [1, 2]
    assert sorted(v for _, v in store.gc("iris", keep_days=7).versions) == [1, 2, 3]
    assert store.versions("iris") == [4, 5]


def test_gc_with_every_rule_off_removes_nothing(store: ModelStore) -> None:
    for s in range(3):
        store.publish("iris", fitted(s))
    assert store.gc().versions == [] and store.versions("iris") == [1, 2, 3]


def test_dry_run_reports_the_same_and_changes_nothing(store: ModelStore) -> None:
    for i in range(4):
        publish_with_data(store, "iris", rows(0, 10 + i), seed=i)
    store.activate("iris", 4)
    before = (store.versions("iris"), [store.manifest("iris", v) for v in store.versions("iris")])
    dry = store.gc("iris", keep_versions=1, dry_run=True)
    assert (
        dry.dry_run and sorted(v for _, v in dry.versions) == [1, 2, 3] and len(dry.datasets) == 2
    )  # the first is the base of the 4th
    assert (store.versions("iris"), [store.manifest("iris", v) for v in store.versions("iris")]) == before
    for _, digest in dry.datasets:
        store.load_dataset("iris", digest)  # still there
    real = store.gc("iris", keep_versions=1)
    assert real.versions == dry.versions and real.datasets == dry.datasets


def test_gc_removes_the_data_only_removed_versions_used(store: ModelStore) -> None:
    shared, alone, queued = rows(0, 20), rows(100, 20), rows(200, 20)
    publish_with_data(store, "iris", alone, seed=0)  # 1
    publish_with_data(store, "iris", shared, seed=1)  # 2
    publish_with_data(store, "iris", shared, seed=2)  # 3
    publish_with_data(store, "iris", rows(300, 5), seed=3)  # 4
    pending = store.save_dataset("iris", queued)  # uploaded for a job not yet run: no version names it
    store.activate("iris", 4)
    report = store.gc("iris", keep_versions=2)
    assert sorted(v for _, v in report.versions) == [1, 2]
    assert report.datasets == [("iris", store.dataset_sha256(alone))]
    with pytest.raises(NotFoundError):
        store.load_dataset("iris", store.dataset_sha256(alone))
    np.testing.assert_array_equal(store.load_dataset("iris", store.dataset_sha256(shared)).X, shared.X)
    np.testing.assert_array_equal(store.load_dataset("iris", pending).X, queued.X)


def test_gc_keeps_the_frozen_evaluation_set_a_kept_version_names_and_removes_it_with_its_last_version(
    store: ModelStore,
) -> None:
    frozen, first, carried = rows(0, 10), rows(100, 20), rows(200, 20)
    evaluation_set = {"sha256": store.save_dataset("iris", frozen), "rows": 10, "parent_metric": None}
    store.publish("iris", fitted(0), {"dataset_sha256": store.save_dataset("iris", first)})  # 1: an older manifest
    for seed in (1, 2):  # 2 and 3 carry the same evaluation set forward
        manifest = {"dataset_sha256": store.save_dataset("iris", carried), "evaluation_set": evaluation_set}
        store.publish("iris", fitted(seed), manifest)
    store.activate("iris", 3)
    report = store.gc("iris", keep_versions=1)
    assert sorted(v for _, v in report.versions) == [1, 2]
    assert report.datasets == [("iris", store.dataset_sha256(first))]
    np.testing.assert_array_equal(store.load_dataset("iris", evaluation_set["sha256"]).X, frozen.X)
    for seed in (4, 5):  # 4 and 5 name other data: 3 is neither active nor previous any more
        store.activate("iris", publish_with_data(store, "iris", rows(300 + seed * 10, 5), seed=seed))
    report = store.gc("iris", keep_versions=1)
    assert sorted(v for _, v in report.versions) == [3]
    assert sorted(d for _, d in report.datasets) == sorted([evaluation_set["sha256"], store.dataset_sha256(carried)])
    with pytest.raises(NotFoundError):
        store.load_dataset("iris", evaluation_set["sha256"])


def test_appended_datasets_round_trip_with_their_whole_content_hash(store: ModelStore) -> None:
    data = rows(0, 30)
    digests = []
    for n in (10, 20, 30):
        part = Dataset(data.X[:n], data.y[:n], FEATURES)
        digests.append(store.save_dataset("iris", part))
        assert digests[-1] == store.dataset_sha256(part)
    for n, digest in zip((10, 20, 30), digests, strict=True):
        back = store.load_dataset("iris", digest)
        np.testing.assert_array_equal(back.X, data.X[:n])
        np.testing.assert_array_equal(back.y, data.y[:n])
    wider = Dataset(data.X, np.array(["a-much-longer-label", *data.y[1:]]), FEATURES)  # not an append
    back = store.load_dataset("iris", store.save_dataset("iris", wider))
    np.testing.assert_array_equal(back.y, wider.y)


def test_gc_of_appended_datasets_keeps_what_remaining_ones_build_on(store: ModelStore) -> None:
    data = rows(0, 30)
    parts = [Dataset(data.X[:n], data.y[:n], FEATURES) for n in (10, 20, 30)]
    for i, part in enumerate(parts):
        publish_with_data(store, "iris", part, seed=i)
    store.activate("iris", 3)
    report = store.gc("iris", keep_versions=1)
    assert store.versions("iris") == [3]
    first, second, third = (store.dataset_sha256(p) for p in parts)
    assert report.datasets == [("iris", second)]  # the first 10 rows are part of the third dataset: kept
    with pytest.raises(NotFoundError):
        store.load_dataset("iris", second)
    np.testing.assert_array_equal(store.load_dataset("iris", third).X, data.X)
    np.testing.assert_array_equal(store.load_dataset("iris", first).X, data.X[:10])
