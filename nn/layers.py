"""Trainable and structural layers: the ``Layer`` contract, ``Dense`` and ``Dropout``.

Every layer maps a batch ``x`` of shape (n_samples, n_in) to (n_samples, n_out).
``forward`` caches what ``backward`` needs; ``backward(grad)`` takes dL/d(output)
of shape (n_samples, n_out), fills ``grads`` (same keys and shapes as ``params``)
and returns dL/d(input) of shape (n_samples, n_in).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

from .arrays import Array, FloatDType
from .initializers import get_initializer


class _Params(dict[str, Array]):
    """A layer's parameters (or gradients) by name; a missing one is a ``RuntimeError`` that says what to do."""

    def __init__(self, owner: str, items: dict[str, Array] | None = None) -> None:
        super().__init__(items or {})
        self.owner = owner

    def __missing__(self, key: str) -> Array:
        if not self:
            raise RuntimeError(
                f"{self.owner} has no parameter {key!r}: it is not built yet. Add it to a Network (fit builds it), "
                "call build(n_in, rng, dtype), or for Dense give input_dim= or use Dense.from_weights"
            )
        raise RuntimeError(f"{self.owner} has no parameter {key!r}; it has {sorted(self)}")


class Layer(ABC):
    """Base class: a layer without parameters passes shapes through unchanged.

    Attributes
    ----------
    params : dict of str to ndarray
        Trainable arrays by name (``'W'``, ``'b'``); empty for layers without any.
    grads : dict of str to ndarray
        dL/d(param) of the last ``backward``, same keys and shapes as ``params``.
    piecewise_linear : bool
        Whether the layer is linear between kinks at inference (class attribute): integrated gradients
        find the kinks of such networks on their paths exactly (``Network.kinks_on_path``).
    kinks_at_zero : bool
        Whether each unit's derivative jumps where its input crosses 0 (ReLU, LeakyReLU).
    """

    piecewise_linear: ClassVar[bool] = False
    kinks_at_zero: ClassVar[bool] = False

    def __init__(self) -> None:
        self.params: dict[str, Array] = _Params(type(self).__name__)
        self.grads: dict[str, Array] = _Params(type(self).__name__)

    def _cached(self, name: str) -> Array:
        """The array the last ``forward`` kept under ``name``, for ``backward``.

        A ``backward`` before any ``forward`` is then a ``RuntimeError`` saying so, not an ``AttributeError``.
        """
        value: Array | None = self.__dict__.get(name)
        if value is None:
            raise RuntimeError(f"{type(self).__name__}: backward called before forward; call forward(x) first")
        return value

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

    def input_backward(self, grad: Array) -> Array:
        """dL/d(input) alone from the last ``forward``: ``backward`` without the parameter gradients.

        Parameters
        ----------
        grad : ndarray of shape (n_samples, n_out)

        Returns
        -------
        ndarray of shape (n_samples, n_in)
        """
        return self.backward(grad)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this layer (saved in the manifest)."""
        return {}

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
    input_dim : int, optional
        Input width. Given, the layer is built at once (float64, unseeded weights) and
        can be used on its own; a ``Network`` still rebuilds it with its seed and dtype,
        and refuses another width.
    """

    piecewise_linear = True

    def __init__(
        self, units: int, kernel_initializer: str = "glorot_uniform", l2: float = 0.0, input_dim: int | None = None
    ) -> None:
        super().__init__()
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units < 1:
            raise ValueError(f"Dense: units must be a positive integer, got {units!r}")
        if input_dim is not None and (
            isinstance(input_dim, bool) or not isinstance(input_dim, (int, np.integer)) or input_dim < 1
        ):
            raise ValueError(f"Dense: input_dim must be a positive integer or None, got {input_dim!r}")
        if not l2 >= 0.0:
            raise ValueError(f"Dense: l2 must be >= 0, got {l2!r}")
        get_initializer(kernel_initializer)
        self.units = int(units)
        self.kernel_initializer = kernel_initializer
        self.l2 = float(l2)
        self.input_dim = None if input_dim is None else int(input_dim)
        # The first layer of a network needs no input gradient; Network clears this.
        self.input_grad = True
        # Weights given to from_weights, which build keeps instead of initialising.
        self._given: tuple[Array, Array] | None = None
        if self.input_dim is not None:
            self.build(self.input_dim, np.random.default_rng(), np.dtype(np.float64))

    @classmethod
    def from_weights(cls, W: npt.ArrayLike, b: npt.ArrayLike, l2: float = 0.0) -> Self:
        """A built layer with these weights; a ``Network`` keeps them (in its dtype).

        Parameters
        ----------
        W : array-like of shape (n_in, units)
        b : array-like of shape (units,)

        Returns
        -------
        Dense
            Float64 unless ``W`` is float32.
        """
        dtype: FloatDType = np.dtype(np.float32) if np.asarray(W).dtype == np.float32 else np.dtype(np.float64)
        W_arr: Array = np.asarray(W, dtype=dtype)
        b_arr: Array = np.asarray(b, dtype=dtype)
        if W_arr.ndim != 2 or b_arr.shape != (W_arr.shape[1],):
            raise ValueError(
                f"Dense.from_weights: W must be (n_in, units) and b (units,), got {W_arr.shape} and {b_arr.shape}"
            )
        layer = cls(W_arr.shape[1], l2=l2)
        layer._given = (W_arr, b_arr)
        layer.input_dim = W_arr.shape[0]
        layer.build(W_arr.shape[0], np.random.default_rng(), dtype)
        return layer

    @property
    def built(self) -> bool:
        """Whether the weights exist (``build``, ``input_dim`` or ``from_weights``)."""
        return "W" in self.params

    def build(self, n_in: int, rng: np.random.Generator, dtype: FloatDType) -> int:
        if self.input_dim is not None and n_in != self.input_dim:
            raise ValueError(f"Dense: built for input_dim={self.input_dim}, but its input has {n_in} features")
        if self._given is not None:
            W, b = (a.astype(dtype) for a in self._given)
        else:
            W, b = get_initializer(self.kernel_initializer)(rng, (n_in, self.units), dtype), np.zeros(self.units, dtype)
        self.params = _Params("Dense", {"W": W, "b": b})
        self.grads = _Params("Dense", {k: np.zeros_like(v) for k, v in self.params.items()})
        return self.units

    def forward(self, x: Array, training: bool = False) -> Array:
        if not self.built:
            raise RuntimeError(
                "Dense: forward before build; add the layer to a Network (fit builds it), "
                "give Dense(units, input_dim=...), or use Dense.from_weights(W, b)"
            )
        self._x = x
        out = x @ self.params["W"]
        out += self.params["b"][None]  # as a (1, units) row: numpy adds arrays of one rank faster than it broadcasts
        return out

    def backward(self, grad: Array) -> Array:
        x = self._cached("_x")
        W = self.params["W"]
        np.matmul(x.T, grad, out=self.grads["W"])
        grad.sum(axis=0, out=self.grads["b"])
        if self.l2:
            self.grads["W"] += self.l2 * W
        return grad @ W.T if self.input_grad else grad

    def input_backward(self, grad: Array) -> Array:
        self._cached("_x")
        through: Array = grad @ self.params["W"].T
        return through

    def get_config(self) -> dict[str, Any]:
        return {"units": self.units, "kernel_initializer": self.kernel_initializer, "l2": self.l2}


