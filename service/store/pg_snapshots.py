"""Monitoring snapshots in PostgreSQL (``migrations.py`` migration 9), shared by every replica of one database.

The same promises as the files of ``snapshots.FileSnapshots``; every statement is parameterized.
"""

from __future__ import annotations

from psycopg.types.json import Jsonb

from service.store.postgres import Database
from service.store.snapshots import Snapshot


class PostgresSnapshots:
    """Snapshots in the ``monitoring_snapshots`` table of the database at ``database_url`` (schema applied on open)."""

    def __init__(self, database_url: str, migrate: bool = True) -> None:
        self.db = Database.shared(database_url)
        if migrate:
            self.db.migrate()

    def read(self, model: str, window: int) -> Snapshot | None:
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT computed_at, figures FROM monitoring_snapshots WHERE model = %s AND window_rows = %s",
                (model, window),
            ).fetchone()
        return None if row is None else Snapshot(model, window, row[0], row[1])

    def ask(self, model: str, window: int, most: int) -> bool:
        with self.db.connection() as conn:
            conn.execute(
                "INSERT INTO monitoring_snapshots (model, window_rows) SELECT %s, %s "
                "WHERE (SELECT count(*) FROM monitoring_snapshots WHERE model = %s) < %s ON CONFLICT DO NOTHING",
                (model, window, model, most),
            )
            row = conn.execute(
                "SELECT 1 FROM monitoring_snapshots WHERE model = %s AND window_rows = %s", (model, window)
            ).fetchone()
        return row is not None

    def windows(self, model: str) -> list[int]:
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT window_rows FROM monitoring_snapshots WHERE model = %s ORDER BY window_rows", (model,)
            ).fetchall()
        return [r[0] for r in rows]

    def write(self, snapshot: Snapshot) -> None:
        figures = None if snapshot.figures is None else Jsonb(snapshot.figures)
        with self.db.connection() as conn:
            conn.execute(
                "INSERT INTO monitoring_snapshots (model, window_rows, computed_at, figures) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (model, window_rows) DO UPDATE SET computed_at = EXCLUDED.computed_at, "
                "figures = EXCLUDED.figures",
                (snapshot.model, snapshot.window, snapshot.computed_at, figures),
            )
