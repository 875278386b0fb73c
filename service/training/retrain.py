"""One validated retrain: the rules a ``RetrainRequest`` passes, whoever builds it (the HTTP API for an admin or
``nnserve remote``, a retraining policy), and again where the worker runs it, since the settings may be tighter
than when it was queued. The estimator's own checks of its parameters stay the estimator's.
"""

from __future__ import annotations

import math
from typing import Any

from marshmallow import ValidationError, validate

from service.store import LoadedModel
from service.training.jobs import LONGEST, MOST_REQUESTS, RetrainRequest
from service.training.limits import LimitError, Limits, base_rows, check_job

__all__ = ["ROLLOUT_RANGES", "RetrainError", "RolloutRange", "planned_rows", "validated"]


class RolloutRange(validate.Range):
    """A rollout option's accepted values: a range (which the OpenAPI document shows), and never NaN."""

    def __call__(self, value: Any) -> Any:
        if isinstance(value, float) and math.isnan(value):
            raise ValidationError(self._format_error(value, self.message_all))
        return super().__call__(value)


# The one rule of each rollout option, checked by the API's request schema, the spec's [retrain] table and
# ``validated`` (every retrain, whoever asked for it).
ROLLOUT_RANGES: dict[str, RolloutRange] = {
    "canary_fraction": RolloutRange(
        0, 1, min_inclusive=False, error="must be in (0, 1], got {input}"
    ),  # 0: never judged
    "min_requests": RolloutRange(1, MOST_REQUESTS, error=f"must be from 1 to {MOST_REQUESTS}, got {{input}}"),
    "max_duration": RolloutRange(1, LONGEST, error=f"must be from 1 to {LONGEST:.0f} seconds, got {{input}}"),
}


class RetrainError(ValueError):
    """A retrain that may not run: ``message`` says why, ``field`` names the part of the request at fault."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message, self.field = message, field


def planned_rows(request: RetrainRequest, base: LoadedModel) -> int:
    """The rows a retrain of ``base`` will train and be scored on: its new rows, plus the base version's unless
    it replaces them."""
    return request.n_new_rows + (0 if request.mode == "replace" else base_rows(base))


def validated(request: RetrainRequest, base: LoadedModel, limits: Limits, rows: int | None = None) -> RetrainRequest:
    """``request`` when a retrain of ``base`` on ``rows`` rows (default ``planned_rows``) may run; else
    ``RetrainError`` naming the field at fault."""
    if request.promote in ("canary", "shadow"):
        for option, rule in ROLLOUT_RANGES.items():
            try:
                rule(getattr(request, option))
            except ValidationError as exc:
                raise RetrainError(f"{option} {exc.messages[0]}", option) from None
    if request.mode == "replace" and request.n_new_rows == 0 and request.data_sha256 is None:
        raise RetrainError("mode 'replace' trains on the new rows alone: send data", "data")
    sizes = request.hyperparameters.get("hidden_layer_sizes")
    if request.warm_start and sizes is not None:
        active_sizes = [int(w.shape[1]) for w in base.estimator.coefs_[:-1]]  # as fitted
        if list(sizes) != active_sizes:
            # the copied weights keep their shape: the new version would claim layers it does not have
            raise RetrainError(
                f"warm_start continues the active network {active_sizes}; it cannot change to {list(sizes)}",
                "hidden_sizes",
            )
    try:
        check_job(limits, base, request.hyperparameters, planned_rows(request, base) if rows is None else rows)
    except LimitError as exc:
        raise RetrainError(str(exc), "hyperparameters") from None
    return request
