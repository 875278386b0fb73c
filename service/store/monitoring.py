"""The prediction log: sampled predictions, the ground truth clients send back for them, and its retention.

``PredictionLog`` is what every backend promises (``tests/contract/test_prediction_log_contract.py``
checks it); the embedded backend is SQLite (WAL) in the store directory, the shared one PostgreSQL
(``pg_monitoring.py``, schema in ``migrations.py``). One row per predicted row and version, keyed by
(model, request id, row, version): a request's id is what a client quotes in its feedback, and labels every
version's row of it (during a rollout, a shadow candidate's copy, or a canary's failure, sits beside the
answer). A request id a client chose itself and used twice keeps its first prediction per version (later
ones are ignored, never overwrite it).
Every label keeps its provenance: the source it came with (``key``: an API key, whose id is kept; ``token``:
a prediction's feedback token) and when. The first label of a row wins; a later one is a conflict and changes
nothing unless an admin replaces it. The log also keeps the secret feedback tokens are signed with.
Web workers only ``append`` (in batches, off the request path) and ``label``; metrics, drift and
retraining policies read ``recent``.

The SQLite log's files shrink when rows go (``auto_vacuum = INCREMENTAL``, and the WAL checkpointed and
truncated), and ``max_bytes`` (``NNSERVE_LOG_MAX_BYTES``) caps the database and its WAL together: an append
that leaves too little room for another like it below 80% of the cap removes the oldest rows of every model
down to 60% (counted as dropped, reason ``disk``); the rest is room for the WAL. PostgreSQL keeps its table
as it is: its space is the database's to manage (autovacuum reuses what is deleted), and the cap is not
applied there.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import sqlite3
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import orjson

from service import telemetry
from service.store.drivers import require_postgres
from service.store.exceptions import StoreUnavailableError
from service.store.sqlite_threads import ThreadConnections

__all__ = [
    "LABEL_SOURCES",
    "Label",
    "LabelCount",
    "Labelled",
    "LoggedPrediction",
    "PredictionLog",
    "SqlitePredictionLog",
    "open_prediction_log",
]

DATABASE = ".predictions.sqlite3"
LOCK = ".predictions.lock"  # a dot name can never be a model name
DAY = 86_400.0
WAL_CHECKPOINT_PAGES = 10_000
MAX_BYTES = 1 << 30  # NNSERVE_LOG_MAX_BYTES's default
ROW_BYTES = 1024  # what a logged row takes on disk until the log has measured it (iris: ~300 bytes)
SHRINK_AT, SHRINK_TO = 0.8, 0.6  # of max_bytes: an append above the first removes the oldest rows down to the second
INSERT_CHUNK = 500  # rows per INSERT statement: 10 parameters each, well under SQLite's 32,766
INSERT_COLUMNS = "model, request_id, row, version, logged_at, inputs, output, probabilities, shadow, error"
LABEL_COLUMNS = "target, labelled_at, label_source, label_key"  # what ``import_rows`` writes too
LABEL_SOURCES = ("key", "token")  # an API key with the feedback scope; a prediction's feedback token
FEEDBACK_SECRET = "feedback_token"  # the name of the secret feedback tokens are signed with
SECRET_BYTES = 32


class LoggedPrediction(NamedTuple):
    """One predicted row: what came in, what the version said, and the ground truth once a client sent it.

    A named tuple, not a dataclass: a web worker's log writer makes one per predicted row, and a frozen
    dataclass of these fields took three times as long to build.

    ``output`` is a class label or a regression value (a list for a multi-output regressor), None when the
    version failed (``error`` says how: a canary candidate that could not answer); ``probabilities`` a
    classifier's, in its version's class order; ``shadow`` marks a candidate's answer that was not returned;
    ``target`` None until labelled, then ``label_source`` says how it came (``LABEL_SOURCES``; None for a
    label from before labels had provenance) and ``label_key`` which key gave it (None for a token).
    """

    model: str
    request_id: str
    row: int
    version: int
    logged_at: float  # unix time
    inputs: list[float]
    output: Any
    probabilities: list[float] | None = None
    target: Any = None
    labelled_at: float | None = None
    shadow: bool = False
    error: str | None = None
    label_source: str | None = None
    label_key: str | None = None

    def insert_values(self, encode: Callable[[Any], Any], labels: bool = False) -> tuple[Any, ...]:
        """The columns an append writes (with ``labels``, an import: ``LABEL_COLUMNS`` too), in the backends'
        order, each JSON value through the backend's ``encode``."""
        target = None if self.target is None else encode(self.target)
        label = (target, self.labelled_at, self.label_source, self.label_key) if labels else ()
        return (
            self.model,
            self.request_id,
            self.row,
            self.version,
            self.logged_at,
            encode(self.inputs),
            None if self.output is None else encode(self.output),
            None if self.probabilities is None else encode(self.probabilities),
            self.shadow,
            self.error,
            *label,
        )


