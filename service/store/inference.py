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

__all__ = ["LoadedModel", "Prediction", "predict"]


@dataclass(frozen=True)
class LoadedModel:
    """A verified version rebuilt into its estimator, with its manifest."""

    name: str
    version: int
    estimator: BaseMLP
    manifest: dict[str, Any]


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


def predict(estimator: BaseMLP, X: np.ndarray) -> Prediction:
    """Run the network once over ``X`` (n, n_features).

    Classifiers: the labels are the argmax of the probabilities, so labels and
    probabilities always agree. Raises the estimator's ``ValueError`` for rows
    of the wrong width.
    """
    if isinstance(estimator, MLPClassifier):
        proba = estimator.predict_proba(X)
        index = proba.argmax(axis=1)
        classes = estimator.classes_
        return Prediction(values=classes[index], classes=classes, index=index, probabilities=proba)
    return Prediction(values=np.asarray(estimator.predict(X)))
