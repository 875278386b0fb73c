"""``MLPClassifier`` and ``MLPRegressor``: drop-in for scikit-learn's, built on ``Network``.

They take scikit-learn's parameter names for every concept the two share and own
their preprocessing (feature standardisation; label encoding for the classifier,
target scaling for the regressor), so a fitted estimator takes raw feature rows.
Extras beyond scikit-learn: ``dropout``, ``dtype``, ``callbacks``,
``lr_schedule``, ``clipnorm``, ``weight_decay`` (AdamW) and ``kernel_initializer``.
Their parameters and the fitting loop are defined in ``nn/mlp.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .arrays import AnyArray, Array
from .losses import BinaryCrossEntropy, Loss, MeanSquaredError, SoftmaxCrossEntropy
from .metrics import accuracy_score, r2_score
from .mlp import SOLVERS, BaseMLP
from .preprocessing import fit_standardizer

__all__ = ["SOLVERS", "BaseMLP", "MLPClassifier", "MLPRegressor"]


class MLPClassifier(BaseMLP):
    """Multilayer perceptron classifier (binary or multiclass).

    Labels may be ints or strings and are returned as given. Binary problems
    use one logit with a fused sigmoid cross-entropy, multiclass a fused
    softmax cross-entropy. See scikit-learn's ``MLPClassifier`` for the
    shared parameters.
    """

    score_name = "accuracy"

    classes_: AnyArray  # sorted labels of shape (n_classes,), set by fit

    def _encode_targets(self, y: Any, refit: bool) -> AnyArray:
        labels = np.asarray(y)
        if labels.ndim != 1:
            raise ValueError(f"MLPClassifier: y must be 1-D of shape (n_samples,), got shape {labels.shape}")
        if labels.dtype.kind == "f" and not np.isfinite(labels).all():
            raise ValueError("MLPClassifier: y contains NaN or infinity")
        if refit:
            classes = np.unique(labels)
            if len(classes) < 2:
                raise ValueError(f"MLPClassifier: y has only one class ({classes!r}); at least 2 are needed")
            self.classes_ = classes
        else:
            unknown = np.setdiff1d(np.unique(labels), self.classes_)
            if len(unknown):
                raise ValueError(
                    "warm_start can only be used where y has the same classes as in the previous "
                    f"call to fit; new: {unknown.tolist()}"
                )
        idx = np.searchsorted(self.classes_, labels)
        if len(self.classes_) == 2:
            targets: Array = idx.astype(self.dtype).reshape(-1, 1)  # astype of a dtype name is typed Any
            return targets
        return idx

    def _stratify(self, y: AnyArray) -> AnyArray:
        return y.ravel()

    def _n_outputs(self, y_enc: AnyArray) -> int:
        return 1 if len(self.classes_) == 2 else len(self.classes_)

    def _loss(self) -> Loss:
        return BinaryCrossEntropy() if len(self.classes_) == 2 else SoftmaxCrossEntropy()

    def _val_metric(self, logits: Array, y: AnyArray) -> float:
        if logits.shape[1] == 1:
            return accuracy_score(y[:, 0] > 0.5, logits[:, 0] > 0)
        return accuracy_score(y, logits.argmax(axis=1))

    @property
    def out_activation_(self) -> str:
        """Output function as scikit-learn names it: 'logistic' (binary) or 'softmax'."""
        return "logistic" if len(self.classes_) == 2 else "softmax"

    def predict_proba(self, X: Any) -> Array:
        """Class probabilities of shape (n_samples, n_classes), columns in ``classes_`` order."""
        out = self._forward(X)
        if out.shape[1] == 1:
            return np.hstack([1 - out, out])
        return out

    def predict(self, X: Any) -> AnyArray:
        """Labels of shape (n_samples,), of the same kind as the ``y`` given to ``fit``."""
        out = self._forward(X)
        idx = (out[:, 0] > 0.5).astype(np.intp) if out.shape[1] == 1 else out.argmax(axis=1)
        labels: AnyArray = self.classes_[idx]
        return labels

    def score(self, X: Any, y: Any) -> float:
        """Mean accuracy on ``X`` of shape (n_samples, n_features) and labels ``y`` of shape (n_samples,)."""
        return accuracy_score(np.asarray(y), self.predict(X))


class MLPRegressor(BaseMLP):
    """Multilayer perceptron regressor with one or several outputs.

    Targets are standardised for training and mapped back on prediction.
    """

    score_name = "r2"

    y_mean_: Array  # target standardisation, shape (n_outputs,), set by fit
    y_scale_: Array
    _y_ndim: int  # 1 or 2: the ndim of y at fit time, which predict returns

    def _encode_targets(self, y: Any, refit: bool) -> Array:
        try:
            values: Array = np.asarray(y, dtype=np.dtype(self.dtype))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"MLPRegressor: y must be numeric: {exc}") from None
        if values.ndim not in (1, 2):
            raise ValueError(f"MLPRegressor: y must be 1-D or 2-D, got shape {values.shape}")
        if not np.isfinite(values).all():
            raise ValueError("MLPRegressor: y contains NaN or infinity")
        # An empty y fails here (numpy cannot infer -1 for 0 rows), so y2 has at least one row.
        y2 = values.reshape(len(values), -1)
        if refit:
            self._y_ndim = values.ndim
            self.y_mean_, self.y_scale_ = fit_standardizer(y2)
        elif y2.shape[1] != len(self.y_mean_):
            raise ValueError(f"MLPRegressor: y has {y2.shape[1]} outputs, expected {len(self.y_mean_)}")
        return (y2 - self.y_mean_) / self.y_scale_

    def _loss(self) -> Loss:
        return MeanSquaredError()

    def _val_metric(self, logits: Array, y: AnyArray) -> float:
        return r2_score(y, logits)

    @property
    def out_activation_(self) -> str:
        """Output function as scikit-learn names it: always 'identity'."""
        return "identity"

    def predict(self, X: Any) -> Array:
        """Predictions of shape (n_samples,) for a 1-D ``y``, else (n_samples, n_outputs)."""
        out = self._forward(X) * self.y_scale_ + self.y_mean_
        return out[:, 0] if self._y_ndim == 1 else out

    def score(self, X: Any, y: Any) -> float:
        """R^2 on ``X`` of shape (n_samples, n_features) and ``y`` of shape (n_samples,) or (n_samples, n_targets).

        Averaged uniformly over outputs.
        """
        return r2_score(np.asarray(y), self.predict(X))
