"""The MLP estimators' shared machinery: parameters (``MLPParams``) and fitting loop (``BaseMLP``).

``MLPParams`` holds scikit-learn's parameter names (and nnserve's extras), their
checks and scikit-learn's ``get_params``/``set_params``/``repr``. ``BaseMLP``
builds the ``Network`` from them, standardises features, maps scikit-learn's
early stopping, learning-rate schedules and L2 penalty onto callbacks and
layers, runs ``Network.fit`` and sets scikit-learn's fitted attributes.
Subclasses (``nn/estimators.py``) supply the target encoding, the loss and the
validation score.
"""

from __future__ import annotations

import inspect
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Self

import numpy as np

from .activations import ACTIVATIONS, get_activation
from .arrays import AnyArray, Array, FloatDType, IndexArray
from .callbacks import Callback, History, ReduceLROnPlateau
from .layers import Dense, Dropout, Layer
from .losses import Loss
from .network import Network, output_columns
from .optimizers import SGD, Adam, AdamW, Optimizer, RMSprop
from .preprocessing import check_features, fit_standardizer, train_validation_split
from .schedules import InverseScaling, Schedule

SOLVERS = ("adam", "sgd", "adamw", "rmsprop")
LEARNING_RATES = ("constant", "invscaling", "adaptive")


class NotFittedError(ValueError, AttributeError):
    """Prediction before ``fit``: both exceptions scikit-learn's tools catch for that case."""


