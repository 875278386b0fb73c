"""Optimizers that own their state and update parameters in place.

``step(params, grads)`` takes parallel lists of arrays; state (velocities,
moments) is kept per position, so pass the same arrays in the same order every
step. ``Network`` passes one flat buffer holding every parameter, which makes a
step a handful of vectorised operations whatever the depth of the network.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from .arrays import Array


class Optimizer(ABC):
    """Base class: learning rate, optional clipping of the global gradient norm.

    Parameters
    ----------
    learning_rate : float
        Step size; a schedule may change it between epochs.
    clipnorm : float or None
        If set, gradients are rescaled in place so their global L2 norm is at
        most ``clipnorm`` before the update.
    """

    def __init__(self, learning_rate: float, clipnorm: float | None = None) -> None:
        if not learning_rate > 0:
            raise ValueError(f"{type(self).__name__}: learning_rate must be > 0, got {learning_rate!r}")
        if clipnorm is not None and not clipnorm > 0:
            raise ValueError(f"{type(self).__name__}: clipnorm must be > 0, got {clipnorm!r}")
        self.learning_rate = float(learning_rate)
        self.clipnorm = clipnorm
        self.iterations = 0
        self._state: list[dict[str, Array]] = []

    def step(self, params: Sequence[Array], grads: Sequence[Array]) -> None:
        """Update every array of ``params`` in place from ``grads``.

        Parameters
        ----------
        params : sequence of ndarray
            Arrays of any shape, updated in place.
        grads : sequence of ndarray
            dL/d(param), each of its parameter's shape; rescaled in place when clipping.
        """
        if self.clipnorm is not None:
            clip_by_global_norm(grads, self.clipnorm)
        if not self._state:
            self._state = [self._init_state(p) for p in params]
        self.iterations += 1
        for p, g, s in zip(params, grads, self._state, strict=False):
            self._update(p, g, s)

    def _init_state(self, param: Array) -> dict[str, Array]:
        return {}

    @abstractmethod
    def _update(self, p: Array, g: Array, state: dict[str, Array]) -> None:
        """Apply one update to ``p`` in place."""


def clip_by_global_norm(grads: Sequence[Array], max_norm: float) -> float:
    """Scale ``grads`` in place so their joint L2 norm is <= ``max_norm``; return the norm before."""
    norm = math.sqrt(sum(float(np.dot(g.ravel(), g.ravel())) for g in grads))
    if norm > max_norm:
        for g in grads:
            g *= g.dtype.type(max_norm / norm)
    return norm


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum.

    velocity = momentum * velocity - lr * grad; param += velocity
    (Nesterov: param += momentum * velocity - lr * grad), as scikit-learn.
    """

    def __init__(
        self,
        learning_rate: float = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        clipnorm: float | None = None,
    ) -> None:
        super().__init__(learning_rate, clipnorm)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"SGD: momentum must be in [0, 1), got {momentum!r}")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def _init_state(self, param: Array) -> dict[str, Array]:
        return {"velocity": np.zeros_like(param)} if self.momentum else {}

    def _update(self, p: Array, g: Array, state: dict[str, Array]) -> None:
        lr = p.dtype.type(self.learning_rate)
        if not self.momentum:
            p -= lr * g
            return
        v = state["velocity"]
        v *= p.dtype.type(self.momentum)
        v -= lr * g
        if self.nesterov:
            p += p.dtype.type(self.momentum) * v - lr * g
        else:
            p += v


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) in its efficient form, as scikit-learn's.

    m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
    param -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + epsilon).
    """

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        clipnorm: float | None = None,
    ) -> None:
        super().__init__(learning_rate, clipnorm)
        for label, beta in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"{type(self).__name__}: {label} must be in [0, 1), got {beta!r}")
        if not epsilon > 0:
            raise ValueError(f"{type(self).__name__}: epsilon must be > 0, got {epsilon!r}")
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)

    def _init_state(self, param: Array) -> dict[str, Array]:
        return {"m": np.zeros_like(param), "v": np.zeros_like(param), "tmp": np.empty_like(param)}

    def _update(self, p: Array, g: Array, state: dict[str, Array]) -> None:
        t = self.iterations
        m, v, tmp = state["m"], state["v"], state["tmp"]
        f = p.dtype.type
        m *= f(self.beta_1)
        np.multiply(g, f(1.0 - self.beta_1), out=tmp)
        m += tmp
        v *= f(self.beta_2)
        np.multiply(g, g, out=tmp)
        tmp *= f(1.0 - self.beta_2)
        v += tmp
        step = self.learning_rate * math.sqrt(1.0 - self.beta_2**t) / (1.0 - self.beta_1**t)
        np.sqrt(v, out=tmp)
        tmp += f(self.epsilon)
        np.divide(m, tmp, out=tmp)
        tmp *= f(step)
        p -= tmp


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019).

    Before the Adam update: param -= lr * weight_decay * param.
    """

    def __init__(
        self,
        learning_rate: float = 0.001,
        weight_decay: float = 0.01,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        clipnorm: float | None = None,
    ) -> None:
        super().__init__(learning_rate, beta_1, beta_2, epsilon, clipnorm)
        if not weight_decay >= 0:
            raise ValueError(f"AdamW: weight_decay must be >= 0, got {weight_decay!r}")
        self.weight_decay = float(weight_decay)

    def _update(self, p: Array, g: Array, state: dict[str, Array]) -> None:
        p *= p.dtype.type(1.0 - self.learning_rate * self.weight_decay)
        super()._update(p, g, state)


class RMSprop(Optimizer):
    """RMSprop (Hinton): s = rho s + (1 - rho) g^2; param -= lr g / (sqrt(s) + epsilon)."""

    def __init__(
        self,
        learning_rate: float = 0.001,
        rho: float = 0.9,
        epsilon: float = 1e-7,
        clipnorm: float | None = None,
    ) -> None:
        super().__init__(learning_rate, clipnorm)
        if not 0.0 <= rho < 1.0:
            raise ValueError(f"RMSprop: rho must be in [0, 1), got {rho!r}")
        if not epsilon > 0:
            raise ValueError(f"RMSprop: epsilon must be > 0, got {epsilon!r}")
        self.rho = float(rho)
        self.epsilon = float(epsilon)

    def _init_state(self, param: Array) -> dict[str, Array]:
        return {"s": np.zeros_like(param), "tmp": np.empty_like(param)}

    def _update(self, p: Array, g: Array, state: dict[str, Array]) -> None:
        s, tmp = state["s"], state["tmp"]
        f = p.dtype.type
        s *= f(self.rho)
        np.multiply(g, g, out=tmp)
        tmp *= f(1.0 - self.rho)
        s += tmp
        np.sqrt(s, out=tmp)
        tmp += f(self.epsilon)
        np.divide(g, tmp, out=tmp)
        tmp *= f(self.learning_rate)
        p -= tmp
