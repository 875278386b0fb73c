"""``MLPClassifier`` and ``MLPRegressor``: drop-in for scikit-learn's, built on ``Network``.

They take scikit-learn's parameter names for every concept the two share and own
their preprocessing (feature standardisation; label encoding for the classifier,
target scaling for the regressor), so a fitted estimator takes raw feature rows.
Extras beyond scikit-learn: ``dropout``, ``dtype``, ``callbacks``,
``lr_schedule``, ``clipnorm``, ``weight_decay`` (AdamW) and ``kernel_initializer``.
Their parameters and fitting loop are in ``nn/mlp.py``.
"""

from __future__ import annotations

import warnings
from typing import Any, Self

import numpy as np

from .arrays import AnyArray, Array, IndexArray
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

    def _encode_targets(self, y: Any, refit: bool, classes: Any = None) -> AnyArray:
        labels = np.asarray(y)
        if labels.ndim == 2 and labels.shape[1] == 1:
            warnings.warn("A column-vector y was passed when a 1d array was expected; it is raveled", UserWarning, 4)
            labels = labels.ravel()
        if labels.ndim != 1:
            raise ValueError(f"MLPClassifier: y must be 1-D of shape (n_samples,), got shape {labels.shape}")
        if labels.dtype.kind == "f" and not np.isfinite(labels).all():
            raise ValueError("MLPClassifier: y contains NaN or infinity")
        if labels.dtype.kind == "f" and (labels != np.round(labels)).any():
            raise ValueError("MLPClassifier: Unknown label type: continuous; y must hold class labels")
        if refit:
            found = np.unique(labels if classes is None else np.asarray(classes))
            if len(found) < 2:
                raise ValueError(f"MLPClassifier: y has only one class ({found!r}); at least 2 are needed")
            self.classes_ = found
        elif classes is not None and not np.array_equal(np.unique(np.asarray(classes)), self.classes_):
            raise ValueError(
                f"MLPClassifier: classes {classes!r} differ from those of the first call {self.classes_!r}"
            )
        unknown = np.setdiff1d(np.unique(labels), self.classes_)
        if len(unknown):
            raise ValueError(
                "y must have the same classes as the first call to fit or partial_fit (or its classes=); "
                f"new: {unknown.tolist()}"
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

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> Self:
        """One pass over (X, y); ``classes`` (every label) is required on the first call, as scikit-learn's.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        classes : array-like of shape (n_classes,)
            Every label the estimator will see; required on the first call.

        Returns
        -------
        self
        """
        if classes is None and not hasattr(self, "network_"):
            raise ValueError("MLPClassifier: classes must be passed on the first call to partial_fit")
        return super().partial_fit(X, y, classes)

    def __sklearn_tags__(self) -> Any:
        """scikit-learn's tags: a multiclass classifier."""
        from sklearn.utils import ClassifierTags

        tags = super().__sklearn_tags__()
        tags.estimator_type = "classifier"
        tags.classifier_tags = ClassifierTags(multi_class=True)
        return tags

    @property
    def out_activation_(self) -> str:
        """Output function as scikit-learn names it: 'logistic' (binary) or 'softmax'."""
        return "logistic" if len(self.classes_) == 2 else "softmax"

    def predict_proba(self, X: Any, check_input: bool = True) -> Array:
        """Class probabilities of shape (n_samples, n_classes), columns in ``classes_`` order.

        ``check_input=False`` skips the checks of ``X``, as ``predict``'s does.
        """
        out = self._forward(X, check_input)
        if out.shape[1] == 1:
            return np.hstack([1 - out, out])
        return out

    def _n_explained(self) -> int:
        return len(self.classes_)

    def _default_target(self, X: Any, n: int) -> IndexArray:
        return self._predicted_index(X)

    def _predicted_index(self, X: Any, check_input: bool = True) -> IndexArray:
        """Each row's predicted class, as an index into ``classes_``."""
        out = self._forward(X, check_input)
        picked: IndexArray = (out[:, 0] > 0.5).astype(np.intp) if out.shape[1] == 1 else out.argmax(axis=1)
        return picked

    def _output_map(self, target: IndexArray) -> tuple[IndexArray, Array, Array]:
        if len(self.classes_) == 2:  # one logit: P(classes_[1]) = p, P(classes_[0]) = 1 - p
            positive = target == 1
            return np.zeros_like(target), np.where(positive, 0.0, 1.0), np.where(positive, 1.0, -1.0)
        return target, np.zeros(len(target)), np.ones(len(target))

    def predict_log_proba(self, X: Any) -> Array:
        """Log of ``predict_proba``, shape (n_samples, n_classes); -inf where a probability is 0."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X: Any, check_input: bool = True) -> AnyArray:
        """Labels of shape (n_samples,), of the same kind as the ``y`` given to ``fit``.

        ``check_input=False`` skips the checks of ``X`` (``BaseMLP.predict``).
        """
        idx = self._predicted_index(X, check_input)
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
    # An untrained regressor predicts the targets' mean (they are standardised): a random output layer starts
    # its predictions at a variance of about two, which 20 epochs (scikit-learn's check_regressors_train) do
    # not undo.
    output_initializer = "zeros"

    y_mean_: Array  # target standardisation, shape (n_outputs,), set by fit
    y_scale_: Array
    _y_ndim: int  # 1 or 2: the ndim of y at fit time, which predict returns

    def _encode_targets(self, y: Any, refit: bool, classes: Any = None) -> Array:
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

    def __sklearn_tags__(self) -> Any:
        """scikit-learn's tags: a regressor with one or several outputs."""
        from sklearn.utils import RegressorTags

        tags = super().__sklearn_tags__()
        tags.estimator_type = "regressor"
        tags.regressor_tags = RegressorTags()
        tags.target_tags.multi_output = True
        return tags

    @property
    def out_activation_(self) -> str:
        """Output function as scikit-learn names it: always 'identity'."""
        return "identity"

    def _n_explained(self) -> int:
        return len(self.y_mean_)

    def _default_target(self, X: Any, n: int) -> IndexArray:
        return np.zeros(n, np.intp)

    def _output_map(self, target: IndexArray) -> tuple[IndexArray, Array, Array]:
        return target, self.y_mean_[target].astype(np.float64), self.y_scale_[target].astype(np.float64)

    def predict(self, X: Any, check_input: bool = True) -> Array:
        """Predictions of shape (n_samples,) for a 1-D ``y``, else (n_samples, n_outputs).

        ``check_input=False`` skips the checks of ``X`` (``BaseMLP.predict``).
        """
        out = self._forward(X, check_input) * self.y_scale_[None] + self.y_mean_[None]  # rows, as _forward's
        return out[:, 0] if self._y_ndim == 1 else out

    def score(self, X: Any, y: Any) -> float:
        """R^2 on ``X`` of shape (n_samples, n_features) and ``y`` of shape (n_samples,) or (n_samples, n_targets).

        Averaged uniformly over outputs.
        """
        return r2_score(np.asarray(y), self.predict(X))
