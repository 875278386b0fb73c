"""The PostgreSQL job queue: shared by every web replica and retraining worker of one database.

A claim takes the oldest queued job with ``FOR UPDATE SKIP LOCKED`` (workers never wait on each other)
and holds a lease (``lease_expires_at``) that each progress update renews. A job whose lease expired
(its worker was killed or lost the network) is queued again for another worker, at most
``max_attempts`` claims in all, then failed with the reason. A partial unique index keeps one running
job per model. ``enqueue`` sends ``NOTIFY nnserve_jobs``, which ``wait`` listens for.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from service import tracing
from service.store import StoreUnavailableError
from service.store.postgres import Database, connect
from service.training.jobs import (
    FINAL,
    IMPORT_COLUMNS,
    Job,
    JobNotFoundError,
    JobResult,
    JobStateError,
    RetrainRequest,
    check_finished,
    worker_gone,
)

JOBS_CHANNEL = "nnserve_jobs"
LEASE_SECONDS = 60.0
MAX_ATTEMPTS = 3


class PostgresJobQueue:
    """Jobs in the ``jobs`` table of the database at ``database_url`` (schema applied on open)."""

    def __init__(
        self,
        database_url: str,
        lease_seconds: float = LEASE_SECONDS,
        max_attempts: int = MAX_ATTEMPTS,
        migrate: bool = True,
    ) -> None:
        self.database_url = database_url
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.db = Database.shared(database_url)
        self._listener: psycopg.Connection[Any] | None = None
        if migrate:
            self.db.migrate()

    @tracing.traced("queue.enqueue")
    def enqueue(self, model: str, request: RetrainRequest) -> Job:
        job_id = uuid.uuid4().hex
        with self.db.connection() as conn, conn.transaction():
            conn.execute(
                "INSERT INTO jobs (id, model, status, request, max_attempts) VALUES (%s, %s, 'queued', %s, %s)",
                (job_id, model, Jsonb(asdict(request)), self.max_attempts),
            )
            conn.execute("SELECT pg_notify(%s, %s)", (JOBS_CHANNEL, model))
        return self.get(job_id)

    @tracing.traced("queue.enqueue")
    def enqueue_if_idle(self, model: str, request: RetrainRequest) -> Job | None:
        """Add a queued job for ``model`` unless it has one queued or running; None then. Enqueuers of one model
        take turns on a transaction-scoped advisory lock, so two never both see it idle."""
        job_id = uuid.uuid4().hex
        with self.db.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"nnserve-enqueue:{model}",))
            busy = conn.execute(
                "SELECT 1 FROM jobs WHERE model = %s AND status IN ('queued', 'running') LIMIT 1", (model,)
            ).fetchone()
            if busy is not None:
                return None
            conn.execute(
                "INSERT INTO jobs (id, model, status, request, max_attempts) VALUES (%s, %s, 'queued', %s, %s)",
                (job_id, model, Jsonb(asdict(request)), self.max_attempts),
            )
            conn.execute("SELECT pg_notify(%s, %s)", (JOBS_CHANNEL, model))
        return self.get(job_id)

    def get(self, job_id: str) -> Job:
        with self.db.connection() as conn:
            row = conn.cursor(row_factory=dict_row).execute("SELECT * FROM jobs WHERE id = %s", (job_id,)).fetchone()
        if row is None:
            raise JobNotFoundError(f"job {job_id!r} not found")
        return _job(row)

    def list_jobs(
        self,
        model: str | None = None,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
        *,
        models: Sequence[str] | None = None,
    ) -> tuple[list[Job], int]:
        """Jobs newest first, filtered; returns (page, total matching)."""
        clause = (
            "WHERE (%(model)s::text IS NULL OR model = %(model)s) AND (%(status)s::text IS NULL OR status = %(status)s)"
            " AND (%(models)s::text[] IS NULL OR model = ANY(%(models)s::text[]))"
        )
        chosen = None if models is None else list(models)
        args = {"model": model, "status": status, "limit": limit, "offset": offset, "models": chosen}
        with self.db.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            total = cur.execute(f"SELECT count(*) AS n FROM jobs {clause}", args).fetchone()
            rows = cur.execute(
                f"SELECT * FROM jobs {clause} ORDER BY seq DESC LIMIT %(limit)s OFFSET %(offset)s", args
            ).fetchall()
        return [_job(r) for r in rows], int(total["n"]) if total else 0

    def claim(self, worker: str) -> Job | None:
        """Take the oldest queued job of a model that has none running (expired leases are queued again first)."""
        self.expire_leases()
        for _ in range(5):  # a concurrent claim of the same model's other job loses on the unique index: retry
            try:
                with self.db.connection() as conn, conn.transaction():
                    row = (
                        conn.cursor(row_factory=dict_row)
                        .execute(
                            "WITH candidate AS ("
                            " SELECT id FROM jobs j WHERE status = 'queued' AND NOT EXISTS"
                            " (SELECT 1 FROM jobs r WHERE r.model = j.model AND r.status = 'running')"
                            " ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED) "
                            "UPDATE jobs SET status = 'running', worker = %s, attempts = attempts + 1,"
                            " started_at = clock_timestamp(), heartbeat_at = clock_timestamp(),"
                            " lease_expires_at = clock_timestamp() + make_interval(secs => %s) "
                            "FROM candidate WHERE jobs.id = candidate.id RETURNING jobs.*",
                            (worker, self.lease_seconds),
                        )
                        .fetchone()
                    )
                return None if row is None else _job(row)
            except psycopg.errors.UniqueViolation:
                continue
        return None

    def expire_leases(self) -> list[str]:
        """Queue again the running jobs whose lease expired, or fail those out of attempts; returns their ids."""
        with self.db.connection() as conn, conn.transaction():
            rows = conn.execute(
                "UPDATE jobs SET"
                " status = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END,"
                " error = CASE WHEN attempts >= max_attempts THEN"
                "  format('lease expired %s times (the worker stopped answering); not retried', attempts) END,"
                " finished_at = CASE WHEN attempts >= max_attempts THEN clock_timestamp() END,"
                " worker = NULL, lease_expires_at = NULL, progress = NULL "
                "WHERE status = 'running' AND lease_expires_at < clock_timestamp() RETURNING id"
            ).fetchall()
        return [r[0] for r in rows]

    def update(self, job_id: str, progress: dict[str, Any]) -> bool:
        """Record progress and renew the lease; True when a cancel was requested."""
        with self.db.connection() as conn:
            conn.execute(
                "UPDATE jobs SET progress = %s, heartbeat_at = clock_timestamp(), "
                "lease_expires_at = clock_timestamp() + make_interval(secs => %s) "
                "WHERE id = %s AND status = 'running'",
                (Jsonb(progress), self.lease_seconds, job_id),
            )
            row = conn.execute("SELECT cancel_requested FROM jobs WHERE id = %s", (job_id,)).fetchone()
        return bool(row and row[0])

    def finish(self, job_id: str, status: str, result: JobResult | None = None, error: str | None = None) -> None:
        if status not in FINAL:
            raise ValueError(f"status must be one of {FINAL}, got {status!r}")
        with self.db.connection() as conn:
            conn.execute(
                "UPDATE jobs SET status = %s, result = %s, error = %s, finished_at = clock_timestamp(), "
                "lease_expires_at = NULL WHERE id = %s AND status = 'running'",
                (status, None if result is None else Jsonb(asdict(result)), error, job_id),
            )

    def requeue(self, job_id: str) -> None:
        """Put a running job back in the queue (its worker is shutting down); that claim does not count."""
        with self.db.connection() as conn:
            conn.execute(
                "UPDATE jobs SET status = 'queued', worker = NULL, started_at = NULL, progress = NULL, "
                "lease_expires_at = NULL, attempts = greatest(attempts - 1, 0) WHERE id = %s AND status = 'running'",
                (job_id,),
            )
            conn.execute("SELECT pg_notify(%s, %s)", (JOBS_CHANNEL, job_id))

    def cancel(self, job_id: str) -> Job:
        with self.db.connection() as conn, conn.transaction():
            row = conn.execute("SELECT status FROM jobs WHERE id = %s FOR UPDATE", (job_id,)).fetchone()
            if row is None:
                raise JobNotFoundError(f"job {job_id!r} not found")
            if row[0] in FINAL:
                raise JobStateError(f"job {job_id!r} is already {row[0]}")
            if row[0] == "queued":
                conn.execute(
                    "UPDATE jobs SET status = 'cancelled', cancel_requested = true, finished_at = clock_timestamp() "
                    "WHERE id = %s",
                    (job_id,),
                )
            else:
                conn.execute("UPDATE jobs SET cancel_requested = true WHERE id = %s", (job_id,))
        return self.get(job_id)

    def release_abandoned(self, stale_after: float = 120.0) -> list[Job]:
        """Queue again (or fail, out of attempts) the running jobs whose worker is gone from this host, and
        those whose lease expired; a publish is keyed by its job, so a retry never publishes twice.

        ``stale_after`` is the embedded queue's; here the lease (``lease_seconds``) says when a silent
        worker on another host is given up.
        """
        with self.db.connection() as conn, conn.transaction():
            rows = conn.execute("SELECT id, worker FROM jobs WHERE status = 'running' FOR UPDATE").fetchall()
            gone = [job_id for job_id, worker in rows if worker_gone(worker)]
            conn.execute(
                "UPDATE jobs SET lease_expires_at = clock_timestamp() - interval '1 second' WHERE id = ANY(%s)",
                (gone,),
            )
        return [self.get(job_id) for job_id in self.expire_leases()]

    def heartbeat(self, worker: str) -> None:
        with self.db.connection() as conn:
            conn.execute(
                "INSERT INTO workers (identity, seen_at) VALUES (%s, clock_timestamp()) "
                "ON CONFLICT (identity) DO UPDATE SET seen_at = excluded.seen_at",
                (worker,),
            )

    def last_heartbeat(self) -> float | None:
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT extract(epoch FROM greatest((SELECT max(seen_at) FROM workers),"
                " (SELECT max(heartbeat_at) FROM jobs WHERE status = 'running')))"
            ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def export(self, after: int = 0, limit: int = 1000) -> list[tuple[int, Job]]:
        query = "SELECT * FROM jobs WHERE seq > %s ORDER BY seq LIMIT %s"
        with self.db.connection() as conn:
            rows = conn.cursor(row_factory=dict_row).execute(query, (after, limit)).fetchall()
        return [(r["seq"], _job(r)) for r in rows]

    def import_jobs(self, jobs: Sequence[Job]) -> int:
        check_finished(jobs)
        query = f"INSERT INTO jobs ({IMPORT_COLUMNS}) VALUES ({', '.join(['%s'] * 12)}) ON CONFLICT (id) DO NOTHING"
        with self.db.connection() as conn, conn.transaction():
            return sum(conn.execute(query.encode(), job.import_values(Jsonb)).rowcount for job in jobs)

    def counts(self) -> dict[str, int]:
        with self.db.connection() as conn:
            rows = conn.execute("SELECT status, count(*) FROM jobs GROUP BY status").fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def wait(self, timeout: float) -> bool:
        """Sleep until a job is enqueued (NOTIFY) or ``timeout`` s pass; True when woken by a notification."""
        started = time.monotonic()
        try:
            if self._listener is None or self._listener.closed:
                self._listener = connect(self.database_url)
                self._listener.execute(f"LISTEN {JOBS_CHANNEL}")
            for _ in self._listener.notifies(timeout=timeout, stop_after=1):
                return True
        except (psycopg.OperationalError, StoreUnavailableError):
            self._listener = None  # reconnected by the next call; the caller's poll covers the gap
            time.sleep(max(0.0, timeout - (time.monotonic() - started)))  # a wait, not a spin, while it is down
        return False

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        self.db.close()


def _stamp(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _job(row: dict[str, Any]) -> Job:
    return Job(
        id=row["id"],
        model=row["model"],
        status=row["status"],
        request=RetrainRequest.from_json(row["request"]),
        progress=row["progress"],
        result=None if row["result"] is None else JobResult.from_json(row["result"]),
        error=row["error"],
        cancel_requested=bool(row["cancel_requested"]),
        worker=row["worker"],
        created_at=_stamp(row["created_at"]) or "",
        started_at=_stamp(row["started_at"]),
        finished_at=_stamp(row["finished_at"]),
    )
