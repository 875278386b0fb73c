"""API keys: what a key may do, where keys are kept (``KeyStore``), and a worker's view of them (``KeyRing``).

A key reads ``nns_<id>_<secret>``: the id is public (logs, ``nnserve keys list``, labels name it) and finds
the record without a scan; the secret is 32 random bytes, shown once at creation and kept nowhere: stores
keep only its SHA-256, compared in constant time. The filesystem keeps keys in ``.keys.json`` (mode 0600)
in the store directory and their last use in ``.keys-used.json``; PostgreSQL in ``api_keys``
(``pg_keys.py``), announcing every change with a NOTIFY.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from service.store import durable
from service.store.drivers import require_postgres
from service.store.exceptions import InvalidNameError, NotFoundError, StoreError, StoreUnavailableError
from service.store.names import validate_name

ADMIN = "admin"
SCOPES = ("predict", "feedback", ADMIN)
PREFIX = "nns"
KEYS_CHANGED = "#keys"  # the activation channel's payload for "keys changed" (never a model name)
SECRET_BYTES = 32
KEY_FILE_MODE = 0o600
MAX_EXPIRES_DAYS = 3650


_pid = os.getpid()  # this process's id, kept current across forks: checked on every verification


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


class InvalidKeyError(Exception):
    """A credential that is not a usable key: malformed, unknown, revoked or expired (a 401)."""


@dataclass(frozen=True)
class KeyRecord:
    """One key as stored: everything but its secret, of which only the SHA-256 ``digest`` is kept."""

    id: str
    name: str
    scopes: tuple[str, ...]
    models: tuple[str, ...]
    digest: str
    created: datetime
    expires: datetime | None = None
    last_used: datetime | None = None
    revoked: datetime | None = None

    def public(self) -> dict[str, Any]:
        """What ``nnserve keys list`` shows: never the secret, nor its digest."""
        return {
            "id": self.id,
            "name": self.name,
            "scopes": list(self.scopes),
            "models": list(self.models),
            "created": _iso(self.created),
            "expires": _iso(self.expires),
            "last_used": _iso(self.last_used),
            "revoked": _iso(self.revoked),
        }


class KeyStore(Protocol):
    """Where a deployment's keys live: one per store, shared by every web worker and replica."""

    def create(
        self, name: str, scopes: Iterable[str], models: Iterable[str] = (), expires_days: float | None = None
    ) -> tuple[KeyRecord, str]:
        """A new key: its record and the whole key (``nns_<id>_<secret>``), which nothing keeps."""
        ...

    def records(self) -> list[KeyRecord]:
        """Every key, revoked ones too, oldest first."""
        ...

    def revoke(self, key_id: str) -> KeyRecord:
        """Revoke a key (from now on it answers 401 everywhere); NotFoundError for an unknown id."""
        ...

    def stamp(self) -> Hashable:
        """Changes whenever a key is created or revoked (not when one is used)."""
        ...

    def touch(self, used: Mapping[str, datetime]) -> None:
        """Record when keys were last used (a batch, written now and then, never per request)."""
        ...

    def import_records(self, records: Iterable[KeyRecord]) -> int:
        """Add the keys whose ids this store lacks, as they are (digest, times, revocation): ``store copy``.
        Keys it has already are left alone; returns how many were added."""
        ...


def new_key(
    name: str, scopes: Iterable[str], models: Iterable[str], expires_days: float | None
) -> tuple[KeyRecord, str]:
    """A validated record and its key; the secret exists only in the returned string."""
    name = validate_key_name(name)
    wanted = tuple(dict.fromkeys(scopes))
    if not wanted or any(s not in SCOPES for s in wanted):
        raise InvalidNameError(f"scopes must be some of {', '.join(SCOPES)}, not {list(wanted)}")
    models = tuple(dict.fromkeys(validate_name(m) for m in models))
    now = datetime.now(UTC)
    expires = None
    if expires_days is not None:
        if not 0 < expires_days <= MAX_EXPIRES_DAYS:
            raise InvalidNameError(f"expires-days must be more than 0 and at most {MAX_EXPIRES_DAYS}")
        expires = now + timedelta(days=expires_days)
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    record = KeyRecord(key_id, name, tuple(s for s in SCOPES if s in wanted), models, digest(secret), now, expires)
    return record, f"{PREFIX}_{key_id}_{secret}"


