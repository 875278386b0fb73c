"""The job queue's contract, written against ``JobQueue`` only and run against every backend."""

from __future__ import annotations

import multiprocessing
import os
from dataclasses import replace

import pytest
from backends import Backend

from service.training.jobs import JobNotFoundError, JobQueue, JobResult, JobStateError, RetrainRequest, worker_identity

APPEND = RetrainRequest(mode="append")
RESULT = JobResult(
    version=2, base_version=1, metrics={"accuracy": 1.0}, active_metric=0.9, promoted=True, reason="r", epochs=3,
    seconds=0.1, n_rows=10,
)  # fmt: skip


@pytest.fixture
def queue(queue_backend: Backend) -> JobQueue:
    return queue_backend.queue()


def test_enqueue_then_get_and_list_newest_first(queue: JobQueue) -> None:
    request = RetrainRequest(mode="replace", promote="never", hyperparameters={"max_iter": 5}, data_sha256="ab" * 32)
    a = queue.enqueue("iris", APPEND)
    b = queue.enqueue("wine", request)
    assert queue.get(a.id).status == "queued"
    assert queue.get(b.id).request == request
    jobs, total = queue.list_jobs()
    assert total == 2 and [j.id for j in jobs] == [b.id, a.id]
    jobs, total = queue.list_jobs(model="iris")
    assert total == 1 and jobs[0].id == a.id
    jobs, total = queue.list_jobs(limit=1, offset=1)
    assert total == 2 and [j.id for j in jobs] == [a.id]
    assert queue.list_jobs(status="running") == ([], 0)
    c = queue.enqueue("digits", request)
    jobs, total = queue.list_jobs(models=["iris", "digits"])  # a key limited to models lists theirs
    assert total == 2 and [j.id for j in jobs] == [c.id, a.id]
    assert queue.list_jobs(models=["digits"], limit=1, offset=1) == ([], 1)
    assert queue.list_jobs(models=[]) == ([], 0)
    assert queue.list_jobs("wine", models=["iris"]) == ([], 0)


def test_unknown_job(queue: JobQueue) -> None:
    with pytest.raises(JobNotFoundError):
        queue.get("nope")
    with pytest.raises(JobNotFoundError):
        queue.cancel("nope")


def test_claim_takes_oldest_and_one_job_per_model_at_a_time(queue: JobQueue) -> None:
    first = queue.enqueue("iris", APPEND)
    second = queue.enqueue("iris", APPEND)
    other = queue.enqueue("wine", APPEND)
    claimed = queue.claim("w1")
    assert claimed is not None
    assert claimed.id == first.id and claimed.status == "running" and claimed.worker == "w1"
    # iris is busy: the next claim skips its second job and takes wine's
    assert getattr(queue.claim("w2"), "id", None) == other.id
    assert queue.claim("w3") is None
    queue.finish(first.id, "succeeded", result=RESULT)
    assert getattr(queue.claim("w1"), "id", None) == second.id
    done = queue.get(first.id)
    assert done.status == "succeeded" and done.result == RESULT and done.finished_at


def test_finish_rejects_a_non_final_status(queue: JobQueue) -> None:
    job = queue.enqueue("iris", APPEND)
    queue.claim("w")
    with pytest.raises(ValueError, match="status"):
        queue.finish(job.id, "running")


def test_a_finished_job_never_changes_again(queue: JobQueue) -> None:
    job = queue.enqueue("iris", APPEND)
    queue.claim("w")
    queue.finish(job.id, "failed", error="boom")
    queue.finish(job.id, "succeeded", result=RESULT)
    queue.requeue(job.id)
    after = queue.get(job.id)
    assert after.status == "failed" and after.error == "boom" and after.result is None


def test_cancel_queued_at_once_running_on_request_finished_refused(queue: JobQueue) -> None:
    queued = queue.enqueue("iris", APPEND)
    assert queue.cancel(queued.id).status == "cancelled"
    assert queue.claim("w") is None  # a cancelled job is never claimed
    running = queue.enqueue("iris", APPEND)
    queue.claim("w")
    after = queue.cancel(running.id)
    assert after.status == "running" and after.cancel_requested
    assert queue.update(running.id, {"epoch": 1}) is True  # the worker learns it at its next epoch
    queue.finish(running.id, "cancelled")
    with pytest.raises(JobStateError, match="already cancelled"):
        queue.cancel(running.id)


def test_update_records_progress(queue: JobQueue) -> None:
    job = queue.enqueue("iris", APPEND)
    queue.claim("w")
    assert queue.update(job.id, {"epoch": 3, "epochs": 10, "loss": 0.5}) is False
    assert queue.get(job.id).progress == {"epoch": 3, "epochs": 10, "loss": 0.5}


