"""A Python client for nnserve's HTTP API: ``Client`` (urllib, no dependency beyond nnserve's) and
``AsyncClient`` (httpx, the ``client-async`` extra), with the same methods and typed results.

Every failure, an error answer of the server or a failed connection, is raised as one exception class,
:class:`NnserveError`. The key (or admin token) travels only in an ``Authorization: Bearer`` header: never
in a URL, a log line or an exception message. A 429 or 503 is retried as ``RetryPolicy`` says.
"""

from service.client.asynchronous import AsyncClient
from service.client.blocking import Client
from service.client.operations import DEFAULT_URL, RetryPolicy, Row, Rows
from service.client.results import (
    FINAL_STATUSES,
    Activation,
    AuditEntry,
    Drift,
    Explanation,
    FeatureDrift,
    FeedbackResult,
    InferResult,
    Job,
    JobPage,
    LabelCount,
    ModelDetail,
    ModelSummary,
    Monitoring,
    NnserveError,
    Prediction,
    Rollout,
    RowExplanation,
    VersionInfo,
    VersionMonitoring,
)

__all__ = [
    "DEFAULT_URL",
    "FINAL_STATUSES",
    "Activation",
    "AsyncClient",
    "AuditEntry",
    "Client",
    "Drift",
    "Explanation",
    "FeatureDrift",
    "FeedbackResult",
    "InferResult",
    "Job",
    "JobPage",
    "LabelCount",
    "ModelDetail",
    "ModelSummary",
    "Monitoring",
    "NnserveError",
    "Prediction",
    "RetryPolicy",
    "Rollout",
    "Row",
    "RowExplanation",
    "Rows",
    "VersionInfo",
    "VersionMonitoring",
]
