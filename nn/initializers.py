"""Weight initializers drawn from a seeded ``numpy.random.Generator``.

He suits ReLU-family activations, Glorot suits tanh/sigmoid (He et al. 2015,
Glorot & Bengio 2010). Every initializer takes ``(rng, shape, dtype)`` with
``shape`` = (fan_in, fan_out) and returns a new array of that shape and ``dtype``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .arrays import Array, FloatDType

Initializer = Callable[[np.random.Generator, tuple[int, int], FloatDType], Array]


def he_normal(rng: np.random.Generator, shape: tuple[int, int], dtype: FloatDType) -> Array:
    """N(0, 2 / fan_in), for ReLU-family layers. ``shape`` is (fan_in, fan_out)."""
    std: float = np.sqrt(2.0 / shape[0])  # a numpy float64; the stubs give np.sqrt of a Python float as Any
    return (rng.standard_normal(shape) * std).astype(dtype)


def he_uniform(rng: np.random.Generator, shape: tuple[int, int], dtype: FloatDType) -> Array:
    """U(-l, l) with l = sqrt(6 / fan_in)."""
    limit = np.sqrt(6.0 / shape[0])
    return rng.uniform(-limit, limit, shape).astype(dtype)


def glorot_normal(rng: np.random.Generator, shape: tuple[int, int], dtype: FloatDType) -> Array:
    """N(0, 2 / (fan_in + fan_out)), for tanh and sigmoid layers."""
    std: float = np.sqrt(2.0 / (shape[0] + shape[1]))
    return (rng.standard_normal(shape) * std).astype(dtype)


def glorot_uniform(rng: np.random.Generator, shape: tuple[int, int], dtype: FloatDType) -> Array:
    """U(-l, l) with l = sqrt(6 / (fan_in + fan_out))."""
    limit = np.sqrt(6.0 / (shape[0] + shape[1]))
    return rng.uniform(-limit, limit, shape).astype(dtype)


def zeros(rng: np.random.Generator, shape: tuple[int, int], dtype: FloatDType) -> Array:
    """All zero: for an output layer that should start at the targets' mean (the gradient still reaches it)."""
    return np.zeros(shape, dtype=dtype)


INITIALIZERS: dict[str, Initializer] = {
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "glorot_normal": glorot_normal,
    "glorot_uniform": glorot_uniform,
    "zeros": zeros,
}


def get_initializer(name: str) -> Initializer:
    """Look an initializer up by name; unknown names fail loudly with the choices."""
    try:
        return INITIALIZERS[name]
    except KeyError:
        raise ValueError(f"unknown initializer {name!r}; expected one of {sorted(INITIALIZERS)}") from None
