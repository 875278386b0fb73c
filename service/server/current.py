"""What a Flask view reads of its app: the objects ``create_app`` built once (the one place they are looked up),
and this request's ``Call`` for the data plane."""

from __future__ import annotations

from flask import current_app, g

from service.server.dataplane import Call, DataPlane
from service.server.feedback_tokens import FeedbackTokens
from service.server.predlog import PredictionRecorder
from service.server.registry import ModelRegistry
from service.server.settings import ServerSettings
from service.store.snapshots import MonitoringSnapshots
from service.training.jobs import JobQueue

ROUTING_KEY_HEADER = "X-Routing-Key"
ROUTING_KEY_ENVIRON = "HTTP_X_ROUTING_KEY"  # the same header, as WSGI names it
DATAPLANE = "nnserve.dataplane"  # the app.extensions key of the DataPlane


def dataplane() -> DataPlane:
    """The current app's data plane (one look-up of the app through its proxy: a prediction asks several times)."""
    return current_app._get_current_object().extensions[DATAPLANE]  # type: ignore[attr-defined, no-any-return]


def registry() -> ModelRegistry:
    """The current app's registry: this worker's loaded models."""
    return dataplane().registry


def recorder() -> PredictionRecorder:
    """The current app's prediction recorder."""
    return dataplane().recorder


def feedback_tokens() -> FeedbackTokens:
    """The current app's feedback tokens."""
    return dataplane().tokens


def job_queue() -> JobQueue:
    """The current app's job queue."""
    return current_app.extensions["nnserve.jobs"]  # type: ignore[no-any-return]


def snapshots() -> MonitoringSnapshots:
    """The current app's monitoring snapshots."""
    return current_app.extensions["nnserve.snapshots"]  # type: ignore[no-any-return]


def settings() -> ServerSettings:
    """The current app's settings, as read when it was built."""
    return dataplane().settings


def call() -> Call:
    """This request's facts for the data plane (made by app.py's request-id hook; the metrics read what it
    resolved), with the caller once authenticated."""
    state = g._get_current_object()  # type: ignore[attr-defined]
    made: Call = state.nnserve_call
    made.caller = state.get("nnserve_caller")
    return made
