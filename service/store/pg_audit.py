"""The audit log in PostgreSQL (``migrations.py`` migration 10): the ``audit`` table, shared by every replica.

The same promises as the SQLite log (``audit.AuditLog``); every statement is parameterized.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from service.store.audit import (
    DAY,
    EXPORT_QUERY,
    IMPORT_QUERY,
    KEEP_DAYS,
    KEEP_ROWS,
    AuditEntry,
    entries_query,
    entry,
    import_row,
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

    def entries(
        self,
        model: str | None = None,
        since: float | None = None,
        limit: int = 100,
        *,
        models: Sequence[str] | None = None,
    ) -> list[AuditEntry]:
        query, args = entries_query("%s", model, since, limit, models)
        with self.db.connection() as conn:
            return [entry(tuple(row)) for row in conn.execute(query.encode(), args).fetchall()]

    def prune(self, keep_rows: int, keep_days: float, now: float | None = None) -> int:
        cutoff = (time.time() if now is None else now) - keep_days * DAY
        with self.db.connection() as conn, conn.transaction():
            return prune_entries(lambda query, args: conn.execute(query.encode(), args), "%s", keep_rows, cutoff)

    def export(self, after: int = 0, limit: int = 1000) -> list[AuditEntry]:
        with self.db.connection() as conn:
            rows = conn.execute(EXPORT_QUERY.format(mark="%s").encode(), (after, limit)).fetchall()
        return [entry(tuple(row)) for row in rows]

    def import_entries(self, entries: Iterable[AuditEntry]) -> int:
        query = IMPORT_QUERY.format(marks=", ".join(["%s"] * 8)).encode()
        with self.db.connection() as conn, conn.transaction():
            added = sum(conn.execute(query, import_row(e)).rowcount for e in entries)
            if added:  # the next recorded entry numbers after the imported ones
                conn.execute("SELECT setval('audit_seq_seq', greatest((SELECT max(seq) FROM audit), 1))")
        return added
