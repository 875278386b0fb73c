"""Every ``NNSERVE_*`` setting, once: its default, its type and what it means.

The documentation's configuration table (docs/configuration.md) is generated
from ``SETTINGS`` when the site is built (``python -m service.config`` prints
it); the app, the CLI and the gunicorn config all read their values through
this module.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULTS", "SETTINGS", "ConfigError", "Setting", "from_environ", "markdown_table", "value"]


class ConfigError(ValueError):
    """An ``NNSERVE_*`` variable whose value is not one its setting takes."""


@dataclass(frozen=True)
class Setting:
    """One environment variable: ``default`` None means unset (or, with ``shown``, computed at start)."""

    name: str
    default: str | int | float | None
    meaning: str
    shown: str | None = None  # how the default reads in the docs when it is not a literal
    kind: type = str  # the type of a setting without a literal default
    zero_allowed: bool = False  # a number may be 0 (a rule turned off), else it must be positive
    choices: tuple[str, ...] = ()  # the values a string setting may take (any when empty)
    most: float | None = None  # the largest value a number may take


SETTINGS: tuple[Setting, ...] = (
    Setting("NNSERVE_STORE", "./store", "model store directory (versions, datasets, job queue)"),
    Setting(
        "NNSERVE_DATABASE_URL",
        None,
        "postgresql:// URL: models and jobs in PostgreSQL, shared by replicas (NNSERVE_STORE is then a local cache)",
    ),
    Setting("NNSERVE_MODELS", "./models", "catalog of specs trained into an empty store"),
    Setting(
        "NNSERVE_ADMIN_TOKEN",
        None,
        "the bootstrap admin credential: a bearer token with every scope (logged as key id `bootstrap`); "
        "unset with no admin key, admin calls answer 403",
    ),
    Setting(
        "NNSERVE_AUTH",
        "open-predict",
        "who may call what: `open-predict`, predictions and reads need no key (feedback needs a `feedback` key, "
        "admin calls an `admin` key); `closed`, every v1/v2 call and dashboard page needs a key "
        "(/healthz, /readyz, /metrics stay open)",
        choices=("open-predict", "closed"),
    ),
    Setting(
        "NNSERVE_KEY_CHECK_INTERVAL",
        0.25,
        "seconds between a web worker's checks of the store's keys (filesystem; PostgreSQL announces changes): "
        "a revoked key answers 401 everywhere within it",
        most=1.0,
    ),
    Setting("NNSERVE_KEY_USE_INTERVAL", 30.0, "seconds between a web worker's writes of its keys' last use"),
    Setting("NNSERVE_KEY", None, "the API key `nnserve remote` and the Python client send (`--key`)"),
    Setting("NNSERVE_MAX_BODY_BYTES", 16 * 1024 * 1024, "larger request bodies get 413"),
    Setting("NNSERVE_MAX_ROWS", 10_000, "more rows in one prediction get 422"),
    Setting("NNSERVE_EXPLAIN_MAX_ROWS", 100, "more rows in one explanation get 422 (each costs `steps` gradients)"),
    Setting("NNSERVE_EXPLAIN_MAX_STEPS", 256, "the most integrated-gradients `steps` an explanation may ask for (422)"),
    Setting(
        "NNSERVE_EXPLAIN_MAX_SECONDS",
        10.0,
        "seconds an explanation may compute; past them it stops between rows and answers 422 (fewer rows or steps)",
    ),
    Setting(
        "NNSERVE_IMPORTANCE_ROWS",
        200,
        "evaluation rows (a seeded sample) whose mean absolute attributions publish records as global importance",
    ),
    Setting("NNSERVE_IMPORTANCE_STEPS", 32, "integrated-gradients steps of the global importance at publish"),
    Setting("NNSERVE_RELOAD_INTERVAL", 0.25, "seconds between a web worker's checks of a model's active version"),
    Setting(
        "NNSERVE_ACTIVATION_NOTIFY",
        "on",
        "with NNSERVE_DATABASE_URL: `on`, web workers LISTEN for activations and load them at once; "
        "`off`, they find them by polling alone (NNSERVE_ACTIVATION_POLL)",
        choices=("on", "off"),
    ),
    Setting(
        "NNSERVE_ACTIVATION_POLL",
        5.0,
        "with NNSERVE_DATABASE_URL: seconds between a web worker's polls of every model's activation "
        "(the fallback for lost notifications)",
    ),
    Setting(
        "NNSERVE_DB_CONNECT_TIMEOUT",
        2,
        "with NNSERVE_DATABASE_URL: seconds to open a connection before the database counts as down "
        "(libpq takes 2 at least)",
    ),
    Setting(
        "NNSERVE_DB_POOL_TIMEOUT",
        0.5,
        "with NNSERVE_DATABASE_URL: seconds a call waits for a busy pool's connection before it answers 503 "
        "(one the pool must open first may take NNSERVE_DB_CONNECT_TIMEOUT)",
    ),
    Setting(
        "NNSERVE_DB_RETRY_INTERVAL",
        2.0,
        "with NNSERVE_DATABASE_URL: once the database is known to be down, calls that need it answer 503 at once "
        "and one call every this many seconds probes for its return",
    ),
    Setting("NNSERVE_CACHE_VERSIONS", 8, "pinned (non-active) versions kept loaded per web worker (LRU)"),
    Setting("NNSERVE_LOG_LEVEL", "info", "level of the JSON log lines: debug, info, warning, error"),
    Setting("NNSERVE_ACCESS_LOG", None, "a file for gunicorn's text access log as well (the app always logs JSON)"),
    Setting("NNSERVE_MAX_LAYERS", 16, "hidden layers a retrain or spec may ask for (422 beyond)"),
    Setting("NNSERVE_MAX_PARAMETERS", 10_000_000, "weights and biases of one network (422 beyond; ~40 MB in float32)"),
    Setting("NNSERVE_MAX_TRAINING_WORK", 1e13, "epochs x rows x parameters of one training run (422 beyond)"),
    Setting("NNSERVE_JOB_MAX_RUNTIME", 3600.0, "seconds a retraining job may train before it is failed"),
    Setting("NNSERVE_MAX_LABEL_LENGTH", 256, "characters of one class label in retrain data or a CSV"),
    Setting("NNSERVE_MAX_CLASSES", 1000, "distinct classes in retrain data or a CSV"),
    Setting("NNSERVE_MAX_QUEUED_JOBS", 5, "queued retrains per model; more answer 429 with Retry-After"),
    Setting(
        "NNSERVE_WORKER_STALE_AFTER", 30.0, "seconds without a sign of life after which no retraining worker is live"
    ),
    Setting("NNSERVE_BIND", "127.0.0.1:8000", "gunicorn's address; `--host`/`--port` (or the two below) override it"),
    Setting("NNSERVE_HOST", None, "`nnserve serve --host`: the address part of the bind", shown="from NNSERVE_BIND"),
    Setting("NNSERVE_PORT", None, "`nnserve serve --port`: the port part of the bind", "from NNSERVE_BIND", int),
    Setting("NNSERVE_WORKERS", None, "gunicorn web workers (`--workers`)", "one per core", int),
    Setting("NNSERVE_THREADS", 4, "threads per gunicorn web worker"),
    Setting(
        "NNSERVE_MALLOC_ARENAS",
        2,
        "glibc malloc arenas per process of `nnserve serve` (it sets MALLOC_ARENA_MAX unless that is set): glibc's "
        "default, 8 per core, keeps what large predictions freed in each thread's own arena",
        shown="2 (0: glibc's default)",
        zero_allowed=True,
    ),
    Setting("NNSERVE_GRACEFUL_TIMEOUT", 20, "seconds gunicorn lets requests finish after SIGTERM"),
    Setting(
        "NNSERVE_GRPC_PORT",
        8081,
        "port of the Open Inference Protocol over gRPC (`inference.GRPCInferenceService` and `grpc.health.v1`), on "
        "the address of NNSERVE_BIND: every web worker serves it (SO_REUSEPORT)",
        shown="8081 (0: off)",
        zero_allowed=True,
        most=65535,
    ),
    Setting("NNSERVE_GRPC_THREADS", 4, "threads per web worker answering gRPC calls"),
    Setting(
        "NNSERVE_GRPC_MAX_CONCURRENT",
        64,
        "gRPC calls a web worker holds at once (running or waiting for a thread); more answer RESOURCE_EXHAUSTED",
    ),
    Setting("NNSERVE_READ_TIMEOUT", 30.0, "seconds a request may take to arrive whole (`nnserve serve`); then 408"),
    Setting(
        "NNSERVE_KEEP_VERSIONS",
        0,
        "retention after each retrain: keep the newest N versions of a model (active, previous, pinned always stay)",
        shown="0: off, unlimited",
        zero_allowed=True,
    ),
    Setting(
        "NNSERVE_KEEP_DAYS",
        0.0,
        "retention after each retrain: keep versions younger than D days (with the rule above: kept if either keeps)",
        shown="0: off, unlimited",
        zero_allowed=True,
    ),
    Setting("NNSERVE_URL", "http://127.0.0.1:8000", "the server `nnserve remote` talks to (`--url`)"),
    Setting(
        "NNSERVE_LOG_SAMPLE_RATE",
        None,
        "fraction (0 to 1) of predictions written to the prediction log, for every model (overrides each spec's "
        "`[monitoring] sample_rate`)",
        shown="from each spec (0: off)",
        kind=float,
        most=1.0,
        zero_allowed=True,
    ),
    Setting(
        "NNSERVE_LOG_BUFFER_ROWS",
        20_000,
        "rows a web worker holds for the prediction log writer; beyond, they are dropped and counted",
    ),
    Setting(
        "NNSERVE_LOG_BUFFER_BYTES",
        16 * 1024 * 1024,
        "bytes of rows and outputs a web worker holds for the prediction log writer; beyond, dropped and counted",
    ),
    Setting(
        "NNSERVE_LOG_MAX_ROWS_PER_REQUEST",
        100,
        "rows of one prediction the log keeps (a uniform sample); the others are dropped and counted",
    ),
    Setting(
        "NNSERVE_LOG_MAX_BYTES",
        1 << 30,
        "the SQLite prediction log's size on disk (database and WAL); the oldest rows go first (PostgreSQL: not "
        "applied)",
    ),
    Setting("NNSERVE_LOG_KEEP_ROWS", 100_000, "prediction log retention: the newest N rows per model are kept"),
    Setting("NNSERVE_LOG_KEEP_DAYS", 30.0, "prediction log retention: rows older than D days are removed"),
    Setting(
        "NNSERVE_AUDIT_KEEP_ROWS",
        100_000,
        "audit log retention: the newest N entries (over every model, refused calls included) are kept",
    ),
    Setting("NNSERVE_AUDIT_KEEP_DAYS", 365.0, "audit log retention: entries older than D days are removed"),
    Setting(
        "NNSERVE_COPY_CHUNK_ROWS",
        1000,
        "`nnserve store copy --with-history`: history rows read and written per batch (bounds its memory)",
    ),
    Setting(
        "NNSERVE_FEEDBACK_TOKEN_TTL",
        7 * 86_400,
        "seconds a logged prediction's `feedback_token` authorizes feedback for its rows (7 days)",
    ),
    Setting("NNSERVE_MONITOR_WINDOW", 1000, "live metrics and drift rest on the last N logged rows of each version"),
    Setting(
        "NNSERVE_DRIFT_MIN_ROWS",
        100,
        'logged rows a version\'s drift needs: below, it says "not enough rows" and no drift policy fires',
    ),
    Setting(
        "NNSERVE_MONITOR_MAX_WINDOW",
        100_000,
        "the largest `window` a monitoring read may ask for (beyond: 422); the retraining worker computes it each pass",
    ),
    Setting(
        "NNSERVE_MONITOR_WINDOWS",
        8,
        "windows per model the retraining worker computes figures for, the default and the maximum included; a "
        "read asking for another one gets no figures",
    ),
    Setting(
        "NNSERVE_POLICY_INTERVAL",
        30.0,
        "seconds between the retraining worker's evaluations of the specs' `[retrain]` policies",
    ),
)

DEFAULTS: dict[str, Any] = {s.name: s.default for s in SETTINGS}


def _convert(setting: Setting, raw: str) -> Any:
    kind = setting.kind if setting.default is None else type(setting.default)
    if kind is str:
        if setting.choices and raw not in setting.choices:
            raise ConfigError(f"{setting.name}={raw!r} must be one of {', '.join(setting.choices)}")
        return raw
    try:
        converted = kind(raw)
    except ValueError:
        raise ConfigError(f"{setting.name}={raw!r} is not a valid {kind.__name__}") from None
    if converted != converted or converted < 0 or (converted == 0 and not setting.zero_allowed):  # NaN too
        raise ConfigError(f"{setting.name}={raw!r} must be {'0 or more' if setting.zero_allowed else 'positive'}")
    if setting.most is not None and converted > setting.most:
        raise ConfigError(f"{setting.name}={raw!r} must be at most {setting.most:g}")
    return converted


def from_environ(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Settings from the environment, each converted to its default's type.

    A value that does not convert raises ``ValueError`` naming the variable,
    so a typo fails at start-up instead of at the first request.
    """
    environ = os.environ if environ is None else environ
    settings = dict(DEFAULTS)
    for setting in SETTINGS:
        raw = environ.get(setting.name)
        if raw:
            settings[setting.name] = _convert(setting, raw)
    return settings


def value(name: str, environ: Mapping[str, str] | None = None) -> Any:
    """One setting's value from the environment (its default when unset)."""
    return from_environ(environ)[name]


def markdown_table() -> str:
    """The configuration table: docs/configuration.md shows it, rendered when the site is built."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for s in SETTINGS:
        default = s.shown or ("unset" if s.default is None else f"`{s.default}`")
        lines.append(f"| `{s.name}` | {default} | {s.meaning} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
