"""The rollout rule: when a canary is promoted or rolled back, and when a shadow has seen enough (both are
rollouts: ``service.store.rollouts`` keeps their record).

The retraining worker judges every running rollout on each policy pass (``PolicyRunner``), from what the
prediction log holds of both versions since the rollout started; ``GET /v1/models/{name}`` shows the same
``evidence`` while it runs. One pure function, ``judge``, holds the rule:

- A canary waits for ``min_requests`` answered by its candidate (``max_duration`` without them: rolled
  back). It is rolled back as soon as its error rate, or its mean loss on labelled rows (0/1 for a
  classifier, squared error for a regressor), is worse than the active version's beyond chance (one-sided,
  z = ``Z``); otherwise it is promoted once both versions have ``MIN_LABELLED`` labelled rows, or at
  ``max_duration`` on its error rate alone (a model that gets no feedback).
- A shadow never serves: it completes once its candidate answered ``min_requests`` copies and has
  ``MIN_LABELLED`` labelled rows, or at ``max_duration``, with its agreement rate and metric difference.
- Live labels come from clients, who can forge them; the frozen evaluation set cannot be reached by them
  (``frozen.py``). A canary the live figures would promote is rolled back instead when its score on the
  frozen set (``Frozen``, recorded by the job that published it) is below the active version's, and every
  verdict's reason names both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from service.store.monitoring import LoggedPrediction, PredictionLog
from service.store.rollouts import Rollout, State
from service.training.fitting import task_of
from service.training.live import live_metrics, trusted_labels

__all__ = ["MIN_LABELLED", "Evidence", "Frozen", "Verdict", "Z", "evidence", "frozen_scores", "judge"]

MIN_LABELLED = 30  # labelled rows of each version before live metrics are compared
Z = 2.326  # one-sided 99%: a candidate as good as the active version is rolled back by chance 1 time in 100
PRIMARY = {"classification": "accuracy", "regression": "r2"}


@dataclass(frozen=True)
class Side:
    """What the log holds of one version since the rollout started."""

    version: int
    requests: int  # requests it answered (canary), or copies it answered (shadow candidate)
    errors: int  # requests routed to it that it could not answer (answered by the active version instead)
    labelled: int
    metrics: dict[str, float]
    loss: float | None  # mean per-row loss on the labelled rows: 1 - correct, or squared error
    loss_var: float | None

    def error_rate(self) -> float:
        return self.errors / (self.requests + self.errors) if self.requests + self.errors else 0.0


@dataclass(frozen=True)
class Evidence:
    """Both sides of a rollout, and for a shadow how often the candidate agreed with the active version."""

    active: Side
    candidate: Side
    agreement: float | None = None  # classifiers: share of copies with the active's label
    mean_abs_difference: float | None = None  # regressors: mean |candidate - active| over the copies

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    state: State
    reason: str


@dataclass(frozen=True)
class Frozen:
    """The candidate's and the active version's primary metric on the same frozen evaluation rows."""

    metric: str
    candidate: float
    active: float
    rows: int

    def worse(self) -> bool:
        return self.candidate < self.active

    def text(self) -> str:
        return f"frozen evaluation {self.metric} {self.candidate:.4f} vs active {self.active:.4f} ({self.rows} rows)"


def frozen_scores(manifest: Mapping[str, Any], rollout: Rollout) -> Frozen | None:
    """The candidate's frozen-set comparison from its manifest, when the job that published it scored both it and
    the rollout's baseline there (None for a version published before evaluation sets were kept)."""
    kept = manifest.get("evaluation_set") or {}
    parent = (manifest.get("lineage") or {}).get("parent_version")
    metric = manifest.get("primary_metric")
    value = (manifest.get("metrics") or {}).get(metric)
    if kept.get("parent_metric") is None or parent != rollout.baseline or value is None:
        return None
    return Frozen(str(metric), float(value), float(kept["parent_metric"]), int(kept.get("rows", 0)))


def _side(
    rows: Sequence[LoggedPrediction], version: int, task: str, classes: Sequence[Any] | None, trusted: Sequence[str]
) -> Side:
    answered = [r for r in rows if r.error is None]
    labelled = [r for r in answered if r.target is not None and r.label_source in trusted]
    losses = _losses(task, labelled)
    return Side(
        version=version,
        requests=len({r.request_id for r in answered}),
        errors=len({r.request_id for r in rows if r.error is not None}),
        labelled=len(labelled),
        metrics=live_metrics(task, labelled, classes),
        loss=float(losses.mean()) if len(losses) else None,
        loss_var=float(losses.var(ddof=1)) if len(losses) > 1 else None,
    )


def _losses(task: str, labelled: Sequence[LoggedPrediction]) -> np.ndarray:
    """Per-row losses of ``labelled``: 0/1 for a classifier, squared error for a regressor; none without rows."""
    if not labelled:
        return np.zeros(0)
    if task == "classification":
        return np.array([r.output != r.target for r in labelled], dtype=np.float64)
    pred = np.array([r.output for r in labelled], dtype=np.float64).reshape(len(labelled), -1)
    y = np.array([r.target for r in labelled], dtype=np.float64).reshape(len(labelled), -1)
    return ((pred - y) ** 2).mean(axis=1)


