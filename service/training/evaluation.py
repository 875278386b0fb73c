"""The full evaluation of a published version: per-epoch history, held-out report, lineage.

``publish`` stores these in the manifest so the dashboard and ``nnserve report``
can draw a version's curves and confusion matrix without loading its weights or
its data. Manifests written before this existed lack the sections; readers show
"not recorded" for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from nn.estimators import BaseMLP
from service.store import predict

SAMPLE_POINTS = 200  # predicted-vs-actual points kept for a regressor
QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)


def history(estimator: BaseMLP) -> dict[str, list[float]]:
    """Every epoch's training loss and validation figures (the manifest's ``epoch_history``; nn.save's own
    ``history`` keeps only the last values)."""
    recorded = getattr(estimator, "history_", None)
    if recorded is None:
        return {}
    return {key: [float(v) for v in values] for key, values in recorded.history.items()}


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, classes: list[Any]) -> dict[str, Any]:
    """Confusion matrix (rows: true class, columns: predicted, in ``classes`` order) and per-class
    precision, recall, F1 and support, defined as scikit-learn defines them (0 where undefined)."""
    index = {label: i for i, label in enumerate(classes)}
    n = len(classes)
    matrix = np.zeros((n, n), dtype=np.int64)
    for t, p in zip(y_true.tolist(), y_pred.tolist(), strict=True):
        if t in index and p in index:
            matrix[index[t], index[p]] += 1
    tp = np.diag(matrix).astype(np.float64)
    predicted, support = matrix.sum(axis=0), matrix.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros(n), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(n), where=support > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros(n), where=total > 0)
    return {
        "labels": [_plain(c) for c in classes],
        "confusion_matrix": matrix.tolist(),
        "per_class": [
            {
                "label": _plain(c),
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, c in enumerate(classes)
        ],
    }


def regression_report(y_true: np.ndarray, y_pred: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """Residual (predicted - actual) quantiles and an evenly drawn predicted-vs-actual sample."""
    actual, pred = np.asarray(y_true, dtype=np.float64).ravel(), np.asarray(y_pred, dtype=np.float64).ravel()
    residual = pred - actual
    keep = np.arange(len(actual))
    if len(keep) > SAMPLE_POINTS:
        keep = np.sort(np.random.RandomState(seed).choice(len(actual), SAMPLE_POINTS, replace=False))
    return {
        "residual_quantiles": {str(q): float(np.quantile(residual, q)) for q in QUANTILES},
        "sample": {"actual": actual[keep].tolist(), "predicted": pred[keep].tolist()},
    }


def evaluation_report(estimator: BaseMLP, X_test: np.ndarray, y_test: np.ndarray) -> dict[str, Any]:
    """The held-out report of a fitted estimator on rows it never trained on."""
    prediction = predict(estimator, X_test)
    if prediction.classes is not None:
        report = classification_report(np.asarray(y_test), np.asarray(prediction.values), list(prediction.classes))
    else:
        report = regression_report(np.asarray(y_test), np.asarray(prediction.values))
    return {"n_test": len(y_test), **report}


def lineage(
    params: Mapping[str, Any],
    dataset_sha256: str,
    *,
    parent_version: int | None = None,
    trigger: str | None = None,
    job_id: str | None = None,
) -> dict[str, Any]:
    """Where a version came from: its parent, what started it, the job, the data and hyperparameters."""
    return {
        "parent_version": parent_version,
        "trigger": trigger,
        "job_id": job_id,
        "dataset_sha256": dataset_sha256,
        "hyperparameters": dict(params),
    }


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
