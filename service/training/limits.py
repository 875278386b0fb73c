"""Resource limits on what one training run may ask for, checked before anything is allocated.

The same checks run where a network is requested (a spec, a retrain request)
and again in the worker right before it trains (a job queued before a limit
was lowered), so an oversized network is refused by its numbers, never by
running out of memory. Every ``LimitError`` names the setting that bounds it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from service import config

__all__ = ["LABEL_MAX_CHARS", "LimitError", "Limits", "check_labels", "check_network", "clip_label", "n_parameters"]

LABEL_MAX_CHARS = 256  # longest class label: numpy stores every label at the width of the longest
_SHOWN_CHARS = 40  # how much of an offending label a message quotes


class LimitError(ValueError):
    """A request beyond a configured limit; the message names the limit."""


@dataclass(frozen=True)
class Limits:
    """The configured bounds (``NNSERVE_MAX_*``, ``NNSERVE_JOB_MAX_RUNTIME``)."""

    max_layers: int = int(config.DEFAULTS["NNSERVE_MAX_LAYERS"])
    max_params: int = int(config.DEFAULTS["NNSERVE_MAX_PARAMS"])
    max_train_work: int = int(config.DEFAULTS["NNSERVE_MAX_TRAIN_WORK"])
    max_runtime: float = float(config.DEFAULTS["NNSERVE_JOB_MAX_RUNTIME"])
    max_classes: int = int(config.DEFAULTS["NNSERVE_MAX_CLASSES"])

    @classmethod
    def from_environ(cls) -> Limits:
        values = config.from_environ()
        return cls(
            max_layers=int(values["NNSERVE_MAX_LAYERS"]),
            max_params=int(values["NNSERVE_MAX_PARAMS"]),
            max_train_work=int(values["NNSERVE_MAX_TRAIN_WORK"]),
            max_runtime=float(values["NNSERVE_JOB_MAX_RUNTIME"]),
            max_classes=int(values["NNSERVE_MAX_CLASSES"]),
        )


def n_parameters(n_features: int, hidden: Sequence[int], n_outputs: int) -> int:
    """Weights and biases of a dense network with these layer widths."""
    widths = [n_features, *hidden, n_outputs]
    return sum((a + 1) * b for a, b in itertools.pairwise(widths))


def check_network(
    hidden: Sequence[int], n_features: int, n_outputs: int, limits: Limits, epochs: int = 0, n_rows: int = 0
) -> None:
    """Refuse a network deeper or larger than the limits, or a run (epochs x rows x weights) beyond its budget."""
    if len(hidden) > limits.max_layers:
        raise LimitError(f"{len(hidden)} hidden layers; at most {limits.max_layers} (NNSERVE_MAX_LAYERS)")
    params = n_parameters(n_features, hidden, n_outputs)
    if params > limits.max_params:
        raise LimitError(
            f"the network would have {params} weights (about {params * 8 // 2**20} MiB); "
            f"at most {limits.max_params} (NNSERVE_MAX_PARAMS)"
        )
    work = epochs * n_rows * params
    if work > limits.max_train_work:
        raise LimitError(
            f"{epochs} epochs x {n_rows} rows x {params} weights is {work}; "
            f"at most {limits.max_train_work} (NNSERVE_MAX_TRAIN_WORK)"
        )


def clip_label(label: str) -> str:
    """A label short enough to quote in a message."""
    return label if len(label) <= _SHOWN_CHARS else f"{label[:_SHOWN_CHARS]}... ({len(label)} characters)"


def check_labels(labels: Sequence[str], limits: Limits) -> None:
    """Refuse a label over ``LABEL_MAX_CHARS`` (naming its 1-based row) or more distinct classes than allowed."""
    for row, label in enumerate(labels, start=1):
        if len(label) > LABEL_MAX_CHARS:
            raise LimitError(f"row {row}: the label {clip_label(label)!r} is longer than {LABEL_MAX_CHARS} characters")
    distinct = len(set(labels))
    if distinct > limits.max_classes:
        raise LimitError(f"{distinct} distinct class labels; at most {limits.max_classes} (NNSERVE_MAX_CLASSES)")