@dataclass(frozen=True)
class Label:
    """Ground truth for one logged row (row 0 of a request unless it predicted several)."""

    request_id: str
    target: Any
    row: int = 0


@dataclass(frozen=True)
class Labelled:
    """What a ``label`` call did: labels kept, labels whose row is not logged, and labels of rows already
    labelled (the first label wins: these changed nothing)."""

    accepted: int
    unlogged: list[Label]
    conflicts: list[Label]


@dataclass(frozen=True)
class LabelCount:
    """How many logged rows (request id and row, over every version) one source gave labels to."""

    source: str | None  # None: labels from before labels had provenance
    key: str | None  # the key's id for source "key"
    rows: int


class PredictionLog(Protocol):
    """Sampled predictions of every model and their labels, shared by the web workers and the retraining worker."""

    def append(self, records: Sequence[LoggedPrediction]) -> int:
        """Store new predictions (a request id + row already logged keeps its first); returns rows added."""
        ...

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
        """Join ground truth to logged rows of ``model`` (every version's row of that request), recording
        ``source`` (``LABEL_SOURCES``), the ``key`` id and the time; a row already labelled keeps its label
        (a conflict) unless ``replace``."""
        ...

    def purge_labels(self, model: str, key: str) -> int:
        """Remove every label ``key`` gave to rows of ``model``; returns the log rows that lost one."""
        ...

    def label_counts(self, model: str) -> list[LabelCount]:
        """Labelled rows of ``model`` per source and key."""
        ...

    def logged(self, model: str, request_id: str) -> bool:
        """Whether any row of ``model`` is logged under ``request_id``."""
        ...

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
        """The newest ``limit`` rows of ``model`` (of one version, labelled ones, logged after ``since``),
        newest first; with ``labelled`` and ``sources``, only rows whose label came from one of those sources."""
        ...

    def secret(self, name: str, rotate: bool = False) -> bytes:
        """The server secret ``name`` (random, made on first use, the same for every process of this log);
        ``rotate`` replaces it with a new one first."""
        ...

    def export(self, after: int = 0, limit: int = 1000) -> list[tuple[int, LoggedPrediction]]:
        """The oldest ``limit`` rows (of every model) whose ``seq`` is above ``after``, oldest first, each with its
        ``seq``: a chunk of ``store copy``."""
        ...

    def import_rows(self, records: Sequence[LoggedPrediction]) -> int:
        """Add rows with their times and labels (source, key id, time kept), after the rows this log has, in
        order; a row it has already (model, request id, row, version) is left alone. Returns rows added."""
        ...

    def import_secret(self, name: str, value: bytes) -> bool:
        """Keep ``value`` as the server secret ``name`` unless this log has one (then False: it is left alone)."""
        ...

    def prune(self, keep_rows: int, keep_days: float, now: float | None = None) -> dict[str, int]:
        """Per model, remove rows beyond the newest ``keep_rows`` and rows older than ``keep_days``; returns the
        rows removed per model (models that lost none are left out)."""
        ...


def _dump(value: Any) -> str:
    """JSON text of a logged value (orjson: the stdlib encoder cost a web worker's writer thread a quarter of
    the one-row throughput in bench/prediction_log.py)."""
    return orjson.dumps(value).decode()


def recent_query(
    mark: str,
    model: str,
    limit: int,
    version: int | None,
    labelled: bool,
    since: float | None,
    sources: Collection[str] | None = None,
) -> tuple[str, list[object]]:
    """``PredictionLog.recent``'s SELECT and its arguments, with the backend's placeholder ``mark`` (? or %s)."""
    where, args = [f"model = {mark}"], list[object]([model])
    if version is not None:
        where.append(f"version = {mark}")
        args.append(version)
    if labelled:
        where.append("target IS NOT NULL")
        if sources is not None:
            trusted = sorted(set(sources))
            where.append(f"label_source IN ({', '.join([mark] * len(trusted)) or 'NULL'})")
            args.extend(trusted)
    if since is not None:
        where.append(f"logged_at > {mark}")
        args.append(since)
    return f"SELECT * FROM predictions WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT {mark}", [*args, limit]


