"""The backends the storage contract suites run against: add one here and it must pass them unchanged."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from service.store import AuditLog, KeyStore, ModelStore, open_audit_log, open_key_store, open_store
from service.store.monitoring import PredictionLog, open_prediction_log
from service.store.snapshots import MonitoringSnapshots, open_snapshots
from service.training.jobs import JobQueue, open_queue

STORE_BACKENDS = ["filesystem", "postgres"]
QUEUE_BACKENDS = ["sqlite", "postgres"]
LOG_BACKENDS = ["sqlite", "postgres"]
KEY_BACKENDS = ["filesystem", "postgres"]
SNAPSHOT_BACKENDS = ["filesystem", "postgres"]
AUDIT_BACKENDS = ["sqlite", "postgres"]


@dataclass(frozen=True)
class Backend:
    """Where one backend keeps its state; picklable, so worker processes of a test can open it too."""

    kind: str
    root: Path  # the store directory (the embedded backends keep everything there; postgres its cache)
    database_url: str | None = None  # the postgres backend's database

    def store(self) -> ModelStore:
        return open_store(self.root, self.database_url)

    def queue(self) -> JobQueue:
        return open_queue(self.root, self.database_url)

    def prediction_log(self) -> PredictionLog:
        return open_prediction_log(self.root, self.database_url)

    def keys(self) -> KeyStore:
        return open_key_store(self.root, self.database_url)

    def snapshots(self) -> MonitoringSnapshots:
        return open_snapshots(self.root, self.database_url)

    def audit(self, keep_rows: int = 100_000, keep_days: float = 365.0) -> AuditLog:
        return open_audit_log(self.root, self.database_url, keep_rows, keep_days)
