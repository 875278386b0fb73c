"""A model's rollout: a candidate version tried on live traffic (canary) or on a copy of it (shadow).

One record per model, kept by the store beside the active version (``ModelStore.rollout``), so it survives
a restart and every web worker and replica routes by the same record. Starting one and ending one are the
store's writes (``start_rollout``, ``end_rollout``); while it runs, web workers route unpinned predictions
by it and the retraining worker judges it (``service.training.canary``). An ended rollout stays as the
model's last one, with its outcome and the reason, until the next one starts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

__all__ = ["ENDED", "MODES", "Rollout"]

Mode = Literal["canary", "shadow"]
State = Literal["running", "promoted", "rolled_back", "completed", "superseded"]
MODES: tuple[Mode, ...] = ("canary", "shadow")
# promoted / rolled_back: a canary's verdict; completed: a shadow that gathered its evidence or ran its time;
# superseded: a version was activated by hand while it ran.
ENDED: tuple[State, ...] = ("promoted", "rolled_back", "completed", "superseded")


@dataclass(frozen=True)
class Rollout:
    """Which version is tried against which, how, and (once ended) how it went.

    ``fraction`` is the share of unpinned requests a canary answers; a shadow copies every request.
    ``min_requests`` is the evidence a verdict needs; ``max_duration`` (seconds) the longest it runs.
    ``figures`` keeps the evidence the verdict rested on.
    """

    mode: Mode
    candidate: int
    baseline: int
    fraction: float
    min_requests: int
    max_duration: float
    started_at: float  # unix time
    job_id: str | None = None
    state: State = "running"
    ended_at: float | None = None
    reason: str | None = None
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.state == "running"

    def ended(self, state: State, reason: str, at: float, figures: dict[str, Any] | None = None) -> Rollout:
        """This rollout, ended with ``state`` for ``reason`` at ``at``."""
        if state not in ENDED:
            raise ValueError(f"a rollout ends as one of {ENDED}, not {state!r}")
        return replace(self, state=state, reason=reason, ended_at=at, figures=figures or self.figures)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Rollout:
        """The record as stored; ``ValueError`` for anything that is not one."""
        try:
            rollout = cls(**data)
        except TypeError as exc:
            raise ValueError(f"not a rollout record: {exc}") from None
        if rollout.mode not in MODES or rollout.state not in ("running", *ENDED):
            raise ValueError(f"not a rollout record: mode {rollout.mode!r}, state {rollout.state!r}")
        return rollout
