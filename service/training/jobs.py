"""Retraining jobs: the typed contract between the HTTP API and the worker, and the queue's interface.

The API builds a :class:`RetrainRequest`, the queue stores it inside a
:class:`Job`, the worker reads it back and finishes the job with a
:class:`JobResult`. ``JobQueue`` is what every queue backend implements; the
embedded one is SQLite (``sqlite_queue.py``).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = [
    "CANARY_FRACTION",
    "COOLDOWN",
    "FINAL",
    "INTERNAL_ERROR",
    "LONGEST",
    "MAX_DURATION",
    "MIN_REQUESTS",
    "MOST_REQUESTS",
    "PROMOTE_CHOICES",
    "ROLLOUT_OPTIONS",
    "STATUSES",
    "Job",
    "JobNotFoundError",
    "JobQueue",
    "JobResult",
    "JobStateError",
    "QueueUnavailableError",
    "RetrainRequest",
    "open_queue",
    "worker_gone",
    "worker_identity",
]

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
FINAL = ("succeeded", "failed", "cancelled")
# How a job's error starts when a bug, not the job's data, failed it: its text is for admins only.
INTERNAL_ERROR = "internal error"
Mode = Literal["append", "replace"]
DataSource = Literal["request", "feedback"]
Promote = Literal["if_better", "always", "never", "canary", "shadow"]
PROMOTE_CHOICES: tuple[Promote, ...] = ("if_better", "always", "never", "canary", "shadow")
# A canary's or shadow's defaults: the share of unpinned requests a canary answers, the requests its
# verdict needs, the longest it runs (seconds).
CANARY_FRACTION, MIN_REQUESTS, MAX_DURATION = 0.1, 100, 3600.0
MOST_REQUESTS, LONGEST = 1_000_000, 30 * 86_400.0  # the largest min_requests and max_duration accepted
COOLDOWN = 3600.0  # seconds a policy whose candidate was not promoted waits before it fires again
ROLLOUT_OPTIONS = frozenset({"canary_fraction", "min_requests", "max_duration"})


class JobNotFoundError(LookupError):
    """No job has that id."""


class QueueUnavailableError(Exception):
    """The queue's storage cannot be reached or read right now (not the caller's fault)."""


class JobStateError(Exception):
    """The job is not in a state that allows the operation (e.g. cancelling a finished job)."""


@dataclass(frozen=True)
class RetrainRequest:
    """What a retrain asks for, validated by the API before it is queued.

    ``hyperparameters`` are estimator parameters (already mapped from the
    catalog's names and checked by the catalog's schema); ``data_sha256`` names
    the request's rows saved in the store, None when it sent none.
    """

    mode: Mode = "append"
    promote: Promote = "if_better"
    warm_start: bool = False
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    data_sha256: str | None = None
    n_new_rows: int = 0
    trigger: str | None = None  # what started a job no one asked for: the retraining policy that fired, and why
    # where the new rows came from: an admin's request (a share is held out into the evaluation set) or
    # feedback (a policy's labelled predictions: trained on, never evaluated on)
    data_source: DataSource = "request"
    canary_fraction: float = CANARY_FRACTION  # promote "canary" and "shadow" only (service.store.rollouts)
    min_requests: int = MIN_REQUESTS
    max_duration: float = MAX_DURATION
    # W3C traceparent of the span that asked for the job (tracing on): the worker's spans continue its trace
    traceparent: str | None = None

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> RetrainRequest:
        known = {k: v for k, v in value.items() if k in cls.__dataclass_fields__}
        known["hyperparameters"] = dict(known.get("hyperparameters") or {})
        return cls(**known)


@dataclass(frozen=True)
class JobResult:
    """What a succeeded job did: the version it published and whether it was promoted, and why."""

    version: int
    base_version: int
    metrics: dict[str, float]
    active_metric: float
    promoted: bool
    reason: str
    epochs: int
    seconds: float
    n_rows: int
    # which rows it trained and was scored on (``frozen.RetrainRows``): counts by origin, and the datasets' sha256
    trained_on: dict[str, Any] = field(default_factory=dict)
    evaluated_on: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> JobResult:
        return cls(**{k: v for k, v in value.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Job:
    """One job as the queue keeps it."""

    id: str
    model: str
    status: str
    request: RetrainRequest
    created_at: str
    progress: dict[str, Any] | None = None
    result: JobResult | None = None
    error: str | None = None
    cancel_requested: bool = False
    worker: str | None = None
    started_at: str | None = None
    finished_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The job as the HTTP API shows it."""
        return asdict(self)

    def import_values(self, encode: Callable[[Any], Any]) -> tuple[Any, ...]:
        """``IMPORT_COLUMNS`` of this job, each JSON value through the backend's ``encode``."""
        result = None if self.result is None else encode(asdict(self.result))
        progress = None if self.progress is None else encode(self.progress)
        return (
            *(self.id, self.model, self.status, encode(asdict(self.request)), progress, result, self.error),
            *(self.cancel_requested, self.worker, self.created_at, self.started_at, self.finished_at),
        )


# What ``JobQueue.import_jobs`` writes: a finished job as it is.
IMPORT_COLUMNS = "id, model, status, request, progress, result, error, cancel_requested, worker, created_at, "
IMPORT_COLUMNS += "started_at, finished_at"


