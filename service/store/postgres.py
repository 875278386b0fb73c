"""The PostgreSQL model store: versions as content-addressed blobs, shared by every replica.

A publish is one transaction (blobs, then the version row; the number is chosen under the model row's
lock, so racing publishers get distinct numbers). Versions, blobs and datasets are immutable: triggers
refuse UPDATE and DELETE (``migrations.py``). Every load is verified twice: each blob against its sha256
as it arrives, then the artifact against its manifest's checksums (``artifacts.verify``) in the node's
local cache directory, which keeps verified versions so a process re-downloads nothing it has. Activation
is one UPDATE plus ``NOTIFY nnserve_activation`` in the same transaction, for the replicas' listeners.
A database that cannot be reached is ``StoreUnavailableError`` (503), never a crash.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
import time
import zipfile
from collections.abc import Hashable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import psycopg
import psycopg_pool
from psycopg import sql
from psycopg.types.json import Jsonb

import nn
from service import config, tracing
from service.store import artifacts, dataset_codec, datasets, durable, migrations, retention
from service.store.breaker import CircuitBreaker
from service.store.dataset_codec import Dataset
from service.store.exceptions import (
    ActiveVersionChangedError,
    CorruptVersionError,
    NotFoundError,
    RolloutConflictError,
    StoreError,
    StoreUnavailableError,
    broken,
)
from service.store.filesystem import publishable
from service.store.inference import LoadedModel
from service.store.names import (
    MAX_VERSION,
    NAME_PATTERN,
    validate_name,
    validate_sha256,
    validate_version,
)
from service.store.protocol import UNSET, Unset, VersionInfo
from service.store.rollouts import Rollout
from service.version import __version__

if TYPE_CHECKING:
    from nn.estimators import BaseMLP

log = logging.getLogger(__name__)

ACTIVATION_CHANNEL = "nnserve_activation"
# "nnserve\x03": held while an empty database is filled with the catalog. Not BLOB_LOCK's key: the training
# under it publishes, which takes BLOB_LOCK on another connection (with one key, serve waited on itself).
CATALOG_LOCK_KEY = 0x6E6E_7365_7276_6503
# Blobs are shared by every model (content-addressed). Writers hold this advisory lock shared while they add
# and reference blobs; gc holds it exclusively while it deletes unreferenced ones, so it never deletes a blob
# a transaction in flight is about to reference. Taken before any model row, by everyone.
BLOB_LOCK = 0x6E6E_7365_7276_6502  # "nnserve\x02"


class Database:
    """A connection pool per process (a forked gunicorn worker opens its own), autocommit connections.

    ``Database.shared(url)`` is the one pool of a database in a process: the store, the job queue and the
    prediction log of one URL draw on it, so a pool that came back after an outage (as ``/readyz`` sees
    through the store) is the one job calls use too, and a process holds one set of connections, not three.

    Outages cost a call little: a connection takes at most ``NNSERVE_DB_CONNECT_TIMEOUT`` s to open and a call
    waits at most ``NNSERVE_DB_POOL_TIMEOUT`` s for a busy pool's (the connect timeout for one the pool must
    open); and once the database is known to be down (a connection
    could not be opened, or broke), ``breaker`` refuses every call at once (``StoreUnavailableError``, a 503)
    but one every ``NNSERVE_DB_RETRY_INTERVAL`` s, which probes with a connection of its own and, if the
    database is back, closes the breaker with a fresh pool.
    """

    _shared: ClassVar[dict[str, Database]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        url: str,
        max_size: int = 8,
        *,
        connect_timeout: int | None = None,
        pool_timeout: float | None = None,
        retry_interval: float | None = None,
    ) -> None:
        settings = config.from_environ()
        self.url = url
        self.max_size = max_size
        self.connect_timeout = int(connect_timeout or settings["NNSERVE_DB_CONNECT_TIMEOUT"])
        self.pool_timeout = float(pool_timeout or settings["NNSERVE_DB_POOL_TIMEOUT"])
        self.breaker = CircuitBreaker(float(retry_interval or settings["NNSERVE_DB_RETRY_INTERVAL"]))
        self._pool: psycopg_pool.ConnectionPool | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._connect_errors = 0  # the pool's failed connection attempts when a call last got a connection

    @classmethod
    def shared(cls, url: str) -> Database:
        """This process's pool of the database at ``url``."""
        with cls._shared_lock:
            if url not in cls._shared:
                cls._shared[url] = cls(url)
            return cls._shared[url]

    def _current(self) -> psycopg_pool.ConnectionPool:
        with self._lock:
            if self._pool is None or self._pid != os.getpid():
                self._pool = psycopg_pool.ConnectionPool(
                    self.url,
                    min_size=0,
                    max_size=self.max_size,
                    kwargs={"autocommit": True, "connect_timeout": self.connect_timeout},
                    timeout=self.pool_timeout,
                    check=psycopg_pool.ConnectionPool.check_connection,
                    open=True,
                )
                self._pid = os.getpid()
                self._connect_errors = 0
            return self._pool

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection; a database that cannot be reached raises ``StoreUnavailableError``."""
        admission = self.breaker.admit()
        if admission == "refused":
            raise StoreUnavailableError(self.breaker.refusal())  # its reason says "the database cannot be reached"
        if admission == "probe":
            self._probe()
        pool = self._current()
        acquired: psycopg.Connection[Any] | None = None
        try:
            # one span per call: the statements of one connection's use are one operation (a query or a transaction)
            with (
                tracing.child("postgresql", {"db.system.name": "postgresql"}),
                pool.connection(timeout=self._wait_bound(pool)) as conn,
            ):
                acquired = conn
                self._connect_errors = _connect_errors(pool)
                yield conn
        except psycopg.OperationalError as exc:  # PoolTimeout and PoolClosed too
            why = f"the database cannot be reached ({_first_line(exc)})"
            # Down, not merely busy: the pool failed to open a connection since a call last got one, or ours broke.
            if (acquired is None and _connect_errors(pool) > self._connect_errors) or (
                acquired is not None and acquired.broken
            ):
                self._down(pool, why)
            raise StoreUnavailableError(why) from None

    def _wait_bound(self, pool: psycopg_pool.ConnectionPool) -> float:
        """How long a call may wait: ``pool_timeout`` s in the queue for a busy pool, but ``connect_timeout`` s
        when the pool must open a connection for it (a cold pool, or every connection in use and room to grow),
        since opening one on a loaded machine can take longer than the queue's bound."""
        stats = pool.get_stats()
        if stats["pool_available"] == 0 and stats["pool_size"] < self.max_size:
            return max(self.pool_timeout, float(self.connect_timeout))
        return self.pool_timeout

    def _probe(self) -> None:
        """The breaker's probe: is the database back? A connection of its own, not the pool's (which may be
        waiting out its reconnection backoff); back, the next calls get a fresh pool."""
        try:
            psycopg.connect(self.url, autocommit=True, connect_timeout=self.connect_timeout).close()
        except psycopg.OperationalError as exc:
            why = f"the database cannot be reached ({_first_line(exc)})"
            self.breaker.failed(why)
            raise StoreUnavailableError(why) from None
        self.breaker.succeeded()

    def _down(self, pool: psycopg_pool.ConnectionPool, why: str) -> None:
        """Open the breaker and drop the pool: its connections are dead, and its retries would only wait."""
        self.breaker.failed(why)
        with self._lock:
            if self._pool is not pool:
                return  # another call dropped it already
            self._pool = None
        # closing joins the pool's threads (one may be connecting): not on a request's time
        threading.Thread(target=pool.close, name="nnserve-pool-close", daemon=True).start()

    def migrate(self) -> None:
        """Apply the pending migrations, as a backend opens on this database.

        A database that cannot be reached then is no reason not to start (a web worker replaced during an
        outage must boot, or gunicorn stops the whole server): the breaker opens, calls answer 503 until a
        probe finds the database again. Its schema is then the one the processes that started before applied;
        ``nnserve db upgrade`` (``upgrade``) still fails loudly.
        """
        try:
            upgrade(self.url)
        except StoreUnavailableError as exc:
            self.breaker.failed(str(exc))
            log.warning("schema migrations not checked, starting without the database: %s", exc)

    def close(self) -> None:
        with self._lock:
            if self._pool is not None and self._pid == os.getpid():
                self._pool.close()
            self._pool = None


