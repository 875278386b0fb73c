"""The PostgreSQL schema as numbered migrations, applied once per database under an advisory lock.

Each migration runs in its own transaction together with its ``schema_migrations`` row, and the whole
upgrade holds ``pg_advisory_lock``, so N replicas starting at once apply each migration exactly once.
Migrations are append-only: a released one is never edited.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the driver comes with the postgres extra: imported by the backends that use it
    import psycopg

LOCK_KEY = 0x6E6E_7365_7276_6501  # "nnserve\x01": the advisory lock of schema upgrades


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "store: blobs, versions, active pointers, datasets",
        """
        CREATE TABLE blobs (
            sha256 text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
            data bytea NOT NULL
        );
        CREATE TABLE models (
            name text PRIMARY KEY,
            active_version integer,
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE versions (
            name text NOT NULL REFERENCES models (name),
            version integer NOT NULL CHECK (version > 0),
            files jsonb NOT NULL,
            job_id text UNIQUE,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (name, version)
        );
        ALTER TABLE models ADD FOREIGN KEY (name, active_version) REFERENCES versions (name, version)
            DEFERRABLE INITIALLY DEFERRED;
        CREATE TABLE datasets (
            name text NOT NULL REFERENCES models (name),
            sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
            blob text NOT NULL REFERENCES blobs (sha256),
            PRIMARY KEY (name, sha256)
        );
        CREATE FUNCTION nnserve_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'nnserve: % rows are immutable (% refused)', TG_TABLE_NAME, TG_OP
                USING ERRCODE = 'integrity_constraint_violation';
        END $$;
        CREATE TRIGGER versions_immutable BEFORE UPDATE OR DELETE ON versions
            FOR EACH ROW EXECUTE FUNCTION nnserve_immutable();
        CREATE TRIGGER blobs_immutable BEFORE UPDATE OR DELETE ON blobs
            FOR EACH ROW EXECUTE FUNCTION nnserve_immutable();
        CREATE TRIGGER datasets_immutable BEFORE UPDATE OR DELETE ON datasets
            FOR EACH ROW EXECUTE FUNCTION nnserve_immutable();
        """,
    ),
    Migration(
        2,
        "queue: jobs with leases",
        """
        CREATE TABLE jobs (
            seq bigserial PRIMARY KEY,
            id text UNIQUE NOT NULL,
            model text NOT NULL,
            status text NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
            request jsonb NOT NULL,
            progress jsonb,
            result jsonb,
            error text,
            cancel_requested boolean NOT NULL DEFAULT false,
            worker text,
            attempts integer NOT NULL DEFAULT 0,
            max_attempts integer NOT NULL DEFAULT 3,
            lease_expires_at timestamptz,
            created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            started_at timestamptz,
            finished_at timestamptz
        );
        CREATE INDEX jobs_queued ON jobs (seq) WHERE status = 'queued';
        CREATE INDEX jobs_model_status ON jobs (model, status);
        CREATE UNIQUE INDEX jobs_one_running_per_model ON jobs (model) WHERE status = 'running';
        """,
    ),
    Migration(
        3,
        "queue: worker heartbeats",
        """
        CREATE TABLE workers (identity text PRIMARY KEY, seen_at timestamptz NOT NULL);
        ALTER TABLE jobs ADD COLUMN heartbeat_at timestamptz;
        """,
    ),
    Migration(
        4,
        "store: retention (previous version, pins, gc) and appended datasets as chunks",
        """
        ALTER TABLE models ADD COLUMN previous_version integer;
        ALTER TABLE models ADD FOREIGN KEY (name, previous_version) REFERENCES versions (name, version)
            DEFERRABLE INITIALLY DEFERRED;
        CREATE TABLE pins (
            name text NOT NULL,
            version integer NOT NULL,
            PRIMARY KEY (name, version),
            FOREIGN KEY (name, version) REFERENCES versions (name, version)
        );
        -- A dataset is its base blob followed by the blobs of the rows appended to it (jsonb array of sha256);
        -- rows is NULL for datasets stored before this migration, which are then never the base of an append.
        ALTER TABLE datasets ADD COLUMN rows integer CHECK (rows > 0);
        ALTER TABLE datasets ADD COLUMN chunks jsonb NOT NULL DEFAULT '[]';
        -- Rows stay immutable; retention (gc) may delete them, in a transaction that says so.
        CREATE OR REPLACE FUNCTION nnserve_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'DELETE' AND current_setting('nnserve.retention', true) = 'on' THEN
                RETURN OLD;
            END IF;
            RAISE EXCEPTION 'nnserve: % rows are immutable (% refused)', TG_TABLE_NAME, TG_OP
                USING ERRCODE = 'integrity_constraint_violation';
        END $$;
        """,
    ),
    Migration(
        5,
        "monitoring: the prediction log",
        """
        CREATE TABLE predictions (
            seq bigserial PRIMARY KEY,
            model text NOT NULL,
            request_id text NOT NULL,
            row_index integer NOT NULL CHECK (row_index >= 0),
            version integer NOT NULL,
            logged_at double precision NOT NULL,
            inputs jsonb NOT NULL,
            output jsonb NOT NULL,
            probabilities jsonb,
            target jsonb,
            labelled_at double precision,
            UNIQUE (model, request_id, row_index)
        );
        CREATE INDEX predictions_model_seq ON predictions (model, seq);
        CREATE INDEX predictions_model_version_seq ON predictions (model, version, seq);
        """,
    ),
    Migration(
        6,
        "rollouts: a model's canary or shadow record; the log keeps each version's answer and failures",
        """
        ALTER TABLE models ADD COLUMN rollout jsonb;
        -- A shadow or a failed canary row sits beside the answer of the same request: one row per version.
        ALTER TABLE predictions DROP CONSTRAINT predictions_model_request_id_row_index_key;
        ALTER TABLE predictions ADD UNIQUE (model, request_id, row_index, version);
        ALTER TABLE predictions ADD COLUMN shadow boolean NOT NULL DEFAULT false;
        ALTER TABLE predictions ADD COLUMN error text;
        ALTER TABLE predictions ALTER COLUMN output DROP NOT NULL;
        """,
    ),
    Migration(
        7,
        "monitoring: labels with provenance; server secrets (feedback tokens)",
        """
        -- Labels given before this migration keep source NULL: no spec trusts them.
        ALTER TABLE predictions ADD COLUMN label_source text CHECK (label_source IN ('key', 'token'));
        ALTER TABLE predictions ADD COLUMN label_key text;
        CREATE TABLE secrets (
            name text PRIMARY KEY,
            value bytea NOT NULL CHECK (length(value) >= 32),
            created_at timestamptz NOT NULL DEFAULT now()
        );
        """,
    ),
    Migration(
        8,
        "api keys: scopes, models, expiry, revocation; only the SHA-256 of a key's secret",
        """
        CREATE SEQUENCE api_keys_changed;
        CREATE TABLE api_keys (
            id text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{12}$'),
            name text NOT NULL,
            scopes text[] NOT NULL,
            models text[] NOT NULL,
            digest text NOT NULL CHECK (digest ~ '^[0-9a-f]{64}$'),
            created timestamptz NOT NULL,
            expires timestamptz,
            last_used timestamptz,
            revoked timestamptz,
            changed bigint NOT NULL DEFAULT nextval('api_keys_changed')
        );
        """,
    ),
    Migration(
        9,
        "monitoring snapshots: live metrics and drift per model and window, as the retraining worker computed them",
        """
        CREATE TABLE monitoring_snapshots (
            model text NOT NULL,
            window_rows integer NOT NULL CHECK (window_rows > 0),
            computed_at double precision,
            figures jsonb,
            PRIMARY KEY (model, window_rows)
        );
        """,
    ),
    Migration(
        10,
        "audit: admin actions and feedback calls, who made them and how they ended",
        """
        CREATE TABLE audit (
            seq bigserial PRIMARY KEY,
            at double precision NOT NULL,
            actor text,
            action text NOT NULL,
            model text,
            outcome text NOT NULL CHECK (outcome IN ('ok', 'refused', 'failed')),
            status integer,
            detail text NOT NULL DEFAULT ''
        );
        CREATE INDEX audit_model_seq ON audit (model, seq);
        CREATE INDEX audit_at ON audit (at);
        """,
    ),
)


@dataclass(frozen=True)
class Status:
    applied: list[int]
    pending: list[Migration]


def _applied(conn: psycopg.Connection) -> list[int]:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        "version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    return [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]


def status(conn: psycopg.Connection) -> Status:
    """Which migrations this database has, and which it still needs."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))  # the CREATE TABLE IF NOT EXISTS may race
        applied = _applied(conn)
    return Status(applied, [m for m in MIGRATIONS if m.version not in applied])


def upgrade(conn: psycopg.Connection) -> list[Migration]:
    """Apply the pending migrations in order under the advisory lock; returns those this call applied."""
    done = []
    conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    try:
        with conn.transaction():
            applied = set(_applied(conn))
        for migration in MIGRATIONS:
            if migration.version in applied:
                continue
            with conn.transaction():
                conn.execute(migration.sql.encode())
                conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (migration.version, migration.name)
                )
            done.append(migration)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    return done