class Dropout(Layer):
    """Inverted dropout: zero a ``rate`` fraction in training, scale the rest by 1/(1-rate).

    At inference it is the identity, so predictions need no rescaling.

    Parameters
    ----------
    rate : float
        Fraction of inputs zeroed in training, in [0, 1).
    seed : int, optional
        Seed of the generator of its masks. Given (or ``rng``), the layer can run a training forward
        on its own; a ``Network`` still gives it the network's generator when it builds it, as it
        rebuilds ``Dense(input_dim=...)`` with its seed.
    rng : numpy.random.Generator, optional
        The generator itself, instead of ``seed``.
    """

    piecewise_linear = True  # the identity at inference

    def __init__(self, rate: float, seed: int | None = None, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout: rate must be in [0, 1), got {rate!r}")
        if seed is not None and rng is not None:
            raise ValueError("Dropout: give seed or rng, not both")
        if rng is not None and not isinstance(rng, np.random.Generator):
            raise ValueError(f"Dropout: rng must be a numpy.random.Generator, got {type(rng).__name__}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"Dropout: seed must be a non-negative integer, got {seed!r}")
        self.rate = float(rate)
        # The scaled keep-mask of the last training forward (n_samples, n_in); None after an
        # inference forward, absent before any forward.
        self._mask: Array | None
        # The generator of its masks: given here, or the network's, set by ``build``; a training forward needs it.
        self._rng: np.random.Generator
        if seed is not None or rng is not None:
            self._rng = rng if rng is not None else np.random.default_rng(seed)

    def build(self, n_in: int, rng: np.random.Generator, dtype: FloatDType) -> int:
        self._rng = rng
        return n_in

    def forward(self, x: Array, training: bool = False) -> Array:
        if not training or self.rate == 0.0:
            self._mask = None
            return x
        if "_rng" not in self.__dict__:
            raise RuntimeError(
                "Dropout: a training forward needs a generator for its masks; give Dropout(rate, seed=...) "
                "or rng=, add the layer to a Network (fit builds it), or call build(n_in, rng, dtype)"
            )
        keep = self._rng.random(x.shape, dtype=x.dtype) >= self.rate
        self._mask = keep * x.dtype.type(1.0 / (1.0 - self.rate))
        return x * self._mask

    def backward(self, grad: Array) -> Array:
        if "_mask" not in self.__dict__:
            raise RuntimeError("Dropout: backward called before forward; call forward(x) first")
        return grad if self._mask is None else grad * self._mask

    def get_config(self) -> dict[str, Any]:
        return {"rate": self.rate}
