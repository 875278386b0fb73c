"""One validated retrain: the rules a ``RetrainRequest`` passes, whoever builds it (the HTTP API for an admin or
``nnserve remote``, a retraining policy), and again where the worker runs it, since the settings may be tighter
than when it was queued. The estimator's own checks of its parameters stay the estimator's.
"""

from __future__ import annotations

from service.store import LoadedModel
from service.training.jobs import RetrainRequest
from service.training.limits import LimitError, Limits, base_rows, check_job

__all__ = ["RetrainError", "planned_rows", "validated"]


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
    if request.promote == "canary" and not 0 < request.canary_fraction <= 1:  # 0 could never be judged
        raise RetrainError(f"canary_fraction must be in (0, 1], got {request.canary_fraction!r}", "canary_fraction")
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
