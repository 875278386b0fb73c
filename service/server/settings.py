"""The server's settings, read once when the app is built: a typed copy the data plane and the adapters share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from service.config import DEFAULTS
from service.training.limits import Limits


@dataclass(frozen=True)
class ServerSettings:
    """What a request's path needs of the ``NNSERVE_*`` settings (``service/config.py`` documents each)."""

    max_rows: int  # NNSERVE_MAX_ROWS
    max_body_bytes: int  # NNSERVE_MAX_BODY_BYTES
    auth: str  # NNSERVE_AUTH: open-predict or closed
    admin_token: str | None  # NNSERVE_ADMIN_TOKEN
    explain_max_rows: int = DEFAULTS["NNSERVE_EXPLAIN_MAX_ROWS"]
    explain_max_steps: int = DEFAULTS["NNSERVE_EXPLAIN_MAX_STEPS"]
    explain_max_seconds: float = DEFAULTS["NNSERVE_EXPLAIN_MAX_SECONDS"]
    monitor_window: int = DEFAULTS["NNSERVE_MONITOR_WINDOW"]
    monitor_max_window: int = DEFAULTS["NNSERVE_MONITOR_MAX_WINDOW"]
    monitor_windows: int = DEFAULTS["NNSERVE_MONITOR_WINDOWS"]
    policy_interval: float = DEFAULTS["NNSERVE_POLICY_INTERVAL"]
    log_keep_rows: int = DEFAULTS["NNSERVE_LOG_KEEP_ROWS"]
    worker_stale_after: float = DEFAULTS["NNSERVE_WORKER_STALE_AFTER"]
    limits: Limits = field(default_factory=lambda: Limits.from_settings(DEFAULTS))  # of one retrain

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ServerSettings:
        return cls(
            max_rows=int(config["NNSERVE_MAX_ROWS"]),
            max_body_bytes=int(config["NNSERVE_MAX_BODY_BYTES"]),
            auth=str(config.get("NNSERVE_AUTH") or "open-predict"),
            admin_token=config.get("NNSERVE_ADMIN_TOKEN") or None,
            explain_max_rows=int(config.get("NNSERVE_EXPLAIN_MAX_ROWS", DEFAULTS["NNSERVE_EXPLAIN_MAX_ROWS"])),
            explain_max_steps=int(config.get("NNSERVE_EXPLAIN_MAX_STEPS", DEFAULTS["NNSERVE_EXPLAIN_MAX_STEPS"])),
            explain_max_seconds=float(
                config.get("NNSERVE_EXPLAIN_MAX_SECONDS", DEFAULTS["NNSERVE_EXPLAIN_MAX_SECONDS"])
            ),
            monitor_window=int(config["NNSERVE_MONITOR_WINDOW"]),
            monitor_max_window=int(config["NNSERVE_MONITOR_MAX_WINDOW"]),
            monitor_windows=int(config["NNSERVE_MONITOR_WINDOWS"]),
            policy_interval=float(config["NNSERVE_POLICY_INTERVAL"]),
            log_keep_rows=int(config["NNSERVE_LOG_KEEP_ROWS"]),
            worker_stale_after=float(config["NNSERVE_WORKER_STALE_AFTER"]),
            limits=Limits.from_settings(config),
        )
