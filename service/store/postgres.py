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
import os
import threading
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import psycopg_pool
from psycopg.types.json import Jsonb

import nn
from service.store import artifacts, dataset_codec, durable, migrations
from service.store.dataset_codec import Dataset
from service.store.exceptions import (
    ActiveVersionChangedError,
    CorruptVersionError,
    NotFoundError,
    StoreError,
    StoreUnavailableError,
    broken,
)
from service.store.filesystem import STORE_KEYS, VersionInfo
from service.store.inference import LoadedModel
from service.store.names import MAX_VERSION, NAME_PATTERN, validate_name, validate_sha256, validate_version
from service.store.protocol import UNSET, Unset
from service.version import __version__

if TYPE_CHECKING:
    from nn.estimators import BaseMLP
    from service.store.retention import GcReport

ACTIVATION_CHANNEL = "nnserve_activation"
POOL_TIMEOUT = 5.0  # seconds a call waits for a connection before answering "unavailable"


class Database:
    """A connection pool per process (a forked gunicorn worker opens its own), autocommit connections."""

    def __init__(self, url: str, max_size: int = 4) -> None:
        self.url = url
        self.max_size = max_size
        self._pool: psycopg_pool.ConnectionPool | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def _current(self) -> psycopg_pool.ConnectionPool:
        with self._lock:
            if self._pool is None or self._pid != os.getpid():
                self._pool = psycopg_pool.ConnectionPool(
                    self.url,
                    min_size=0,
                    max_size=self.max_size,
                    kwargs={"autocommit": True, "connect_timeout": 3},
                    timeout=POOL_TIMEOUT,
                    check=psycopg_pool.ConnectionPool.check_connection,
                    open=True,
                )
                self._pid = os.getpid()
            return self._pool

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection; a database that cannot be reached raises ``StoreUnavailableError``."""
        try:
            with self._current().connection() as conn:
                yield conn
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
            raise StoreUnavailableError(f"the database cannot be reached ({_first_line(exc)})") from None

    def close(self) -> None:
        with self._lock:
            if self._pool is not None and self._pid == os.getpid():
                self._pool.close()
            self._pool = None


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def connect(url: str) -> psycopg.Connection[Any]:
    """One autocommit connection (for migrations and LISTEN), unavailable errors mapped like the pool's."""
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=3)
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
        self.db = Database(database_url)
        self._listener: psycopg.Connection[Any] | None = None
        if migrate:
            upgrade(database_url)

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
        name = validate_name(name)
        with self.db.connection() as conn:
            row = conn.execute("SELECT active_version FROM models WHERE name = %s", (name,)).fetchone()
        if row is None:
            raise NotFoundError(f"unknown model {name!r}")
        return None if row[0] is None else int(row[0])

    def active_stamp(self, name: str) -> tuple[int, float] | None:
        """(active version, time of the last activation), None when none is active."""
        name = validate_name(name)
        with self.db.connection() as conn:
            row = conn.execute("SELECT active_version, updated_at FROM models WHERE name = %s", (name,)).fetchone()
        if row is None or row[0] is None:
            return None
        return int(row[0]), row[1].timestamp()

    # -- writing -----------------------------------------------------------------
    def publish(
        self, name: str, estimator: BaseMLP, metadata: dict[str, Any] | None = None, job_id: str | None = None
    ) -> int:
        """Save ``estimator`` as the next version in one transaction; returns its number.

        With ``job_id`` (or a ``job_id`` in ``metadata``, as the retraining worker records it), at most one
        version per job: a retried job that already published gets that version back and nothing new is written.
        """
        name = validate_name(name)
        extra = dict(metadata or {})
        clash = sorted(set(STORE_KEYS).intersection(extra))
        if clash:
            raise ValueError(f"metadata may not override {clash}: the store writes them")
        if job_id is None and isinstance(extra.get("job_id"), str):
            job_id = extra["job_id"]
        with self.db.connection() as conn, conn.transaction():
            conn.execute("INSERT INTO models (name) VALUES (%s) ON CONFLICT DO NOTHING", (name,))
            conn.execute("SELECT 1 FROM models WHERE name = %s FOR UPDATE", (name,))
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

    def activate(self, name: str, version: int, expected: int | Unset | None = UNSET) -> int | None:
        """Make ``version`` active after rebuilding it; one UPDATE and a NOTIFY in one transaction."""
        name, version = validate_name(name), validate_version(version)
        self.load(name, version)
        with self.db.connection() as conn, conn.transaction():
            row = conn.execute("SELECT active_version FROM models WHERE name = %s FOR UPDATE", (name,)).fetchone()
            if row is None:
                raise NotFoundError(f"unknown model {name!r}")
            previous = row[0]
            if not isinstance(expected, Unset) and previous != expected:
                raise ActiveVersionChangedError(
                    f"model {name!r}: version {previous} is active, not {expected}; version {version} was not activated"
                )
            conn.execute(
                "UPDATE models SET active_version = %s, updated_at = clock_timestamp() WHERE name = %s",
                (version, name),
            )
            conn.execute("SELECT pg_notify(%s, %s)", (ACTIVATION_CHANNEL, name))
        return None if previous is None else int(previous)

    # -- reading -----------------------------------------------------------------
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
        name = validate_name(name)
        data = dataset_codec.canonical(dataset)
        digest = dataset_codec.sha256(data)
        encoded = dataset_codec.encode(data)
        with self.db.connection() as conn, conn.transaction():
            conn.execute("INSERT INTO models (name) VALUES (%s) ON CONFLICT DO NOTHING", (name,))
            blob = _put_blob(conn, encoded)
            conn.execute(
                "INSERT INTO datasets (name, sha256, blob) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                (name, digest, blob),
            )
        return digest

    def load_dataset(self, name: str, sha256: str) -> Dataset:
        name, sha256 = validate_name(name), validate_sha256(sha256)
        with self.db.connection() as conn:
            row = conn.execute("SELECT blob FROM datasets WHERE name = %s AND sha256 = %s", (name, sha256)).fetchone()
            if row is None:
                self._require_model(conn, name)
                raise NotFoundError(f"model {name!r} has no dataset {sha256}")
            raw = _get_blob(conn, row[0], f"dataset {sha256} of model {name!r}")
        try:
            data = dataset_codec.decode(raw)
            actual = dataset_codec.sha256(data)
        except (ValueError, TypeError, EOFError, zipfile.BadZipFile) as exc:
            raise CorruptVersionError(f"dataset {sha256} of model {name!r} cannot be read: {exc}") from None
        if actual != sha256:
            raise CorruptVersionError(f"dataset {sha256} of model {name!r} fails its checksum: it was modified")
        return data

    def dataset_names(self, name: str) -> list[str]:
        """The sha256 of every dataset of the model (for ``nnserve store copy``)."""
        with self.db.connection() as conn:
            rows = conn.execute("SELECT sha256 FROM datasets WHERE name = %s ORDER BY sha256", (validate_name(name),))
            return [r[0] for r in rows]

    @staticmethod
    def dataset_sha256(dataset: Dataset) -> str:
        return dataset_codec.sha256(dataset_codec.canonical(dataset))

    # -- maintenance -------------------------------------------------------------
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

    # -- retention: not built for PostgreSQL yet; each says so instead of pretending ------------------------
    def previous_version(self, name: str) -> int | None:
        raise StoreError("the PostgreSQL store does not track the previous version yet")

    def pin(self, name: str, version: int) -> None:
        raise StoreError("the PostgreSQL store does not support pinning yet")

    def unpin(self, name: str, version: int) -> None:
        raise StoreError("the PostgreSQL store does not support pinning yet")

    def pinned(self, name: str) -> list[int]:
        raise StoreError("the PostgreSQL store does not support pinning yet")

    def gc(
        self,
        name: str | None = None,
        *,
        keep_versions: int = 0,
        keep_days: float = 0.0,
        dry_run: bool = False,
    ) -> GcReport:
        raise StoreError("the PostgreSQL store does not support retention (gc) yet: its versions are immutable")

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
