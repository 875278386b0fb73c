"""What the client's calls return: typed results (frozen dataclasses) and the one error, ``NnserveError``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FINAL_STATUSES = ("succeeded", "failed", "cancelled")


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
class VersionMonitoring:
    version: int
    active: bool
    rows: int  # logged rows in the window
    labelled: int  # labelled rows the metrics rest on
    metrics: dict[str, float]
    drift: dict[str, Any]  # available, reason, rows, features [{"name", "psi"}], predictions


@dataclass(frozen=True)
class Monitoring:
    model: str
    window: int
    active_version: int | None
    versions: list[VersionMonitoring]
    rollout: dict[str, Any] | None = None  # running (with its evidence so far) or the last one, as the server shows
    labels: list[dict[str, Any]] = field(default_factory=list)  # {"source", "key", "rows"}: labelled rows per key
    computed_at: str | None = None  # ISO 8601 UTC: when the retraining worker computed the figures; None: not yet
    reason: str | None = None  # why there are no figures
    dropped: dict[str, int] = field(default_factory=dict)  # rows the log does not hold, per reason


def job_from(body: Mapping[str, Any]) -> Job:
    """A job as the server shows it (fields a newer server adds are left out)."""
    known = Job.__dataclass_fields__
    return Job(**{k: v for k, v in body.items() if k in known})
