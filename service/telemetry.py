"""Prometheus metrics, added up over every process of one server (the Flask hooks that feed the request metrics
are ``service/server/access.py``; this module imports no Flask).

Under gunicorn the config file points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh,
empty directory before any worker starts (it is wiped at every server start),
so prometheus-client runs in multiprocess mode: each process (every web
worker, and the retraining worker the master starts, which inherits the
variable) writes its figures to its own memory-mapped files there, and
``GET /metrics`` on whichever worker answers merges all of them. Without the
variable (Flask's test client, the CLI) the same metrics live in a plain
in-process registry.

| metric                               | type      | labels                           |
|--------------------------------------|-----------|----------------------------------|
| nnserve_requests_total               | counter   | endpoint, model, version, status |
| nnserve_request_duration_seconds     | histogram | endpoint                         |
| nnserve_prediction_rows_total        | counter   | model, version                   |
| nnserve_model_active_version         | gauge     | model                            |
| nnserve_model_load_failures_total    | counter   |                                  |
| nnserve_retrain_jobs_total           | counter   | status                           |
| nnserve_training_duration_seconds    | histogram |                                  |
| nnserve_prediction_log_rows_total    | counter   | model                            |
| nnserve_prediction_log_dropped_total | counter   | model, reason                    |
| nnserve_live_metric                  | gauge     | model, version, metric           |
| nnserve_drift_psi                    | gauge     | model, version, feature          |

Label values stay few: ``endpoint`` is the URL rule (``/v1/models/<name>/predict``,
``<unmatched>`` when no route matched) or the gRPC method (``/inference.GRPCInferenceService/ModelInfer``, its
``status`` the code's name: ``OK``, ``INVALID_ARGUMENT``), never the raw path; ``model`` is set only
for models the worker has loaded (an unknown name gives ``""``); ``version`` only
when a version was actually resolved; no request ids.

``nnserve_model_active_version`` uses the ``livemostrecent`` multiprocess mode:
the value most recently set by a live process. Each web worker sets it when it
loads a new active version, so after an activation (forward or a roll back)
the gauge shows the new version as soon as one worker has picked it up, and a
dead worker's stale value is dropped (``child_exit`` calls
``mark_process_dead``). ``max`` would hide a roll back, and ``all``/``liveall``
would add a ``pid`` label per worker.
"""

from __future__ import annotations

import functools
import glob
import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
if MULTIPROC_DIR:
    os.makedirs(MULTIPROC_DIR, exist_ok=True)

# The metrics below register here; in multiprocess mode a scrape reads the files instead.
REGISTRY = CollectorRegistry()