class MLPParams:
    """Constructor parameters of ``MLPClassifier``/``MLPRegressor`` and scikit-learn's estimator protocol.

    ``__init__`` and ``set_params`` only store values; ``fit`` checks them
    (``_validate_params``), as scikit-learn requires, so ``clone`` and grid
    searches see exactly what was given.
    """

    def __init__(
        self,
        hidden_layer_sizes: Sequence[int] | int = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: int | np.random.Generator | np.random.RandomState | None = None,
        tol: float = 1e-4,
        verbose: bool = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int = 10,
        dropout: float = 0.0,
        dtype: str = "float32",
        callbacks: Sequence[Callback] | None = None,
        lr_schedule: Schedule | None = None,
        clipnorm: float | None = None,
        weight_decay: float = 0.01,
        kernel_initializer: str = "auto",
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.dropout = dropout
        self.dtype = dtype
        self.callbacks = callbacks
        self.lr_schedule = lr_schedule
        self.clipnorm = clipnorm
        self.weight_decay = weight_decay
        self.kernel_initializer = kernel_initializer

    # -- scikit-learn's estimator protocol -------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(MLPParams.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters, as scikit-learn's ``get_params``."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Self:
        """Set constructor parameters; unknown names raise ``ValueError``, values are checked by ``fit``."""
        valid = self._param_names()
        for name in params:
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for {type(self).__name__}; valid: {valid}")
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = inspect.signature(MLPParams.__init__).parameters
        changed = {k: v for k, v in self.get_params().items() if defaults[k].default != v}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    def _validate_params(self) -> tuple[int, ...]:
        """Check every parameter (a bad one raises ``ValueError`` naming it); returns the hidden layer sizes."""
        owner = type(self).__name__
        sizes: Any = self.hidden_layer_sizes
        sizes = (sizes,) if isinstance(sizes, (int, np.integer)) and not isinstance(sizes, bool) else sizes
        try:
            sizes = tuple(sizes)
        except TypeError:
            raise ValueError(f"{owner}: hidden_layer_sizes must be a sequence of ints, got {sizes!r}") from None
        if any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in sizes):
            raise ValueError(f"{owner}: hidden_layer_sizes must be positive ints, got {self.hidden_layer_sizes!r}")
        hidden = tuple(int(s) for s in sizes)
        choices = {
            "activation": ("identity", *sorted(ACTIVATIONS)),
            "solver": SOLVERS,
            "learning_rate": LEARNING_RATES,
            "dtype": ("float32", "float64"),
        }
        for name, allowed in choices.items():
            if str(getattr(self, name)) not in allowed:
                raise ValueError(f"{owner}: {name} must be one of {list(allowed)}, got {getattr(self, name)!r}")
        ranges = {
            "alpha": (self.alpha, 0.0, None),
            "learning_rate_init": (self.learning_rate_init, 0.0, None),
            "tol": (self.tol, 0.0, None),
            "power_t": (self.power_t, 0.0, None),
            "momentum": (self.momentum, 0.0, 1.0),
            "beta_1": (self.beta_1, 0.0, 1.0),
            "beta_2": (self.beta_2, 0.0, 1.0),
            "epsilon": (self.epsilon, 0.0, None),
            "dropout": (self.dropout, 0.0, 1.0),
            "validation_fraction": (self.validation_fraction, 0.0, 1.0),
            "weight_decay": (self.weight_decay, 0.0, None),
        }
        for name, (value, low, high) in ranges.items():
            ok = isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and value >= low
            ok = ok and (high is None or value < high)
            if name in ("learning_rate_init", "epsilon") and ok:
                ok = value > 0
            if not ok:
                bound = f"in [{low}, {high})" if high is not None else f">= {low}"
                raise ValueError(f"{owner}: {name} must be a number {bound}, got {value!r}")
        for name in ("max_iter", "n_iter_no_change"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{owner}: {name} must be a positive int, got {value!r}")
        bs = self.batch_size
        if bs != "auto" and (isinstance(bs, bool) or not isinstance(bs, (int, np.integer)) or bs < 1):
            raise ValueError(f"{owner}: batch_size must be 'auto' or a positive int, got {bs!r}")
        rs = self.random_state
        generator = isinstance(rs, (np.random.Generator, np.random.RandomState))
        if (
            not generator
            and rs is not None
            and (isinstance(rs, bool) or not isinstance(rs, (int, np.integer)) or rs < 0)
        ):
            raise ValueError(
                f"{owner}: random_state must be None, a non-negative int, a numpy Generator or RandomState, got {rs!r}"
            )
        if self.clipnorm is not None and not self.clipnorm > 0:
            raise ValueError(f"{owner}: clipnorm must be None or > 0, got {self.clipnorm!r}")
        if self.lr_schedule is not None and not isinstance(self.lr_schedule, Schedule):
            raise ValueError(f"{owner}: lr_schedule must be an nn.schedules.Schedule, got {self.lr_schedule!r}")
        if self.kernel_initializer == "zeros":  # every hidden unit would stay the same as its neighbours
            raise ValueError(f"{owner}: kernel_initializer 'zeros' is for an output layer, not hidden ones")
        if self.kernel_initializer != "auto":
            Dense(1, kernel_initializer=self.kernel_initializer)
        return hidden

    def _seed(self) -> int | None:
        """The seed of one ``fit``: an int as given; drawn from a Generator or RandomState, so refits differ."""
        rs = self.random_state
        if isinstance(rs, np.random.Generator):
            return int(rs.integers(2**32))
        if isinstance(rs, np.random.RandomState):
            return int(rs.randint(2**32, dtype=np.int64))
        return None if rs is None else int(rs)


class _Printer(Callback):
    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        print(f"Iteration {epoch + 1}, loss = {logs['loss']:.8f}")


class _NoImprovementStop(Callback):
    """scikit-learn's stopping rule for ``tol`` and ``n_iter_no_change``.

    An epoch counts as no improvement when ``monitor`` is not better than the best
    value so far by at least ``tol``; training stops once more than
    ``n_iter_no_change`` such epochs come in a row. The best value follows every
    improvement, however small, and with ``restore`` its weights are put back at
    the end (scikit-learn's early stopping keeps the best validation score's weights).
    """

    def __init__(self, monitor: str, tol: float, n_iter_no_change: int, restore: bool) -> None:
        self.monitor, self.tol, self.n_iter_no_change, self.restore = monitor, tol, n_iter_no_change, restore
        self.sign = -1.0 if monitor.endswith("loss") else 1.0
        self._best: float | None = None
        self._best_weights: Array | None = None
        self._count = 0

    def on_train_begin(self, logs: dict[str, float]) -> None:
        self._best, self._best_weights, self._count = None, None, 0

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        value = float(logs[self.monitor])
        gain = np.inf if self._best is None else self.sign * (value - self._best)
        self._count = 0 if gain >= self.tol else self._count + 1
        if gain > 0:
            self._best = value
            if self.restore:
                self._best_weights = self.network.get_flat_weights()
        if self._count > self.n_iter_no_change:
            self.network.stop_training = True

    def on_train_end(self, logs: dict[str, float]) -> None:
        if self._best_weights is not None:
            self.network.set_flat_weights(self._best_weights)


class BaseMLP(MLPParams, ABC):
    """Fitting loop and fitted attributes over the parameters of ``MLPParams``.

    Attributes set by ``fit`` (or ``nn.load``); absent on an unfitted estimator
    ---------------------------------------------------------------------------
    network_ : Network
        The trained network; it works on standardised features.
    n_features_in_ : int
        Width of ``X`` at fit time.
    feature_names_in_ : ndarray of str objects, shape (n_features_in_,)
        Only when feature names were given.
    x_mean_, x_scale_ : ndarray of shape (n_features_in_,)
        Feature standardisation, ``(X - x_mean_) / x_scale_``.
    history_ : History
        Epoch logs of the last ``fit``.
    loss_curve_ : list of float
        Training loss per epoch; ``loss_`` is its last and ``best_loss_`` its least value.
    n_iter_ : int
        Epochs run by the last ``fit``.
    t_ : int
        Optimizer steps taken, over every ``fit`` of this network.
    validation_scores_ : list of float
        With ``early_stopping``: validation score per epoch; ``best_validation_score_`` its best.
    """

    score_name = "score"
    output_initializer = "glorot_uniform"  # the output layer's kernel

    network_: Network
    n_features_in_: int
    feature_names_in_: AnyArray
    x_mean_: Array
    x_scale_: Array
    history_: History
    loss_curve_: list[float]
    n_iter_: int
    loss_: float
    best_loss_: float
    t_: int
    validation_scores_: list[float]

    # -- model construction ----------------------------------------------
    def _build_layers(self, hidden: tuple[int, ...], n_outputs: int) -> list[Layer]:
        init = self.kernel_initializer
        if init == "auto":
            init = "he_normal" if self.activation in ("relu", "leaky_relu", "gelu") else "glorot_uniform"
        layers: list[Layer] = []
        for units in hidden:
            layers.append(Dense(units, kernel_initializer=init))
            if self.activation != "identity":
                layers.append(get_activation(self.activation))
            if self.dropout:
                layers.append(Dropout(self.dropout))
        layers.append(Dense(n_outputs, kernel_initializer=self.output_initializer))
        return layers

    def _make_optimizer(self) -> Optimizer:
        lr, clip = self.learning_rate_init, self.clipnorm
        if self.solver == "sgd":
            return SGD(lr, momentum=self.momentum, nesterov=self.nesterovs_momentum, clipnorm=clip)
        if self.solver == "rmsprop":
            return RMSprop(lr, epsilon=self.epsilon, clipnorm=clip)
        if self.solver == "adamw":
            return AdamW(lr, self.weight_decay, self.beta_1, self.beta_2, self.epsilon, clip)
        return Adam(lr, self.beta_1, self.beta_2, self.epsilon, clip)

    # -- subclass hooks ----------------------------------------------------
    @abstractmethod
    def _encode_targets(self, y: Any, refit: bool, classes: Any = None) -> AnyArray:
        """Targets in the loss's form; ``refit`` learns the encoding anew (from ``classes`` when given)."""

    @abstractmethod
    def _loss(self) -> Loss:
        """The training loss."""

    @abstractmethod
    def _val_metric(self, logits: Array, y: AnyArray) -> float:
        """The validation score (higher is better) from logits and encoded targets."""

    def _stratify(self, y: AnyArray) -> AnyArray | None:
        return None

    def __sklearn_tags__(self) -> Any:
        """scikit-learn's tags (scikit-learn >= 1.6 asks for them; only it calls this, so it is imported here)."""
        from sklearn.utils import InputTags, Tags, TargetTags

        return Tags(
            estimator_type=None,
            target_tags=TargetTags(required=True),
            input_tags=InputTags(sparse=False, allow_nan=False),
        )

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "network_")

    # -- the prediction API every estimator offers --------------------------
    @abstractmethod
    def predict(self, X: Any, check_input: bool = True) -> AnyArray:
        """Predictions for raw rows ``X`` of shape (n_samples, n_features).

        ``check_input=False`` (as scikit-learn's trees offer) skips the checks of ``X`` for a caller that made
        them: ``X`` must then be a real 2-D ndarray of ``n_features_in_`` columns, every value finite in the
        network's dtype. Anything else gives wrong answers or numpy's errors, not this estimator's.
        """

    @abstractmethod
    def score(self, X: Any, y: Any) -> float:
        """The estimator's default metric on (X, y): accuracy or R^2."""

    # -- fitting -------------------------------------------------------------
    def fit(self, X: Any, y: Any, feature_names: Sequence[str] | None = None) -> Self:
        """Train on raw rows ``X`` and targets ``y``; parameters are checked here.

        ``feature_names`` (or ``X.columns`` for a DataFrame) are kept for
        prediction by name. With ``warm_start=True`` a fitted estimator goes on
        from its current weights and preprocessing.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or, for the regressor, (n_samples, n_targets)
            Class labels (ints or strings) for the classifier, numbers for the regressor.
        feature_names : sequence of str of length n_features, optional

        Returns
        -------
        self
        """
        return self._fit(X, y, feature_names, warm=self.warm_start and hasattr(self, "network_"))

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> Self:
        """One pass over (X, y), from the current weights once fitted; the first call fits the preprocessing.

        Early stopping and learning-rate schedules do not apply to single passes.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or, for the regressor, (n_samples, n_targets)
        classes : array-like of shape (n_classes,), optional
            The classifier needs every class on the first call.

        Returns
        -------
        self
        """
        return self._fit(X, y, None, warm=hasattr(self, "network_"), epochs=1, classes=classes)

    def _fit(
        self,
        X: Any,
        y: Any,
        feature_names: Sequence[str] | None,
        warm: bool,
        epochs: int | None = None,
        classes: Any = None,
    ) -> Self:
        """``fit`` (``epochs=None``: up to ``max_iter`` epochs) or one ``partial_fit`` pass (``epochs=1``)."""
        owner = type(self).__name__
        hidden = self._validate_params()
        if y is None:
            raise ValueError(f"{owner} requires y to be passed, but the target y is None")
        dtype = np.dtype(self.dtype)
        frame_names = _frame_names(X)  # read before conversion
        from_frame = feature_names is None and frame_names is not None
        if feature_names is None:
            feature_names = frame_names
        X = check_features(X, self.n_features_in_ if warm else None, owner, dtype)
        y_enc = self._encode_targets(y, refit=not warm, classes=classes)
        if len(y_enc) != len(X):
            raise ValueError(f"{owner}: X has {len(X)} samples but y has {len(y_enc)}")
        seed = self._seed()
        if not warm:
            self.n_features_in_ = X.shape[1]
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
            if feature_names is not None:
                names = [str(n) for n in feature_names]
                if len(names) != X.shape[1]:
                    raise ValueError(f"{owner}: {len(names)} feature names for {X.shape[1]} features")
                self.feature_names_in_ = np.asarray(names, dtype=object)
            self._names_from_frame = from_frame
            self.x_mean_, self.x_scale_ = fit_standardizer(X)
        Xs = (X - self.x_mean_) / self.x_scale_

        validation = None
        early_stopping = self.early_stopping and epochs is None
        if early_stopping:
            split_rng = np.random.default_rng(seed)
            train, val = train_validation_split(len(Xs), self.validation_fraction, split_rng, self._stratify(y_enc))
            validation = (Xs[val], y_enc[val])
            Xs, y_enc = Xs[train], y_enc[train]

        if not warm:
            n_outputs = self._n_outputs(y_enc)
            self.network_ = Network(
                self._build_layers(hidden, n_outputs), self._loss(), self._make_optimizer(), seed, dtype
            )
            self.network_.build(X.shape[1])
        net = self.network_
        sgd = self.solver == "sgd"
        if epochs is None or not warm:
            net.optimizer.learning_rate = self.learning_rate_init

        callbacks: list[Callback] = list(self.callbacks or [])
        monitor = f"val_{self.score_name}" if early_stopping else "loss"
        callbacks.insert(0, _NoImprovementStop(monitor, self.tol, self.n_iter_no_change, early_stopping))
        if sgd and self.learning_rate == "adaptive":
            callbacks.append(ReduceLROnPlateau(monitor, factor=0.2, patience=2, min_delta=self.tol))
        if self.verbose:
            callbacks.append(_Printer())
        schedule = self.lr_schedule
        if schedule is None and sgd and self.learning_rate == "invscaling" and epochs is None:
            schedule = InverseScaling(self.power_t, samples_per_epoch=len(Xs))
        batch = min(200, len(Xs)) if self.batch_size == "auto" else min(int(self.batch_size), len(Xs))
        # alpha is scikit-learn's L2 penalty, alpha / 2 * ||W||^2 per batch of samples: on the
        # gradient of the batch-mean loss that is alpha / batch * W for every weight matrix.
        for layer in net.layers:
            if isinstance(layer, Dense):
                layer.l2 = self.alpha / batch

        history = net.fit(
            Xs,
            y_enc,
            epochs=int(self.max_iter) if epochs is None else epochs,
            batch_size=batch,
            validation_data=validation,
            shuffle=self.shuffle,
            callbacks=callbacks,
            metrics={self.score_name: self._val_metric},
            lr_schedule=schedule,
        )
        self.history_ = history
        self.loss_curve_ = (
            history.history["loss"] if not warm or epochs is None else [*self.loss_curve_, *history.history["loss"]]
        )
        self.n_iter_ = history.epochs if not warm or epochs is None else self.n_iter_ + history.epochs
        self.loss_ = self.loss_curve_[-1]
        self.best_loss_ = min(self.loss_curve_)
        self.t_ = net.optimizer.iterations
        if validation is not None:
            self.validation_scores_ = history.history[f"val_{self.score_name}"]
            self.best_validation_score_ = max(self.validation_scores_)
        return self

    def _n_outputs(self, y_enc: AnyArray) -> int:
        return 1 if y_enc.ndim == 1 else y_enc.shape[1]

    def _forward(self, X: Any, check_input: bool = True) -> Array:
        if not hasattr(self, "network_"):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet; call 'fit' first")
        dtype = self.network_.dtype
        if check_input:
            self._check_feature_names(X)
            X = check_features(X, self.n_features_in_, type(self).__name__, dtype)
        else:  # the caller's promise: a real 2-D ndarray of n_features_in_ finite columns within dtype's range
            X = X.astype(dtype, copy=False)
        # (1, n_features) rows: numpy takes arrays of one rank faster than it broadcasts a vector (~1 us a row)
        return self.network_.predict((X - self.x_mean_[None]) / self.x_scale_[None])

    # -- input gradients -----------------------------------------------------
    def target_index(self, X: Any, target: Any = None) -> IndexArray:
        """The output each row's input gradient is of: ``target`` checked, or by default the predicted class.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        target : int or array-like of int of shape (n_samples,), optional
            Classifier: indices into ``classes_`` (default: each row's predicted class). Regressor: output
            columns (default 0).

        Returns
        -------
        ndarray of int of shape (n_samples,)
        """
        n = len(self._raw_features(X, np.dtype(np.float64)))
        if target is None:
            return self._default_target(X, n)
        return output_columns(target, n, self._n_explained())

    def output_and_input_gradient(
        self, X: Any, target: Any = None, dtype: str | FloatDType | None = None
    ) -> tuple[Array, Array]:
        """The explained output per row and its gradient with respect to the raw features, in one pass.

        Classifier: the probability of class ``classes_[target]`` (``predict_proba``'s column). Regressor:
        ``predict``'s output column ``target`` in the units of ``y``. Feature standardisation and target
        scaling are part of the function differentiated, so the gradient is in the raw rows' units.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        target : int or array-like of int of shape (n_samples,), optional
            As in ``target_index``.
        dtype : str or numpy dtype, optional
            The network's dtype by default; ``float64`` computes in float64.

        Returns
        -------
        values : ndarray of shape (n_samples,)
        gradient : ndarray of shape (n_samples, n_features)
        """
        dt: FloatDType = self.network_.dtype if dtype is None else np.dtype(dtype)
        X = self._raw_features(X, dt)
        columns, offset, scale = self._output_map(self.target_index(X, target))
        values, grad = self.network_.output_and_input_gradient((X - self.x_mean_) / self.x_scale_, columns, dt)
        return (offset + scale * values).astype(dt, copy=False), (grad * scale[:, None] / self.x_scale_).astype(
            dt, copy=False
        )

    def input_gradient(self, X: Any, target: Any = None, dtype: str | FloatDType | None = None) -> Array:
        """d(explained output)/d(raw features), row by row: ``output_and_input_gradient``'s gradient.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        target : int or array-like of int of shape (n_samples,), optional
            As in ``target_index``.
        dtype : str or numpy dtype, optional
            ``float64`` on request.

        Returns
        -------
        ndarray of shape (n_samples, n_features)
        """
        return self.output_and_input_gradient(X, target, dtype)[1]

    def kinks_on_path(self, start: Any, end: Any) -> list[Array]:
        """Per row, where the path from ``start`` to ``end`` (raw rows) crosses a ReLU kink:
        ``Network.kinks_on_path`` of the standardised rows (standardising is affine: the positions are the same).

        Parameters
        ----------
        start, end : array-like of shape (n_samples, n_features)

        Returns
        -------
        list of n_samples ndarrays of shape (n_kinks_i,)
        """
        a, b = self._raw_features(start, np.dtype(np.float64)), self._raw_features(end, np.dtype(np.float64))
        return self.network_.kinks_on_path((a - self.x_mean_) / self.x_scale_, (b - self.x_mean_) / self.x_scale_)

    def _raw_features(self, X: Any, dtype: FloatDType) -> Array:
        if not hasattr(self, "network_"):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet; call 'fit' first")
        self._check_feature_names(X)
        return check_features(X, self.n_features_in_, type(self).__name__, dtype)

    @abstractmethod
    def _n_explained(self) -> int:
        """How many outputs ``target_index`` chooses from: classes or output columns."""

    @abstractmethod
    def _default_target(self, X: Any, n: int) -> IndexArray:
        """The target of each of the ``n`` rows of ``X`` when none is given."""

    @abstractmethod
    def _output_map(self, target: IndexArray) -> tuple[IndexArray, Array, Array]:
        """(network column, offset, scale) per row: explained output = offset + scale * network output."""

    def _check_feature_names(self, X: Any) -> None:
        """scikit-learn's rule: other column names raise; names missing on one side warn.

        Rows without names are expected when the names were given to ``fit`` as
        ``feature_names`` (the service does that), so only a DataFrame fit warns about them.
        """
        owner = type(self).__name__
        names = _frame_names(X)
        fitted = getattr(self, "feature_names_in_", None)
        if names is not None and fitted is not None:
            if list(names) != [str(n) for n in fitted]:
                raise ValueError(
                    f"The feature names should match those that were passed during fit; "
                    f"fitted with {list(fitted)}, got {list(names)}"
                )
        elif names is not None:
            warnings.warn(f"X has feature names, but {owner} was fitted without feature names", UserWarning, 3)
        elif fitted is not None and getattr(self, "_names_from_frame", False):
            warnings.warn(
                f"X does not have valid feature names, but {owner} was fitted with feature names", UserWarning, 3
            )

    # -- scikit-learn's fitted attributes --------------------------------
    @property
    def coefs_(self) -> list[Array]:
        """Weight matrices of the Dense layers; the i-th has shape (n_in_i, n_out_i)."""
        return [layer.params["W"] for layer in self.network_.layers if isinstance(layer, Dense)]

    @property
    def intercepts_(self) -> list[Array]:
        """Bias vectors of the Dense layers; the i-th has shape (n_out_i,)."""
        return [layer.params["b"] for layer in self.network_.layers if isinstance(layer, Dense)]

    @property
    def n_layers_(self) -> int:
        """Layers as scikit-learn counts them: input, hidden and output."""
        return len(self.coefs_) + 1

    @property
    def n_outputs_(self) -> int:
        """Number of network outputs: 1 for a binary classifier, else n_classes or n_targets."""
        n_outputs = self.network_.n_outputs
        assert n_outputs is not None, "a fitted estimator's network is built"
        return int(n_outputs)


def _frame_names(X: Any) -> list[str] | None:
    """A DataFrame's column names when all are strings (scikit-learn's rule), else None."""
    columns = getattr(X, "columns", None)
    if columns is None:
        return None
    names = list(columns)
    kinds = {isinstance(n, str) for n in names}
    if kinds == {True}:
        return [str(n) for n in names]
    if kinds == {True, False}:
        raise TypeError("Feature names are only supported if all input features have string names")
    return None
