"""Element-wise activation layers. Each caches its output (or input) for ``backward``."""

from __future__ import annotations

from typing import Any

import numpy as np

from .arrays import Array
from .layers import Layer

_SQRT_2_OVER_PI = float(np.sqrt(2.0 / np.pi))


def sigmoid(x: Array) -> Array:
    """Logistic function without overflow: exp is only taken of -|x|.

    Parameters
    ----------
    x : ndarray of any shape

    Returns
    -------
    ndarray of the shape and dtype of ``x``, values in [0, 1]
    """
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)


class ReLU(Layer):
    """max(x, 0), element-wise; shapes (n_samples, n_features) in and out."""

    piecewise_linear = True
    kinks_at_zero = True
    _y: Array  # output of the last forward

    def forward(self, x: Array, training: bool = False) -> Array:
        self._y = np.maximum(x, 0)
        return self._y

    def backward(self, grad: Array) -> Array:
        return grad * (self._cached("_y") > 0)


class LeakyReLU(Layer):
    """x for x > 0, ``negative_slope * x`` otherwise; shapes (n_samples, n_features) in and out.

    Parameters
    ----------
    negative_slope : float
        Slope for x <= 0, >= 0.
    """

    piecewise_linear = True
    kinks_at_zero = True
    _slope: Array  # local derivative of the last forward: 1 or negative_slope

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        if not negative_slope >= 0.0:
            raise ValueError(f"LeakyReLU: negative_slope must be >= 0, got {negative_slope!r}")
        self.negative_slope = float(negative_slope)

    def forward(self, x: Array, training: bool = False) -> Array:
        self._slope = np.where(x > 0, x.dtype.type(1.0), x.dtype.type(self.negative_slope))
        return x * self._slope

    def backward(self, grad: Array) -> Array:
        return grad * self._cached("_slope")

    def get_config(self) -> dict[str, Any]:
        return {"negative_slope": self.negative_slope}


class Tanh(Layer):
    """Hyperbolic tangent, element-wise; shapes (n_samples, n_features) in and out."""

    _y: Array  # output of the last forward

    def forward(self, x: Array, training: bool = False) -> Array:
        self._y = np.tanh(x)
        return self._y

    def backward(self, grad: Array) -> Array:
        y = self._cached("_y")
        return grad * (1 - y * y)


class Sigmoid(Layer):
    """Logistic function, stable for any finite input (no overflow at |x| = 1000).

    Element-wise; shapes (n_samples, n_features) in and out.
    """

    _y: Array  # output of the last forward

    def forward(self, x: Array, training: bool = False) -> Array:
        self._y = sigmoid(x)
        return self._y

    def backward(self, grad: Array) -> Array:
        y = self._cached("_y")
        return grad * y * (1 - y)


class GELU(Layer):
    """Gaussian error linear unit, tanh approximation (Hendrycks & Gimpel 2016).

    Element-wise; shapes (n_samples, n_features) in and out.
    """

    _x: Array  # input of the last forward
    _t: Array  # tanh of the inner polynomial of the last forward

    def forward(self, x: Array, training: bool = False) -> Array:
        self._x = x
        self._t = np.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x**3))
        return 0.5 * x * (1 + self._t)

    def backward(self, grad: Array) -> Array:
        x, t = self._cached("_x"), self._cached("_t")
        dinner = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)
        return grad * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * dinner)


ACTIVATIONS: dict[str, type[Layer]] = {
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "tanh": Tanh,
    "logistic": Sigmoid,
    "sigmoid": Sigmoid,
    "gelu": GELU,
}


def get_activation(name: str) -> Layer:
    """A new activation layer by name (scikit-learn's 'logistic' is an alias of 'sigmoid')."""
    if name == "identity":
        raise ValueError("activation 'identity' adds no layer; build the network without one")
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}") from None
