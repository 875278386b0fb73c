"""One prediction, from routing to the log: the one path v1 and v2 share for who answers and what is logged.

An unpinned request is routed by the model's running rollout (``ModelRegistry.route``), keyed by its
``X-Routing-Key`` header (sticky: the same key, the same version) or else its request id. A canary
candidate that fails to answer is replaced by the active version, so the client never sees the failure,
and the failure is logged against the candidate: its error rate is part of the rollout's verdict.
A logged prediction's answer names the request id it was logged under and a feedback token for it.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np
from flask import current_app, g, request

from service import telemetry
from service.server.feedback_tokens import FeedbackTokens
from service.server.predlog import recorder
from service.server.registry import Route, registry
from service.store import LoadedModel, NonFiniteOutputError, Prediction, predict

log = logging.getLogger(__name__)
ROUTING_KEY_HEADER = "X-Routing-Key"

__all__ = ["ROUTING_KEY_HEADER", "Logged", "Route", "answer", "feedback_tokens", "route"]


class Logged(NamedTuple):
    """How a logged prediction is quoted in feedback: the request id it was logged under, and its token (None
    while the log cannot give the tokens' secret)."""

    request_id: str
    feedback_token: str | None


def feedback_tokens() -> FeedbackTokens:
    """The current app's feedback tokens."""
    return current_app.extensions["nnserve.feedback_tokens"]  # type: ignore[no-any-return]


def route(name: str) -> Route:
    """Who answers this unpinned request of ``name``."""
    return registry().route(name, request.headers.get(ROUTING_KEY_HEADER) or g.request_id)


def answer(chosen: Route, X: np.ndarray) -> tuple[LoadedModel, Prediction, Logged | None]:
    """Predict ``X`` (n, n_features) as ``chosen`` says and queue the log rows; returns the version that
    answered, its prediction, and, when it was logged, how feedback quotes it.

    ``ValueError`` is the estimator refusing the rows: the client's input, whichever version it reached. Outputs
    that are not finite (``NonFiniteOutputError``) are too, unless a canary candidate gave them: the active
    version then answers, and if its outputs are not finite either, they are the client's input.
    """
    loaded, rec = chosen.model, recorder()
    logging_it = chosen.logged or rec.sampled(loaded)  # a rollout logs every prediction, and only then its copies
    request_id = rec.log_id(loaded.name, g.request_id, g.get("request_id_given", False)) if logging_it else g.request_id
    try:
        prediction = predict(loaded.estimator, X)
    except Exception as exc:  # only a canary candidate fails over; anything else is a server error as before
        refused = isinstance(exc, ValueError) and not isinstance(exc, NonFiniteOutputError)
        if chosen.fallback is None or refused:
            raise
        why = f"{type(exc).__name__}: {exc}"
        log.error("model %s: canary version %s failed, answered by %s: %s", loaded.name, loaded.version,
                  chosen.fallback.version, why)  # fmt: skip
        rec.offer_failure(loaded.name, loaded.version, request_id, X, why)
        loaded = chosen.fallback
        prediction = predict(loaded.estimator, X)
    if chosen.missed is not None:
        rec.offer_failure(loaded.name, chosen.missed[0], request_id, X, chosen.missed[1])
    telemetry.model_served(loaded.name, loaded.version, len(X))
    queued = logging_it and rec.offer(loaded, request_id, X, prediction, always=True)
    if chosen.shadow is not None:
        rec.offer_shadow(chosen.shadow, request_id, X)
    if not queued:
        return loaded, prediction, None
    return loaded, prediction, Logged(request_id, feedback_tokens().issue(loaded.name, loaded.version, request_id))
