"""The backends the storage contract suites run against: add one here and it must pass them unchanged."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from service.store import ModelStore, open_store
from service.training.jobs import JobQueue, open_queue

STORE_BACKENDS = ["filesystem"]
QUEUE_BACKENDS = ["sqlite"]


@dataclass(frozen=True)
class Backend:
    """Where one backend keeps its state; picklable, so worker processes of a test can open it too."""

    kind: str
    root: Path  # the store directory (the embedded backends keep everything there)

    def store(self) -> ModelStore:
        return open_store(self.root)

    def queue(self) -> JobQueue:
        return open_queue(self.root)
