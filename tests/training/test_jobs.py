"""The SQLite job queue: ordering, one job per model, atomic claims across processes, cancel, recovery."""

import multiprocessing
import os
import sqlite3

import pytest

from service.training.job_queue import JobNotFoundError, JobQueue, JobStateError, worker_identity


@pytest.fixture
def queue(tmp_path):
    return JobQueue(tmp_path)


def test_enqueue_then_get_and_list_newest_first(queue):
    a = queue.enqueue("iris", {"mode": "append"})
    b = queue.enqueue("wine", {"mode": "replace"})
    assert queue.get(a["id"])["status"] == "queued"
    assert queue.get(a["id"])["request"] == {"mode": "append"}
    jobs, total = queue.list_jobs()
    assert total == 2 and [j["id"] for j in jobs] == [b["id"], a["id"]]
    jobs, total = queue.list_jobs(model="iris")
    assert total == 1 and jobs[0]["id"] == a["id"]
    jobs, total = queue.list_jobs(limit=1, offset=1)
    assert total == 2 and [j["id"] for j in jobs] == [a["id"]]
    assert queue.list_jobs(status="running") == ([], 0)


def test_database_lives_in_the_store_in_wal_mode(tmp_path):
    JobQueue(tmp_path)
    with sqlite3.connect(tmp_path / ".jobs.sqlite3") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_unknown_job(queue):
    with pytest.raises(JobNotFoundError):
        queue.get("nope")
    with pytest.raises(JobNotFoundError):
        queue.cancel("nope")


def test_claim_takes_oldest_and_one_job_per_model_at_a_time(queue):
    first = queue.enqueue("iris", {})
    second = queue.enqueue("iris", {})
    other = queue.enqueue("wine", {})
    claimed = queue.claim("w1")
    assert claimed["id"] == first["id"] and claimed["status"] == "running" and claimed["worker"] == "w1"
    # iris is busy: the next claim skips its second job and takes wine's
    assert queue.claim("w2")["id"] == other["id"]
    assert queue.claim("w3") is None
    queue.finish(first["id"], "succeeded", result={"version": 2})
    assert queue.claim("w1")["id"] == second["id"]
    done = queue.get(first["id"])
    assert done["status"] == "succeeded" and done["result"] == {"version": 2} and done["finished_at"]


def test_finish_rejects_a_non_final_status(queue):
    job = queue.enqueue("iris", {})
    queue.claim("w")
    with pytest.raises(ValueError, match="status"):
        queue.finish(job["id"], "running")


def test_cancel_queued_at_once_running_on_request_finished_refused(queue):
    queued = queue.enqueue("iris", {})
    assert queue.cancel(queued["id"])["status"] == "cancelled"
    assert queue.claim("w") is None  # a cancelled job is never claimed
    running = queue.enqueue("iris", {})
    queue.claim("w")
    after = queue.cancel(running["id"])
    assert after["status"] == "running" and after["cancel_requested"]
    assert queue.update(running["id"], {"epoch": 1}) is True  # the worker learns it at its next epoch
    queue.finish(running["id"], "cancelled")
    with pytest.raises(JobStateError, match="already cancelled"):
        queue.cancel(running["id"])


def test_update_records_progress(queue):
    job = queue.enqueue("iris", {})
    queue.claim("w")
    assert queue.update(job["id"], {"epoch": 3, "epochs": 10, "loss": 0.5}) is False
    assert queue.get(job["id"])["progress"] == {"epoch": 3, "epochs": 10, "loss": 0.5}


def test_requeue_puts_a_running_job_back(queue):
    job = queue.enqueue("iris", {})
    queue.claim("w")
    queue.requeue(job["id"])
    again = queue.get(job["id"])
    assert again["status"] == "queued" and again["started_at"] is None
    assert queue.claim("w2")["id"] == job["id"]


def test_fail_abandoned_marks_jobs_of_dead_workers_only(queue, tmp_path):
    dead = queue.enqueue("iris", {})
    alive = queue.enqueue("wine", {})
    proc = multiprocessing.get_context("spawn").Process(target=os.getpid)
    proc.start()
    proc.join()
    host = worker_identity().rpartition(":")[0]
    queue.claim(f"{host}:{proc.pid}")  # claims iris for a process that has exited
    queue.claim(f"{host}:{os.getppid()}")  # claims wine for a live process
    assert queue.fail_abandoned() == [dead["id"]]
    failed = queue.get(dead["id"])
    assert failed["status"] == "failed" and failed["error"] == "worker stopped"
    assert queue.get(alive["id"])["status"] == "running"


def _claim_all(root, worker, out):
    q = JobQueue(root)
    got = []
    while (job := q.claim(worker)) is not None:
        got.append(job["id"])
        q.finish(job["id"], "succeeded")
    out.put(got)


def test_two_worker_processes_never_claim_the_same_job(tmp_path):
    q = JobQueue(tmp_path)
    ids = {q.enqueue(f"m{i % 7}", {})["id"] for i in range(60)}
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(tmp_path, f"w{i}", out)) for i in range(3)]
    for p in procs:
        p.start()
    claimed = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    flat = [job_id for got in claimed for job_id in got]
    assert len(flat) == len(set(flat)) == len(ids)
    assert set(flat) == ids
