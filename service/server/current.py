"""What a Flask view reads of its app: the objects ``create_app`` built once (the one place they are looked up),
and this request's ``Call`` for the data plane."""

from __future__ import annotations

from flask import current_app, g, request

from service.server.dataplane import Call, DataPlane
from service.server.feedback_tokens import FeedbackTokens
from service.server.predlog import PredictionRecorder
from service.server.registry import ModelRegistry
from service.server.settings import ServerSettings

ROUTING_KEY_HEADER = "X-Routing-Key"
DATAPLANE = "nnserve.dataplane"  # the app.extensions key of the DataPlane


def dataplane() -> DataPlane:
    """The current app's data plane."""
    return current_app.extensions[DATAPLANE]  # type: ignore[no-any-return]


def registry() -> ModelRegistry:
    """The current app's registry: this worker's loaded models."""
    return dataplane().registry


def recorder() -> PredictionRecorder:
    """The current app's prediction recorder."""
    return dataplane().recorder


def feedback_tokens() -> FeedbackTokens:
    """The current app's feedback tokens."""
    return dataplane().tokens


def settings() -> ServerSettings:
    """The current app's settings, as read when it was built."""
    return dataplane().settings


def call() -> Call:
    """This request's facts for the data plane (made once per request; the metrics read what it resolved)."""
    made: Call | None = g.get("nnserve_call")
    if made is None:
        made = g.nnserve_call = Call(
            g.request_id,
            g.get("request_id_given", False),
            request.headers.get(ROUTING_KEY_HEADER) or None,
            g.get("nnserve_caller"),
        )
    return made
