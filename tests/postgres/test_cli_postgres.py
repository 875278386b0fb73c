"""``nnserve db`` and the store commands with ``--database-url``, through the real CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
import requests
from helpers import REPO, free_port, service_env, start_cli, wait_for

from service.store import FileKeyStore, KeyRing, open_audit_log, split_key
from service.store.monitoring import Label, LoggedPrediction, open_prediction_log
from service.store.pg_audit import PostgresAuditLog
from service.store.pg_keys import PostgresKeyStore
from service.store.pg_monitoring import PostgresPredictionLog
from service.training.jobs import RetrainRequest, open_queue


def cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *map(str, args)],
        cwd=REPO,
        env=service_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_db_status_upgrade_then_two_nodes_share_the_models(tmp_path: Path, database_url: str) -> None:
    pending = cli("db", "status", "--database-url", database_url)
    assert pending.returncode == 1 and "pending  1:" in pending.stdout and "pending  3:" in pending.stdout
    upgraded = cli("db", "upgrade", "--database-url", database_url)
    assert upgraded.returncode == 0 and "applied 1:" in upgraded.stdout, upgraded.stderr
    assert "up to date" in cli("db", "upgrade", "--database-url", database_url).stdout
    done = cli("db", "status", "--database-url", database_url)
    assert done.returncode == 0 and "pending" not in done.stdout

    trained = cli("train", "iris", "--epochs", 2, "--store", tmp_path / "a", "--database-url", database_url)
    assert trained.returncode == 0, trained.stderr
    listed = cli("models", "--store", tmp_path / "b", "--database-url", database_url)  # another node's cache
    assert listed.returncode == 0 and "iris" in listed.stdout, listed.stderr
    assert not (tmp_path / "a" / ".jobs.sqlite3").exists()  # nothing of the filesystem backend was written


def test_an_unreachable_database_is_one_clear_line(tmp_path: Path) -> None:
    result = cli("models", "--store", tmp_path, "--database-url", "postgresql://nobody@127.0.0.1:1/none")
    assert result.returncode == 1
    assert "the database cannot be reached" in result.stderr and "Traceback" not in result.stderr


def test_store_copy_from_a_directory_to_postgres_and_back(tmp_path: Path, database_url: str) -> None:
    trained = cli("train", "iris", "--epochs", 2, "--store", tmp_path / "local")
    assert trained.returncode == 0, trained.stderr
    assert cli("train", "iris", "--epochs", 3, "--store", tmp_path / "local").returncode == 0
    assert cli("activate", "iris", 1, "--store", tmp_path / "local").returncode == 0

    up = cli("store", "copy", "--from", tmp_path / "local", "--to", database_url)
    assert up.returncode == 0 and "copied 2 versions (0 were already there)" in up.stdout, up.stderr
    assert "the copy checks out" in up.stdout and database_url not in up.stdout + up.stderr
    assert "not copied: the prediction log and its labels; the job history" in up.stdout  # named, not dropped
    listed = cli("models", "--store", tmp_path / "cache", "--database-url", database_url)
    assert listed.returncode == 0 and "iris" in listed.stdout, listed.stderr

    down = cli("store", "copy", "--from", database_url, "--to", tmp_path / "back")
    assert down.returncode == 0 and "copied 2 versions" in down.stdout, down.stderr
    for version in ("1", "2"):
        for f in (tmp_path / "local" / "iris" / version).iterdir():
            assert (tmp_path / "back" / "iris" / version / f.name).read_bytes() == f.read_bytes()
    assert (tmp_path / "back" / "iris" / "ACTIVE").read_text().strip() == "1"
    assert (tmp_path / "back" / "iris" / "PREVIOUS").read_text().strip() == "2"

    again = cli("store", "copy", "--from", tmp_path / "local", "--to", database_url)
    assert again.returncode == 0 and "copied 0 versions (2 were already there)" in again.stdout


def test_store_copy_with_history_moves_keys_and_the_audit_log_both_ways(tmp_path: Path, database_url: str) -> None:
    assert cli("train", "iris", "--epochs", 2, "--store", tmp_path / "local").returncode == 0
    created = cli("keys", "create", "app", "--scope", "predict", "--json", "--store", tmp_path / "local")
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)["key"]
    assert cli("activate", "iris", 1, "--store", tmp_path / "local").returncode == 0  # audited, as key-create
    audit = open_audit_log(tmp_path / "local").export(0, 100)
    assert [e.action for e in audit] == ["activate", "key-create", "activate"]  # train's activation first
    log = open_prediction_log(tmp_path / "local")
    log.append([LoggedPrediction("iris", "r1", 0, 1, 1_700_000_000.0, [5.1, 3.5, 1.4, 0.2], "setosa")])
    log.label("iris", [Label("r1", "setosa")], source="key", key="abc", now=1_700_000_001.0)
    logged = log.recent("iris", 10)
    queue = open_queue(tmp_path / "local")
    job = queue.enqueue("iris", RetrainRequest())
    assert queue.claim("w:1") is not None
    queue.finish(job.id, "failed", error="boom")
    queue.enqueue("iris", RetrainRequest())  # queued: left behind, and named

    plain = cli("store", "copy", "--from", tmp_path / "local", "--to", database_url)
    assert plain.returncode == 0 and "1 API keys;" in plain.stdout, plain.stderr
    assert "not copied: the prediction log and its labels; the job history; the audit log" in plain.stdout
    assert KeyRing(PostgresKeyStore(database_url)).verify(*split_key(key)).name == "app"  # the key works there

    up = cli("store", "copy", "--with-history", "--from", tmp_path / "local", "--to", database_url)
    assert up.returncode == 0 and "0 API keys, 1 logged rows, 1 jobs, 3 audit entries;" in up.stdout, up.stderr
    assert "not copied: 1 queued or running jobs (they would run again)\n" in up.stdout
    assert PostgresAuditLog(database_url).export(0, 100) == audit
    assert PostgresPredictionLog(database_url).recent("iris", 10) == logged  # label, key id and times kept
    assert open_queue(tmp_path / "cache", database_url).get(job.id) == queue.get(job.id)

    down = cli("store", "copy", "--with-history", "--from", database_url, "--to", tmp_path / "back")
    assert down.returncode == 0 and "1 API keys, 1 logged rows, 1 jobs, 3 audit entries;" in down.stdout, down.stderr
    assert open_audit_log(tmp_path / "back").export(0, 100) == audit
    assert open_prediction_log(tmp_path / "back").recent("iris", 10) == logged
    assert KeyRing(FileKeyStore(tmp_path / "back")).verify(*split_key(key)).name == "app"
    assert [j for _, j in open_queue(tmp_path / "back").export(0, 10)] == [queue.get(job.id)]
    assert "not copied: nothing" in down.stdout
    again = cli("store", "copy", "--with-history", "--from", database_url, "--to", tmp_path / "back")
    assert again.returncode == 0 and "0 API keys, 0 logged rows, 0 jobs, 0 audit entries;" in again.stdout, again.stderr


def test_store_copy_refuses_a_missing_source_in_one_line(tmp_path: Path) -> None:
    result = cli("store", "copy", "--from", tmp_path / "nothing", "--to", tmp_path / "x")
    assert result.returncode == 1 and "no model store at" in result.stderr and "Traceback" not in result.stderr


def test_replicas_starting_together_on_an_empty_database_train_the_catalog_once(
    tmp_path: Path, database_url: str
) -> None:
    models = tmp_path / "models"  # a one-model catalog, short to train: iris for 20 epochs
    (models / "data").mkdir(parents=True)
    shutil.copy(REPO / "models" / "data" / "iris.csv", models / "data")
    spec = (REPO / "models" / "iris.toml").read_text()
    (models / "iris.toml").write_text(spec.replace("epochs = 200", "epochs = 20"))
    ports = [free_port() for _ in range(3)]
    env = service_env(NNSERVE_DATABASE_URL=database_url, NNSERVE_ACCESS_LOG="/dev/null")
    procs = [
        start_cli(
            *("serve", "--port", port, "--workers", 1, "--no-retrain-worker"),
            *("--store", tmp_path / f"cache{i}", "--models-dir", models),
            env=env,
            log=tmp_path / f"serve{i}.log",
        )
        for i, port in enumerate(ports)
    ]

    def ready(port: int) -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    try:
        for port in ports:
            wait_for(lambda: ready(port), 120, f"the replica on port {port}")  # noqa: B023 (called at once)
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=30)
    logs = [(tmp_path / f"serve{i}.log").read_text() for i in range(3)]
    assert sum("training the catalog" in log for log in logs) == 1, logs
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT name, version FROM versions").fetchall() == [("iris", 1)]
        assert conn.execute("SELECT active_version FROM models WHERE name = 'iris'").fetchone() == (1,)