@runtime_checkable
class NotifiesJobs(Protocol):
    """A queue that wakes an idle worker when a job is enqueued (PostgreSQL's NOTIFY), instead of its poll."""

    def wait(self, timeout: float) -> bool:
        """Sleep until a job is enqueued or ``timeout`` s pass; True when woken by a notification."""
        ...


class JobQueue(Protocol):
    """A durable queue of retraining jobs, shared by the web workers and the retraining workers.

    Every backend keeps these promises (``tests/contract`` checks them): a job
    is claimed by one worker only; a model never has two jobs running; a
    cancelled queued job never runs; a running job whose worker died is found
    by ``release_abandoned``; finished jobs never change again.
    """

    def enqueue(self, model: str, request: RetrainRequest) -> Job:
        """Add a queued job for ``model``."""
        ...

    def enqueue_if_idle(self, model: str, request: RetrainRequest) -> Job | None:
        """Add a queued job for ``model`` unless it has one queued or running (then None), in one atomic step:
        a retraining policy evaluated by several workers at once still starts one job."""
        ...

    def get(self, job_id: str) -> Job:
        """The job, or :class:`JobNotFoundError`."""
        ...

    def list_jobs(
        self,
        model: str | None = None,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
        *,
        models: Sequence[str] | None = None,
    ) -> tuple[list[Job], int]:
        """Jobs newest first, filtered (``models``: only theirs, as for a key limited to models; None: every
        model's); returns (page, total matching)."""
        ...

    def claim(self, worker: str) -> Job | None:
        """Atomically take the oldest queued job of a model that has none running, or None."""
        ...

    def update(self, job_id: str, progress: dict[str, Any]) -> bool:
        """Record progress and a heartbeat; True when a cancel was requested."""
        ...

    def finish(self, job_id: str, status: str, result: JobResult | None = None, error: str | None = None) -> None:
        """Move a running job to a final status."""
        ...

    def requeue(self, job_id: str) -> None:
        """Put a running job back in the queue (its worker is shutting down)."""
        ...

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued job at once, or ask its worker to stop a running one at the next epoch."""
        ...

    def release_abandoned(self, stale_after: float = 120.0) -> list[Job]:
        """Take back the running jobs whose worker is dead; returns them as they are now.

        Where a retry could publish a second version (the embedded queue) they are failed ("worker
        stopped"); where a publish is keyed by its job (PostgreSQL) they are queued again for another
        worker, within ``max_attempts``, as an expired lease is.
        """
        ...

    def counts(self) -> dict[str, int]:
        """Jobs per status."""
        ...

    def export(self, after: int = 0, limit: int = 1000) -> list[tuple[int, Job]]:
        """The oldest ``limit`` jobs whose ``seq`` is above ``after``, oldest first, each with its ``seq``."""
        ...

    def import_jobs(self, jobs: Sequence[Job]) -> int:
        """Add finished jobs whose ids this queue lacks, as they are (request, result, error, times), after the
        jobs it has; ValueError for a job not finished (it would run again). Returns how many were added."""
        ...

    def heartbeat(self, worker: str) -> None:
        """Record that ``worker`` is alive (idle or busy)."""
        ...

    def last_heartbeat(self) -> float | None:
        """Unix time of the freshest sign of life of any worker (a heartbeat or a running job's progress).

        Raises ``QueueUnavailableError`` when the queue cannot be read.
        """
        ...


def copy_jobs(source: JobQueue, target: JobQueue, chunk_rows: int) -> tuple[int, int]:
    """``store copy --with-history``: add the source's finished jobs the target lacks, ``chunk_rows`` at a time
    and in the source's order. Returns (jobs added, jobs left behind because they are queued or running: in
    the target they would run a second time)."""
    added, unfinished, after = 0, 0, 0
    while chunk := source.export(after, chunk_rows):
        finished = [job for _, job in chunk if job.status in FINAL]
        added += target.import_jobs(finished)
        unfinished += len(chunk) - len(finished)
        after = chunk[-1][0]
    return added, unfinished


def check_finished(jobs: Sequence[Job]) -> None:
    """``import_jobs``' refusal of a job that is not finished."""
    for job in jobs:
        if job.status not in FINAL:
            raise ValueError(f"job {job.id} is {job.status}: only finished jobs are imported")


def worker_identity() -> str:
    """``host:pid`` of this process, as recorded on the jobs it claims."""
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_gone(worker: str | None) -> bool:
    """True when ``worker`` (``host:pid``) ran on this host and its process is gone (or is this very process,
    which means an earlier process, e.g. a restarted container, recorded the job)."""
    worker_host, _, pid_text = (worker or "").rpartition(":")
    pid = int(pid_text) if pid_text.isdigit() else 0
    if worker_host != socket.gethostname():
        return False
    if pid <= 0 or pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def open_queue(store_root: str | os.PathLike[str], database_url: str | None = None) -> JobQueue:
    """The job queue the configuration names: SQLite in the store directory unless a database URL is given."""
    if database_url:
        if not database_url.startswith(("postgresql://", "postgres://")):
            raise ValueError(
                f"no job queue backend for {database_url.split(':', 1)[0]!r} URLs; use a postgresql:// URL"
            )
        from service.store.drivers import require_postgres

        require_postgres()
        from service.training.pg_queue import PostgresJobQueue

        return PostgresJobQueue(database_url)
    from service.training.sqlite_queue import SqliteJobQueue

    return SqliteJobQueue(Path(store_root))