def test_requeue_puts_a_running_job_back(queue: JobQueue) -> None:
    job = queue.enqueue("iris", APPEND)
    queue.claim("w")
    queue.requeue(job.id)
    again = queue.get(job.id)
    assert again.status == "queued" and again.started_at is None
    assert getattr(queue.claim("w2"), "id", None) == job.id


def test_counts_by_status(queue: JobQueue) -> None:
    assert queue.counts() == {}
    jobs = [queue.enqueue(m, APPEND) for m in ("a", "b", "c")]
    queue.claim("w")
    queue.cancel(jobs[2].id)
    assert queue.counts() == {"running": 1, "queued": 1, "cancelled": 1}


def test_jobs_of_dead_workers_only_are_released(queue_backend: Backend, queue: JobQueue) -> None:
    dead = queue.enqueue("iris", APPEND)
    alive = queue.enqueue("wine", APPEND)
    proc = multiprocessing.get_context("spawn").Process(target=os.getpid)
    proc.start()
    proc.join()
    host = worker_identity().rpartition(":")[0]
    queue.claim(f"{host}:{proc.pid}")  # claims iris for a process that has exited
    queue.claim(f"{host}:{os.getppid()}")  # claims wine for a live process
    assert [job.id for job in queue.release_abandoned()] == [dead.id]
    released = queue.get(dead.id)
    if queue_backend.kind == "sqlite":  # a retry could publish twice: failed
        assert released.status == "failed" and released.error == "worker stopped"
    else:  # publishes are keyed by job: queued again for another worker
        assert released.status == "queued" and released.worker is None
        assert queue.claim("another:1").id == dead.id
    assert queue.get(alive.id).status == "running"


def _claim_all(backend: Backend, worker: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    q = backend.queue()
    got = []
    while (job := q.claim(worker)) is not None:
        got.append(job.id)
        q.finish(job.id, "succeeded", result=RESULT)
    out.put(got)


def test_three_worker_processes_never_claim_the_same_job(queue_backend: Backend) -> None:
    q = queue_backend.queue()
    ids = {q.enqueue(f"m{i % 7}", APPEND).id for i in range(60)}
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(queue_backend, f"w{i}", out)) for i in range(3)]
    for p in procs:
        p.start()
    claimed = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    flat = [job_id for got in claimed for job_id in got]
    assert len(flat) == len(set(flat)) == len(ids)
    assert set(flat) == ids


def test_enqueue_if_idle_starts_one_job_per_model(queue: JobQueue) -> None:
    triggered = RetrainRequest(trigger="drift: PSI 0.31 on petal_length")
    first = queue.enqueue_if_idle("iris", triggered)
    assert first is not None and first.status == "queued" and first.request.trigger == triggered.trigger
    assert queue.enqueue_if_idle("iris", triggered) is None  # one queued
    assert queue.enqueue_if_idle("wine", triggered) is not None  # another model is not held back
    queue.claim("w")
    assert queue.enqueue_if_idle("iris", triggered) is None  # one running
    queue.finish(first.id, "succeeded", result=RESULT)
    assert queue.enqueue_if_idle("iris", triggered) is not None  # idle again


def test_enqueue_if_idle_racing_enqueuers_start_one_job(queue_backend: Backend) -> None:
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        made = pool.map(_enqueue_if_idle, [queue_backend] * 8)
    assert sum(made) == 1
    assert queue_backend.queue().list_jobs("iris")[1] == 1


def _enqueue_if_idle(backend: Backend) -> bool:
    return backend.queue().enqueue_if_idle("iris", RetrainRequest(trigger="race")) is not None


def test_a_jobs_traceparent_is_kept_from_enqueue_to_claim_and_copy(queue: JobQueue) -> None:
    """The trace of the request that asked for a job goes on in the worker that claims it (service/tracing.py)."""
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    traced = RetrainRequest(mode="append", traceparent=parent)
    job = queue.enqueue("iris", traced)
    assert queue.get(job.id).request.traceparent == parent
    claimed = queue.claim("w1")
    assert claimed is not None and claimed.id == job.id and claimed.request.traceparent == parent
    queue.finish(job.id, "succeeded", result=RESULT)
    by_policy = queue.enqueue_if_idle("iris", replace(traced, trigger="drift"))
    assert by_policy is not None and by_policy.request.traceparent == parent
    assert queue.get(queue.enqueue("wine", APPEND).id).request.traceparent is None
    exported = {j.id: j for _, j in queue.export()}
    assert exported[job.id].request.traceparent == parent
