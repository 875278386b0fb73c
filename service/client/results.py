"""What the client's calls return: typed results (frozen dataclasses) and the one error, ``NnserveError``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

FINAL_STATUSES = ("succeeded", "failed", "cancelled")
T = TypeVar("T")


class NnserveError(Exception):
    """An error answer of the server (its ``status``, ``message`` and field ``errors``), or no answer at all.

    ``status`` is the HTTP status; 0 means no HTTP answer arrived (connection
    refused, timeout, a body that is not nnserve's JSON). ``errors`` maps
    request fields to their messages, as the server sent them.
    """

    def __init__(self, status: int, message: str, errors: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status
        self.message = message
        self.errors: dict[str, Any] = dict(errors or {})


@dataclass(frozen=True)
class Prediction:
    model: str
    version: int
    predictions: list[Any]  # class labels for classifiers, numbers (or rows of numbers) for regressors
    probabilities: list[list[float]] | None = None  # one row per instance, classes in the model's order
    request_id: str | None = None  # set when the prediction was logged: quote it in ``feedback``
    feedback_token: str | None = None  # set when logged: lets ``feedback`` label this prediction without a key


@dataclass(frozen=True)
class RowExplanation:
    """One row's explanation: each feature's attribution to the explained output, which moved from
    ``baseline_output`` (at the baseline) to ``output`` (at the row); integrated gradients' ``completeness_gap``."""

    prediction: Any
    target: Any  # the class explained, or 0 for a regressor's output
    output: float
    baseline_output: float
    attributions: dict[str, float]
    completeness_gap: float | None = None


@dataclass(frozen=True)
class Explanation:
    model: str
    version: int
    method: str
    steps: int | None
    baseline: Any  # "mean", "zeros" or the row given
    explanations: list[RowExplanation]


@dataclass(frozen=True)
class InferResult:
    """A v2 (Open Inference Protocol) inference: every output as a numpy array of its datatype and shape.

    ``outputs`` keeps the server's order: ``predictions`` (class indices for a classifier, values for a regressor),
    and for a classifier ``labels`` (strings) and ``probabilities`` (one row per input row).
    """

    model_name: str
    model_version: str
    outputs: dict[str, np.ndarray]
    request_id: str | None = None  # set when the prediction was logged: quote it in ``feedback``
    feedback_token: str | None = None  # set when logged: lets ``feedback`` label this prediction without a key


@dataclass(frozen=True)
class ModelSummary:
    name: str
    version: int
    task: str
    n_features: int
    metrics: dict[str, float]
    classes: list[Any] | None = None


@dataclass(frozen=True)
class VersionInfo:
    version: int
    active: bool
    ok: bool
    created_at: str | None = None
    metrics: dict[str, float] | None = None
    error: str | None = None


@dataclass(frozen=True)
class ModelDetail:
    name: str
    task: str
    active_version: int | None
    versions: list[VersionInfo]
    feature_names: list[str] | None
    n_features: int
    classes: list[Any] | None
    metrics: dict[str, float]
    description: str | None = None


@dataclass(frozen=True)
class Activation:
    model: str
    version: int
    previous_version: int | None


@dataclass(frozen=True)
class Job:
    id: str
    model: str
    status: str
    created_at: str
    request: dict[str, Any] | None = None  # shown with the admin token only
    progress: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    cancel_requested: bool = False
    worker: str | None = None
    started_at: str | None = None
    finished_at: str | None = None

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES


@dataclass(frozen=True)
class JobPage:
    jobs: list[Job]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True)
class AuditEntry:
    """One entry of the server's audit log (``GET /v1/audit``): ``at`` is ISO 8601 UTC; ``actor`` a key id,
    ``bootstrap``, ``token`` or ``cli`` (None: no credential); ``status`` None for a command."""

    seq: int
    at: str
    actor: str | None
    action: str
    model: str | None
    outcome: str
    status: int | None
    detail: str


