"""What the PostgreSQL job queue promises beyond the shared contract: leases, retries, NOTIFY, many workers."""

from __future__ import annotations

import multiprocessing
import threading
import time

from service.training.jobs import RetrainRequest
from service.training.pg_queue import PostgresJobQueue

APPEND = RetrainRequest(mode="append")


def test_an_expired_lease_is_retried_then_failed_after_max_attempts(database_url: str) -> None:
    queue = PostgresJobQueue(database_url, lease_seconds=0.2, max_attempts=2)
    job = queue.enqueue("iris", APPEND)
    assert queue.claim("host:1") is not None
    time.sleep(0.3)  # the worker went silent: its lease runs out
    retried = queue.claim("host:2")
    assert retried is not None and retried.id == job.id and retried.worker == "host:2"
    time.sleep(0.3)
    assert queue.claim("host:3") is None  # out of attempts: failed, never claimed a third time
    failed = queue.get(job.id)
    assert failed.status == "failed" and failed.error is not None and "lease expired 2 times" in failed.error


def test_progress_renews_the_lease(database_url: str) -> None:
    queue = PostgresJobQueue(database_url, lease_seconds=0.5)
    job = queue.enqueue("iris", APPEND)
    queue.claim("host:1")
    for epoch in range(4):  # 0.8 s in all, longer than one lease, renewed every 0.2 s
        time.sleep(0.2)
        queue.update(job.id, {"epoch": epoch})
        assert queue.expire_leases() == []
    assert queue.get(job.id).status == "running"


def test_enqueue_wakes_a_waiting_worker(database_url: str) -> None:
    queue = PostgresJobQueue(database_url)
    queue.wait(0.01)  # LISTEN is in place before the enqueue
    threading.Timer(0.2, queue.enqueue, ("iris", APPEND)).start()
    started = time.monotonic()
    assert queue.wait(10.0) is True
    assert time.monotonic() - started < 5.0  # woken by the notification, not by the 10 s timeout
    assert queue.wait(0.05) is False
    queue.close()


def _work(url: str, worker: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    queue = PostgresJobQueue(url, migrate=False)
    got = []
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < 1.0:
        job = queue.claim(worker)
        if job is None:
            queue.wait(0.1)
            continue
        idle_since = time.monotonic()
        got.append(job.id)
        queue.finish(job.id, "succeeded")
    out.put(got)


def test_two_workers_run_each_of_80_jobs_exactly_once(database_url: str) -> None:
    queue = PostgresJobQueue(database_url)
    ids = {queue.enqueue(f"m{i % 8}", APPEND).id for i in range(80)}
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_work, args=(database_url, f"host:{n}", out)) for n in (1, 2)]
    for p in procs:
        p.start()
    runs = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    every = [j for r in runs for j in r]
    assert sorted(every) == sorted(ids)  # each job once, none twice, none lost
    assert queue.counts() == {"succeeded": 80}


def test_heartbeats_of_idle_and_busy_workers(database_url: str) -> None:
    queue = PostgresJobQueue(database_url)
    assert queue.last_heartbeat() is None
    queue.heartbeat("host:1")
    first = queue.last_heartbeat()
    assert first is not None and abs(first - time.time()) < 60
    job = queue.enqueue("iris", APPEND)
    queue.claim("host:2")
    time.sleep(0.05)
    queue.update(job.id, {"epoch": 1})  # a busy worker's progress is a sign of life too
    latest = queue.last_heartbeat()
    assert latest is not None and latest > first