def _connect_errors(pool: psycopg_pool.ConnectionPool) -> int:
    return int(pool.get_stats().get("connections_errors", 0))


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def connect(url: str) -> psycopg.Connection[Any]:
    """One autocommit connection (for migrations and LISTEN), unavailable errors mapped like the pool's."""
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=int(config.value("NNSERVE_DB_CONNECT_TIMEOUT")))
    except psycopg.OperationalError as exc:
        raise StoreUnavailableError(f"the database cannot be reached ({_first_line(exc)})") from None


def upgrade(url: str) -> list[migrations.Migration]:
    """Apply the pending schema migrations (once, however many processes call this at the same time)."""
    with connect(url) as conn:
        return migrations.upgrade(conn)


class PostgresModelStore:
    """Models in the PostgreSQL database at ``database_url``; verified versions cached under ``cache_root``."""

    def __init__(self, cache_root: str | os.PathLike[str], database_url: str, migrate: bool = True) -> None:
        self.root = Path(cache_root).absolute()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise StoreError(f"the cache directory {self.root} is not a directory") from None
        self.database_url = database_url
        self.db = Database.shared(database_url)
        self._listener: psycopg.Connection[Any] | None = None
        if migrate:
            self.db.migrate()

    # -- listing ---------------------------------------------------------------
    def model_names(self) -> list[str]:
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT m.name FROM models m WHERE EXISTS (SELECT 1 FROM versions v WHERE v.name = m.name) "
                "ORDER BY m.name"
            ).fetchall()
        return [r[0] for r in rows]

    def versions(self, name: str) -> list[int]:
        name = validate_name(name)
        with self.db.connection() as conn:
            self._require_model(conn, name)
            rows = conn.execute("SELECT version FROM versions WHERE name = %s ORDER BY version", (name,)).fetchall()
        return [r[0] for r in rows]

    def version_info(self, name: str) -> list[VersionInfo]:
        name = validate_name(name)
        versions = self.versions(name)
        active = self.active_version(name)
        infos = []
        for v in versions:
            try:
                infos.append(VersionInfo(name, v, v == active, self._materialize(name, v)[1], None))
            except CorruptVersionError as exc:
                infos.append(VersionInfo(name, v, v == active, None, str(exc)))
        return infos

    def active_version(self, name: str) -> int | None:
        value = self._model_column(name, "active_version")
        return None if value is None else int(value)

    def _model_column(self, name: str, column: str) -> Any:
        """One column of the model's row (``column`` is this module's constant, never a caller's text)."""
        name = validate_name(name)
        with self.db.connection() as conn:
            row = conn.execute(
                sql.SQL("SELECT {} FROM models WHERE name = %s").format(sql.Identifier(column)), (name,)
            ).fetchone()
        if row is None:
            raise NotFoundError(f"unknown model {name!r}")
        return row[0]

    def active_stamp(self, name: str) -> tuple[int, float] | None:
        """(active version, time of the last activation), None when none is active."""
        name = validate_name(name)
        with self.db.connection() as conn:
            row = conn.execute("SELECT active_version, updated_at FROM models WHERE name = %s", (name,)).fetchone()
        if row is None or row[0] is None:
            return None
        return int(row[0]), row[1].timestamp()

    def active_stamps(self) -> dict[str, Hashable | None]:
        """(active version, time of the last activation) of every model, in one query (the replicas' poll)."""
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT m.name, m.active_version, m.updated_at FROM models m "
                "WHERE EXISTS (SELECT 1 FROM versions v WHERE v.name = m.name)"
            ).fetchall()
        return {name: None if active is None else (int(active), at.timestamp()) for name, active, at in rows}

    # -- writing -----------------------------------------------------------------
    @tracing.traced("store.publish")
    def publish(
        self, name: str, estimator: BaseMLP, metadata: dict[str, Any] | None = None, job_id: str | None = None
    ) -> int:
        """Save ``estimator`` as the next version in one transaction; returns its number.

        With ``job_id`` (or a ``job_id`` in ``metadata``, as the retraining worker records it), at most one
        version per job: a retried job that already published gets that version back and nothing new is written.
        """
        name = validate_name(name)
        extra = publishable(estimator, metadata)
        if job_id is None and isinstance(extra.get("job_id"), str):
            job_id = extra["job_id"]
        with self.db.connection() as conn, conn.transaction():
            _lock_model(conn, name, blobs="shared")
            if job_id is not None:
                row = conn.execute("SELECT version FROM versions WHERE job_id = %s", (job_id,)).fetchone()
                if row is not None:
                    return int(row[0])
            row = conn.execute("SELECT max(version) FROM versions WHERE name = %s", (name,)).fetchone()
            version = (row[0] if row and row[0] else 0) + 1
            if version > MAX_VERSION:
                raise StoreError(f"model {name!r} has no version numbers left")
            stamp = {"name": name, "version": version, "created_at": _utc_now(), "nnserve_version": __version__}
            files = self._build(estimator, {**extra, **stamp})
            for data in files.values():
                _put_blob(conn, data)
            conn.execute(
                "INSERT INTO versions (name, version, files, job_id) VALUES (%s, %s, %s, %s)",
                (name, version, Jsonb({f: _sha256(d) for f, d in files.items()}), job_id),
            )
        return version

    def _build(self, estimator: BaseMLP, metadata: dict[str, Any]) -> dict[str, bytes]:
        tmp = durable.make_temp_dir(self.root)
        try:
            nn.save(estimator, tmp, metadata=metadata)
            return {p.name: p.read_bytes() for p in sorted(tmp.iterdir())}
        finally:
            durable.remove_entry(tmp)

    @tracing.traced("store.activate")
    def activate(self, name: str, version: int, expected: int | Unset | None = UNSET) -> int | None:
        """Make ``version`` active after rebuilding it; one UPDATE and a NOTIFY in one transaction."""
        name, version = validate_name(name), validate_version(version)
        self.load(name, version)
        try:
            with self.db.connection() as conn, conn.transaction():
                previous, rollout = self._switch(conn, name, version, expected)
                if rollout is not None and rollout.running:
                    why = f"version {version} was activated while the rollout ran"
                    self._set_rollout(conn, name, rollout.ended("superseded", why, time.time()))
        except psycopg.errors.ForeignKeyViolation:  # gc removed it between the load and the update
            raise NotFoundError(f"model {name!r} has no version {version}") from None
        return previous

    def _switch(
        self, conn: psycopg.Connection[Any], name: str, version: int, expected: int | Unset | None
    ) -> tuple[int | None, Rollout | None]:
        """Point the model at ``version`` (compare-and-swap with ``expected``) and NOTIFY, in the caller's
        transaction; returns the version replaced and the model's rollout record."""
        previous, before, rollout = self._lock_row(conn, name)
        if not isinstance(expected, Unset) and previous != expected:
            raise ActiveVersionChangedError(
                f"model {name!r}: version {previous} is active, not {expected}; version {version} was not activated"
            )
        conn.execute(
            "UPDATE models SET active_version = %s, previous_version = %s, updated_at = clock_timestamp() "
            "WHERE name = %s",
            (version, previous if previous not in (None, version) else before, name),
        )
        conn.execute("SELECT pg_notify(%s, %s)", (ACTIVATION_CHANNEL, name))
        return previous, rollout

    def _lock_row(self, conn: psycopg.Connection[Any], name: str) -> tuple[int | None, int | None, Rollout | None]:
        """(active, previous, rollout) of the model, its row locked until the transaction ends."""
        row = _locked_row(conn, name)
        if row is None:
            raise NotFoundError(f"unknown model {name!r}")
        return row

    def _set_rollout(self, conn: psycopg.Connection[Any], name: str, rollout: Rollout) -> None:
        conn.execute(
            "UPDATE models SET rollout = %s, updated_at = clock_timestamp() WHERE name = %s",
            (Jsonb(rollout.to_json()), name),
        )
        conn.execute("SELECT pg_notify(%s, %s)", (ACTIVATION_CHANNEL, name))

    # -- rollouts ----------------------------------------------------------------
    def rollout(self, name: str) -> Rollout | None:
        """The model's running rollout, or its last ended one; None if it never had one."""
        return _rollout(name, self._model_column(name, "rollout"))

    def start_rollout(self, name: str, rollout: Rollout) -> None:
        """Start ``rollout`` if its baseline is still active and no other rollout runs (see ``ModelStore``)."""
        name = validate_name(name)
        self.load(name, rollout.candidate)
        with self.db.connection() as conn, conn.transaction():
            active, _, current = self._lock_row(conn, name)
            if current is not None and current.running:
                raise RolloutConflictError(
                    f"model {name!r}: the {current.mode} of version {current.candidate} is still running"
                )
            if active != rollout.baseline:
                raise ActiveVersionChangedError(
                    f"model {name!r}: version {active} is active, not {rollout.baseline}; no rollout started"
                )
            self._set_rollout(conn, name, rollout)

    def end_rollout(self, name: str, ended: Rollout) -> None:
        """Record the end of the running rollout; a promoted candidate becomes active in the same transaction."""
        name = validate_name(name)
        if ended.state == "promoted":
            self.load(name, ended.candidate)
        with self.db.connection() as conn, conn.transaction():
            _, _, current = self._lock_row(conn, name)
            if current is None or not current.running or current.started_at != ended.started_at:
                raise RolloutConflictError(f"model {name!r}: that rollout is not running")
            if ended.state == "promoted":
                self._switch(conn, name, ended.candidate, ended.baseline)
            self._set_rollout(conn, name, ended)

    def import_version(self, name: str, version: int, files: Mapping[str, bytes]) -> bool:
        """Add another store's version under its own number (``nnserve store copy``); False if already here.

        Checked as a publish's would be before the transaction that adds its blobs and row; a different version
        of that number already here is a ``StoreError``. It keeps the manifest's ``created_at`` for retention.
        """
        name, version = validate_name(name), validate_version(version)
        model_dir = self.root / name
        durable.ensure_dir(model_dir)
        durable.remove_entry(artifacts.stage(model_dir, name, version, files))
        digests = {f: _sha256(data) for f, data in files.items()}
        created = json.loads(files[artifacts.MANIFEST]).get("created_at")
        with self.db.connection() as conn, conn.transaction():
            _lock_model(conn, name, blobs="shared")
            row = conn.execute(
                "SELECT files FROM versions WHERE name = %s AND version = %s", (name, version)
            ).fetchone()
            if row is not None:
                if row[0] != digests:
                    raise StoreError(f"model {name!r} already has a different version {version}; nothing copied")
                return False
            for data in files.values():
                _put_blob(conn, data)
            conn.execute(
                "INSERT INTO versions (name, version, files, created_at) "
                "VALUES (%s, %s, %s, coalesce(to_timestamp(%s, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AT TIME ZONE 'UTC', "
                "now()))",
                (name, version, Jsonb(digests), created if isinstance(created, str) else None),
            )
        return True

    # -- reading -----------------------------------------------------------------
    @tracing.traced("store.load")
    def load(self, name: str, version: int | None = None) -> LoadedModel:
        name = validate_name(name)
        if version is None:
            version = self.active_version(name)
            if version is None:
                raise NotFoundError(f"model {name!r} has no active version; activate one first")
        version = validate_version(version)
        path, manifest = self._materialize(name, version)
        try:
            estimator = nn.load(path)
        except (nn.ArtifactError, EOFError, zipfile.BadZipFile) as exc:
            raise broken(name, version, artifacts.strip_path(exc, path)) from None
        return LoadedModel(name, version, estimator, manifest)

    def manifest(self, name: str, version: int) -> dict[str, Any]:
        return self._materialize(validate_name(name), validate_version(version))[1]

    def version_files(self, name: str, version: int) -> dict[str, bytes]:
        """A verified version's files, byte for byte (what ``import_version`` of another store takes)."""
        name, version = validate_name(name), validate_version(version)
        return artifacts.read_files(self._materialize(name, version)[0], name, version)

    def _materialize(self, name: str, version: int) -> tuple[Path, dict[str, Any]]:
        """The verified local copy of a version: the cached one if it still verifies, else downloaded."""
        path = self.root / name / str(version)
        if os.path.lexists(path):
            try:
                return path, artifacts.verify(path, name, version)
            except CorruptVersionError:
                durable.remove_entry(path)  # a damaged cache entry is fetched again, never served
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT files FROM versions WHERE name = %s AND version = %s", (name, version)
            ).fetchone()
            if row is None:
                self._require_model(conn, name)
                raise NotFoundError(f"model {name!r} has no version {version}")
            files: dict[str, str] = row[0]
            blobs = {f: _get_blob(conn, sha, f"model {name!r} version {version}: {f}") for f, sha in files.items()}
        model_dir = self.root / name
        durable.ensure_dir(model_dir)
        tmp = durable.make_temp_dir(model_dir)
        try:
            for filename, data in blobs.items():
                (tmp / filename).write_bytes(data)
            with contextlib.suppress(FileExistsError, OSError):
                os.rename(tmp, path)  # another thread or process may have cached it meanwhile: theirs is as good
        finally:
            if tmp.exists():
                durable.remove_entry(tmp)
        return path, artifacts.verify(path, name, version)

    # -- datasets ----------------------------------------------------------------
    def save_dataset(self, name: str, dataset: Dataset) -> str:
        """File ``dataset`` under its sha256; one that extends a stored dataset adds only a blob of the new rows."""
        name = validate_name(name)
        data = dataset_codec.canonical(dataset)
        digest = dataset_codec.sha256(data)
        with self.db.connection() as conn, conn.transaction():
            _lock_model(conn, name, blobs="shared")
            if conn.execute("SELECT 1 FROM datasets WHERE name = %s AND sha256 = %s", (name, digest)).fetchone():
                return digest
            rows = conn.execute(
                "SELECT sha256, rows, blob, chunks FROM datasets WHERE name = %s AND rows < %s "
                "ORDER BY rows DESC LIMIT %s",
                (name, len(data.X), datasets.PARENT_CANDIDATES),
            )
            candidates = [{"sha256": r[0], "rows": r[1], "blob": r[2], "chunks": r[3]} for r in rows]
            parent = datasets.longest_prefix(data, candidates)
            if parent is None:
                base, chunks = _put_blob(conn, dataset_codec.encode(data)), []
            else:
                added = _put_blob(conn, dataset_codec.encode(datasets.tail(data, parent["rows"])))
                base, chunks = parent["blob"], [*parent["chunks"], added]
            conn.execute(
                "INSERT INTO datasets (name, sha256, blob, rows, chunks) VALUES (%s, %s, %s, %s, %s)",
                (name, digest, base, len(data.X), Jsonb(chunks)),
            )
        return digest

    def load_dataset(self, name: str, sha256: str) -> Dataset:
        name, sha256 = validate_name(name), validate_sha256(sha256)
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT blob, chunks FROM datasets WHERE name = %s AND sha256 = %s", (name, sha256)
            ).fetchone()
            if row is None:
                self._require_model(conn, name)
                raise NotFoundError(f"model {name!r} has no dataset {sha256}")
            raws = [_get_blob(conn, blob, f"dataset {sha256} of model {name!r}") for blob in [row[0], *row[1]]]
        try:
            parts = [dataset_codec.decode(raw) for raw in raws]
        except (ValueError, TypeError, EOFError, zipfile.BadZipFile) as exc:
            raise CorruptVersionError(f"dataset {sha256} of model {name!r} cannot be read: {exc}") from None
        return datasets.concatenate(parts, name, sha256)

    def dataset_digests(self, name: str) -> list[str]:
        """The sha256 of every dataset of the model, sorted."""
        name = validate_name(name)
        with self.db.connection() as conn:
            self._require_model(conn, name)
            rows = conn.execute("SELECT sha256 FROM datasets WHERE name = %s ORDER BY sha256", (name,))
            return [r[0] for r in rows]

    @staticmethod
    def dataset_sha256(dataset: Dataset) -> str:
        return dataset_codec.sha256(dataset_codec.canonical(dataset))

    # -- maintenance -------------------------------------------------------------
    @contextlib.contextmanager
    def catalog_lock(self) -> Iterator[None]:
        """Held by ``nnserve serve`` while it checks for models and trains the catalog into an empty database.

        Replicas starting together on one empty database take turns: the first trains the catalog, the others
        wait here, then find the models and train nothing. A session lock on a connection of its own: it ends
        with the block, or with the process if that dies while training.
        """
        with connect(self.database_url) as conn:
            try:
                conn.execute("SELECT pg_advisory_lock(%s)", (CATALOG_LOCK_KEY,))
            except psycopg.OperationalError as exc:
                raise StoreUnavailableError(f"the database cannot be reached ({_first_line(exc)})") from None
            yield

    def ping(self) -> None:
        with self.db.connection() as conn:
            conn.execute("SELECT 1")

    def clean_temporary(self, max_age: float = 3600.0) -> int:
        """Remove temporary entries of the local cache older than ``max_age`` seconds; returns the count."""
        cutoff = time.time() - max_age
        with os.scandir(self.root) as entries:
            models = [
                Path(e.path) for e in entries if NAME_PATTERN.fullmatch(e.name) and e.is_dir(follow_symlinks=False)
            ]
        return durable.remove_temporaries(self.root, older_than=cutoff) + sum(
            durable.remove_temporaries(m, older_than=cutoff) for m in models
        )

    # -- retention ---------------------------------------------------------------
    def previous_version(self, name: str) -> int | None:
        value = self._model_column(name, "previous_version")
        return None if value is None else int(value)

    def pin(self, name: str, version: int) -> None:
        name, version = validate_name(name), validate_version(version)
        with self.db.connection() as conn:
            if conn.execute("SELECT 1 FROM versions WHERE name = %s AND version = %s", (name, version)).fetchone():
                with contextlib.suppress(psycopg.errors.ForeignKeyViolation):  # gc took it meanwhile: reported below
                    conn.execute("INSERT INTO pins VALUES (%s, %s) ON CONFLICT DO NOTHING", (name, version))
                    return
            self._require_model(conn, name)
        raise NotFoundError(f"model {name!r} has no version {version}")

    def unpin(self, name: str, version: int) -> None:
        name, version = validate_name(name), validate_version(version)
        with self.db.connection() as conn:
            self._require_model(conn, name)
            conn.execute("DELETE FROM pins WHERE name = %s AND version = %s", (name, version))

    def pinned(self, name: str) -> list[int]:
        name = validate_name(name)
        with self.db.connection() as conn:
            self._require_model(conn, name)
            return [r[0] for r in conn.execute("SELECT version FROM pins WHERE name = %s ORDER BY version", (name,))]

    def gc(
        self,
        name: str | None = None,
        *,
        keep_versions: int = 0,
        keep_days: float = 0.0,
        dry_run: bool = False,
    ) -> retention.GcReport:
        """Remove what the retention policy lets go (see ``ModelStore.gc``): one transaction per model.

        A dry run does the same work and rolls it back, so it reports exactly what a real run would remove.
        Blobs go when no remaining version or dataset of any model references them.
        """
        policy = retention.RetentionPolicy(keep_versions, keep_days)
        report = retention.GcReport(dry_run=dry_run)
        if not policy.enabled:
            return report
        for model in [validate_name(name)] if name is not None else self.model_names():
            with self.db.connection() as conn, conn.transaction() as tx:
                removed = self._gc_model(conn, model, policy, report)
                if dry_run:
                    raise psycopg.Rollback(tx)
                if removed:  # every worker drops the versions it cached (registry.refresh), at the commit
                    conn.execute("SELECT pg_notify(%s, %s)", (ACTIVATION_CHANNEL, model))
            for version in [] if dry_run else removed:
                with contextlib.suppress(OSError):  # this node's cached copy; other nodes' expire with their disks
                    durable.remove_entry(self.root / model / str(version))
        return report

    def _gc_model(
        self, conn: psycopg.Connection[Any], name: str, policy: retention.RetentionPolicy, report: retention.GcReport
    ) -> list[int]:
        row = _lock_model(conn, name, blobs="exclusive", create=False)
        if row is None:
            raise NotFoundError(f"unknown model {name!r}")
        found = conn.execute(
            "SELECT v.version, v.created_at, v.files, b.data FROM versions v "
            "LEFT JOIN blobs b ON b.sha256 = v.files ->> %s WHERE v.name = %s",
            (artifacts.MANIFEST, name),
        ).fetchall()
        pins = {r[0] for r in conn.execute("SELECT version FROM pins WHERE name = %s", (name,))}
        active, previous, rollout = row
        candidate = rollout.candidate if rollout is not None and rollout.running else None
        protected = {v for v in (active, previous, candidate) if v is not None} | pins
        created = {v: at.timestamp() for v, at, _, _ in found}
        doomed = retention.select(created, protected=protected, policy=policy, now=time.time())
        if not doomed:
            return []
        refs = {v: _dataset_refs(files, manifest) for v, _, files, manifest in found}
        kept_refs = set().union(*(refs[v] for v in created if v not in doomed))
        doomed_refs = set().union(*(refs[v] for v in doomed)) - kept_refs
        candidates = {digest for v, _, files, _ in found if v in doomed for digest in files.values()}
        conn.execute("SET LOCAL nnserve.retention = 'on'")  # the immutability trigger lets this transaction delete
        conn.execute("DELETE FROM versions WHERE name = %s AND version = ANY(%s)", (name, doomed))
        report.versions.extend((name, v) for v in doomed)
        stored = conn.execute("SELECT sha256, blob, chunks FROM datasets WHERE name = %s", (name,)).fetchall()
        kept_bases = {blob for digest, blob, chunks in stored if digest not in doomed_refs and chunks}
        gone = sorted(d for d, blob, chunks in stored if d in doomed_refs and (chunks or blob not in kept_bases))
        dataset_blobs = {b for d, blob, chunks in stored if d in gone for b in [blob, *chunks]}
        conn.execute("DELETE FROM datasets WHERE name = %s AND sha256 = ANY(%s)", (name, gone))
        report.datasets.extend((name, d) for d in gone)
        freed = conn.execute(
            "DELETE FROM blobs b WHERE b.sha256 = ANY(%s) "
            "AND NOT EXISTS (SELECT 1 FROM versions v, jsonb_each_text(v.files) f WHERE f.value = b.sha256) "
            "AND NOT EXISTS (SELECT 1 FROM datasets d WHERE d.blob = b.sha256 OR d.chunks ? b.sha256) "
            "RETURNING b.sha256, octet_length(b.data)",
            (sorted(candidates | dataset_blobs),),
        ).fetchall()
        report.chunks += sum(1 for digest, _ in freed if digest in dataset_blobs)
        report.bytes += sum(size for _, size in freed)
        return doomed

    def activations(self, timeout: float) -> list[str]:
        """Names of the models activated (by any replica), from LISTEN nnserve_activation: returns as soon as
        one is heard, or after ``timeout`` s with none.

        For one watcher thread. ``[""]`` right after (re)connecting means "anything may have changed meanwhile";
        a lost connection raises ``StoreUnavailableError`` and the next call reconnects.
        """
        fresh = self._listener is None or self._listener.closed
        try:
            if fresh:
                self._listener = connect(self.database_url)
                self._listener.execute(f"LISTEN {ACTIVATION_CHANNEL}")
            assert self._listener is not None
            # stop_after=1: back at the first notification (with any that came in the same packet); a larger
            # stop_after would keep waiting for more until ``timeout``, delaying every activation by up to it
            names = [n.payload for n in self._listener.notifies(timeout=0.0 if fresh else timeout, stop_after=1)]
        except psycopg.OperationalError as exc:
            if self._listener is not None:
                self._listener.close()
            self._listener = None
            raise StoreUnavailableError(f"the database cannot be reached ({_first_line(exc)})") from None
        return ["", *names] if fresh else names

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        self.db.close()

    def _require_model(self, conn: psycopg.Connection[Any], name: str) -> None:
        if conn.execute("SELECT 1 FROM models WHERE name = %s", (name,)).fetchone() is None:
            raise NotFoundError(f"unknown model {name!r}")


