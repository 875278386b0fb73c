"""Service configuration: ``NNSERVE_*`` environment variables with documented defaults.

| variable                  | default   | meaning                                                   |
|---------------------------|-----------|-----------------------------------------------------------|
| NNSERVE_STORE             | ./store   | model store directory                                     |
| NNSERVE_MODELS            | ./models  | catalog of model specs trained into an empty store        |
| NNSERVE_ADMIN_TOKEN       | (unset)   | bearer token for admin calls; unset disables them (403)   |
| NNSERVE_MAX_BODY_BYTES    | 16777216  | larger request bodies get 413                             |
| NNSERVE_MAX_ROWS          | 10000     | more rows in one prediction get 422                       |
| NNSERVE_RELOAD_INTERVAL   | 0.25      | seconds between checks of a model's ACTIVE file           |
| NNSERVE_CACHE_VERSIONS    | 8         | pinned (non-active) versions kept loaded per worker (LRU) |
| NNSERVE_LOG_LEVEL         | info      | level of the JSON log lines (debug, info, warning, error) |
| NNSERVE_READ_TIMEOUT      | 30        | seconds a request may take to arrive whole; then 408      |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

DEFAULTS: dict[str, Any] = {
    "NNSERVE_STORE": "./store",
    "NNSERVE_MODELS": "./models",
    "NNSERVE_ADMIN_TOKEN": None,
    "NNSERVE_MAX_BODY_BYTES": 16 * 1024 * 1024,
    "NNSERVE_MAX_ROWS": 10_000,
    "NNSERVE_RELOAD_INTERVAL": 0.25,
    "NNSERVE_CACHE_VERSIONS": 8,
    "NNSERVE_LOG_LEVEL": "info",
    "NNSERVE_READ_TIMEOUT": 30.0,
}


def from_environ(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Settings from the environment, each converted to its default's type.

    A value that does not convert raises ``ValueError`` naming the variable,
    so a typo fails at start-up instead of at the first request.
    """
    environ = os.environ if environ is None else environ
    settings = dict(DEFAULTS)
    for key, default in DEFAULTS.items():
        raw = environ.get(key)
        if raw is None or raw == "":
            continue
        if default is None or isinstance(default, str):
            settings[key] = raw
            continue
        try:
            value = type(default)(raw)
        except ValueError:
            raise ValueError(f"{key}={raw!r} is not a valid {type(default).__name__}") from None
        if value <= 0:
            raise ValueError(f"{key}={raw!r} must be positive")
        settings[key] = value
    return settings