def evidence(log: PredictionLog, name: str, rollout: Rollout, manifest: Mapping[str, Any], window: int) -> Evidence:
    """Both versions' sides since ``rollout`` started, from their newest ``max(window, min_requests)`` rows; only
    labels from the sources the spec trusts count."""
    task, classes, trusted = task_of(manifest), manifest.get("classes"), trusted_labels(manifest)
    limit = max(window, rollout.min_requests)
    base = [r for r in log.recent(name, limit, version=rollout.baseline, since=rollout.started_at) if not r.shadow]
    cand = log.recent(name, limit, version=rollout.candidate, since=rollout.started_at)
    found = Evidence(
        _side(base, rollout.baseline, task, classes, trusted), _side(cand, rollout.candidate, task, classes, trusted)
    )
    if rollout.mode != "shadow":
        return found
    answers = {(r.request_id, r.row): r.output for r in base}
    copies = [r for r in cand if r.error is None and (r.request_id, r.row) in answers]
    pairs = [(answers[r.request_id, r.row], r.output) for r in copies]
    if not pairs:
        return found
    if task == "classification":
        return Evidence(found.active, found.candidate, agreement=float(np.mean([a == c for a, c in pairs])))
    diff = np.abs(np.array([c for _, c in pairs], dtype=np.float64) - np.array([a for a, _ in pairs], dtype=np.float64))
    return Evidence(found.active, found.candidate, mean_abs_difference=float(diff.mean()))


def _worse(candidate: float, var_c: float, n_c: int, active: float, var_a: float, n_a: int) -> bool:
    """Whether the candidate's mean loss is above the active's beyond chance (Welch's one-sided z test)."""
    se = math.sqrt(var_c / n_c + var_a / n_a)
    return candidate - active > (Z * se if se > 0 else 0.0)


def _rates(side: Side) -> tuple[float, float, int]:
    n = side.requests + side.errors
    p = side.error_rate()
    return p, p * (1 - p), max(n, 1)


def _metric_text(task: str, evidence: Evidence) -> str:
    metric = PRIMARY[task]
    c, a = evidence.candidate, evidence.active
    values = (c.metrics.get(metric), a.metrics.get(metric))
    if None in values:
        return f"mean loss {c.loss:.4f} vs active {a.loss:.4f}"
    return f"live {metric} {values[0]:.3f} vs active {values[1]:.3f}"


def judge(rollout: Rollout, task: str, found: Evidence, now: float, frozen: Frozen | None = None) -> Verdict | None:
    """The verdict on a running rollout now, or None while it needs more evidence (see the module's rule)."""
    verdict = _live_verdict(rollout, task, found, now)
    if verdict is None or frozen is None:
        return verdict
    if verdict.state == "promoted" and frozen.worse():
        return Verdict("rolled_back", f"{frozen.text()} is worse, whatever the live figures say ({verdict.reason})")
    return Verdict(verdict.state, f"{verdict.reason}; {frozen.text()}")


def _live_verdict(rollout: Rollout, task: str, found: Evidence, now: float) -> Verdict | None:
    c, a = found.candidate, found.active
    timed_out = now - rollout.started_at >= rollout.max_duration
    counts = f"{c.labelled} and {a.labelled} labelled rows"
    if rollout.mode == "shadow":
        if (c.requests >= rollout.min_requests and c.labelled >= MIN_LABELLED) or timed_out:
            agreed = "" if found.agreement is None else f"agreement {found.agreement:.1%}, "
            if found.mean_abs_difference is not None:
                agreed = f"mean |difference| {found.mean_abs_difference:.4g}, "
            metric = _metric_text(task, found) + f" ({counts})" if c.loss is not None and a.loss is not None else ""
            why = "ran its time" if timed_out and c.requests < rollout.min_requests else "has its evidence"
            return Verdict("completed", f"shadow {why}: {c.requests} copies answered, {agreed}{metric}".rstrip(", "))
        return None
    if c.requests < rollout.min_requests:
        if timed_out:
            return Verdict(
                "rolled_back",
                f"only {c.requests} of {rollout.min_requests} requests answered in {rollout.max_duration:g} s",
            )
        return None
    p_c, var_c, n_c = _rates(c)
    p_a, var_a, n_a = _rates(a)
    if _worse(p_c, var_c, n_c, p_a, var_a, n_a):
        return Verdict(
            "rolled_back",
            f"error rate {p_c:.1%} ({c.errors} of {n_c} requests) is worse than the active version's {p_a:.1%}",
        )
    errors = f"error rate {p_c:.1%} vs active {p_a:.1%}"
    if c.labelled >= MIN_LABELLED and a.labelled >= MIN_LABELLED and c.loss is not None and a.loss is not None:
        if _worse(c.loss, c.loss_var or 0.0, c.labelled, a.loss, a.loss_var or 0.0, a.labelled):
            return Verdict("rolled_back", f"{_metric_text(task, found)} is worse ({counts}); {errors}")
        return Verdict("promoted", f"{_metric_text(task, found)} is no worse ({counts}); {errors}")
    if timed_out:
        return Verdict(
            "promoted", f"{errors} after {rollout.max_duration:g} s; too few labelled rows ({counts}) to compare"
        )
    return None
