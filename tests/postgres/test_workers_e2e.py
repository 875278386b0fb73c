"""Real ``nnserve worker`` processes on one PostgreSQL queue: every job runs once, a killed worker's job is
finished by another, and one version is published per job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
from helpers import REPO, service_env, start_cli, wait_for

from service.training.jobs import RetrainRequest
from service.training.pg_queue import PostgresJobQueue


def train(database_url: str, cache: Path, *models: str) -> None:
    for model in models:
        subprocess.run(
            [sys.executable, "-m", "service.cli", "train", model, "--epochs", "2", "--store", str(cache)],
            cwd=REPO,
            env=service_env(NNSERVE_DATABASE_URL=database_url),
            check=True,
            capture_output=True,
            timeout=120,
        )


def start_worker(database_url: str, cache: Path, log: Path) -> subprocess.Popen:
    return start_cli(
        "worker",
        "--poll-interval",
        "0.1",
        "--store",
        cache,
        env=service_env(NNSERVE_DATABASE_URL=database_url),
        log=log,
    )


def jobs_table(database_url: str, ids: list[str]) -> list[tuple[str, str, int, str]]:
    """(id, status, attempts, worker) of the jobs, read from the database itself."""
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT id, status, attempts, worker FROM jobs WHERE id = ANY(%s)", (ids,)).fetchall()


def versions_of_jobs(database_url: str, ids: list[str]) -> list[str]:
    with psycopg.connect(database_url) as conn:
        return [r[0] for r in conn.execute("SELECT job_id FROM versions WHERE job_id = ANY(%s)", (ids,))]


def stop(*procs: subprocess.Popen) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_forty_retrains_across_two_workers_each_run_exactly_once(tmp_path: Path, database_url: str) -> None:
    train(database_url, tmp_path / "cli", "iris", "wine")
    queue = PostgresJobQueue(database_url)
    short = RetrainRequest(hyperparameters={"max_iter": 2}, promote="never")
    ids = [queue.enqueue(model, short).id for model in ("iris", "wine") * 20]
    workers = [start_worker(database_url, tmp_path / f"w{i}", tmp_path / f"w{i}.log") for i in range(2)]
    try:
        wait_for(lambda: queue.counts().get("succeeded", 0) == 40, 180, "40 jobs to succeed")
    finally:
        stop(*workers)
    rows = jobs_table(database_url, ids)
    assert sorted(status for _, status, _, _ in rows) == ["succeeded"] * 40
    assert [attempts for _, _, attempts, _ in rows] == [1] * 40  # each claimed once
    assert {worker.rpartition(":")[2] for *_, worker in rows} == {str(w.pid) for w in workers}  # both took part
    published = versions_of_jobs(database_url, ids)
    assert sorted(published) == sorted(ids)  # one version per job, none twice


def test_a_job_of_a_killed_worker_is_finished_by_another_and_published_once(tmp_path: Path, database_url: str) -> None:
    train(database_url, tmp_path / "cli", "iris")
    queue = PostgresJobQueue(database_url)
    job = queue.enqueue("iris", RetrainRequest(hyperparameters={"max_iter": 4000}, promote="always"))
    first = start_worker(database_url, tmp_path / "a", tmp_path / "a.log")
    second = None
    try:
        wait_for(
            lambda: (j := queue.get(job.id)).status == "running" and (j.progress or {}).get("epoch", 0) >= 5,
            60,
            "the first worker to be training",
        )
        assert queue.get(job.id).worker.endswith(f":{first.pid}")
        os.kill(first.pid, signal.SIGKILL)  # mid-job: no chance to requeue it
        first.wait(timeout=10)
        second = start_worker(database_url, tmp_path / "b", tmp_path / "b.log")
        wait_for(lambda: queue.get(job.id).status not in ("queued", "running"), 180, "the second worker to finish it")
    finally:
        stop(first, *([second] if second else []))
    done = queue.get(job.id)
    assert done.status == "succeeded", done
    ((_, _, attempts, worker),) = jobs_table(database_url, [job.id])
    assert attempts == 2 and worker.endswith(f":{second.pid}")
    assert versions_of_jobs(database_url, [job.id]) == [job.id]  # one version, published by the second worker
    assert done.result is not None and done.result.version == 2
