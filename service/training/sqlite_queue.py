"""The embedded job queue backend: SQLite (WAL) in the store directory.

It implements ``service.training.jobs.JobQueue``. A job is claimed inside
``BEGIN IMMEDIATE`` (SQLite's write lock), so two worker processes never
claim the same job, and never two jobs of one model at once. Each connection
is opened per call: cheap for SQLite, and safe across fork and threads.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from service import tracing
from service.training.jobs import (
    FINAL,
    IMPORT_COLUMNS,
    Job,
    JobNotFoundError,
    JobResult,
    JobStateError,
    QueueUnavailableError,
    RetrainRequest,
    check_finished,
    worker_gone,
)

DATABASE = ".jobs.sqlite3"
LOCK = ".jobs.lock"  # a dot name can never be a model name

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    model TEXT NOT NULL,
    status TEXT NOT NULL,
    request TEXT NOT NULL,
    progress TEXT,
    result TEXT,
    error TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    worker TEXT,
    heartbeat REAL,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT
);
CREATE INDEX IF NOT EXISTS jobs_model_status ON jobs (model, status);
CREATE TABLE IF NOT EXISTS workers (
    identity TEXT PRIMARY KEY,
    seen_at REAL NOT NULL
);
"""


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class SqliteJobQueue:
    """Jobs of one store, in ``<store>/.jobs.sqlite3`` (created on first use)."""

    def __init__(self, store_root: str | os.PathLike[str], busy_timeout: float = 30.0) -> None:
        self.path = Path(store_root) / DATABASE
        self.busy_timeout = busy_timeout  # seconds a call waits for another writer before "database is locked"
        # Processes starting together (gunicorn's web workers) would race to create the file and switch it to
        # WAL, a change SQLite refuses at once ("database is locked") instead of waiting: one at a time.
        fd = os.open(self.path.with_name(LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with self._connect() as db:
                db.executescript(_SCHEMA)
        finally:
            os.close(fd)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)) as db:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            yield db

    @tracing.traced("queue.enqueue")
    def enqueue(self, model: str, request: RetrainRequest) -> Job:
        """Add a queued job for ``model``; returns it."""
        job_id = uuid.uuid4().hex
        with self._connect() as db:
            db.execute(
                "INSERT INTO jobs (id, model, status, request, created_at) VALUES (?, ?, 'queued', ?, ?)",
                (job_id, model, json.dumps(asdict(request)), now()),
            )
        return self.get(job_id)

    @tracing.traced("queue.enqueue")
    def enqueue_if_idle(self, model: str, request: RetrainRequest) -> Job | None:
        """Add a queued job for ``model`` unless it has one queued or running; None then."""
        job_id = uuid.uuid4().hex
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                busy = db.execute(
                    "SELECT 1 FROM jobs WHERE model = ? AND status IN ('queued', 'running') LIMIT 1", (model,)
                ).fetchone()
                if busy is None:
                    db.execute(
                        "INSERT INTO jobs (id, model, status, request, created_at) VALUES (?, ?, 'queued', ?, ?)",
                        (job_id, model, json.dumps(asdict(request)), now()),
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return None if busy is not None else self.get(job_id)

    def get(self, job_id: str) -> Job:
        with self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
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
        where: list[str] = []
        args: list[Any] = []
        if model is not None:
            where.append("model = ?")
            args.append(model)
        if models is not None:
            where.append(f"model IN ({', '.join('?' * len(models))})" if models else "0")
            args.extend(models)
        if status is not None:
            where.append("status = ?")
            args.append(status)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        with self._connect() as db:
            total = db.execute(f"SELECT COUNT(*) FROM jobs {clause}", args).fetchone()[0]
            rows = db.execute(
                f"SELECT * FROM jobs {clause} ORDER BY seq DESC LIMIT ? OFFSET ?", [*args, limit, offset]
            ).fetchall()
        return [_job(r) for r in rows], total

    def claim(self, worker: str) -> Job | None:
        """Atomically take the oldest queued job of a model that has none running, or None."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute(
                    "SELECT id FROM jobs WHERE status = 'queued' AND model NOT IN "
                    "(SELECT model FROM jobs WHERE status = 'running') ORDER BY seq LIMIT 1"
                ).fetchone()
                if row is not None:
                    db.execute(
                        "UPDATE jobs SET status = 'running', worker = ?, heartbeat = strftime('%s', 'now'), "
                        "started_at = ? WHERE id = ?",
                        (worker, now(), row["id"]),
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return None if row is None else self.get(row["id"])

    def update(self, job_id: str, progress: dict[str, Any]) -> bool:
        """Record progress and a heartbeat; returns True when a cancel was requested."""
        with self._connect() as db:
            db.execute(
                "UPDATE jobs SET progress = ?, heartbeat = strftime('%s', 'now') WHERE id = ? AND status = 'running'",
                (json.dumps(progress), job_id),
            )
            row = db.execute("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return bool(row and row["cancel_requested"])

    def finish(self, job_id: str, status: str, result: JobResult | None = None, error: str | None = None) -> None:
        """Move a running job to a final status."""
        if status not in FINAL:
            raise ValueError(f"status must be one of {FINAL}, got {status!r}")
        with self._connect() as db:
            db.execute(
                "UPDATE jobs SET status = ?, result = ?, error = ?, finished_at = ? "
                "WHERE id = ? AND status = 'running'",
                (status, None if result is None else json.dumps(asdict(result)), error, now(), job_id),
            )

    def requeue(self, job_id: str) -> None:
        """Put a running job back in the queue (its worker is shutting down)."""
        with self._connect() as db:
            db.execute(
                "UPDATE jobs SET status = 'queued', worker = NULL, started_at = NULL, progress = NULL "
                "WHERE id = ? AND status = 'running'",
                (job_id,),
            )

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued job at once, or ask its worker to stop a running one at the next epoch."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                db.execute("ROLLBACK")
                raise JobNotFoundError(f"job {job_id!r} not found")
            if row["status"] in FINAL:
                db.execute("ROLLBACK")
                raise JobStateError(f"job {job_id!r} is already {row['status']}")
            if row["status"] == "queued":
                db.execute(
                    "UPDATE jobs SET status = 'cancelled', cancel_requested = 1, finished_at = ? WHERE id = ?",
                    (now(), job_id),
                )
            else:
                db.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))
            db.execute("COMMIT")
        return self.get(job_id)

    def release_abandoned(self, stale_after: float = 120.0) -> list[Job]:
        """Fail the running jobs whose worker is dead: gone from this host, or silent for ``stale_after`` s."""
        failed = []
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            rows = db.execute(
                "SELECT id, worker, strftime('%s', 'now') - heartbeat AS silent FROM jobs WHERE status = 'running'"
            ).fetchall()
            for row in rows:
                if worker_gone(row["worker"]) or (row["silent"] or 0) > stale_after:
                    db.execute(
                        "UPDATE jobs SET status = 'failed', error = 'worker stopped', finished_at = ? WHERE id = ?",
                        (now(), row["id"]),
                    )
                    failed.append(row["id"])
            db.execute("COMMIT")
        return [self.get(job_id) for job_id in failed]

    def heartbeat(self, worker: str) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO workers (identity, seen_at) VALUES (?, strftime('%s', 'now')) "
                "ON CONFLICT (identity) DO UPDATE SET seen_at = excluded.seen_at",
                (worker,),
            )

    def last_heartbeat(self) -> float | None:
        try:
            with self._connect() as db:
                row = db.execute(
                    "SELECT MAX(t) FROM (SELECT MAX(seen_at) AS t FROM workers "
                    "UNION ALL SELECT MAX(heartbeat) FROM jobs WHERE status = 'running')"
                ).fetchone()
        except (sqlite3.Error, OSError) as exc:
            raise QueueUnavailableError(f"the job queue {self.path} cannot be read: {exc}") from None
        return None if row[0] is None else float(row[0])

    def export(self, after: int = 0, limit: int = 1000) -> list[tuple[int, Job]]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM jobs WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)).fetchall()
        return [(r["seq"], _job(r)) for r in rows]

    def import_jobs(self, jobs: Sequence[Job]) -> int:
        check_finished(jobs)
        query = f"INSERT OR IGNORE INTO jobs ({IMPORT_COLUMNS}) VALUES ({', '.join('?' * 12)})"
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            added = sum(db.execute(query, job.import_values(json.dumps)).rowcount for job in jobs)
            db.execute("COMMIT")
        return added

    def counts(self) -> dict[str, int]:
        """Jobs per status (what a dashboard or a test wants to know at a glance)."""
        with self._connect() as db:
            rows = db.execute("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status").fetchall()
        return {r["status"]: r["n"] for r in rows}


def _job(row: sqlite3.Row) -> Job:
    result = row["result"]
    return Job(
        id=row["id"],
        model=row["model"],
        status=row["status"],
        request=RetrainRequest.from_json(json.loads(row["request"])),
        progress=None if row["progress"] is None else json.loads(row["progress"]),
        result=None if result is None else JobResult.from_json(json.loads(result)),
        error=row["error"],
        cancel_requested=bool(row["cancel_requested"]),
        worker=row["worker"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )
