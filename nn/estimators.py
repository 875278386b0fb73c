"""``MLPClassifier`` and ``MLPRegressor``: drop-in for scikit-learn's, built on ``Network``.

They take scikit-learn's parameter names for every concept the two share and own
their preprocessing (feature standardisation; label encoding for the classifier,
target scaling for the regressor), so a fitted estimator takes raw feature rows.
Extras beyond scikit-learn: ``dropout``, ``dtype``, ``callbacks``,
``lr_schedule``, ``clipnorm``, ``weight_decay`` (AdamW) and ``kernel_initializer``.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from .activations import ACTIVATIONS, get_activation
from .callbacks import Callback, EarlyStopping, History, ReduceLROnPlateau
from .layers import Dense, Dropout, Layer
from .losses import BinaryCrossEntropy, Loss, MeanSquaredError, SoftmaxCrossEntropy
from .metrics import accuracy_score, r2_score
from .network import Network
from .optimizers import SGD, Adam, AdamW, Optimizer, RMSprop
from .preprocessing import check_features, fit_standardizer, train_validation_split
from .schedules import InverseScaling, Schedule
from .typing import AnyArray, Array

SOLVERS = ("adam", "sgd", "adamw", "rmsprop")
LEARNING_RATES = ("constant", "invscaling", "adaptive")


class _Printer(Callback):
    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        print(f"Iteration {epoch + 1}, loss = {logs['loss']:.8f}")


class BaseMLP(ABC):
    """Shared parameters, validation, fitting loop and scikit-learn's estimator protocol.

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
    best_validation_score_: float
    _hidden: tuple[int, ...]  # hidden_layer_sizes as validated ints, set by _validate_params

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
        random_state: int | None = None,
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
        self._validate_params()

    # -- scikit-learn's estimator protocol -------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(BaseMLP.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters, as scikit-learn's ``get_params``."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> BaseMLP:
        """Set constructor parameters; unknown names and bad values raise ``ValueError``."""
        valid = self._param_names()
        for name in params:
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for {type(self).__name__}; valid: {valid}")
        old = self.get_params()
        for name, value in params.items():
            setattr(self, name, value)
        try:
            self._validate_params()
        except ValueError:
            for name, value in old.items():
                setattr(self, name, value)
            raise
        return self

    def __repr__(self) -> str:
        defaults = inspect.signature(BaseMLP.__init__).parameters
        changed = {k: v for k, v in self.get_params().items() if defaults[k].default != v}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    def _validate_params(self) -> None:
        owner = type(self).__name__
        # set_params may have stored anything; this is where it is checked.
        sizes: Any = self.hidden_layer_sizes
        sizes = (sizes,) if isinstance(sizes, (int, np.integer)) and not isinstance(sizes, bool) else sizes
        try:
            sizes = tuple(sizes)
        except TypeError:
            raise ValueError(f"{owner}: hidden_layer_sizes must be a sequence of ints, got {sizes!r}") from None
        if any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in sizes):
            raise ValueError(f"{owner}: hidden_layer_sizes must be positive ints, got {self.hidden_layer_sizes!r}")
        self._hidden = tuple(int(s) for s in sizes)
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
        if rs is not None and (isinstance(rs, bool) or not isinstance(rs, (int, np.integer)) or rs < 0):
            raise ValueError(f"{owner}: random_state must be None or a non-negative int, got {rs!r}")
        if self.clipnorm is not None and not self.clipnorm > 0:
            raise ValueError(f"{owner}: clipnorm must be None or > 0, got {self.clipnorm!r}")
        if self.lr_schedule is not None and not isinstance(self.lr_schedule, Schedule):
            raise ValueError(f"{owner}: lr_schedule must be an nn.schedules.Schedule, got {self.lr_schedule!r}")
        if self.kernel_initializer != "auto":
            Dense(1, kernel_initializer=self.kernel_initializer)

    # -- model construction ----------------------------------------------
    def _build_layers(self, n_outputs: int) -> list[Layer]:
        init = self.kernel_initializer
        if init == "auto":
            init = "he_normal" if self.activation in ("relu", "leaky_relu", "gelu") else "glorot_uniform"
        layers: list[Layer] = []
        for units in self._hidden:
            layers.append(Dense(units, kernel_initializer=init))
            if self.activation != "identity":
                layers.append(get_activation(self.activation))
            if self.dropout:
                layers.append(Dropout(self.dropout))
        layers.append(Dense(n_outputs, kernel_initializer="glorot_uniform"))
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
    def _encode_targets(self, y: Any, refit: bool) -> AnyArray:
        """Targets in the loss's form; ``refit`` learns the encoding anew."""

    @abstractmethod
    def _loss(self) -> Loss:
        """The training loss."""

    @abstractmethod
    def _val_metric(self, logits: Array, y: AnyArray) -> float:
        """The validation score (higher is better) from logits and encoded targets."""

    def _stratify(self, y: AnyArray) -> AnyArray | None:
        return None

    # -- fitting -------------------------------------------------------------
    def fit(self, X: Any, y: Any, feature_names: Sequence[str] | None = None) -> BaseMLP:
        """Train on raw rows ``X`` and targets ``y``.

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
        owner = type(self).__name__
        dtype = np.dtype(self.dtype)
        warm = self.warm_start and hasattr(self, "network_")
        if feature_names is None:
            feature_names = getattr(X, "columns", None)  # a DataFrame names its columns; read before conversion
        X = check_features(X, self.n_features_in_ if warm else None, owner, dtype)
        y_enc = self._encode_targets(y, refit=not warm)
        if len(y_enc) != len(X):
            raise ValueError(f"{owner}: X has {len(X)} samples but y has {len(y_enc)}")
        if not warm:
            self.n_features_in_ = X.shape[1]
            if feature_names is not None:
                names = [str(n) for n in feature_names]
                if len(names) != X.shape[1]:
                    raise ValueError(f"{owner}: {len(names)} feature names for {X.shape[1]} features")
                self.feature_names_in_ = np.asarray(names, dtype=object)
            self.x_mean_, self.x_scale_ = fit_standardizer(X)
        Xs = (X - self.x_mean_) / self.x_scale_

        seed_rng = np.random.default_rng(self.random_state)
        validation = None
        if self.early_stopping:
            train, val = train_validation_split(len(Xs), self.validation_fraction, seed_rng, self._stratify(y_enc))
            validation = (Xs[val], y_enc[val])
            Xs, y_enc = Xs[train], y_enc[train]

        if not warm:
            n_outputs = self._n_outputs(y_enc)
            seed = None if self.random_state is None else int(self.random_state)
            self.network_ = Network(self._build_layers(n_outputs), self._loss(), self._make_optimizer(), seed, dtype)
            self.network_.build(X.shape[1])
        net = self.network_
        net.optimizer.learning_rate = self.learning_rate_init

        callbacks: list[Callback] = list(self.callbacks or [])
        monitor = f"val_{self.score_name}" if self.early_stopping else "loss"
        stopper = EarlyStopping(
            monitor,
            min_delta=self.tol,
            patience=self.n_iter_no_change,
            restore_best_weights=self.early_stopping,
        )
        callbacks.insert(0, stopper)
        if self.learning_rate == "adaptive":
            callbacks.append(ReduceLROnPlateau("loss", factor=0.2, patience=2, min_delta=self.tol))
        if self.verbose:
            callbacks.append(_Printer())
        schedule = self.lr_schedule
        if schedule is None and self.learning_rate == "invscaling":
            schedule = InverseScaling(self.power_t)
        batch = min(200, len(Xs)) if self.batch_size == "auto" else min(int(self.batch_size), len(Xs))
        # alpha is scikit-learn's L2 penalty, alpha / 2 * ||W||^2 per batch of samples: on the
        # gradient of the batch-mean loss that is alpha / batch * W for every weight matrix.
        for layer in net.layers:
            if isinstance(layer, Dense):
                layer.l2 = self.alpha / batch

        history = net.fit(
            Xs,
            y_enc,
            epochs=int(self.max_iter),
            batch_size=batch,
            validation_data=validation,
            shuffle=self.shuffle,
            callbacks=callbacks,
            metrics={self.score_name: self._val_metric},
            lr_schedule=schedule,
        )
        self.history_ = history
        self.loss_curve_ = history.history["loss"]
        self.n_iter_ = history.epochs
        self.loss_ = self.loss_curve_[-1]
        self.best_loss_ = min(self.loss_curve_)
        self.t_ = net.optimizer.iterations
        if validation is not None:
            self.validation_scores_ = history.history[f"val_{self.score_name}"]
            self.best_validation_score_ = max(self.validation_scores_)
        return self

    def _n_outputs(self, y_enc: AnyArray) -> int:
        return 1 if y_enc.ndim == 1 else y_enc.shape[1]

    def _forward(self, X: Any) -> Array:
        if not hasattr(self, "network_"):
            raise ValueError(f"This {type(self).__name__} instance is not fitted yet; call 'fit' first")
        X = check_features(X, self.n_features_in_, type(self).__name__, self.network_.dtype)
        return self.network_.predict((X - self.x_mean_) / self.x_scale_)

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
        return len(self._hidden) + 2

    @property
    def n_outputs_(self) -> int:
        """Number of network outputs: 1 for a binary classifier, else n_classes or n_targets."""
        n_outputs = self.network_.n_outputs
        assert n_outputs is not None, "a fitted estimator's network is built"
        return int(n_outputs)


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
