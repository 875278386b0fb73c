"""The audit log: who did what to which model, when, and how it ended: every admin action and feedback call.

``AuditLog`` is what every backend promises (``tests/contract/test_audit_contract.py`` checks it); the
embedded backend is SQLite in ``<store>/.audit.sqlite3``, the shared one the ``audit`` table of PostgreSQL
(``pg_audit.py``, migration 10). An entry names the actor (a key's public id, ``bootstrap`` for
NNSERVE_ADMIN_TOKEN, ``token`` for feedback carried by feedback tokens, ``cli`` for a command run where the
store is; None for a caller that sent no credential), never a secret nor anything of a request's body.

Refused calls are recorded too, so the log is bounded however many a stranger sends: every ``trim_every``-th
entry trims the log to its newest ``keep_rows`` (NNSERVE_AUDIT_KEEP_ROWS, over every model: a stranger
chooses the model names of its URLs) and removes entries older than ``keep_days`` (NNSERVE_AUDIT_KEEP_DAYS),
as the retraining worker's pass does beside the prediction log's retention.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from service import config
from service.store.drivers import require_postgres
from service.store.sqlite_threads import ThreadConnections

DATABASE = ".audit.sqlite3"
DAY = 86_400.0
OUTCOMES = ("ok", "refused", "failed")
ACTIONS = (
    "activate",
    "retrain",
    "cancel",
    "rollout-stop",
    "key-create",
    "key-revoke",
    "feedback",
    "feedback-purge",
    "rotate-secret",
    "gc",
)
CLI = "cli"  # the actor of commands run where the store is (nnserve activate, gc, keys, feedback purge)
DETAIL_CHARS = 300
KEEP_ROWS = int(config.value("NNSERVE_AUDIT_KEEP_ROWS", {}))  # the settings' defaults
KEEP_DAYS = float(config.value("NNSERVE_AUDIT_KEEP_DAYS", {}))
COLUMNS = "seq, at, actor, action, model, outcome, status, detail"

_KEY = re.compile(r"nns_([A-Za-z0-9]{1,64})_[A-Za-z0-9_-]+")  # a whole key, pasted where an id belongs

Execute = Callable[[str, tuple[Any, ...]], Any]


@dataclass(frozen=True)
class AuditEntry:
    """One recorded action. ``status`` is the HTTP status of a call (None for a command); ``detail`` a short
    sentence (what changed, or why it was refused or failed); ``seq`` is given by the log."""

    action: str
    outcome: str
    actor: str | None = None
    model: str | None = None
    status: int | None = None
    detail: str = ""
    at: float = 0.0  # unix time; 0: when it is recorded
    seq: int = 0

    def __post_init__(self) -> None:
        if self.action not in ACTIONS or self.outcome not in OUTCOMES:
            raise ValueError(f"an audit entry's action is one of {ACTIONS} and outcome one of {OUTCOMES}")

    def values(self) -> tuple[Any, ...]:
        """The columns a record writes, in ``COLUMNS`` order after ``seq``."""
        at = self.at or time.time()
        detail = _KEY.sub(r"nns_\1_<secret>", self.detail)[:DETAIL_CHARS]
        return (at, self.actor, self.action, self.model, self.outcome, self.status, detail)

    def to_json(self) -> dict[str, Any]:
        """As ``GET /v1/audit`` and ``nnserve audit --json`` show it: the time in ISO 8601 UTC."""
        return {
            "seq": self.seq,
            "at": datetime.fromtimestamp(self.at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "actor": self.actor,
            "action": self.action,
            "model": self.model,
            "outcome": self.outcome,
            "status": self.status,
            "detail": self.detail,
        }


class AuditLog(Protocol):
    """Every admin action and feedback call of a store, shared by its web workers, replicas and commands."""

    def record(self, entry: AuditEntry) -> None:
        """Append ``entry`` (every ``trim_every``-th one also applies the log's retention)."""
        ...

    def entries(
        self,
        model: str | None = None,
        since: float | None = None,
        limit: int = 100,
        *,
        models: Sequence[str] | None = None,
    ) -> list[AuditEntry]:
        """The newest ``limit`` entries (of ``model``; of ``models`` only, as for a key limited to models, which
        leaves out entries of no model; recorded at or after ``since``), newest first."""
        ...

    def prune(self, keep_rows: int, keep_days: float, now: float | None = None) -> int:
        """Keep the newest ``keep_rows`` entries and none older than ``keep_days``; returns the entries removed."""
        ...

    def export(self, after: int = 0, limit: int = 1000) -> list[AuditEntry]:
        """The oldest ``limit`` entries whose ``seq`` is above ``after``, oldest first: a chunk of ``store copy``."""
        ...

    def import_entries(self, entries: Iterable[AuditEntry]) -> int:
        """Add ``entries`` with their ``seq`` and time; a ``seq`` this log has already is left alone. Returns
        how many were added (no retention is applied)."""
        ...


def trim_interval(keep_rows: int) -> int:
    """How many entries go between two trims: the log holds at most ``keep_rows`` and a tenth more."""
    return max(1, min(1000, keep_rows // 10))


def entries_query(
    mark: str, model: str | None, since: float | None, limit: int, models: Sequence[str] | None = None
) -> tuple[str, tuple[Any, ...]]:
    """``AuditLog.entries`` as one parameterized query, for both backends."""
    where: list[str] = []
    args: list[Any] = []
    if model is not None:
        where.append(f"model = {mark}")
        args.append(model)
    if models is not None:
        where.append(f"model IN ({', '.join([mark] * len(models))})" if models else "1 = 0")
        args.extend(models)
    if since is not None:
        where.append(f"at >= {mark}")
        args.append(since)
    clause = f"WHERE {' AND '.join(where)} " if where else ""
    return f"SELECT {COLUMNS} FROM audit {clause}ORDER BY seq DESC LIMIT {mark}", (*args, limit)


EXPORT_QUERY = f"SELECT {COLUMNS} FROM audit WHERE seq > {{mark}} ORDER BY seq LIMIT {{mark}}"
IMPORT_QUERY = (
    f"INSERT INTO audit ({COLUMNS}) VALUES ({{marks}}) ON CONFLICT (seq) DO NOTHING"  # keeps a rerun idempotent
)


def import_row(e: AuditEntry) -> tuple[Any, ...]:
    return (e.seq, *e.values())


def prune_entries(execute: Execute, mark: str, keep_rows: int, cutoff: float) -> int:
    """``AuditLog.prune`` in the caller's transaction: entries older than ``cutoff`` and beyond the newest
    ``keep_rows``."""
    old = execute(f"DELETE FROM audit WHERE at < {mark}", (cutoff,)).rowcount
    beyond = execute(
        f"DELETE FROM audit WHERE seq <= (SELECT seq FROM audit ORDER BY seq DESC LIMIT 1 OFFSET {mark})",
        (keep_rows,),
    ).rowcount
    return max(old, 0) + max(beyond, 0)


def entry(row: tuple[Any, ...]) -> AuditEntry:
    seq, at, actor, action, model, outcome, status, detail = row
    return AuditEntry(action, outcome, actor, model, status, detail, at, seq)


class SqliteAuditLog:
    """The audit log of one store in ``<store>/.audit.sqlite3`` (0600, WAL; created on the first entry).

    Each thread keeps its connection (a new one in a forked child): opening one per entry made SQLite checkpoint
    the WAL whenever the last connection closed, about 90 times the cost of an entry (measured once here), which
    a stranger's refused calls would have made a web worker pay. ``synchronous = NORMAL``: an entry survives a
    crash of the process, and all but the last ones since a checkpoint survive a power loss.
    """

    _SCHEMA = """
    CREATE TABLE IF NOT EXISTS audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        actor TEXT,
        action TEXT NOT NULL,
        model TEXT,
        outcome TEXT NOT NULL,
        status INTEGER,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX IF NOT EXISTS audit_model_seq ON audit (model, seq);
    CREATE INDEX IF NOT EXISTS audit_at ON audit (at);
    """

    def __init__(
        self, store_root: str | os.PathLike[str], keep_rows: int = KEEP_ROWS, keep_days: float = KEEP_DAYS
    ) -> None:
        self.path = Path(store_root) / DATABASE
        self.keep_rows, self.keep_days = keep_rows, keep_days
        self._connect = ThreadConnections(
            self._open, f"the audit log {self.path}", (sqlite3.OperationalError, OSError)
        ).connect

    def _open(self) -> sqlite3.Connection:
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(self._SCHEMA)
        return db

    def record(self, entry: AuditEntry) -> None:
        with self._connect() as db:
            seq = db.execute(
                "INSERT INTO audit (at, actor, action, model, outcome, status, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
                entry.values(),
            ).lastrowid
            if seq is not None and seq % trim_interval(self.keep_rows) == 0:
                prune_entries(db.execute, "?", self.keep_rows, time.time() - self.keep_days * DAY)

    def entries(
        self,
        model: str | None = None,
        since: float | None = None,
        limit: int = 100,
        *,
        models: Sequence[str] | None = None,
    ) -> list[AuditEntry]:
        if not self.path.exists():
            return []
        query, args = entries_query("?", model, since, limit, models)
        with self._connect() as db:
            return [entry(row) for row in db.execute(query, args).fetchall()]

    def prune(self, keep_rows: int, keep_days: float, now: float | None = None) -> int:
        if not self.path.exists():
            return 0
        cutoff = (time.time() if now is None else now) - keep_days * DAY
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            removed = prune_entries(db.execute, "?", keep_rows, cutoff)
            db.execute("COMMIT")
        return removed

    def export(self, after: int = 0, limit: int = 1000) -> list[AuditEntry]:
        if not self.path.exists():
            return []
        with self._connect() as db:
            return [entry(row) for row in db.execute(EXPORT_QUERY.format(mark="?"), (after, limit)).fetchall()]

    def import_entries(self, entries: Iterable[AuditEntry]) -> int:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            added = sum(
                db.execute(IMPORT_QUERY.format(marks=", ".join("?" * 8)), import_row(e)).rowcount for e in entries
            )
            db.execute("COMMIT")
        return added


def open_audit_log(
    store_root: str | os.PathLike[str],
    database_url: str | None = None,
    keep_rows: int = KEEP_ROWS,
    keep_days: float = KEEP_DAYS,
) -> AuditLog:
    """The audit log beside the store the configuration names, keeping ``keep_rows`` entries of ``keep_days``."""
    if database_url:
        require_postgres()
        from service.store.pg_audit import PostgresAuditLog  # psycopg only for those who use it

        return PostgresAuditLog(database_url, keep_rows, keep_days)
    return SqliteAuditLog(store_root, keep_rows, keep_days)


def configured_audit_log(store_root: str | os.PathLike[str], settings: Mapping[str, Any]) -> AuditLog:
    """``open_audit_log`` with the database and retention of ``settings`` (``config.from_environ()`` or an app's)."""
    return open_audit_log(
        store_root,
        settings.get("NNSERVE_DATABASE_URL"),
        int(settings["NNSERVE_AUDIT_KEEP_ROWS"]),
        float(settings["NNSERVE_AUDIT_KEEP_DAYS"]),
    )
