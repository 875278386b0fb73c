"""Retraining-worker liveness: every live worker touches its own file in the store every few seconds.

Readiness, ``/metrics`` and the job list read the newest touch: a worker
killed with SIGKILL stops touching, so its silence grows until the next one
starts. A file per worker (``<store>/.workers/<host>-<pid>``), not a queue row,
so every queue backend gets liveness without a schema of its own.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from pathlib import Path

from service import telemetry

__all__ = ["FOLDER", "INTERVAL", "Heartbeat", "silence"]

FOLDER = ".workers"  # a dot name is never a model name, so the store's listings skip it
INTERVAL = 2.0  # seconds between touches


def _path(store_root: str | os.PathLike[str], identity: str) -> Path:
    return Path(store_root) / FOLDER / re.sub(r"[^A-Za-z0-9_.-]", "-", identity)


def silence(store_root: str | os.PathLike[str], now: float | None = None) -> float | None:
    """Seconds since the newest heartbeat of any worker of this store; None when none ever beat."""
    try:
        with os.scandir(Path(store_root) / FOLDER) as entries:
            newest = max((e.stat().st_mtime for e in entries if e.is_file()), default=None)
    except OSError:
        return None
    if newest is None:
        return None
    return max(0.0, (time.time() if now is None else now) - newest)


class Heartbeat:
    """A daemon thread touching this worker's file every ``INTERVAL`` s until ``stop``."""

    def __init__(self, store_root: str | os.PathLike[str], identity: str, interval: float = INTERVAL) -> None:
        self.path = _path(store_root, identity)
        self.interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def beat(self) -> None:
        now = time.time()
        with contextlib.suppress(OSError):  # a full or read-only disk shows as silence, not as a dead loop
            self.path.parent.mkdir(exist_ok=True)
            self.path.touch()
            os.utime(self.path, (now, now))
        telemetry.worker_heartbeat(now)

    def _run(self) -> None:
        while not self._stopped.is_set():
            self.beat()
            self._stopped.wait(self.interval)

    def start(self) -> Heartbeat:
        self.beat()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop beating and remove the file: a worker that exits cleanly is gone, not silent."""
        self._stopped.set()
        self._thread.join(self.interval + 1)
        with contextlib.suppress(OSError):
            self.path.unlink()
