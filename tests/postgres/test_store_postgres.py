"""What the PostgreSQL store promises beyond the shared contract: schema, immutability, idempotent publish, cache."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import numpy as np
import psycopg
import pytest

import nn
from service.store import CorruptVersionError, migrations, open_store
from service.store.postgres import PostgresModelStore, upgrade


def fitted(seed: int = 0) -> nn.MLPClassifier:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(40, 3))
    return nn.MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=seed).fit(
        X, np.where(X[:, 0] > 0, "a", "b")
    )


def _upgrade(url: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    out.put([m.version for m in upgrade(url)])


def test_four_processes_apply_each_migration_exactly_once(database_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_upgrade, args=(database_url, out)) for _ in range(4)]
    for p in procs:
        p.start()
    applied = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    everything = [m.version for m in migrations.MIGRATIONS]
    assert sorted(v for a in applied for v in a) == everything  # one process applied them, the others nothing
    with psycopg.connect(database_url) as conn:
        status = migrations.status(conn)
        rows = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    assert [r[0] for r in rows] == everything and status.pending == []


def test_a_published_version_cannot_be_updated_or_deleted(tmp_path: Path, database_url: str) -> None:
    store = open_store(tmp_path, database_url)
    store.publish("iris", fitted())
    with psycopg.connect(database_url, autocommit=True) as conn:
        for sql in (
            "UPDATE versions SET job_id = 'x'",
            "DELETE FROM versions",
            "UPDATE blobs SET data = 'x'",
            "DELETE FROM blobs",
        ):
            with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="immutable"):
                conn.execute(sql)
        assert conn.execute("SELECT count(*) FROM versions").fetchone() == (1,)


def test_a_retried_job_publishes_once(tmp_path: Path, database_url: str) -> None:
    store = PostgresModelStore(tmp_path, database_url)
    assert store.publish("iris", fitted(0), job_id="job-1") == 1
    assert store.publish("iris", fitted(1), job_id="job-1") == 1
    assert store.publish("iris", fitted(2), job_id="job-2") == 2
    assert store.publish("iris", fitted(3), {"job_id": "job-2"}) == 2  # as the retraining worker passes it
    assert store.versions("iris") == [1, 2]


def test_another_node_downloads_verifies_and_caches(tmp_path: Path, database_url: str) -> None:
    a = PostgresModelStore(tmp_path / "a", database_url)
    a.publish("iris", fitted())
    b = PostgresModelStore(tmp_path / "b", database_url)
    X = np.zeros((2, 3))
    np.testing.assert_array_equal(b.load("iris", 1).estimator.predict(X), a.load("iris", 1).estimator.predict(X))
    cached = tmp_path / "b" / "iris" / "1" / "weights.npz"
    assert cached.is_file()
    cached.write_bytes(b"tampered")  # a damaged cache entry is replaced from the database, never served
    assert b.load("iris", 1).version == 1
    assert cached.read_bytes() != b"tampered"


def test_a_blob_that_fails_its_checksum_is_refused(tmp_path: Path, database_url: str) -> None:
    store = PostgresModelStore(tmp_path / "a", database_url)
    store.publish("iris", fitted())
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE blobs SET data = data || '\\x00'::bytea")
    with pytest.raises(CorruptVersionError, match="checksum"):
        PostgresModelStore(tmp_path / "b", database_url).load("iris", 1)


def test_an_activation_is_heard_as_soon_as_it_commits_not_at_the_listen_timeout(
    tmp_path: Path, database_url: str
) -> None:
    store = PostgresModelStore(tmp_path / "a", database_url)
    listener = PostgresModelStore(tmp_path / "b", database_url)
    store.publish("m", fitted())
    assert listener.activations(0.1) == [""]  # connected: "anything may have changed meanwhile"
    store.activate("m", 1)
    started = time.monotonic()
    assert listener.activations(10.0) == ["m"]
    assert time.monotonic() - started < 5.0  # not the 10 s timeout
    store.close()
    listener.close()
