"""The prediction log in PostgreSQL (``migrations.py`` migrations 5, 6 and 7), shared by every replica of one
database.

The same promises as the SQLite log (``monitoring.PredictionLog``); every statement is parameterized.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from service.store.monitoring import (
    DAY,
    EXPORT_QUERY,
    INSERT_COLUMNS,
    LABEL_COLUMNS,
    Execute,
    Label,
    LabelCount,
    Labelled,
    LoggedPrediction,
    label_counts_query,
    label_rows,
    new_secret,
    prune_rows,
    purge_query,
    recent_query,
)
from service.store.postgres import Database


class PostgresPredictionLog:
    """Predictions in the ``predictions`` table of the database at ``database_url`` (schema applied on open)."""

    def __init__(self, database_url: str, migrate: bool = True) -> None:
        self.db = Database.shared(database_url)
        if migrate:
            self.db.migrate()

    def append(self, records: Sequence[LoggedPrediction]) -> int:
        return self._insert(records, labels=False)

    def import_rows(self, records: Sequence[LoggedPrediction]) -> int:
        return self._insert(records, labels=True)

    def _insert(self, records: Sequence[LoggedPrediction], labels: bool) -> int:
        rows = [r.insert_values(Jsonb, labels) for r in records]
        columns = INSERT_COLUMNS.replace("row,", "row_index,") + (f", {LABEL_COLUMNS}" if labels else "")
        marks = ", ".join(["%s"] * (14 if labels else 10))
        query = f"INSERT INTO predictions ({columns}) VALUES ({marks}) ON CONFLICT DO NOTHING".encode()
        with self.db.connection() as conn, conn.transaction(), conn.cursor() as cursor:
            cursor.executemany(query, rows)
            return max(cursor.rowcount, 0)

    def import_secret(self, name: str, value: bytes) -> bool:
        query = "INSERT INTO secrets (name, value) VALUES (%s, %s) ON CONFLICT DO NOTHING"
        with self.db.connection() as conn:
            return bool(conn.execute(query, (name, value)).rowcount)

    def export(self, after: int = 0, limit: int = 1000) -> list[tuple[int, LoggedPrediction]]:
        with self.db.connection() as conn:
            query = EXPORT_QUERY.format(mark="%s").encode()
            rows = conn.cursor(row_factory=dict_row).execute(query, (after, limit)).fetchall()
        return [(r["seq"], _logged(r)) for r in rows]

    def label(
        self,
        model: str,
        labels: Sequence[Label],
        *,
        source: str,
        key: str | None = None,
        replace: bool = False,
        now: float | None = None,
    ) -> Labelled:
        at = time.time() if now is None else now
        with self.db.connection() as conn, conn.transaction():
            return label_rows(_execute(conn), "%s", "row_index", model, labels, Jsonb, (source, key, at), replace)

    def purge_labels(self, model: str, key: str) -> int:
        with self.db.connection() as conn:
            return max(conn.execute(purge_query("%s").encode(), (model, key)).rowcount, 0)

    def label_counts(self, model: str) -> list[LabelCount]:
        with self.db.connection() as conn:
            rows = conn.execute(label_counts_query("%s", "row_index").encode(), (model,)).fetchall()
        return [LabelCount(*r) for r in rows]

    def logged(self, model: str, request_id: str) -> bool:
        query = "SELECT 1 FROM predictions WHERE model = %s AND request_id = %s LIMIT 1"
        with self.db.connection() as conn:
            return conn.execute(query, (model, request_id)).fetchone() is not None

    def secret(self, name: str, rotate: bool = False) -> bytes:
        with self.db.connection() as conn, conn.transaction():
            if rotate:
                conn.execute(
                    "INSERT INTO secrets (name, value) VALUES (%s, %s) "
                    "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, created_at = now()",
                    (name, new_secret()),
                )
            else:
                conn.execute(
                    "INSERT INTO secrets (name, value) VALUES (%s, %s) ON CONFLICT DO NOTHING", (name, new_secret())
                )
            (value,) = conn.execute("SELECT value FROM secrets WHERE name = %s", (name,)).fetchone() or (b"",)
        return bytes(value)

    def recent(
        self,
        model: str,
        limit: int,
        *,
        version: int | None = None,
        labelled: bool = False,
        since: float | None = None,
        sources: Collection[str] | None = None,
    ) -> list[LoggedPrediction]:
        query, args = recent_query("%s", model, limit, version, labelled, since, sources)
        with self.db.connection() as conn:
            rows = conn.cursor(row_factory=dict_row).execute(query.encode(), args).fetchall()
        return [_logged(r) for r in rows]

    def prune(self, keep_rows: int, keep_days: float, now: float | None = None) -> dict[str, int]:
        cutoff = (time.time() if now is None else now) - keep_days * DAY
        with self.db.connection() as conn, conn.transaction():
            return prune_rows(_execute(conn), "%s", cutoff, keep_rows)


def _execute(conn: psycopg.Connection[Any]) -> Execute:
    """``conn.execute`` for the shared statements of ``monitoring.py`` (built text, so sent as bytes)."""
    return lambda query, args: conn.execute(query.encode(), args)


def _logged(row: dict[str, Any]) -> LoggedPrediction:
    return LoggedPrediction(
        model=row["model"],
        request_id=row["request_id"],
        row=row["row_index"],
        version=row["version"],
        logged_at=row["logged_at"],
        inputs=row["inputs"],
        output=row["output"],
        probabilities=row["probabilities"],
        shadow=row["shadow"],
        error=row["error"],
        target=row["target"],
        labelled_at=row["labelled_at"],
        label_source=row["label_source"],
        label_key=row["label_key"],
    )