Execute = Callable[[str, Sequence[Any]], Any]  # a backend's execute(query, args) -> cursor with .rowcount


def label_rows(
    execute: Execute,
    mark: str,
    row_column: str,
    model: str,
    labels: Sequence[Label],
    target: Callable[[Any], Any],
    provenance: tuple[str, str | None, float],
    replace: bool,
) -> Labelled:
    """``PredictionLog.label`` in the caller's transaction, through the backend's ``execute`` (placeholder
    ``mark``, its row column, its JSON ``target`` encoder); ``provenance`` is (source, key id, time)."""
    if provenance[0] not in LABEL_SOURCES:
        raise ValueError(f"a label's source is one of {LABEL_SOURCES}, not {provenance[0]!r}")
    where = f"model = {mark} AND request_id = {mark} AND {row_column} = {mark}"
    update = (
        f"UPDATE predictions SET target = {mark}, label_source = {mark}, label_key = {mark}, labelled_at = {mark} "
        f"WHERE {where}" + ("" if replace else " AND target IS NULL")
    )
    accepted, unlogged, conflicts = 0, [], []
    for item in labels:
        key = (model, item.request_id, item.row)
        if execute(update, (target(item.target), *provenance, *key)).rowcount:
            accepted += 1
        elif execute(f"SELECT 1 FROM predictions WHERE {where} LIMIT 1", key).fetchone() is None:
            unlogged.append(item)
        else:
            conflicts.append(item)
    return Labelled(accepted, unlogged, conflicts)


def purge_query(mark: str) -> str:
    """``PredictionLog.purge_labels``' UPDATE (arguments: model, key id)."""
    return (
        "UPDATE predictions SET target = NULL, label_source = NULL, label_key = NULL, labelled_at = NULL "
        f"WHERE model = {mark} AND label_key = {mark}"
    )


def label_counts_query(mark: str, row_column: str) -> str:
    """``PredictionLog.label_counts``' SELECT (argument: model): (source, key, rows)."""
    return (
        f"SELECT label_source, label_key, COUNT(*) FROM (SELECT DISTINCT request_id, {row_column}, label_source, "
        f"label_key FROM predictions WHERE model = {mark} AND target IS NOT NULL) AS labels "
        "GROUP BY label_source, label_key ORDER BY COUNT(*) DESC, label_source, label_key"
    )


EXPORT_QUERY = "SELECT * FROM predictions WHERE seq > {mark} ORDER BY seq LIMIT {mark}"  # ``PredictionLog.export``


def new_secret() -> bytes:
    """A fresh server secret (256 random bits)."""
    return secrets.token_bytes(SECRET_BYTES)


def prune_rows(execute: Execute, mark: str, cutoff: float, keep_rows: int) -> dict[str, int]:
    """``PredictionLog.prune`` in the caller's transaction: per model, rows logged before ``cutoff`` and rows
    beyond the newest ``keep_rows``; the rows removed per model that lost any."""
    removed: dict[str, int] = {}
    for model in [r[0] for r in execute("SELECT DISTINCT model FROM predictions", ()).fetchall()]:
        old = execute(f"DELETE FROM predictions WHERE model = {mark} AND logged_at < {mark}", (model, cutoff)).rowcount
        beyond = execute(
            f"DELETE FROM predictions WHERE model = {mark} AND seq < (SELECT seq FROM predictions "
            f"WHERE model = {mark} ORDER BY seq DESC LIMIT 1 OFFSET {mark})",
            (model, model, keep_rows - 1),
        ).rowcount
        if old + beyond:
            removed[model] = old + beyond
    return removed


