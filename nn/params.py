"""The constructor parameters of the MLP estimators: defaults, checks and scikit-learn's protocol.

``MLPParams`` holds scikit-learn's parameter names (and nnserve's extras), checks
every value when it is set (a bad one raises ``ValueError`` naming it) and
implements ``get_params``/``set_params``/``repr`` as scikit-learn's estimators do.
``BaseMLP`` (``nn/mlp.py``) adds fitting on top.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, Self

import numpy as np

from .activations import ACTIVATIONS
from .callbacks import Callback
from .layers import Dense
from .schedules import Schedule

SOLVERS = ("adam", "sgd", "adamw", "rmsprop")
LEARNING_RATES = ("constant", "invscaling", "adaptive")


class MLPParams:
    """Constructor parameters of ``MLPClassifier``/``MLPRegressor``, validated on every set."""

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
        sig = inspect.signature(MLPParams.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters, as scikit-learn's ``get_params``."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Self:
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
        defaults = inspect.signature(MLPParams.__init__).parameters
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
