"""Feature attributions from input gradients: integrated gradients, gradient x input, saliency.

Each method explains one output per row (``target_index``: by default a classifier's predicted class, a
regressor's first output) relative to a baseline row, and works on anything with ``target_index`` and
``output_and_input_gradient``: a fitted ``MLPClassifier``/``MLPRegressor`` (raw features) or a built
``Network`` (its own inputs).

Integrated gradients (Sundararajan et al. 2017) integrate the gradient along the straight line from the
baseline ``b`` to the row ``x``: ``a_j = (x_j - b_j) * mean over the path of df/dx_j``. Their sum is
``f(x) - f(b)`` up to the quadrature's error (*completeness*); ``Attributions.completeness_gap`` reports it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from .arrays import Array, FloatDType, IndexArray

METHODS = ("integrated_gradients", "gradient_x_input", "saliency")
"""The attribution methods by name, the default first."""

MAX_PATH_POINTS = 16384
"""Points of integrated gradients' paths evaluated in one batch (at least one row's): bounds memory, not results."""


class Differentiable(Protocol):
    """What attributions need: which output to explain, and that output with its input gradient."""

    def target_index(self, X: Any, target: Any = None) -> IndexArray: ...

    def output_and_input_gradient(
        self, X: Any, target: Any = None, dtype: str | FloatDType | None = None
    ) -> tuple[Array, Array]: ...

    def kinks_on_path(self, start: Any, end: Any) -> list[Array]: ...


@dataclass(frozen=True)
class Attributions:
    """Attributions of a batch of rows, with the outputs they explain.

    Attributes
    ----------
    method : str
        One of ``METHODS``.
    values : ndarray of shape (n_samples, n_features)
        Each feature's attribution to each row's explained output.
    target : ndarray of int of shape (n_samples,)
        The explained output of each row (``target_index``).
    output : ndarray of shape (n_samples,)
        f(x): the explained output at each row.
    baseline_output : ndarray of shape (n_samples,)
        f(baseline): the same output at each row's baseline.
    """

    method: str
    values: Array
    target: IndexArray
    output: Array
    baseline_output: Array

    @property
    def completeness_gap(self) -> Array:
        """``values.sum(axis=1) - (output - baseline_output)``, shape (n_samples,).

        Near 0 for integrated gradients (the quadrature's error); for the other methods it measures how
        far they are from completeness, which they do not promise.
        """
        gap: Array = self.values.sum(axis=1) - (self.output - self.baseline_output)
        return gap


def _rows(X: npt.ArrayLike, baseline: npt.ArrayLike, dtype: FloatDType) -> tuple[Array, Array]:
    """``X`` (2-D) and the baseline broadcast to one row per row of ``X``, both in ``dtype``."""
    rows = np.asarray(X, dtype=dtype)
    if rows.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {rows.shape}")
    base = np.asarray(baseline, dtype=dtype)
    if base.ndim == 1:
        base = base[None, :]
    if base.ndim != 2 or base.shape[1] != rows.shape[1] or base.shape[0] not in (1, len(rows)):
        raise ValueError(
            f"baseline must be one row of {rows.shape[1]} features or one per row of X, got shape {base.shape}"
        )
    return rows, np.broadcast_to(base, rows.shape)


@functools.lru_cache(maxsize=64)
def _gauss_legendre(order: int) -> tuple[Array, Array]:
    """Gauss-Legendre nodes in (0, 1) and weights summing to 1, ``order`` of each."""
    nodes, weights = np.polynomial.legendre.leggauss(order)
    return (nodes + 1) / 2, weights / 2


def path_quadrature(kinks: Array, steps: int) -> tuple[Array, Array]:
    """Nodes in (0, 1) and weights (summing to 1) integrating along a path whose gradient jumps at ``kinks``.

    Each piece between kinks gets Gauss-Legendre nodes in proportion to its length (at least 2), so
    every node sees a smooth integrand: ``steps`` nodes in all on a path without kinks, at most
    ``steps + 2 * (len(kinks) + 1)`` with them.

    Parameters
    ----------
    kinks : ndarray of shape (n_kinks,)
        Sorted positions in (0, 1).
    steps : int

    Returns
    -------
    nodes, weights : ndarray of shape (n_nodes,)
    """
    if not len(kinks):
        return _gauss_legendre(steps)
    edges = np.concatenate([[0.0], kinks, [1.0]])
    low, length = edges[:-1], np.diff(edges)
    orders = np.maximum(2, np.ceil(steps * length)).astype(int)
    nodes, weights = [], []
    for order in np.unique(orders):
        x, w = _gauss_legendre(int(order))
        chosen = orders == order
        nodes.append((low[chosen, None] + length[chosen, None] * x).ravel())
        weights.append((length[chosen, None] * w).ravel())
    return np.concatenate(nodes), np.concatenate(weights)


def integrated_gradients(
    model: Differentiable,
    X: npt.ArrayLike,
    baseline: npt.ArrayLike,
    target: Any = None,
    steps: int = 64,
    dtype: str | FloatDType = "float64",
) -> Attributions:
    """Integrated gradients of each row's explained output, from ``baseline`` to the row.

    The path integral is Gauss-Legendre quadrature (``path_quadrature``): ``steps`` nodes on a smooth
    path, which integrate a smooth model's gradient almost exactly; a ReLU network's path is split at
    its kinks (``kinks_on_path``), where the gradient jumps, and each piece integrated on its own. The
    ends are evaluated too, for f(baseline) and f(x).

    Parameters
    ----------
    model : Differentiable
        A fitted estimator or a built ``Network``.
    X : array-like of shape (n_samples, n_features)
    baseline : array-like of shape (n_features,) or (n_samples, n_features)
        One reference row for every row, or one per row.
    target : int or array-like of int of shape (n_samples,), optional
        The explained output (``model.target_index``); by default a classifier's predicted class.
    steps : int
        Quadrature nodes of a path without kinks, >= 1.
    dtype : str or numpy dtype
        Precision of the gradients: float64 by default.

    Returns
    -------
    Attributions
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    dt: FloatDType = np.dtype(dtype)
    rows, base = _rows(X, baseline, dt)
    columns = model.target_index(rows, target)
    n, n_features = rows.shape
    values = np.empty((n, n_features), dt)
    output, baseline_output = np.empty(n, dt), np.empty(n, dt)
    # Each row's nodes with both ends (weight 0) first: they give f(baseline) and f(x).
    rules = [path_quadrature(k, int(steps)) for k in model.kinks_on_path(base, rows)]
    paths = [(np.concatenate([[0.0, 1.0], t]), np.concatenate([[0.0, 0.0], w])) for t, w in rules]
    diff = rows - base
    start = 0
    while start < n:
        stop, points = start + 1, len(paths[start][0])
        while stop < n and points + len(paths[stop][0]) <= MAX_PATH_POINTS:
            points += len(paths[stop][0])
            stop += 1
        t = np.concatenate([p[0] for p in paths[start:stop]])
        w = np.concatenate([p[1] for p in paths[start:stop]])
        owner = np.repeat(np.arange(start, stop), [len(p[0]) for p in paths[start:stop]])
        # (1 - t) b + t x is b and x exactly at the ends; b + t (x - b) loses x when |b| dwarfs it
        on_path = (1 - t)[:, None] * base[owner] + t[:, None] * rows[owner]
        f, grad = model.output_and_input_gradient(on_path, columns[owner], dt)
        ends = np.concatenate([[0], np.cumsum([len(p[0]) for p in paths[start:stop]])[:-1]])
        baseline_output[start:stop], output[start:stop] = f[ends], f[ends + 1]
        summed = np.zeros((stop - start, n_features))
        np.add.at(summed, owner - start, grad * w[:, None])
        values[start:stop] = diff[start:stop] * summed
        start = stop
    return Attributions("integrated_gradients", values, columns, output, baseline_output)


def _at_row_and_baseline(
    model: Differentiable, rows: Array, base: Array, target: Any, dt: FloatDType
) -> tuple[IndexArray, Array, Array, Array]:
    """(target, f(x), f(baseline), df/dx at x) in one pass over the rows and their baselines."""
    columns = model.target_index(rows, target)
    n = len(rows)
    f, grad = model.output_and_input_gradient(np.vstack([rows, base]), np.concatenate([columns, columns]), dt)
    return columns, f[:n], f[n:], grad[:n]


def gradient_x_input(
    model: Differentiable,
    X: npt.ArrayLike,
    baseline: npt.ArrayLike,
    target: Any = None,
    dtype: str | FloatDType = "float64",
) -> Attributions:
    """The gradient at each row times its distance from the baseline: ``df/dx(x) * (x - baseline)``.

    One gradient a row; equal to integrated gradients where the model is linear along the path, and
    with a zero baseline the classic gradient x input.

    Parameters
    ----------
    model : Differentiable
    X : array-like of shape (n_samples, n_features)
    baseline : array-like of shape (n_features,) or (n_samples, n_features)
    target : int or array-like of int of shape (n_samples,), optional
    dtype : str or numpy dtype

    Returns
    -------
    Attributions
    """
    dt: FloatDType = np.dtype(dtype)
    rows, base = _rows(X, baseline, dt)
    columns, output, baseline_output, grad = _at_row_and_baseline(model, rows, base, target, dt)
    return Attributions("gradient_x_input", grad * (rows - base), columns, output, baseline_output)


def saliency(
    model: Differentiable,
    X: npt.ArrayLike,
    baseline: npt.ArrayLike,
    target: Any = None,
    dtype: str | FloatDType = "float64",
) -> Attributions:
    """The absolute gradient at each row, ``|df/dx(x)|`` (Simonyan et al. 2014): sensitivity, not a share.

    The baseline only gives ``baseline_output``; the values do not depend on it and carry no sign.

    Parameters
    ----------
    model : Differentiable
    X : array-like of shape (n_samples, n_features)
    baseline : array-like of shape (n_features,) or (n_samples, n_features)
    target : int or array-like of int of shape (n_samples,), optional
    dtype : str or numpy dtype

    Returns
    -------
    Attributions
    """
    dt: FloatDType = np.dtype(dtype)
    rows, base = _rows(X, baseline, dt)
    columns, output, baseline_output, grad = _at_row_and_baseline(model, rows, base, target, dt)
    return Attributions("saliency", np.abs(grad), columns, output, baseline_output)


def attribute(
    model: Differentiable,
    X: npt.ArrayLike,
    baseline: npt.ArrayLike,
    method: str = "integrated_gradients",
    target: Any = None,
    steps: int = 64,
    dtype: str | FloatDType = "float64",
) -> Attributions:
    """Attributions by the method named ``method`` (one of ``METHODS``); ``steps`` is integrated gradients'.

    Parameters
    ----------
    model : Differentiable
    X : array-like of shape (n_samples, n_features)
    baseline : array-like of shape (n_features,) or (n_samples, n_features)
    method : str
    target : int or array-like of int of shape (n_samples,), optional
    steps : int
    dtype : str or numpy dtype

    Returns
    -------
    Attributions
    """
    if method == "integrated_gradients":
        return integrated_gradients(model, X, baseline, target, steps, dtype)
    if method == "gradient_x_input":
        return gradient_x_input(model, X, baseline, target, dtype)
    if method == "saliency":
        return saliency(model, X, baseline, target, dtype)
    raise ValueError(f"unknown attribution method {method!r}; expected one of {list(METHODS)}")
