"""Input checks and the preprocessing an estimator owns: standardisation and splits."""

from __future__ import annotations

from typing import Any

import numpy as np

from .arrays import AnyArray, Array, FloatDType, IndexArray


def check_features(X: Any, n_features: int | None, owner: str, dtype: FloatDType) -> Array:
    """``X`` as a finite 2-D array of ``dtype``, or a ``ValueError`` that says what is wrong.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    n_features : int or None
        When not None, the width the estimator was fitted on.
    owner : str
        Name used in error messages.
    dtype : numpy dtype
        float32 or float64.

    Returns
    -------
    ndarray of shape (n_samples, n_features) and dtype ``dtype``
    """
    if hasattr(X, "tocsr"):  # scipy.sparse, without importing scipy
        raise ValueError(f"{owner}: sparse input is not supported; pass a dense array (X.toarray())")
    try:
        arr = np.asarray(X)
        if arr.dtype.kind != "c":  # casting complex would only warn and drop the imaginary part
            arr = arr.astype(dtype, copy=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{owner}: X must be numeric: {exc}") from None
    if arr.dtype.kind == "c":
        raise ValueError(f"{owner}: Complex data not supported; X must be real numbers")
    if arr.ndim != 2:
        raise ValueError(
            f"{owner}: expected a 2-D array of shape (n_samples, n_features), got {arr.ndim}-D shape {arr.shape}. "
            "Reshape your data: X.reshape(-1, 1) for a single feature, X.reshape(1, -1) for a single sample"
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{owner}: X is empty: at least 1 sample is required")
    if arr.shape[1] == 0:
        raise ValueError(f"{owner}: X has 0 feature(s) (shape={arr.shape}) while a minimum of 1 is required.")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(f"X has {arr.shape[1]} features, but {owner} is expecting {n_features} features as input")
    if not np.isfinite(arr).all():
        bad = "NaN" if np.isnan(arr).any() else "infinity"
        raise ValueError(f"{owner}: X contains {bad}; every value must be finite")
    return arr


def fit_standardizer(X: Array) -> tuple[Array, Array]:
    """Column means and scales; a constant column gets scale 1 so it maps to 0.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_columns)

    Returns
    -------
    mean, scale : ndarray of shape (n_columns,), of the dtype of ``X``
        Standardise with ``(X - mean) / scale``.
    """
    mean = X.mean(axis=0, dtype=np.float64)
    scale = X.std(axis=0, dtype=np.float64)
    scale[scale < 10 * np.finfo(np.float64).eps] = 1.0
    return mean.astype(X.dtype), scale.astype(X.dtype)


def train_validation_split(
    n_samples: int, fraction: float, rng: np.random.Generator, stratify: AnyArray | None = None
) -> tuple[IndexArray, IndexArray]:
    """Index arrays (train, validation); stratified per class when ``stratify`` is given.

    Each class keeps at least one training sample; the validation set has at least one sample.

    Parameters
    ----------
    n_samples : int
    fraction : float
        Share of samples for validation, in (0, 1).
    rng : numpy.random.Generator
    stratify : ndarray of shape (n_samples,), optional
        Class labels to split within.

    Returns
    -------
    train, validation : ndarray of shape (n_train,) and (n_validation,)
        Sorted sample indices.
    """
    if stratify is None:
        order = rng.permutation(n_samples)
        n_val = min(n_samples - 1, max(1, round(n_samples * fraction)))
        return np.sort(order[n_val:]), np.sort(order[:n_val])
    val_parts = []
    for cls in np.unique(stratify):
        members = rng.permutation(np.flatnonzero(stratify == cls))
        n_val = min(len(members) - 1, round(len(members) * fraction))
        val_parts.append(members[:n_val])
    val = np.sort(np.concatenate(val_parts))
    if len(val) == 0:
        raise ValueError(f"validation_fraction={fraction} leaves no validation sample for {n_samples} samples")
    train = np.setdiff1d(np.arange(n_samples), val, assume_unique=True)
    return train, val
