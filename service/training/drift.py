"""Drift: a version's logged inputs and predictions against reference statistics of its training data.

``fitting.publish`` stores the reference in every new version's manifest (``reference``): per feature, the
edges of ``BINS`` quantile bins and the share of training rows in each; the same for the predictions on the
training rows (for a classifier: the share of each class), and the class balance. The distance is the
population stability index, PSI = sum over bins of (live - reference) * ln(live / reference), shares
floored at ``PSI_FLOOR`` so an empty bin counts as rare, not as infinitely surprising. Commonly read:
below 0.1 stable, 0.1 to 0.25 a moderate shift, above 0.25 a major one. On a handful of rows most bins are
empty and PSI reads as a major shift whatever the data, so below ``min_rows`` (NNSERVE_DRIFT_MIN_ROWS) there is
no drift, only "not enough rows".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nn.estimators import BaseMLP
from service.store import predict
from service.store.monitoring import LoggedPrediction

__all__ = ["BINS", "PREDICTIONS", "PSI_BANDS", "Drift", "drift", "psi", "psi_band", "reference_statistics"]

BINS = 10  # quantile bins per feature (deciles of the training data)
PSI_FLOOR = 1e-4  # the share an empty bin counts as
PREDICTIONS = "<predictions>"  # the name of the predictions' PSI among the features' (gauges)
PSI_BANDS = ((0.25, "major"), (0.1, "moderate"), (0.0, "stable"))  # the common reading of a PSI, from its lower bound
Shares = Sequence[float] | np.ndarray


def bin_edges(values: np.ndarray, bins: int = BINS) -> list[float]:
    """The inner edges of ``bins`` quantile bins of ``values`` (fewer when values repeat)."""
    inner = np.quantile(np.asarray(values, dtype=np.float64), np.linspace(0, 1, bins + 1)[1:-1])
    return [float(v) for v in np.unique(inner)]


def proportions(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """The share of ``values`` in each bin: (-inf, e0), [e0, e1), ..., [e_last, inf)."""
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), np.asarray(values, dtype=np.float64), side="right")
    return np.bincount(index, minlength=len(edges) + 1) / max(len(values), 1)


def psi(reference: Shares, live: Shares) -> float:
    """Population stability index of ``live`` shares against ``reference`` shares (same bins)."""
    e = np.maximum(np.asarray(reference, dtype=np.float64), PSI_FLOOR)
    a = np.maximum(np.asarray(live, dtype=np.float64), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def psi_band(value: float) -> str:
    """The common reading of a PSI: "stable", "moderate" or "major" (``PSI_BANDS``)."""
    return next((label for low, label in PSI_BANDS if value >= low), PSI_BANDS[-1][1])


def _shares(labels: Sequence[Any], classes: Sequence[Any]) -> list[float]:
    counts = {c: 0 for c in classes}
    for label in labels:
        if label in counts:
            counts[label] += 1
    return [counts[c] / max(len(labels), 1) for c in classes]


def _binned(values: np.ndarray) -> dict[str, list[float]]:
    edges = bin_edges(values)
    return {"edges": edges, "proportions": proportions(values, edges).tolist()}


def reference_statistics(
    estimator: BaseMLP, X: np.ndarray, y: np.ndarray, feature_names: Sequence[str]
) -> dict[str, Any]:
    """What drift is measured against, from a version's training rows: binned features, predictions, targets."""
    X = np.asarray(X, dtype=np.float64)
    names = list(feature_names) or [f"x{i}" for i in range(X.shape[1])]
    prediction = predict(estimator, X)
    reference: dict[str, Any] = {
        "n_rows": len(X),
        "features": [{"name": name, **_binned(X[:, i])} for i, name in enumerate(names)],
    }
    if prediction.classes is not None:
        classes = prediction.classes.tolist()
        reference["predictions"] = {"classes": classes, "proportions": _shares(prediction.values.tolist(), classes)}
        reference["targets"] = {"classes": classes, "proportions": _shares(np.asarray(y).tolist(), classes)}
    elif prediction.values.ndim == 1:
        reference["predictions"] = _binned(prediction.values)
        reference["targets"] = _binned(np.asarray(y, dtype=np.float64))
    return reference


@dataclass(frozen=True)
class Drift:
    """PSI of each feature's logged inputs and of the predictions, or why there is none (``reason``)."""

    available: bool
    reason: str | None = None
    rows: int = 0
    features: dict[str, float] = field(default_factory=dict)
    predictions: float | None = None

    def worst(self) -> tuple[str, float] | None:
        """The feature that moved most, with its PSI."""
        return max(self.features.items(), key=lambda item: item[1]) if self.features else None


def drift(manifest: Mapping[str, Any], rows: Sequence[LoggedPrediction], *, min_rows: int) -> Drift:
    """The drift of ``rows`` (logged by the version of ``manifest``) from that version's training data, if there
    are at least ``min_rows`` of them."""
    reference = manifest.get("reference")
    if not reference:
        return Drift(False, "this version was published before reference statistics were recorded; retrain for them")
    if not rows:
        return Drift(False, "no logged predictions of this version in the window")
    if len(rows) < min_rows:
        return Drift(
            False, f"not enough rows: {len(rows)} logged, drift needs {min_rows} (NNSERVE_DRIFT_MIN_ROWS)", len(rows)
        )
    X = np.array([r.inputs for r in rows], dtype=np.float64)
    features = {
        f["name"]: psi(f["proportions"], proportions(X[:, i], f["edges"])) for i, f in enumerate(reference["features"])
    }
    shift = None
    predicted = reference.get("predictions")
    outputs = [r.output for r in rows]
    if predicted is not None and "classes" in predicted:
        shift = psi(predicted["proportions"], _shares(outputs, predicted["classes"]))
    elif predicted is not None and not isinstance(outputs[0], list):
        shift = psi(predicted["proportions"], proportions(np.asarray(outputs, dtype=np.float64), predicted["edges"]))
    return Drift(True, None, len(rows), features, shift)