class SqlitePredictionLog:
    """The prediction log of one store, in ``<store>/.predictions.sqlite3`` (created on first use).

    WAL lets the retraining worker read while web workers write. Each thread keeps its own connection
    (a new one in a forked child): opening one per call would make SQLite checkpoint the WAL with an fsync
    each time the last connection closes, which costs a web worker's log writer most of its time.

    The WAL is checkpointed every ``wal_bytes`` (~40 MB, an eighth of ``max_bytes`` at most) and truncated to
    that size when it restarts; one that grew beyond twice that (readers kept it from restarting) is
    checkpointed and truncated by the next append.
    """

    # PRAGMA user_version; 0 with a table: the first schema, keyed without the version; 2: labels without
    # provenance and no secrets; 3: no incremental vacuum
    SCHEMA_VERSION = 4
    _TABLE = """
    CREATE TABLE predictions (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        model TEXT NOT NULL,
        request_id TEXT NOT NULL,
        row INTEGER NOT NULL,
        version INTEGER NOT NULL,
        logged_at REAL NOT NULL,
        inputs TEXT NOT NULL,
        output TEXT,
        probabilities TEXT,
        target TEXT,
        labelled_at REAL,
        shadow INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        label_source TEXT,
        label_key TEXT,
        UNIQUE (model, request_id, row, version)
    );
    """
    _INDEXES = """
    CREATE INDEX IF NOT EXISTS predictions_model_seq ON predictions (model, seq);
    CREATE INDEX IF NOT EXISTS predictions_model_version_seq ON predictions (model, version, seq);
    CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL, created_at REAL NOT NULL);
    """

    def __init__(
        self, store_root: str | os.PathLike[str], busy_timeout: float = 30.0, max_bytes: int = MAX_BYTES
    ) -> None:
        self.path = Path(store_root) / DATABASE
        self.wal = self.path.with_name(DATABASE + "-wal")
        self.busy_timeout = busy_timeout
        self.max_bytes = max_bytes
        self.wal_bytes = min(WAL_CHECKPOINT_PAGES * 4096, max_bytes // 8)
        self._row_bytes = ROW_BYTES  # what a row takes on disk, as last measured
        self._connect = ThreadConnections(
            self._open, f"the prediction log {self.path}", (sqlite3.OperationalError,)
        ).connect

    def disk_bytes(self) -> int:
        """The log's size on disk: the database and its WAL."""
        return sum(path.stat().st_size for path in (self.path, self.wal) if path.exists())

    def _exists(self) -> bool:
        """Whether anything was ever logged here: reading an absent log finds nothing and creates no file."""
        return self.path.exists()

    def _open(self) -> sqlite3.Connection:
        # Web workers starting together would race to switch a new file to WAL: one at a time (as the job queue).
        try:
            fd = os.open(self.path.with_name(LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StoreUnavailableError(f"the prediction log {self.path} cannot be opened: {exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if not self.path.exists():  # it keeps the feedback tokens' secret: readable by its owner only
                os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
            db = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA auto_vacuum = INCREMENTAL")  # a new file's mode; _migrate rebuilds an older one
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            # Checkpoint the WAL back into the file every ~40 MB rather than SQLite's 4 MB: a log's appends hit
            # random pages of its request-id index, and rewriting them ten times as often cost a web worker's
            # writer about half its time per row once the log held 100,000 rows.
            pages = self.wal_bytes // db.execute("PRAGMA page_size").fetchone()[0]
            db.execute(f"PRAGMA wal_autocheckpoint = {max(pages, 1)}")
            db.execute(f"PRAGMA journal_size_limit = {self.wal_bytes}")
            self._migrate(db)
        finally:
            os.close(fd)
        return db

    def _migrate(self, db: sqlite3.Connection) -> None:
        """Create the table, or bring an older one to this schema (rows kept), under the open lock."""
        schema = db.execute("PRAGMA user_version").fetchone()[0]
        if schema >= self.SCHEMA_VERSION:
            return
        db.execute("BEGIN IMMEDIATE")
        if not db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'predictions'").fetchone():
            db.execute(self._TABLE)
        elif schema < 2:
            db.execute("ALTER TABLE predictions RENAME TO predictions_v1")
            db.execute("DROP INDEX IF EXISTS predictions_model_seq")
            db.execute("DROP INDEX IF EXISTS predictions_model_version_seq")
            db.execute(self._TABLE)
            db.execute(
                "INSERT INTO predictions (seq, model, request_id, row, version, logged_at, inputs, output, "
                "probabilities, target, labelled_at) SELECT seq, model, request_id, row, version, logged_at, "
                "inputs, output, probabilities, target, labelled_at FROM predictions_v1"
            )
            db.execute("DROP TABLE predictions_v1")
        elif schema < 3:  # labels given before they had provenance keep source NULL: no spec trusts them
            db.execute("ALTER TABLE predictions ADD COLUMN label_source TEXT")
            db.execute("ALTER TABLE predictions ADD COLUMN label_key TEXT")
        for statement in self._INDEXES.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {self.SCHEMA_VERSION}")
        db.execute("COMMIT")
        if db.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:  # a file made before: rebuilt to take the mode
            db.execute("VACUUM")

    @contextmanager
    def _appending(self) -> Iterator[None]:
        """One append at a time over every process, its cap kept included: while one removes old rows, the
        others wait (their buffers fill and drop) instead of piling their rows into a WAL it cannot truncate."""
        fd = os.open(self.path.with_name(LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def append(self, records: Sequence[LoggedPrediction]) -> int:
        return self._insert(records, labels=False)

    def import_rows(self, records: Sequence[LoggedPrediction]) -> int:
        return self._insert(records, labels=True)

    def _insert(self, records: Sequence[LoggedPrediction], labels: bool) -> int:
        rows = [r.insert_values(_dump, labels) for r in records]
        columns = f"{INSERT_COLUMNS}, {LABEL_COLUMNS}" if labels else INSERT_COLUMNS
        marks = "(" + ", ".join("?" * (14 if labels else 10)) + ")"
        with self._connect() as db, self._appending():
            before = db.total_changes
            db.execute("BEGIN IMMEDIATE")
            # Many rows per statement: sqlite3 lets go of the GIL around every statement it steps, and each
            # hand-back stalls a request thread of the web worker; one statement per row cost ~20% throughput.
            for start in range(0, len(rows), INSERT_CHUNK):
                chunk = rows[start : start + INSERT_CHUNK]
                db.execute(
                    f"INSERT OR IGNORE INTO predictions ({columns}) VALUES " + ", ".join([marks] * len(chunk)),
                    [value for row in chunk for value in row],
                )
            db.execute("COMMIT")
            added = db.total_changes - before
            self._keep_under_cap(db, len(rows))
            return added

    def _keep_under_cap(self, db: sqlite3.Connection, appended: int) -> None:
        """Checkpoint a WAL grown past twice its size, and keep the log under ``max_bytes``: once it is above
        ``SHRINK_AT`` of it less the room another append of ``appended`` rows takes (their pages and WAL frames, at
        the size a row took at the last shrink), remove the oldest rows of every model down to ``SHRINK_TO`` less
        that room, and give their pages back.

        Rows go in chunks, each checkpointed: removing a row rewrites about one page of the request-id index
        (request ids are random), so one DELETE of them all would double the log in its WAL before it shrank.
        """
        room = 2 * appended * self._row_bytes
        wal = self.wal.stat().st_size if self.wal.exists() else 0
        if wal <= 2 * self.wal_bytes and self.disk_bytes() + room <= SHRINK_AT * self.max_bytes:
            return
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        if self.disk_bytes() + room > SHRINK_AT * self.max_bytes:
            self._shrink(db, room)

    def _shrink(self, db: sqlite3.Connection, room: int) -> None:
        """Remove the oldest rows down to ``SHRINK_TO`` of ``max_bytes`` less ``room`` and give their pages back."""
        page_size, pages, free = (db.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_size", "page_count",
                                                                                    "freelist_count"))  # fmt: skip
        used = (pages - free) * page_size
        rows = db.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]
        if rows:
            self._row_bytes = max(used // rows, 1)
        keep = max(SHRINK_TO * self.max_bytes - room, 0) / used if used else 1.0
        remove = min(rows, rows - int(rows * keep))
        chunk = max(self.wal_bytes // (2 * page_size), 1)
        while remove > 0:
            db.execute("BEGIN IMMEDIATE")
            oldest = db.execute(
                "SELECT seq FROM predictions ORDER BY seq LIMIT 1 OFFSET ?", (min(chunk, remove) - 1,)
            ).fetchone()
            if oldest is None:
                db.execute("COMMIT")
                break
            removed = db.execute(
                "SELECT model, COUNT(*) FROM predictions WHERE seq <= ? GROUP BY model", oldest
            ).fetchall()
            db.execute("DELETE FROM predictions WHERE seq <= ?", oldest)
            db.execute("COMMIT")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            for model, count in removed:
                telemetry.log_dropped(model, "disk", count)
            remove -= chunk
        self._give_back(db)

    def _give_back(self, db: sqlite3.Connection) -> None:
        """Return the free pages to the file system: incremental vacuum in steps (each step's page moves go through
        the WAL, about two pages per page freed), each followed by a checkpoint that truncates the WAL and the
        database."""
        step = max(self.wal_bytes // (4 * db.execute("PRAGMA page_size").fetchone()[0]), 1)
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        for _ in range(max(-(-free // step), 1)):
            db.executescript(f"PRAGMA incremental_vacuum({step});")  # execute() would step it once: one page
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

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
        if not self._exists():
            return Labelled(0, list(labels), [])
        at = time.time() if now is None else now
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            done = label_rows(db.execute, "?", "row", model, labels, _dump, (source, key, at), replace)
            db.execute("COMMIT")
        return done

    def purge_labels(self, model: str, key: str) -> int:
        if not self._exists():
            return 0
        with self._connect() as db:
            return int(db.execute(purge_query("?"), (model, key)).rowcount)

    def label_counts(self, model: str) -> list[LabelCount]:
        if not self._exists():
            return []
        with self._connect() as db:
            return [LabelCount(*r) for r in db.execute(label_counts_query("?", "row"), (model,)).fetchall()]

    def logged(self, model: str, request_id: str) -> bool:
        if not self._exists():
            return False
        with self._connect() as db:
            query = "SELECT 1 FROM predictions WHERE model = ? AND request_id = ? LIMIT 1"
            return db.execute(query, (model, request_id)).fetchone() is not None

    def secret(self, name: str, rotate: bool = False) -> bytes:
        with self._connect() as db:
            found = None if rotate else db.execute("SELECT value FROM secrets WHERE name = ?", (name,)).fetchone()
            if found is not None:
                return bytes(found[0])
            db.execute("BEGIN IMMEDIATE")
            if rotate:
                db.execute("DELETE FROM secrets WHERE name = ?", (name,))
            db.execute(
                "INSERT OR IGNORE INTO secrets (name, value, created_at) VALUES (?, ?, ?)",
                (name, new_secret(), time.time()),
            )
            value = db.execute("SELECT value FROM secrets WHERE name = ?", (name,)).fetchone()[0]
            db.execute("COMMIT")
        return bytes(value)

    def import_secret(self, name: str, value: bytes) -> bool:
        with self._connect() as db:
            query = "INSERT OR IGNORE INTO secrets (name, value, created_at) VALUES (?, ?, ?)"
            return bool(db.execute(query, (name, value, time.time())).rowcount)

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
        if not self._exists():
            return []
        query, args = recent_query("?", model, limit, version, labelled, since, sources)
        with self._connect() as db:
            rows = db.execute(query, args).fetchall()
        return [_logged(r) for r in rows]

    def export(self, after: int = 0, limit: int = 1000) -> list[tuple[int, LoggedPrediction]]:
        if not self._exists():
            return []
        with self._connect() as db:
            rows = db.execute(EXPORT_QUERY.format(mark="?"), (after, limit)).fetchall()
        return [(r["seq"], _logged(r)) for r in rows]

    def prune(self, keep_rows: int, keep_days: float, now: float | None = None) -> dict[str, int]:
        if not self._exists():
            return {}
        cutoff = (time.time() if now is None else now) - keep_days * DAY
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            removed = prune_rows(db.execute, "?", cutoff, keep_rows)
            db.execute("COMMIT")
            if removed:
                self._give_back(db)
        return removed


def _logged(r: sqlite3.Row) -> LoggedPrediction:
    return LoggedPrediction(
        model=r["model"],
        request_id=r["request_id"],
        row=r["row"],
        version=r["version"],
        logged_at=r["logged_at"],
        inputs=orjson.loads(r["inputs"]),
        output=None if r["output"] is None else orjson.loads(r["output"]),
        probabilities=None if r["probabilities"] is None else orjson.loads(r["probabilities"]),
        shadow=bool(r["shadow"]),
        error=r["error"],
        target=None if r["target"] is None else orjson.loads(r["target"]),
        labelled_at=r["labelled_at"],
        label_source=r["label_source"],
        label_key=r["label_key"],
    )


def open_prediction_log(
    store_root: str | os.PathLike[str], database_url: str | None = None, max_bytes: int = MAX_BYTES
) -> PredictionLog:
    """The prediction log the configuration names: SQLite in the store directory (at most ``max_bytes`` on disk)
    unless a database URL is given."""
    if database_url:
        require_postgres()
        from service.store.pg_monitoring import PostgresPredictionLog  # psycopg only for those who use it

        return PostgresPredictionLog(database_url)
    return SqlitePredictionLog(store_root, max_bytes=max_bytes)
