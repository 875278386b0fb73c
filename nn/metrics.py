"""Scores used for validation and ``score``: accuracy and the coefficient of determination."""

from __future__ import annotations

import numpy as np

from .arrays import AnyArray


def accuracy_score(y_true: AnyArray, y_pred: AnyArray) -> float:
    """Fraction of equal labels; both of shape (n_samples,)."""
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def r2_score(y_true: AnyArray, y_pred: AnyArray) -> float:
    """R^2 averaged uniformly over outputs, as scikit-learn's default.

    Shapes (n_samples,) or (n_samples, n_outputs). A constant target scores 1.0
    when predicted exactly and 0.0 otherwise.
    """
    true = np.asarray(y_true, dtype=np.float64).reshape(len(y_true), -1)
    pred = np.asarray(y_pred, dtype=np.float64).reshape(len(y_pred), -1)
    ss_res = ((true - pred) ** 2).sum(axis=0)
    ss_tot = ((true - true.mean(axis=0)) ** 2).sum(axis=0)
    safe = ss_tot > 0
    scores = np.where(safe, 1 - ss_res / np.where(safe, ss_tot, 1), np.where(ss_res == 0, 1.0, 0.0))
    return float(scores.mean())
