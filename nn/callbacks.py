"""Training callbacks: ``History``, ``EarlyStopping``, ``ReduceLROnPlateau``.

A callback sees the network it is attached to as ``self.network`` and may set
``network.stop_training = True`` to end training after the current epoch.
What a callback may touch is the ``TrainingState`` protocol, so this module
does not depend on ``nn.network`` (which imports it).
``logs`` holds ``loss`` and, with validation data, ``val_loss`` and ``val_<metric>``
for each metric passed to ``Network.fit``.
"""

from __future__ import annotations

from typing import Any, Protocol

from .arrays import Array


class HasLearningRate(Protocol):
    """An optimizer as a callback sees it: a learning rate it may change between epochs."""

    learning_rate: float


class TrainingState(Protocol):
    """The part of a training ``Network`` a callback may read or change."""

    stop_training: bool
    """Set to True to end training after the current epoch."""

    @property
    def optimizer(self) -> HasLearningRate:
        """The optimizer, for its learning rate."""

    def get_flat_weights(self) -> Array:
        """A copy of every parameter, shape (n_parameters,)."""

    def set_flat_weights(self, flat: Array) -> None:
        """Put back a copy from ``get_flat_weights``."""


class Callback:
    """No-op hooks; override the ones you need."""

    network: TrainingState

    def on_train_begin(self, logs: dict[str, float]) -> None:
        """Called once before the first epoch."""

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        """Called after each epoch with its 0-based index and its figures."""

    def on_train_end(self, logs: dict[str, float]) -> None:
        """Called once after the last epoch."""


class History(Callback):
    """Records every epoch's logs: ``history.history['loss'][epoch]``."""

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epochs = 0

    def on_train_begin(self, logs: dict[str, float]) -> None:
        self.history = {}
        self.epochs = 0

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        self.epochs += 1
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))

    def summary(self) -> dict[str, Any]:
        """Epoch count and the last value of every figure (kept in manifests)."""
        return {"epochs": self.epochs, "final": {k: v[-1] for k, v in self.history.items() if v}}


def _improvement_sign(monitor: str, mode: str) -> float:
    if mode == "auto":
        mode = "min" if monitor.endswith("loss") else "max"
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    return -1.0 if mode == "min" else 1.0


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    Parameters
    ----------
    monitor : str
        A key of the epoch logs, e.g. ``'val_loss'`` or ``'val_accuracy'``.
    min_delta : float
        Smallest change that counts as an improvement.
    patience : int
        Epochs without improvement before stopping.
    mode : {'auto', 'min', 'max'}
        Direction of improvement; 'auto' minimises names ending in 'loss'.
    restore_best_weights : bool
        On stopping or at the end, put back the weights of the best epoch.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0.0,
        patience: int = 0,
        mode: str = "auto",
        restore_best_weights: bool = False,
    ) -> None:
        if patience < 0:
            raise ValueError(f"EarlyStopping: patience must be >= 0, got {patience!r}")
        self.monitor = monitor
        self.min_delta = abs(float(min_delta))
        self.patience = int(patience)
        self.sign = _improvement_sign(monitor, mode)
        self.restore_best_weights = restore_best_weights
        self.best: float | None = None
        self.best_epoch = -1
        self.stopped_epoch: int | None = None
        self._best_weights: Array | None = None
        self._wait = 0

    def on_train_begin(self, logs: dict[str, float]) -> None:
        self.best, self.best_epoch, self.stopped_epoch, self._wait = None, -1, None, 0
        self._best_weights = None

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        if self.monitor not in logs:
            raise ValueError(f"EarlyStopping: monitor {self.monitor!r} is not among the logged figures {sorted(logs)}")
        value = float(logs[self.monitor])
        if self.best is None or self.sign * (value - self.best) > self.min_delta:
            self.best, self.best_epoch, self._wait = value, epoch, 0
            if self.restore_best_weights:
                self._best_weights = self.network.get_flat_weights()
            return
        self._wait += 1
        if self._wait >= self.patience:
            self.stopped_epoch = epoch
            self.network.stop_training = True

    def on_train_end(self, logs: dict[str, float]) -> None:
        if self.restore_best_weights and self._best_weights is not None:
            self.network.set_flat_weights(self._best_weights)


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` (in (0, 1)) after ``patience`` epochs without improvement.

    The estimators' ``learning_rate='adaptive'`` (with ``solver='sgd'``) is this with
    factor 0.2 (a division by 5, as scikit-learn's), patience 2, on the training loss,
    or on the validation score with ``early_stopping``.
    """

    def __init__(self, monitor: str = "loss", factor: float = 0.2, patience: int = 2, min_delta: float = 1e-4) -> None:
        if not 0 < factor < 1:
            raise ValueError(f"ReduceLROnPlateau: factor must be in (0, 1), got {factor!r}")
        self.monitor, self.factor, self.patience = monitor, float(factor), int(patience)
        self.min_delta = float(min_delta)
        self.sign = _improvement_sign(monitor, "auto")
        self._best: float | None = None
        self._wait = 0

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        value = float(logs[self.monitor])
        if self._best is None or self.sign * (value - self._best) > self.min_delta:
            self._best, self._wait = value, 0
            return
        self._wait += 1
        if self._wait >= self.patience:
            self.network.optimizer.learning_rate *= self.factor
            self._wait = 0
