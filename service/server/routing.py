"""One prediction, from routing to the log: the one path v1 and v2 share for who answers and what is logged.

An unpinned request is routed by the model's running rollout (``ModelRegistry.route``), keyed by its
``X-Routing-Key`` header (sticky: the same key, the same version) or else its request id. A canary
candidate that fails to answer is replaced by the active version, so the client never sees the failure,
and the failure is logged against the candidate: its error rate is part of the rollout's verdict.
"""

from __future__ import annotations

import logging

import numpy as np
from flask import g, request

from service import telemetry
from service.server.predlog import recorder
from service.server.registry import Route, registry
from service.store import LoadedModel, Prediction, predict

log = logging.getLogger(__name__)
ROUTING_KEY_HEADER = "X-Routing-Key"

__all__ = ["ROUTING_KEY_HEADER", "Route", "answer", "route"]


def route(name: str) -> Route:
    """Who answers this unpinned request of ``name``."""
    return registry().route(name, request.headers.get(ROUTING_KEY_HEADER) or g.request_id)


def answer(chosen: Route, X: np.ndarray) -> tuple[LoadedModel, Prediction, bool]:
    """Predict ``X`` (n, n_features) as ``chosen`` says and queue the log rows; returns the version that
    answered, its prediction, and whether it was logged (feedback can then quote the request id).

    ``ValueError`` is the estimator refusing the rows: the client's input, whichever version it reached.
    """
    loaded = chosen.model
    try:
        prediction = predict(loaded.estimator, X)
    except ValueError:
        raise
    except Exception as exc:  # only a canary candidate fails over; anything else is a server error as before
        if chosen.fallback is None:
            raise
        why = f"{type(exc).__name__}: {exc}"
        log.error("model %s: canary version %s failed, answered by %s: %s", loaded.name, loaded.version,
                  chosen.fallback.version, why)  # fmt: skip
        recorder().offer_failure(loaded.name, loaded.version, g.request_id, X, why)
        loaded = chosen.fallback
        prediction = predict(loaded.estimator, X)
    if chosen.missed is not None:
        recorder().offer_failure(loaded.name, chosen.missed[0], g.request_id, X, chosen.missed[1])
    telemetry.model_served(loaded.name, loaded.version, len(X))
    logged = recorder().offer(loaded, g.request_id, X, prediction, always=chosen.logged)
    if chosen.shadow is not None:
        recorder().offer_shadow(chosen.shadow, g.request_id, X)
    return loaded, prediction, logged