REQUESTS = Counter(
    "nnserve_requests_total",
    "Requests answered, by endpoint (an HTTP URL rule or a gRPC method), model, model version and status (an HTTP "
    "status code or a gRPC code's name).",
    ["endpoint", "model", "version", "status"],
    registry=REGISTRY,
)
REQUEST_DURATION = Histogram(
    "nnserve_request_duration_seconds",
    "Time to answer a request: an HTTP one from the first to the last hook of the app, a gRPC call around its method.",
    ["endpoint"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
PREDICTION_ROWS = Counter(
    "nnserve_prediction_rows_total",
    "Rows predicted (v1 predict and v2 infer), by model and version.",
    ["model", "version"],
    registry=REGISTRY,
)
WORKER_HEARTBEAT_AGE = Gauge(
    "nnserve_retraining_worker_heartbeat_age_seconds",
    "Seconds since any retraining worker of the store last showed a sign of life (NaN: never).",
    multiprocess_mode="mostrecent",
    registry=REGISTRY,
)
ACTIVE_VERSION = Gauge(
    "nnserve_model_active_version",
    "The active version a web worker most recently loaded, per model.",
    ["model"],
    multiprocess_mode="livemostrecent",
    registry=REGISTRY,
)
ROLLOUT_CANDIDATE = Gauge(
    "nnserve_rollout_candidate",
    "The candidate version of a model's running canary or shadow as web workers route by it (0: none running); "
    "nnserve_requests_total by version shows the share it answers.",
    ["model", "mode"],
    multiprocess_mode="livemostrecent",
    registry=REGISTRY,
)
LOAD_FAILURES = Counter(
    "nnserve_model_load_failures_total",
    "Active versions a web worker failed to load or warm up (it kept serving the previous one).",
    registry=REGISTRY,
)
RETRAIN_JOBS = Counter(
    "nnserve_retrain_jobs_total",
    "Retraining jobs that reached a final status: succeeded, failed or cancelled.",
    ["status"],
    registry=REGISTRY,
)
TRAINING_DURATION = Histogram(
    "nnserve_training_duration_seconds",
    "Training time of each retraining job that succeeded.",
    buckets=(0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0),
    registry=REGISTRY,
)

LOGGED_ROWS = Counter(
    "nnserve_prediction_log_rows_total",
    "Predicted rows written to the prediction log, by model.",
    ["model"],
    registry=REGISTRY,
)
LOG_DROPPED = Counter(
    "nnserve_prediction_log_dropped_total",
    "Sampled rows the prediction log does not hold, by model and reason: 'per_request' (beyond "
    "NNSERVE_LOG_MAX_ROWS_PER_REQUEST of one request), 'buffer_rows' and 'buffer_bytes' (a web worker's buffer "
    "was at NNSERVE_LOG_BUFFER_ROWS or NNSERVE_LOG_BUFFER_BYTES), 'error' (the log refused the write), 'disk' "
    "(the oldest rows, removed to keep the log under NNSERVE_LOG_MAX_BYTES).",
    ["model", "reason"],
    registry=REGISTRY,
)
DROP_REASONS = ("per_request", "buffer_rows", "buffer_bytes", "error", "disk")
LIVE_METRIC = Gauge(
    "nnserve_live_metric",
    "A version's live metric over its last labelled rows (NNSERVE_MONITOR_WINDOW), as last computed.",
    ["model", "version", "metric"],
    multiprocess_mode="mostrecent",
    registry=REGISTRY,
)
DRIFT_PSI = Gauge(
    "nnserve_drift_psi",
    "Population stability index of a feature's logged inputs against the version's training data, as last computed "
    "('<predictions>' for the predictions).",
    ["model", "version", "feature"],
    multiprocess_mode="mostrecent",
    registry=REGISTRY,
)

UNMATCHED = "<unmatched>"
# The classic text format, which every Prometheus reads (our names need none of 1.0.0's escaping).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def exposition() -> bytes:
    """The Prometheus text format of every metric, over all processes in multiprocess mode."""
    if MULTIPROC_DIR:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, MULTIPROC_DIR)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


# -- what the app and the other modules call ---------------------------------------


# Labelled children, looked up once per label set instead of on every request (prometheus_client's
# ``labels()`` validates and locks each time). Label sets are few: routes x models x versions x statuses.
@functools.lru_cache(maxsize=4096)
def _rows_counter(name: str, version: str) -> Any:
    return PREDICTION_ROWS.labels(name, version)


@functools.lru_cache(maxsize=4096)
def _requests_counter(endpoint: str, name: str, version: str, status: str) -> Any:
    return REQUESTS.labels(endpoint, name, version, status)


@functools.lru_cache(maxsize=256)
def _duration_histogram(endpoint: str) -> Any:
    return REQUEST_DURATION.labels(endpoint)


def request_answered(endpoint: str, name: str, version: str, status: int, seconds: float) -> None:
    """One request of URL rule ``endpoint`` answered ``status`` in ``seconds``, labelled with its model version."""
    _requests_counter(endpoint, name, version, str(status)).inc()
    _duration_histogram(endpoint).observe(seconds)


def rows_predicted(name: str, version: int, rows: int) -> None:
    """A request predicted ``rows`` rows with ``name`` version ``version``."""
    _rows_counter(name, str(version)).inc(rows)


def active_version(name: str, version: int) -> None:
    ACTIVE_VERSION.labels(name).set(version)


def rollout_candidate(name: str, mode: str | None, candidate: int) -> None:
    """The rollout a web worker routes ``name`` by: ``mode`` "canary" or "shadow" with its candidate, or none."""
    for each in ("canary", "shadow"):
        ROLLOUT_CANDIDATE.labels(name, each).set(candidate if each == mode else 0)


def load_failed() -> None:
    LOAD_FAILURES.inc()


def worker_heartbeat_age(seconds: float | None) -> None:
    WORKER_HEARTBEAT_AGE.set(float("nan") if seconds is None else seconds)


def rows_logged(name: str, rows: int) -> None:
    LOGGED_ROWS.labels(name).inc(rows)


@functools.lru_cache(maxsize=4096)
def _dropped_counter(name: str, reason: str) -> Any:
    return LOG_DROPPED.labels(name, reason)


def log_dropped(name: str, reason: str, rows: int) -> None:
    """``rows`` sampled rows of model ``name`` the prediction log does not hold, for ``reason`` (DROP_REASONS)."""
    _dropped_counter(name, reason).inc(rows)


def log_dropped_known(name: str) -> None:
    """Show model ``name``'s dropped rows for every reason, at 0 until one is dropped (once a process knows it)."""
    for reason in DROP_REASONS:
        _dropped_counter(name, reason)


def dropped_rows(name: str) -> dict[str, int]:
    """Model ``name``'s dropped rows per reason, summed over every process of the server (as ``/metrics`` shows);
    in multiprocess mode from the counters' files alone (not the histograms', the bulk of them)."""
    counts = dict.fromkeys(DROP_REASONS, 0)
    if MULTIPROC_DIR:
        counters = glob.glob(os.path.join(MULTIPROC_DIR, "counter_*.db"))
        metrics = MultiProcessCollector.merge(counters, accumulate=True)
    else:
        metrics = REGISTRY.collect()
    for metric in metrics:
        if metric.name == "nnserve_prediction_log_dropped":
            for sample in metric.samples:
                if sample.name.endswith("_total") and sample.labels.get("model") == name:
                    reason = sample.labels["reason"]
                    counts[reason] = counts.get(reason, 0) + int(sample.value)
    return counts


def live_figures(name: str, version: int, metrics: dict[str, float], psi: dict[str, float]) -> None:
    """Set the live metrics and drift of one version, as the monitoring endpoint or the worker just computed them."""
    for metric, value in metrics.items():
        LIVE_METRIC.labels(name, str(version), metric).set(value)
    for feature, value in psi.items():
        DRIFT_PSI.labels(name, str(version), feature).set(value)


def job_finished(status: str, training_seconds: float | None = None) -> None:
    RETRAIN_JOBS.labels(status).inc()
    if training_seconds is not None:
        TRAINING_DURATION.observe(training_seconds)
