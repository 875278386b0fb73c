"""Live metrics of a version from its labelled predictions, and its drift (``drift.py``), over a window.

The retraining worker's policies decide on them (``version_report``) and, each pass, it computes them for the
monitoring snapshots (``window_reports``: every version among the newest rows, over each asked window, from one
read of the log at the largest), which is all the monitoring endpoint reads: the same functions, so what an
operator reads is what a policy acted on, and a web worker never pays for them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from nn.metrics import r2_score
from service.store.monitoring import LoggedPrediction, PredictionLog
from service.training.drift import PREDICTIONS, Drift, drift
from service.training.fitting import task_of

__all__ = [
    "LIVE_METRICS",
    "TRUSTED_LABELS",
    "VersionReport",
    "live_metrics",
    "trusted_labels",
    "version_report",
    "window_reports",
]

# Live metrics per task, and whether higher is better (a policy's threshold is crossed downwards on those).
LIVE_METRICS = {
    "classification": {"accuracy": True, "log_loss": False},
    "regression": {"r2": True, "mae": False, "rmse": False},
}
PROBABILITY_FLOOR = 1e-15  # log loss of a probability of 0: large, not infinite
TRUSTED_LABELS = ("key",)  # a version whose spec says nothing (and every version from before labels had sources)


def trusted_labels(manifest: Mapping[str, Any]) -> tuple[str, ...]:
    """The label sources ``manifest``'s spec trusts (``[monitoring] trusted_labels``): only their labels count in
    live metrics, policies, the rows a policy retrains on and rollout verdicts."""
    return tuple((manifest.get("monitoring") or {}).get("trusted_labels") or TRUSTED_LABELS)


def live_metrics(task: str, rows: Sequence[LoggedPrediction], classes: Sequence[Any] | None) -> dict[str, float]:
    """Accuracy and log loss (classifiers; log loss needs the version's ``classes`` and logged probabilities),
    or MAE, RMSE and R² (regressors; R² needs two distinct targets) of labelled ``rows``; {} without rows."""
    labelled = [r for r in rows if r.target is not None]
    if not labelled:
        return {}
    if task == "classification":
        metrics = {"accuracy": float(np.mean([r.output == r.target for r in labelled]))}
        index = {c: i for i, c in enumerate(classes or [])}
        scored = [r for r in labelled if r.probabilities is not None and r.target in index]
        if scored and len(scored) == len(labelled):
            p = np.array([r.probabilities[index[r.target]] for r in scored if r.probabilities is not None])
            metrics["log_loss"] = float(-np.log(np.clip(p, PROBABILITY_FLOOR, 1.0)).mean())
        return metrics
    y = np.array([r.target for r in labelled], dtype=np.float64)
    pred = np.array([r.output for r in labelled], dtype=np.float64)
    err = pred - y
    metrics = {"mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(np.mean(err**2)))}
    if len(y) >= 2 and np.ptp(y) > 0:
        metrics["r2"] = float(r2_score(y, pred))
    return metrics


@dataclass(frozen=True)
class VersionReport:
    """What the log says of one version: rows logged, rows labelled, live metrics on the labelled ones, drift."""

    version: int
    rows: int  # logged rows in the window
    labelled: int  # labelled rows in the window the metrics rest on
    metrics: dict[str, float]
    drift: Drift

    def psi(self) -> dict[str, float]:
        """Every PSI by feature name, the predictions' as ``PREDICTIONS`` (for gauges)."""
        shift = {} if self.drift.predictions is None else {PREDICTIONS: self.drift.predictions}
        return {**self.drift.features, **shift}

    def to_json(self) -> dict[str, Any]:
        """As the monitoring endpoint shows it (each feature's PSI as ``{"name", "psi"}``, in feature order)."""
        shown = asdict(self)
        shown["drift"]["features"] = [{"name": k, "psi": v} for k, v in self.drift.features.items()]
        return shown


def version_report(
    log: PredictionLog,
    name: str,
    version: int,
    manifest: Mapping[str, Any],
    window: int,
    since: float | None = None,
    *,
    drift_min_rows: int,
) -> VersionReport:
    """The report of ``version`` over its newest ``window`` logged rows and its newest ``window`` rows labelled by
    a source its spec trusts (logged after ``since`` when given); drift from ``drift_min_rows`` rows on."""
    rows = log.recent(name, window, version=version, since=since)
    trusted = trusted_labels(manifest)
    labelled = log.recent(name, window, version=version, labelled=True, since=since, sources=trusted)
    return _report(version, manifest, rows, labelled, drift_min_rows)


def _report(
    version: int,
    manifest: Mapping[str, Any],
    rows: Sequence[LoggedPrediction],
    labelled: Sequence[LoggedPrediction],
    drift_min_rows: int,
) -> VersionReport:
    # A canary candidate's failures (answered by the active version instead) are no answers of its own.
    answered = [r for r in rows if r.error is None]
    scored = [r for r in labelled if r.error is None]
    metrics = live_metrics(task_of(manifest), scored, manifest.get("classes"))
    return VersionReport(
        version, len(answered), len(scored), metrics, drift(manifest, answered, min_rows=drift_min_rows)
    )


def window_reports(
    log: PredictionLog,
    name: str,
    active: int | None,
    manifest: Callable[[int], Mapping[str, Any]],
    windows: Sequence[int],
    *,
    drift_min_rows: int,
) -> dict[int, list[VersionReport]]:
    """Per window, the report (as ``version_report`` would make it) of the active version and of every version
    among the model's newest ``window`` logged rows, newest version first; ``manifest(version)`` reads a manifest.

    The log is read at the largest window only, and each smaller one is a slice of what it returned: the newest
    rows of the model, then each version's newest (logged, and labelled by a trusted source) rows, unless the
    first read already holds them (all the model's rows, or rows of that version only).
    """
    top = max(windows)
    newest = log.recent(name, top)
    complete = len(newest) < top  # every row of the model is in ``newest``
    versions = sorted({r.version for r in newest} | ({active} if active is not None else set()))
    manifests = {version: manifest(version) for version in versions}
    found: dict[int, tuple[list[LoggedPrediction], list[LoggedPrediction]]] = {}
    for version in versions:
        trusted = trusted_labels(manifests[version])
        if complete or all(r.version == version for r in newest):
            rows = [r for r in newest if r.version == version]
        else:
            rows = log.recent(name, top, version=version)
        if complete:
            labelled = [r for r in rows if r.target is not None and r.label_source in trusted]
        else:
            labelled = log.recent(name, top, version=version, labelled=True, sources=trusted)
        found[version] = (rows, labelled)
    reports = {}
    for window in windows:
        seen = {r.version for r in newest[:window]} | ({active} if active is not None else set())
        reports[window] = [
            _report(v, manifests[v], found[v][0][:window], found[v][1][:window], drift_min_rows)
            for v in sorted(seen, reverse=True)
        ]
    return reports