def validate_key_name(name: object) -> str:
    if not isinstance(name, str) or not 1 <= len(name) <= 64 or not name.isprintable() or name != name.strip():
        raise InvalidNameError(f"a key's name is 1 to 64 printable characters, not {name!r}")
    return name


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split(key: str) -> tuple[str, str]:
    """(id, secret) of ``nns_<id>_<secret>``; InvalidKeyError for anything else."""
    prefix, _, rest = key.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != PREFIX or len(key_id) != 12 or not secret or len(secret) > 128:
        raise InvalidKeyError("not an nnserve key")
    return key_id, secret


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


class FileKeyStore:
    """Keys in ``.keys.json`` (0600) in the store directory, replaced atomically under a lock; last uses in
    ``.keys-used.json``, so recording a use never changes the stamp every web worker watches."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.path = self.root / ".keys.json"
        self.used_path = self.root / ".keys-used.json"
        self.lock_path = self.root / ".keys.lock"

    def _read(self, path: Path) -> dict[str, Any]:
        try:
            return json.loads(durable.read_regular(path))  # type: ignore[no-any-return]
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise StoreUnavailableError(f"the key file {path} cannot be read ({exc})") from None

    def _write(self, path: Path, data: dict[str, Any]) -> None:
        durable.ensure_dir(self.root)
        durable.write_atomic(path, json.dumps(data, indent=1, sort_keys=True).encode(), mode=KEY_FILE_MODE)

    def create(
        self, name: str, scopes: Iterable[str], models: Iterable[str] = (), expires_days: float | None = None
    ) -> tuple[KeyRecord, str]:
        record, key = new_key(name, scopes, models, expires_days)
        self.import_records([record])
        return record, key

    def records(self) -> list[KeyRecord]:
        used = self._read(self.used_path)
        records = [
            KeyRecord(
                id=k,
                name=v["name"],
                scopes=tuple(v["scopes"]),
                models=tuple(v["models"]),
                digest=v["digest"],
                created=_parse(v["created"]),  # type: ignore[arg-type]
                expires=_parse(v.get("expires")),
                last_used=_parse(used.get(k)),
                revoked=_parse(v.get("revoked")),
            )
            for k, v in self._read(self.path).items()
        ]
        return sorted(records, key=lambda r: (r.created, r.id))

    def revoke(self, key_id: str) -> KeyRecord:
        durable.ensure_dir(self.root)
        with durable.locked(self.lock_path):
            data = self._read(self.path)
            if key_id not in data:
                raise NotFoundError(f"no key {key_id!r}")
            data[key_id]["revoked"] = data[key_id].get("revoked") or datetime.now(UTC).isoformat()
            self._write(self.path, data)
        return next(r for r in self.records() if r.id == key_id)

    def stamp(self) -> Hashable:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreUnavailableError(f"the key file {self.path} cannot be read ({exc.strerror})") from None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def touch(self, used: Mapping[str, datetime]) -> None:
        with durable.locked(self.lock_path):
            data = self._read(self.used_path)
            for key_id, moment in used.items():
                data[key_id] = moment.isoformat()
            self._write(self.used_path, data)

    def import_records(self, records: Iterable[KeyRecord]) -> int:
        durable.ensure_dir(self.root)
        with durable.locked(self.lock_path):
            data = self._read(self.path)
            added = [r for r in records if r.id not in data]
            for r in added:
                data[r.id] = {
                    "name": r.name,
                    "scopes": list(r.scopes),
                    "models": list(r.models),
                    "digest": r.digest,
                    "created": r.created.isoformat(),
                    "expires": None if r.expires is None else r.expires.isoformat(),
                    "revoked": None if r.revoked is None else r.revoked.isoformat(),
                }
            if added:
                self._write(self.path, data)
        used = {r.id: r.last_used for r in added if r.last_used is not None}
        if used:
            self.touch(used)
        return len(added)


def open_key_store(root: str | os.PathLike[str], database_url: str | None = None) -> KeyStore:
    """The key store beside the model store the configuration names."""
    if database_url:
        require_postgres()
        from service.store.pg_keys import PostgresKeyStore  # psycopg is imported only by those who use it

        return PostgresKeyStore(database_url)
    return FileKeyStore(root)


class KeyRing:
    """One web worker's copy of every key, so verifying one costs a dict look-up and a SHA-256.

    The copy is refreshed when the store's ``stamp`` changes: checked at most every ``check_interval`` s on
    the request path (the filesystem: one ``stat``), or pushed by ``refresh`` (PostgreSQL: the activation
    watcher calls it on a NOTIFY and on its poll; ``check_interval`` is then infinite). An unknown id makes a
    refresh at most every ``miss_interval`` s, so a key created a moment ago works at once and random ids
    cannot hammer the store. Uses are collected and written every ``touch_interval`` s by a daemon thread.
    """

    def __init__(
        self,
        store: KeyStore,
        check_interval: float = 0.25,
        miss_interval: float = 0.25,
        touch_interval: float = 30.0,
    ) -> None:
        self.store = store
        self.check_interval = check_interval
        self.miss_interval = miss_interval
        self.touch_interval = touch_interval
        self._keys: dict[str, KeyRecord] = {}
        self._expires: dict[str, float] = {}  # POSIX times, compared on every request
        self._stamp: Hashable = object()  # equal to no stamp: the first check loads
        self._checked = self._missed = float("-inf")
        self._lock = threading.Lock()
        self._used: dict[str, float] = {}
        self._toucher_pid = 0  # the process whose writer thread runs

    def refresh(self) -> None:
        """Reload the keys if the store's stamp changed; a store error keeps the old copy."""
        with self._lock:
            self._checked = time.monotonic()
            try:
                stamp = self.store.stamp()
                if stamp != self._stamp:
                    records = self.store.records()
                    self._expires = {r.id: r.expires.timestamp() for r in records if r.expires is not None}
                    self._keys = {r.id: r for r in records}
                    self._stamp = stamp
            except StoreError:
                return

    def any(self) -> bool:
        """Whether the store has any key at all (revoked ones count: admin calls are then on)."""
        self._maybe_check()
        if not self._keys:
            self._miss()
        return bool(self._keys)

    def _maybe_check(self) -> None:
        if time.monotonic() - self._checked >= self.check_interval:
            self.refresh()

    def _miss(self) -> None:
        """Something was not found in the copy: look at the store now, unless a miss did so very recently."""
        if time.monotonic() - self._missed >= self.miss_interval:
            self._missed = time.monotonic()
            self.refresh()

    def verify(self, key_id: str, secret: str) -> KeyRecord:
        """The record of the valid key ``nns_<key_id>_<secret>`` (``split``); InvalidKeyError (naming the key id,
        never the key) otherwise."""
        self._maybe_check()
        record = self._keys.get(key_id)
        if record is None:
            self._miss()
            record = self._keys.get(key_id)
        if record is None or not hmac.compare_digest(digest(secret), record.digest):
            raise InvalidKeyError("unknown key")
        if record.revoked is not None:
            raise InvalidKeyError(f"key {key_id} was revoked")
        now = time.time()
        if now >= self._expires.get(key_id, now + 1.0):
            raise InvalidKeyError(f"key {key_id} expired")
        self._used[key_id] = now
        if self._toucher_pid != _pid:  # no writer yet in this process (a forked copy has none)
            self._start_toucher()
        return record

    def _start_toucher(self) -> None:
        with self._lock:
            if self._toucher_pid != _pid:
                threading.Thread(target=self._touch_loop, name="nnserve-key-uses", daemon=True).start()
                self._toucher_pid = _pid

    def _touch_loop(self) -> None:
        while True:
            time.sleep(self.touch_interval)
            self.flush()

    def flush(self) -> None:
        """Write the uses collected since the last flush (a store error keeps them for the next one)."""
        used, self._used = self._used, {}
        if not used:
            return
        try:
            self.store.touch({key_id: datetime.fromtimestamp(at, UTC) for key_id, at in used.items()})
        except StoreError:
            for key_id, moment in used.items():
                self._used.setdefault(key_id, moment)
