"""The server's settings, read once when the app is built: a typed copy the data plane and the adapters share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from service.config import DEFAULTS


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
        )
