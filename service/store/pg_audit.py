"""The audit log in PostgreSQL (``migrations.py`` migration 10): the ``audit`` table, shared by every replica.

The same promises as the SQLite log (``audit.AuditLog``); every statement is parameterized.
"""

from __future__ import annotations

import time

from service.store.audit import (
    DAY,
    KEEP_DAYS,
    KEEP_ROWS,
    AuditEntry,
    entries_query,
    entry,
    prune_entries,
    trim_interval,
)
from service.store.postgres import Database


class PostgresAuditLog:
    """Entries in the ``audit`` table of the database at ``database_url`` (the pool the store shares)."""

    def __init__(
        self, database_url: str, keep_rows: int = KEEP_ROWS, keep_days: float = KEEP_DAYS, migrate: bool = True
    ) -> None:
        self.db = Database.shared(database_url)
        self.keep_rows, self.keep_days = keep_rows, keep_days
        if migrate:
            self.db.migrate()

    def record(self, entry: AuditEntry) -> None:
        with self.db.connection() as conn, conn.transaction():
            row = conn.execute(
                "INSERT INTO audit (at, actor, action, model, outcome, status, detail) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING seq",
                entry.values(),
            ).fetchone()
            if row is not None and row[0] % trim_interval(self.keep_rows) == 0:
                execute = lambda query, args: conn.execute(query.encode(), args)  # noqa: E731
                prune_entries(execute, "%s", self.keep_rows, time.time() - self.keep_days * DAY)

    def entries(self, model: str | None = None, since: float | None = None, limit: int = 100) -> list[AuditEntry]:
        query, args = entries_query("%s", model, since, limit)
        with self.db.connection() as conn:
            return [entry(tuple(row)) for row in conn.execute(query.encode(), args).fetchall()]

    def prune(self, keep_rows: int, keep_days: float, now: float | None = None) -> int:
        cutoff = (time.time() if now is None else now) - keep_days * DAY
        with self.db.connection() as conn, conn.transaction():
            return prune_entries(lambda query, args: conn.execute(query.encode(), args), "%s", keep_rows, cutoff)