def _lock_model(
    conn: psycopg.Connection[Any], name: str, *, blobs: str, create: bool = True
) -> tuple[int | None, int | None, Rollout | None] | None:
    """Take the blob lock (``shared`` to add blobs, ``exclusive`` to delete them), then the model's row.

    Returns the row's (active, previous, rollout), None when the model does not exist and ``create`` is off.
    Everyone takes the two locks in this order, so a writer and gc never wait on each other in a cycle.
    """
    lock = "pg_advisory_xact_lock_shared" if blobs == "shared" else "pg_advisory_xact_lock"
    conn.execute(f"SELECT {lock}(%s)", (BLOB_LOCK,))
    if create:
        conn.execute("INSERT INTO models (name) VALUES (%s) ON CONFLICT DO NOTHING", (name,))
    return _locked_row(conn, name)


def _locked_row(conn: psycopg.Connection[Any], name: str) -> tuple[int | None, int | None, Rollout | None] | None:
    """(active, previous, rollout) of the model, its row locked until the transaction ends; None if no such model."""
    row = conn.execute(
        "SELECT active_version, previous_version, rollout FROM models WHERE name = %s FOR UPDATE", (name,)
    ).fetchone()
    return None if row is None else (row[0], row[1], _rollout(name, row[2]))


def _rollout(name: str, data: dict[str, Any] | None) -> Rollout | None:
    if data is None:
        return None
    try:
        return Rollout.from_json(data)
    except ValueError:
        raise CorruptVersionError(f"model {name!r}: its rollout record is not one") from None


def _dataset_refs(files: dict[str, str], manifest: bytes | None) -> set[str]:
    """The datasets a version names (training rows, evaluation set), from its manifest blob (none if damaged)."""
    if manifest is None or _sha256(bytes(manifest)) != files.get(artifacts.MANIFEST):
        return set()
    try:
        return dataset_codec.manifest_datasets(json.loads(bytes(manifest)))
    except (ValueError, AttributeError):
        return set()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _put_blob(conn: psycopg.Connection[Any], data: bytes) -> str:
    digest = _sha256(data)
    conn.execute("INSERT INTO blobs (sha256, data) VALUES (%s, %s) ON CONFLICT DO NOTHING", (digest, data))
    return digest


def _get_blob(conn: psycopg.Connection[Any], digest: str, what: str) -> bytes:
    row = conn.execute("SELECT data FROM blobs WHERE sha256 = %s", (digest,)).fetchone()
    if row is None:
        raise CorruptVersionError(f"{what}: blob {digest} is missing")
    data = bytes(row[0])
    if _sha256(data) != digest:
        raise CorruptVersionError(f"{what}: blob {digest} fails its checksum")
    return data


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
