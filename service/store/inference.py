"""The one inference path: a loaded version, and rows in → labels, probabilities or values out.

v1, v2, ``nnserve predict`` and held-out evaluation all call :func:`predict`, so a
classifier's argmax-to-label step exists once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nn import MLPClassifier
from nn.estimators import BaseMLP

__all__ = ["LoadedModel", "NonFiniteOutputError", "Prediction", "predict", "width_problem"]

SHOWN_ROWS = 10  # rows a NonFiniteOutputError lists by index
_all = np.logical_and.reduce  # what ndarray.all reduces with, without its Python wrapper (a one-row answer's cost)


class NonFiniteOutputError(ValueError):
    """The model's outputs for some rows are not finite (NaN or infinite): rows far outside the training
    data, or weights that are not finite. The client's rows, never a ``null`` answer."""

    def __init__(self, rows: np.ndarray) -> None:
        self.rows = [int(i) for i in rows]
        listed = ", ".join(map(str, self.rows[:SHOWN_ROWS])) + (", ..." if len(self.rows) > SHOWN_ROWS else "")
        super().__init__(
            f"the model's output for row {self.rows[0]} is not finite (rows with such outputs: {listed}; "
            f"{len(self.rows)} in all); are its values far outside the training data?"
        )


@dataclass(frozen=True)
class LoadedModel:
    """A verified version rebuilt into its estimator, with its manifest."""

    name: str
    version: int
    estimator: BaseMLP
    manifest: dict[str, Any]


def width_problem(loaded: LoadedModel, width: int) -> str | None:
    """What is wrong with rows of ``width`` values for ``loaded`` (predicted or retrained on), or None."""
    expected = int(loaded.estimator.n_features_in_)
    if width == expected:
        return None
    names = loaded.manifest.get("feature_names") or []
    hint = f" ({', '.join(names)})" if names else ""
    return f"rows have {width} values, model {loaded.name!r} expects {expected}{hint}"


@dataclass(frozen=True)
class Prediction:
    """What a model says about ``n`` rows.

    ``values`` holds class labels (classifiers, shape (n,)) or predicted values
    (regressors, shape (n,) or (n, n_outputs)); ``classes`` (n_classes,),
    ``index`` (n,) and ``probabilities`` (n, n_classes) are a classifier's,
    None for a regressor.
    """

    values: np.ndarray
    classes: np.ndarray | None = None
    index: np.ndarray | None = None
    probabilities: np.ndarray | None = None


# Rows that overflow are refused by _check_finite, by index, not warned about. A decorator rather than a ``with``
# block: made once, it costs a call ~0.5 us less (numpy keeps each call's state apart: threads may share it).
@np.errstate(over="ignore", invalid="ignore")
def predict(estimator: BaseMLP, X: np.ndarray, check_input: bool = True) -> Prediction:
    """Run the network once over ``X`` (n, n_features).

    Classifiers: the labels are the argmax of the probabilities, so labels and
    probabilities always agree. Raises the estimator's ``ValueError`` for rows
    of the wrong width, and ``NonFiniteOutputError`` naming the rows whose
    outputs (probabilities or values) are not finite. ``check_input=False`` is
    for a caller that applied the estimator's input rules itself (``DataPlane.predict``):
    the estimator then skips its own (``BaseMLP.predict``).
    """
    if isinstance(estimator, MLPClassifier):
        proba = estimator.predict_proba(X, check_input=check_input)
        _check_finite(proba)
        index = proba.argmax(axis=1)
        classes = estimator.classes_
        return Prediction(classes[index], classes, index, proba)
    values = np.asarray(estimator.predict(X, check_input=check_input))
    _check_finite(values)
    return Prediction(values)


def _check_finite(outputs: np.ndarray) -> None:
    """``NonFiniteOutputError`` for the rows of ``outputs`` (n,) or (n, k) holding NaN or an infinity."""
    finite = np.isfinite(outputs)
    if not _all(finite, axis=None):
        rows = finite.reshape(len(outputs), -1).all(axis=1)
        raise NonFiniteOutputError(np.flatnonzero(~rows))