@dataclass(frozen=True)
class FeedbackResult:
    model: str
    accepted: int  # labels joined to a logged prediction
    unlogged: list[dict[str, Any]]  # {"request_id", "row"} of labels whose prediction is not in the log
    conflicts: list[dict[str, Any]]  # {"request_id", "row"} of rows already labelled: the first label won


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    psi: float  # population stability index of the feature's logged inputs against the training data


@dataclass(frozen=True)
class Drift:
    """A version's drift: PSI of each feature and of the predictions against its training data, on ``rows``
    logged rows; ``available`` False (and ``reason``) when there are too few of them."""

    available: bool
    rows: int
    features: list[FeatureDrift]
    reason: str | None = None
    predictions: float | None = None


@dataclass(frozen=True)
class VersionMonitoring:
    version: int
    active: bool
    rows: int  # logged rows in the window
    labelled: int  # labelled rows the metrics rest on
    metrics: dict[str, float]
    drift: Drift


@dataclass(frozen=True)
class Rollout:
    """A model's canary or shadow rollout: ``candidate`` tried against ``baseline`` (the active version).

    ``state`` is ``running`` or how it ended (``promoted``, ``rolled_back``, ``completed``, ``superseded``; why in
    ``reason``). ``fraction`` is the share of unpinned requests a canary answers; ``figures`` the evidence (per side
    requests, errors, labelled rows, live metrics; a shadow's agreement), as of ``computed_at`` while it runs.
    Times are ISO 8601 UTC; ``max_duration`` is seconds.
    """

    mode: str
    state: str
    candidate: int
    baseline: int
    fraction: float
    min_requests: int
    max_duration: float
    started_at: str
    ended_at: str | None = None
    job_id: str | None = None
    reason: str | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    computed_at: str | None = None

    @property
    def running(self) -> bool:
        return self.state == "running"


@dataclass(frozen=True)
class LabelCount:
    source: str | None  # "key" or "token"; None for labels given before labels had a source
    key: str | None  # the key's id (source "key")
    rows: int  # logged rows labelled


@dataclass(frozen=True)
class Monitoring:
    model: str
    window: int
    active_version: int | None
    versions: list[VersionMonitoring]
    rollout: Rollout | None = None  # running (with its evidence so far) or the last one, as the server shows
    labels: list[LabelCount] = field(default_factory=list)  # labelled rows per source and key, most first
    computed_at: str | None = None  # ISO 8601 UTC: when the retraining worker computed the figures; None: not yet
    reason: str | None = None  # why there are no figures
    dropped: dict[str, int] = field(default_factory=dict)  # rows the log does not hold, per reason


def typed(cls: type[T], body: Mapping[str, Any]) -> T:
    """``cls`` from the server's JSON object (fields a newer server adds are left out)."""
    known = cls.__dataclass_fields__  # type: ignore[attr-defined]
    return cls(**{k: v for k, v in body.items() if k in known})


def job_from(body: Mapping[str, Any]) -> Job:
    """A job as the server shows it."""
    return typed(Job, body)


def rollout_from(body: Mapping[str, Any]) -> Rollout:
    """A rollout as the server shows it (``GET``/``DELETE /v1/models/<name>/rollout``, and in monitoring)."""
    return typed(Rollout, {**body, "figures": body.get("figures") or {}})


def _version_monitoring(body: Mapping[str, Any]) -> VersionMonitoring:
    drift = body["drift"]
    features = [typed(FeatureDrift, f) for f in drift.get("features", [])]
    return typed(VersionMonitoring, {**body, "drift": typed(Drift, {**drift, "features": features})})


def monitoring_from(body: Mapping[str, Any]) -> Monitoring:
    """A model's monitoring as the server shows it, every part typed."""
    versions = [_version_monitoring(version) for version in body["versions"]]
    rollout = body.get("rollout")
    return Monitoring(
        body["model"],
        body["window"],
        body.get("active_version"),
        versions,
        None if rollout is None else rollout_from(rollout),
        [typed(LabelCount, c) for c in body.get("labels", [])],
        body.get("computed_at"),
        body.get("reason"),
        body.get("dropped", {}),
    )
