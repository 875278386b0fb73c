"""Trainable and structural layers: the ``Layer`` contract, ``Dense`` and ``Dropout``.

Every layer maps a batch ``x`` of shape (n_samples, n_in) to (n_samples, n_out).
``forward`` caches what ``backward`` needs; ``backward(grad)`` takes dL/d(output)
of shape (n_samples, n_out), fills ``grads`` (same keys and shapes as ``params``)
and returns dL/d(input) of shape (n_samples, n_in).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from .arrays import Array, FloatDType
from .initializers import get_initializer


class Layer(ABC):
    """Base class: a layer without parameters passes shapes through unchanged.

    Attributes
    ----------
    params : dict of str to ndarray
        Trainable arrays by name (``'W'``, ``'b'``); empty for layers without any.
    grads : dict of str to ndarray
        dL/d(param) of the last ``backward``, same keys and shapes as ``params``.
    """

    def __init__(self) -> None:
        self.params: dict[str, Array] = {}
        self.grads: dict[str, Array] = {}

    def build(self, n_in: int, rng: np.random.Generator, dtype: FloatDType) -> int:
        """Allocate parameters for ``n_in`` input features.

        Parameters
        ----------
        n_in : int
            Width of the input, ``x.shape[1]``.
        rng : numpy.random.Generator
            Source of initial weights (and, for ``Dropout``, of masks).
        dtype : numpy dtype
            float32 or float64, the dtype of every parameter.

        Returns
        -------
        int
            Width of the output, ``n_out``.
        """
        return n_in

    @abstractmethod
    def forward(self, x: Array, training: bool = False) -> Array:
        """Output for a batch, caching what ``backward`` needs.

        Parameters
        ----------
        x : ndarray of shape (n_samples, n_in)
        training : bool
            Enables dropout.

        Returns
        -------
        ndarray of shape (n_samples, n_out)
        """

    @abstractmethod
    def backward(self, grad: Array) -> Array:
        """Fill ``grads`` from the gradient of the last ``forward``'s output.

        Parameters
        ----------
        grad : ndarray of shape (n_samples, n_out)
            dL/d(output).

        Returns
        -------
        ndarray of shape (n_samples, n_in)
            dL/d(input).
        """

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this layer (saved in the manifest)."""
        return {}

    def __getattr__(self, name: str) -> Any:
        # Reached only when an attribute is missing: a cache that forward (or build) sets, read too early.
        if name.startswith("_") and not name.startswith("__"):
            raise RuntimeError(f"{self!r}: {self._too_early(name)}")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _too_early(self, name: str) -> str:
        """What to do when the cache ``name`` is read before it is set."""
        return "backward(grad) needs a forward(x) first"

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Dense(Layer):
    """Fully connected layer ``x @ W + b``, with ``W`` of shape (n_in, units) and ``b`` of shape (units,).

    Parameters
    ----------
    units : int
        Output width.
    kernel_initializer : str
        ``'glorot_uniform'`` (default), ``'glorot_normal'``, ``'he_normal'`` or
        ``'he_uniform'``.
    l2 : float
        L2 penalty: ``l2 * W`` is added to dL/dW (biases are not penalised).
    """

    def __init__(
        self,
        units: int,
        kernel_initializer: str = "glorot_uniform",
        l2: float = 0.0,
        input_dim: int | None = None,
        seed: int | None = None,
        dtype: str | np.dtype[Any] = "float32",
    ) -> None:
        super().__init__()
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units < 1:
            raise ValueError(f"Dense: units must be a positive integer, got {units!r}")
        if not l2 >= 0.0:
            raise ValueError(f"Dense: l2 must be >= 0, got {l2!r}")
        get_initializer(kernel_initializer)
        self.units = int(units)
        self.kernel_initializer = kernel_initializer
        self.l2 = float(l2)
        # The first layer of a network needs no input gradient; Network clears this.
        self.input_grad = True
        # The input of the last forward (n_samples, n_in); backward runs only after a forward.
        self._x: Array
        if input_dim is not None:
            if isinstance(input_dim, bool) or not isinstance(input_dim, (int, np.integer)) or input_dim < 1:
                raise ValueError(f"Dense: input_dim must be a positive integer, got {input_dim!r}")
            self.build(int(input_dim), np.random.default_rng(seed), np.dtype(dtype))

    @classmethod
    def from_weights(cls, W: Any, b: Any) -> Dense:
        """A built layer holding ``W`` (n_in, units) and ``b`` (units,): a neuron is ``from_weights([[1.0]], [2.0])``.

        The dtype is W's when it is float32 or float64, else float64.
        """
        W_arr = np.array(W)
        dtype = W_arr.dtype if W_arr.dtype in (np.float32, np.float64) else np.dtype(np.float64)
        W_arr = W_arr.astype(dtype)
        b_arr = np.array(b, dtype=dtype)
        if W_arr.ndim != 2 or b_arr.shape != (W_arr.shape[1],):
            raise ValueError(
                f"Dense.from_weights: W must be (n_in, units) and b (units,), got {W_arr.shape} and {b_arr.shape}"
            )
        layer = cls(W_arr.shape[1])
        layer.params = {"W": W_arr, "b": b_arr}
        layer.grads = {k: np.zeros_like(v) for k, v in layer.params.items()}
        return layer

    def build(self, n_in: int, rng: np.random.Generator, dtype: FloatDType) -> int:
        init = get_initializer(self.kernel_initializer)
        self.params = {"W": init(rng, (n_in, self.units), dtype), "b": np.zeros(self.units, dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        return self.units

    def forward(self, x: Array, training: bool = False) -> Array:
        if not self.params:
            raise RuntimeError(
                f"{self!r} is not built: give input_dim=..., use Dense.from_weights(W, b), or put it in a Network"
            )
        self._x = x
        out = x @ self.params["W"]
        out += self.params["b"]
        return out

    def backward(self, grad: Array) -> Array:
        x = self._x  # before any parameter: a backward before forward says so
        W = self.params["W"]
        np.matmul(x.T, grad, out=self.grads["W"])
        grad.sum(axis=0, out=self.grads["b"])
        if self.l2:
            self.grads["W"] += self.l2 * W
        return grad @ W.T if self.input_grad else grad

    def get_config(self) -> dict[str, Any]:
        return {"units": self.units, "kernel_initializer": self.kernel_initializer, "l2": self.l2}


class Dropout(Layer):
    """Inverted dropout: zero a ``rate`` fraction in training, scale the rest by 1/(1-rate).

    At inference it is the identity, so predictions need no rescaling.

    Parameters
    ----------
    rate : float
        Fraction of inputs zeroed in training, in [0, 1).
    """

    def __init__(self, rate: float) -> None:
        super().__init__()
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout: rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)
        # The scaled keep-mask of the last training forward (n_samples, n_in); None at inference.
        self._mask: Array | None = None
        # The network's generator, set by ``build``; a training forward needs it.
        self._rng: np.random.Generator

    def build(self, n_in: int, rng: np.random.Generator, dtype: FloatDType) -> int:
        self._rng = rng
        return n_in

    def _too_early(self, name: str) -> str:
        if name == "_rng":
            return "a training forward needs random masks: build(n_in, rng, dtype) it, or put it in a Network"
        return super()._too_early(name)

    def forward(self, x: Array, training: bool = False) -> Array:
        if not training or self.rate == 0.0:
            self._mask = None
            return x
        keep = self._rng.random(x.shape, dtype=x.dtype) >= self.rate
        self._mask = keep * x.dtype.type(1.0 / (1.0 - self.rate))
        return x * self._mask

    def backward(self, grad: Array) -> Array:
        return grad if self._mask is None else grad * self._mask

    def get_config(self) -> dict[str, Any]:
        return {"rate": self.rate}
