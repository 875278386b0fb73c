"""Learning-rate schedules: ``schedule(initial_lr, epoch) -> lr``, applied before each epoch."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any


class Schedule(ABC):
    """Maps the 0-based epoch to a learning rate."""

    @abstractmethod
    def __call__(self, initial_lr: float, epoch: int) -> float:
        """Learning rate for ``epoch``."""

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this schedule."""
        return dict(vars(self))


class StepDecay(Schedule):
    """Multiply the rate by ``gamma`` every ``step_size`` epochs."""

    def __init__(self, step_size: int, gamma: float = 0.1) -> None:
        if step_size < 1:
            raise ValueError(f"StepDecay: step_size must be >= 1, got {step_size!r}")
        if not 0 < gamma <= 1:
            raise ValueError(f"StepDecay: gamma must be in (0, 1], got {gamma!r}")
        self.step_size = int(step_size)
        self.gamma = float(gamma)

    def __call__(self, initial_lr: float, epoch: int) -> float:
        return initial_lr * self.gamma ** (epoch // self.step_size)


class CosineDecay(Schedule):
    """Cosine from the initial rate down to ``alpha * initial`` over ``decay_epochs``, then flat."""

    def __init__(self, decay_epochs: int, alpha: float = 0.0) -> None:
        if decay_epochs < 1:
            raise ValueError(f"CosineDecay: decay_epochs must be >= 1, got {decay_epochs!r}")
        if not 0 <= alpha <= 1:
            raise ValueError(f"CosineDecay: alpha must be in [0, 1], got {alpha!r}")
        self.decay_epochs = int(decay_epochs)
        self.alpha = float(alpha)

    def __call__(self, initial_lr: float, epoch: int) -> float:
        progress = min(epoch, self.decay_epochs) / self.decay_epochs
        cosine = 0.5 * (1 + math.cos(math.pi * progress))
        return initial_lr * ((1 - self.alpha) * cosine + self.alpha)


class InverseScaling(Schedule):
    """lr / (t + 1) ** power_t with t = epoch * samples_per_epoch: scikit-learn's 'invscaling'.

    scikit-learn counts t in samples seen and updates the rate after each epoch;
    the default ``samples_per_epoch=1`` counts in epochs instead.
    """

    def __init__(self, power_t: float = 0.5, samples_per_epoch: int = 1) -> None:
        if not power_t >= 0:
            raise ValueError(f"InverseScaling: power_t must be >= 0, got {power_t!r}")
        if samples_per_epoch < 1:
            raise ValueError(f"InverseScaling: samples_per_epoch must be >= 1, got {samples_per_epoch!r}")
        self.power_t = float(power_t)
        self.samples_per_epoch = int(samples_per_epoch)

    def __call__(self, initial_lr: float, epoch: int) -> float:
        divisor: float = (epoch * self.samples_per_epoch + 1) ** self.power_t  # int ** float is typed Any
        return initial_lr / divisor
