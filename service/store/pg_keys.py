"""API keys in PostgreSQL (migration 7): ``api_keys`` holds each key's record and the SHA-256 of its secret.

Creating or revoking a key bumps ``changed`` (the stamp every web worker compares) and sends
``NOTIFY nnserve_activation, '#keys'`` in the same transaction, so every replica's activation watcher
refreshes its ``KeyRing`` at once.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from datetime import datetime

from service.store.exceptions import NotFoundError
from service.store.keys import KEYS_CHANGED, KeyRecord, new_key
from service.store.postgres import ACTIVATION_CHANNEL, Database

_COLUMNS = "id, name, scopes, models, digest, created, expires, last_used, revoked"


class PostgresKeyStore:
    """Keys in the database at ``database_url`` (the pool the store and the prediction log share)."""

    def __init__(self, database_url: str, migrate: bool = True) -> None:
        self.db = Database.shared(database_url)
        if migrate:
            self.db.migrate()

    def create(
        self, name: str, scopes: Iterable[str], models: Iterable[str] = (), expires_days: float | None = None
    ) -> tuple[KeyRecord, str]:
        record, key = new_key(name, scopes, models, expires_days)
        self.import_records([record])
        return record, key

    def records(self) -> list[KeyRecord]:
        with self.db.connection() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM api_keys ORDER BY created, id").fetchall()
        return [KeyRecord(r[0], r[1], tuple(r[2]), tuple(r[3]), *r[4:]) for r in rows]

    def revoke(self, key_id: str) -> KeyRecord:
        with self.db.connection() as conn, conn.transaction():
            row = conn.execute(
                "UPDATE api_keys SET revoked = coalesce(revoked, now()), changed = nextval('api_keys_changed') "
                f"WHERE id = %s RETURNING {_COLUMNS}",
                (key_id,),
            ).fetchone()
            if row is None:
                raise NotFoundError(f"no key {key_id!r}")
            conn.execute("SELECT pg_notify(%s, %s)", (ACTIVATION_CHANNEL, KEYS_CHANGED))
        return KeyRecord(row[0], row[1], tuple(row[2]), tuple(row[3]), *row[4:])

    def stamp(self) -> Hashable:
        with self.db.connection() as conn:
            row = conn.execute("SELECT count(*), max(changed) FROM api_keys").fetchone()
        return None if row is None else tuple(row)

    def import_records(self, records: Iterable[KeyRecord]) -> int:
        added = 0
        with self.db.connection() as conn, conn.transaction():
            for r in records:
                added += conn.execute(
                    f"INSERT INTO api_keys ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (id) DO NOTHING",
                    (
                        r.id,
                        r.name,
                        list(r.scopes),
                        list(r.models),
                        r.digest,
                        r.created,
                        r.expires,
                        r.last_used,
                        r.revoked,
                    ),
                ).rowcount
            if added:
                conn.execute("SELECT pg_notify(%s, %s)", (ACTIVATION_CHANNEL, KEYS_CHANGED))
        return added

    def touch(self, used: Mapping[str, datetime]) -> None:
        with self.db.connection() as conn:
            conn.execute(
                "UPDATE api_keys k SET last_used = greatest(k.last_used, u.at) "
                "FROM unnest(%s::text[], %s::timestamptz[]) AS u(id, at) WHERE k.id = u.id",
                (list(used), list(used.values())),
            )
