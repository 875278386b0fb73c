"""What one retrain may cost: network size, training work, time, labels and queue length.

Each limit is a setting (``service/config.py``). The API checks a request
against them before queueing it (422, or 429 for a full queue) and the worker
checks the job again before training, so a job queued under looser settings,
or a spec file, cannot allocate past them either.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nn import MLPClassifier
from service import config
from service.store import LoadedModel

__all__ = ["LimitError", "Limits", "check_labels", "check_network", "clip"]


class LimitError(ValueError):
    """A request over one of the limits; the message names the limit and its setting."""


@dataclass(frozen=True)
class Limits:
    max_layers: int
    max_parameters: int
    max_training_work: float  # epochs x rows x parameters: about a third of the multiply-adds of training
    max_runtime: float  # seconds of training per job
    max_label_length: int
    max_classes: int
    max_queued_jobs: int  # per model

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any] | None = None) -> Limits:
        s = config.from_environ() if settings is None else settings
        return cls(
            max_layers=int(s["NNSERVE_MAX_LAYERS"]),
            max_parameters=int(s["NNSERVE_MAX_PARAMETERS"]),
            max_training_work=float(s["NNSERVE_MAX_TRAINING_WORK"]),
            max_runtime=float(s["NNSERVE_JOB_MAX_RUNTIME"]),
            max_label_length=int(s["NNSERVE_MAX_LABEL_LENGTH"]),
            max_classes=int(s["NNSERVE_MAX_CLASSES"]),
            max_queued_jobs=int(s["NNSERVE_MAX_QUEUED_JOBS"]),
        )


def parameter_count(n_features: int, hidden: Sequence[int], n_outputs: int) -> int:
    """Weights and biases of a dense network, computed without building it."""
    widths = [n_features, *hidden, n_outputs]
    return sum((a + 1) * b for a, b in itertools.pairwise(widths))


def check_network(
    limits: Limits, n_features: int, hidden: Sequence[int], n_outputs: int, epochs: int, rows: int
) -> None:
    """Refuse a network too deep or too large, or a training run too long, before anything is allocated."""
    if len(hidden) > limits.max_layers:
        raise LimitError(f"{len(hidden)} hidden layers; at most {limits.max_layers} (NNSERVE_MAX_LAYERS)")
    params = parameter_count(n_features, hidden, n_outputs)
    if params > limits.max_parameters:
        raise LimitError(
            f"the network would have {params:,} parameters; at most {limits.max_parameters:,} (NNSERVE_MAX_PARAMETERS)"
        )
    work = float(epochs) * rows * params
    if work > limits.max_training_work:
        raise LimitError(
            f"{epochs} epochs x {rows} rows x {params:,} parameters = {work:.3g}; at most "
            f"{limits.max_training_work:.3g} (NNSERVE_MAX_TRAINING_WORK)"
        )


def clip(label: object, width: int = 40) -> str:
    """A label as an error message may quote it: never whole when long."""
    text = str(label)
    return text if len(text) <= width else f"{text[:width]}... ({len(text)} characters)"


def check_labels(limits: Limits, labels: Iterable[object], where: str = "") -> None:
    """Refuse a class label longer than the limit, or more distinct classes than the limit.

    Runs before numpy sees the labels: a fixed-width string array is as wide as its longest label.
    """
    seen: set[object] = set()
    for i, label in enumerate(labels):
        if isinstance(label, str) and len(label) > limits.max_label_length:
            raise LimitError(
                f"{where}label {i} ({clip(label)}) is longer than {limits.max_label_length} characters "
                "(NNSERVE_MAX_LABEL_LENGTH)"
            )
        seen.add(label)
        if len(seen) > limits.max_classes:
            raise LimitError(f"{where}more than {limits.max_classes} distinct classes (NNSERVE_MAX_CLASSES)")


def check_job(limits: Limits, base: LoadedModel, hyperparameters: Mapping[str, Any], rows: int) -> None:
    """The network and training run a retrain of ``base`` with ``hyperparameters`` on ``rows`` rows would make."""
    params = {**base.estimator.get_params(), **hyperparameters}
    est = base.estimator
    n_outputs = len(est.classes_) if isinstance(est, MLPClassifier) else int(est.n_outputs_)
    hidden = [int(w) for w in params["hidden_layer_sizes"]]
    check_network(limits, int(est.n_features_in_), hidden, n_outputs, int(params["max_iter"]), rows)


def base_rows(base: LoadedModel) -> int:
    """How many rows the base version was trained and scored on, as its manifest says."""
    trained = base.manifest.get("training") or {}
    return int(trained.get("n_train", 0)) + int(trained.get("n_test", 0))
