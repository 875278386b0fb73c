"""The model store's contract, written against ``ModelStore`` only and run against every backend."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest
from backends import Backend

import nn
from service.store import (
    ActiveVersionChangedError,
    CorruptVersionError,
    Dataset,
    InvalidNameError,
    ModelStore,
    NotFoundError,
)

FEATURES = ["f0", "f1", "f2"]


def fitted(seed: int = 0) -> nn.MLPClassifier:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(60, 3))
    y = np.where(X[:, 0] > 0, "yes", "no")
    return nn.MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=seed).fit(X, y, feature_names=FEATURES)


@pytest.fixture
def store(store_backend: Backend) -> ModelStore:
    return store_backend.store()


def test_versions_are_numbered_from_one_and_listed(store: ModelStore) -> None:
    assert store.model_names() == []
    assert [store.publish("iris", fitted(s), {"task": "classification"}) for s in (0, 1, 2)] == [1, 2, 3]
    store.publish("wine", fitted())
    assert store.model_names() == ["iris", "wine"]
    assert store.versions("iris") == [1, 2, 3]
    assert [i.version for i in store.version_info("iris")] == [1, 2, 3]


def test_publish_does_not_activate_and_activate_switches(store: ModelStore) -> None:
    store.publish("iris", fitted(0))
    store.publish("iris", fitted(1))
    assert store.active_version("iris") is None
    before = store.active_stamp("iris")
    store.activate("iris", 2)
    assert store.active_version("iris") == 2
    stamp = store.active_stamp("iris")
    assert stamp != before
    store.activate("iris", 1)
    assert store.active_version("iris") == 1 and store.active_stamp("iris") != stamp
    assert [i.active for i in store.version_info("iris")] == [True, False]


def test_load_rebuilds_what_was_published(store: ModelStore) -> None:
    est = fitted(3)
    store.publish("iris", est, {"task": "classification", "note": "kept"})
    store.activate("iris", 1)
    loaded = store.load("iris")
    X = np.random.default_rng(9).normal(size=(5, 3))
    assert loaded.name == "iris" and loaded.version == 1
    np.testing.assert_allclose(loaded.estimator.predict_proba(X), est.predict_proba(X), rtol=1e-6)
    assert loaded.manifest["note"] == "kept" and store.manifest("iris", 1)["note"] == "kept"
    assert store.load("iris", 1).version == 1


def test_activate_returns_what_it_replaced_and_can_compare_and_swap(store: ModelStore) -> None:
    for seed in (0, 1, 2):
        store.publish("iris", fitted(seed))
    assert store.activate("iris", 1) is None
    assert store.activate("iris", 2, expected=1) == 1
    with pytest.raises(ActiveVersionChangedError, match="version 2 is active, not 1"):
        store.activate("iris", 3, expected=1)
    assert store.active_version("iris") == 2
    assert store.activate("iris", 3) == 2


def test_a_published_version_never_changes(store: ModelStore) -> None:
    store.publish("iris", fitted(0))
    first = store.manifest("iris", 1)
    store.publish("iris", fitted(1))
    store.activate("iris", 2)
    assert store.manifest("iris", 1) == first


def test_unknown_names_versions_and_datasets_are_not_found(store: ModelStore) -> None:
    store.publish("iris", fitted())
    for call in (
        lambda: store.load("wine"),
        lambda: store.load("iris", 7),
        lambda: store.activate("iris", 7),
        lambda: store.manifest("iris", 7),
        lambda: store.load_dataset("iris", "0" * 64),
    ):
        with pytest.raises(NotFoundError):
            call()


@pytest.mark.parametrize("name", ["../etc", "Iris", "", "a/b", ".hidden", "x" * 65])
def test_invalid_names_are_refused_before_anything_is_touched(store: ModelStore, name: str) -> None:
    with pytest.raises(InvalidNameError):
        store.publish(name, fitted())
    with pytest.raises(InvalidNameError):
        store.load(name)


def test_datasets_round_trip_and_are_kept_once(store: ModelStore) -> None:
    data = Dataset(np.arange(12.0).reshape(4, 3), np.array(["a", "b", "a", "b"]), FEATURES)
    digest = store.save_dataset("iris", data)
    assert digest == store.dataset_sha256(data) and len(digest) == 64
    assert store.save_dataset("iris", data) == digest
    back = store.load_dataset("iris", digest)
    np.testing.assert_array_equal(back.X, data.X)
    np.testing.assert_array_equal(back.y, data.y)
    assert back.feature_names == FEATURES


def test_a_damaged_active_version_is_refused_not_served(store_backend: Backend, store: ModelStore) -> None:
    store.publish("iris", fitted())
    store.activate("iris", 1)
    damage(store_backend, "iris", 1)
    with pytest.raises(CorruptVersionError):
        store.load("iris")
    assert [i.ok for i in store.version_info("iris")] == [False]


def test_ping_answers_for_a_reachable_store(store: ModelStore) -> None:
    store.ping()


def _publish_many(backend: Backend, n: int, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    store = backend.store()
    out.put([store.publish("iris", fitted(i)) for i in range(n)])


def test_concurrent_publishers_get_distinct_versions(store_backend: Backend) -> None:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_publish_many, args=(store_backend, 3, out)) for _ in range(3)]
    for p in procs:
        p.start()
    got = sorted(v for _ in procs for v in out.get(timeout=120))
    for p in procs:
        p.join(timeout=60)
    assert got == list(range(1, 10))
    assert store_backend.store().versions("iris") == got


def damage(backend: Backend, name: str, version: int) -> None:
    """Flip one byte of a version's weights where the backend keeps them."""
    if backend.kind == "filesystem":
        path = backend.root / name / str(version) / "weights.npz"
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        return
    if backend.kind == "postgres":  # the database's blob (triggers bypassed, as only a superuser can) and the cache
        import psycopg

        with psycopg.connect(str(backend.database_url), autocommit=True) as conn:
            conn.execute("SET session_replication_role = replica")
            conn.execute(
                "UPDATE blobs SET data = overlay(data placing '\\xff'::bytea from length(data) / 2 for 1) "
                "WHERE sha256 = (SELECT files->>'weights.npz' FROM versions WHERE name = %s AND version = %s)",
                (name, version),
            )
        cached = backend.root / name / str(version) / "weights.npz"
        if cached.exists():
            cached.write_bytes(b"damaged")
        return
    raise AssertionError(f"no way to damage a {backend.kind} store yet")


def test_active_stamps_reads_every_models_stamp_at_once(store: ModelStore) -> None:
    assert store.active_stamps() == {}
    store.publish("iris", fitted(0))
    store.publish("iris", fitted(1))
    store.publish("wine", fitted(2))
    assert store.active_stamps() == {"iris": None, "wine": None}
    store.activate("iris", 1)
    before = store.active_stamps()
    assert before == {"iris": store.active_stamp("iris"), "wine": None} and before["iris"] is not None
    store.activate("iris", 2)
    assert store.active_stamps()["iris"] not in (None, before["iris"])


@pytest.mark.parametrize("where", ["weights", "metrics"])
def test_a_version_with_weights_or_metrics_that_are_not_finite_is_refused(store: ModelStore, where: str) -> None:
    est, metadata = fitted(), {"task": "classification", "metrics": {"accuracy": 0.9, "log_loss": 0.3}}
    if where == "weights":
        est.coefs_[0][0, 0] = np.nan  # a diverged training that reached the store by another road
    else:
        metadata["metrics"]["log_loss"] = float("inf")
    with pytest.raises(ValueError, match=r"^version refused: training diverged: "):
        store.publish("iris", est, metadata)
    assert store.model_names() == [] or store.versions("iris") == []
