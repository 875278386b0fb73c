"""Monitoring snapshots: a model's live metrics and drift over a window, as the retraining worker last computed them.

Computing them reads up to a window of the prediction log per version (seconds of CPU at 100,000 rows), so web
workers never do: each policy pass of the retraining worker writes one snapshot per model and window
(``training/live.py``), and ``GET /v1/models/{name}/monitoring`` only reads it. The windows are the configured
default and maximum, plus those clients asked for (``ask``, at most ``most`` per model), computed from the next
pass on. ``MonitoringSnapshots`` is what every backend promises (``tests/contract/test_snapshot_contract.py``);
the embedded backend keeps one JSON file per model and window under ``<store>/.monitoring/``, the shared one a
PostgreSQL table (migration 9).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

from service.store.drivers import require_postgres
from service.store.durable import read_regular, write_atomic
from service.store.exceptions import StoreUnavailableError

__all__ = ["FileSnapshots", "MonitoringSnapshots", "Snapshot", "open_snapshots"]

DIRECTORY = ".monitoring"  # a dot name can never be a model name
MAX_SNAPSHOT_BYTES = 16 * 1024 * 1024  # a snapshot bigger than this was not written by nnserve


@dataclass(frozen=True)
class Snapshot:
    """The figures of ``model`` over ``window`` rows computed at ``computed_at`` (unix time), or a window a client
    asked for that no pass has computed yet (both None)."""

    model: str
    window: int
    computed_at: float | None = None
    figures: dict[str, Any] | None = None


class MonitoringSnapshots(Protocol):
    """The latest monitoring figures per model and window, written by the retraining worker, read by web workers."""

    def read(self, model: str, window: int) -> Snapshot | None:
        """The snapshot of ``model`` over ``window`` (computed or only asked for), or None if nobody asked yet."""
        ...

    def ask(self, model: str, window: int, most: int) -> bool:
        """Ask for figures over ``window`` from the next pass on, unless ``model`` already has ``most`` windows (give
        or take concurrent asks); whether that window is now known."""
        ...

    def windows(self, model: str) -> list[int]:
        """The windows of ``model`` with a snapshot or asked for, ascending."""
        ...

    def write(self, snapshot: Snapshot) -> None:
        """Replace the snapshot of its model and window."""
        ...


class FileSnapshots:
    """Snapshots as ``<store>/.monitoring/<model>/<window>.json``, each replaced atomically (readers never see
    half of one). Reading a store nobody asked anything of creates nothing."""

    def __init__(self, store_root: str | os.PathLike[str]) -> None:
        self.root = Path(store_root) / DIRECTORY

    def _path(self, model: str, window: int) -> Path:
        return self.root / model / f"{int(window)}.json"

    def read(self, model: str, window: int) -> Snapshot | None:
        try:
            body = orjson.loads(read_regular(self._path(model, window), MAX_SNAPSHOT_BYTES))
        except FileNotFoundError:
            return None
        except (OSError, orjson.JSONDecodeError) as exc:
            raise StoreUnavailableError(f"the monitoring snapshot of {model} over {window} rows: {exc}") from None
        return Snapshot(model, window, body.get("computed_at"), body.get("figures"))

    def ask(self, model: str, window: int, most: int) -> bool:
        if self._path(model, window).exists():
            return True
        if len(self.windows(model)) >= most:
            return False
        self.write(Snapshot(model, window))
        return True

    def windows(self, model: str) -> list[int]:
        with contextlib.suppress(FileNotFoundError):
            names = [p.stem for p in (self.root / model).iterdir() if p.suffix == ".json"]
            return sorted(int(n) for n in names if n.isdigit())
        return []

    def write(self, snapshot: Snapshot) -> None:
        path = self._path(snapshot.model, snapshot.window)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, orjson.dumps({"computed_at": snapshot.computed_at, "figures": snapshot.figures}))
        except OSError as exc:
            raise StoreUnavailableError(f"the monitoring snapshot {path} cannot be written: {exc}") from None


def open_snapshots(store_root: str | os.PathLike[str], database_url: str | None = None) -> MonitoringSnapshots:
    """The snapshots the configuration names: files in the store directory unless a database URL is given."""
    if database_url:
        require_postgres()
        from service.store.pg_snapshots import PostgresSnapshots  # psycopg only for those who use it

        return PostgresSnapshots(database_url)
    return FileSnapshots(store_root)
