"""The promotion rule: whether a newly trained version becomes the active one, and why.

One pure function, so the rule is read and tested in one place; the worker
applies its decision.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.training.jobs import Promote

__all__ = ["Decision", "decide"]

_LABEL = {"classification": "validation accuracy", "regression": "validation R2"}


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def decide(promote: Promote, task: str, new_score: float, active_score: float) -> Decision:
    """``always`` and ``never`` decide alone; ``if_better`` promotes when the new score is not worse.

    Both scores are the task's primary metric (accuracy or R^2) on the same
    held-out rows, so higher is better and a tie promotes the newer model.
    """
    if promote == "always":
        return Decision(True, "promote is 'always'")
    if promote == "never":
        return Decision(False, "promote is 'never'")
    if promote != "if_better":
        raise ValueError(f"promote must be 'if_better', 'always' or 'never', got {promote!r}")
    label = _LABEL[task]
    if new_score >= active_score:
        return Decision(True, f"{label} {new_score:.4f} >= active {active_score:.4f}")
    return Decision(False, f"{label} {new_score:.4f} < active {active_score:.4f}")
