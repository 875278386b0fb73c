"""``Network``: a stack of layers, a loss and an optimizer, with a minibatch training loop.

Every parameter lives in one flat buffer (and every gradient in another); the
layers hold views into them. The optimizer then updates the whole network in a
few vectorised operations, and snapshotting the best weights is one copy.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from .arrays import AnyArray, Array, FloatDType, IndexArray
from .callbacks import Callback, History
from .layers import Dense, Layer
from .losses import Loss
from .optimizers import Adam, Optimizer
from .schedules import Schedule

Metric = Callable[[Array, AnyArray], float]
"""``fn(logits, y) -> float``: logits (n_samples, n_outputs), targets in the loss's form."""


class TrainingDivergedError(ValueError):
    """Training produced a loss or weights that are not finite (a learning rate too high, say); the message
    starts with "training diverged:" and names the epoch."""


def _divergence(logs: Mapping[str, float], weights: Array) -> str | None:
    """What is not finite after an epoch: its loss, its validation loss or the weights; None when all are."""
    for key in ("loss", "val_loss"):
        if key in logs and not np.isfinite(logs[key]):
            return f"the {'validation ' if key == 'val_loss' else ''}loss is {logs[key]}"
    if not np.isfinite(weights).all():
        return "the weights are not finite"
    return None


class Network:
    """Feed-forward network trained by backpropagation.

    Parameters
    ----------
    layers : sequence of Layer
        Applied in order; the last one produces logits for ``loss``.
    loss : Loss
        Loss on logits; its ``output`` turns logits into predictions.
    optimizer : Optimizer, optional
        Defaults to ``Adam()``.
    seed : int or None
        Seeds initialisation, shuffling and dropout: the same seed gives
        bit-identical weights.
    dtype : str or numpy dtype
        ``float32`` (default) or ``float64``.
    """

    def __init__(
        self,
        layers: Sequence[Layer],
        loss: Loss,
        optimizer: Optimizer | None = None,
        seed: int | None = None,
        dtype: str | FloatDType = "float32",
    ) -> None:
        self.dtype: FloatDType = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"Network: dtype must be float32 or float64, got {dtype!r}")
        if not layers:
            raise ValueError("Network: at least one layer is required")
        self.layers = list(layers)
        self.loss = loss
        self.optimizer = optimizer if optimizer is not None else Adam()
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.stop_training = False
        self.n_features: int | None = None
        self.n_outputs: int | None = None
        self._flat_params = np.empty(0, self.dtype)
        self._flat_grads = np.empty(0, self.dtype)

    # -- structure -------------------------------------------------------
    def build(self, n_features: int) -> None:
        """Initialise every layer for ``n_features`` inputs and pack parameters into flat buffers."""
        width = int(n_features)
        self.n_features = width
        for layer in self.layers:
            width = layer.build(width, self.rng, self.dtype)
        self.n_outputs = width
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Dense):
                layer.input_grad = i > 0
        self._pack()

    @property
    def built(self) -> bool:
        """Whether ``build`` has run (it runs on the first ``fit``)."""
        return self.n_features is not None

    def _pack(self) -> None:
        arrays = [(layer, key, p) for layer in self.layers for key, p in layer.params.items()]
        total = sum(p.size for _, _, p in arrays)
        self._flat_params = np.empty(total, self.dtype)
        self._flat_grads = np.zeros(total, self.dtype)
        offset = 0
        for layer, key, p in arrays:
            end = offset + p.size
            self._flat_params[offset:end] = p.ravel()
            layer.params[key] = self._flat_params[offset:end].reshape(p.shape)
            layer.grads[key] = self._flat_grads[offset:end].reshape(p.shape)
            offset = end

    def get_flat_weights(self) -> Array:
        """A copy of every parameter, in layer order: shape (n_parameters,)."""
        return self._flat_params.copy()

    def set_flat_weights(self, flat: Array) -> None:
        """Overwrite every parameter from ``get_flat_weights()`` output, shape (n_parameters,)."""
        if flat.shape != self._flat_params.shape:
            raise ValueError(f"expected {self._flat_params.size} weights, got shape {flat.shape}")
        self._flat_params[...] = flat

    def get_weights(self) -> dict[str, Array]:
        """Parameters keyed ``'<layer index>.<name>'`` (e.g. ``'0.W'``), as copies.

        A Dense layer's ``W`` has shape (n_in, units), its ``b`` shape (units,).
        """
        return {f"{i}.{k}": p.copy() for i, layer in enumerate(self.layers) for k, p in layer.params.items()}

    def set_weights(self, weights: Mapping[str, Array]) -> None:
        """Load parameters from ``get_weights()`` output; every key and shape must match."""
        expected = {f"{i}.{k}": p for i, layer in enumerate(self.layers) for k, p in layer.params.items()}
        if set(weights) != set(expected):
            raise ValueError(f"weight keys {sorted(weights)} do not match the network's {sorted(expected)}")
        for key, target in expected.items():
            if weights[key].shape != target.shape:
                raise ValueError(f"weight {key!r} has shape {weights[key].shape}, expected {target.shape}")
            target[...] = weights[key]

    # -- computation -------------------------------------------------------
    def forward(self, x: Array, training: bool = False) -> Array:
        """Logits of shape (n_samples, n_outputs) for ``x`` of shape (n_samples, n_features)."""
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    def backward(self, grad: Array) -> Array:
        """Backpropagate dL/d(logits) of shape (n_samples, n_outputs); fills every layer's ``grads``.

        Returns dL/d(input) of shape (n_samples, n_features), or the first layer's
        output gradient when that layer skips its input gradient.
        """
        for layer in reversed(self.layers):
            grad = layer.backward(grad)
        return grad

    def predict(self, x: npt.ArrayLike) -> Array:
        """Model output (``loss.output`` of the logits) in inference mode.

        Parameters
        ----------
        x : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_outputs)
        """
        return self.loss.output(self.forward(np.asarray(x, self.dtype)))

    def target_index(self, x: npt.ArrayLike, target: npt.ArrayLike | None = None) -> IndexArray:
        """The output column each row's input gradient is taken of: ``target``, checked, or by default the largest.

        Parameters
        ----------
        x : array-like of shape (n_samples, n_features)
        target : int or array-like of int of shape (n_samples,), optional
            Output columns in [0, n_outputs). By default each row's largest output (column 0 when there is one).

        Returns
        -------
        ndarray of int of shape (n_samples,)
        """
        n_outputs = self._require_built()[1]
        n = len(np.asarray(x))
        if target is None:
            if n_outputs == 1:
                return np.zeros(n, np.intp)
            picked: IndexArray = self.predict(x).argmax(axis=1)
            return picked
        return output_columns(target, n, n_outputs)

    def _require_built(self) -> tuple[int, int]:
        if self.n_features is None or self.n_outputs is None:
            raise RuntimeError("Network: not built; call build(n_features) or fit first")
        return self.n_features, self.n_outputs

    def _detached_layers(self, dtype: FloatDType) -> list[Layer]:
        """Copies of the layers with caches of their own and weights in ``dtype``, for ``input_backward``.

        Input gradients run a forward and a backward; on copies they cannot disturb a prediction or
        another gradient running on the same network in another thread.
        """
        layers = []
        for layer in self.layers:
            twin = copy.copy(layer)
            twin.params = {k: p.astype(dtype, copy=False) for k, p in layer.params.items()}
            layers.append(twin)
        return layers

    def kinks_on_path(self, start: npt.ArrayLike, end: npt.ArrayLike) -> list[Array]:
        """Per row, where the straight path from ``start`` to ``end`` crosses a kink of a ReLU or LeakyReLU unit.

        The gradient jumps there, so integrated gradients integrate piece by piece between them. Only the
        leading piecewise-linear layers are searched (a pre-activation is linear in the path's position
        between the kinks found before it, so each crossing is exact); past a smooth activation
        (tanh, sigmoid, GELU) the gradient has no jumps to find.

        Parameters
        ----------
        start, end : array-like of shape (n_samples, n_features)

        Returns
        -------
        list of n_samples ndarrays of shape (n_kinks_i,)
            Sorted positions in (0, 1): ``start + t * (end - start)`` is on a kink.
        """
        a = np.asarray(start, np.float64)
        b = np.asarray(end, np.float64)
        layers = self._detached_layers(np.dtype(np.float64))
        leading = []
        for layer in layers:
            if not layer.piecewise_linear:
                break
            leading.append(layer)
        kinks = []
        for row_a, row_b in zip(a, b, strict=True):
            ts = np.array([0.0, 1.0])
            for depth, layer in enumerate(leading):
                if not layer.kinks_at_zero:
                    continue
                z = row_a + ts[:, None] * (row_b - row_a)
                for before in leading[:depth]:
                    z = before.forward(z)
                segment, unit = np.nonzero(z[:-1] * z[1:] < 0)
                z0, z1 = z[segment, unit], z[segment + 1, unit]
                ts = np.unique(np.concatenate([ts, ts[segment] + (ts[segment + 1] - ts[segment]) * z0 / (z0 - z1)]))
            kinks.append(ts[(ts > 0.0) & (ts < 1.0)])
        return kinks

    def output_and_input_gradient(
        self, x: npt.ArrayLike, output: npt.ArrayLike, dtype: str | FloatDType | None = None
    ) -> tuple[Array, Array]:
        """One output per row and its gradient with respect to that row, in one forward and one backward pass.

        The output is the model's (``loss.output`` of the logits: probabilities for the classification
        losses, the logits themselves for ``MeanSquaredError``), in inference mode (dropout off).

        Parameters
        ----------
        x : array-like of shape (n_samples, n_features)
        output : int or array-like of int of shape (n_samples,)
            The output column to differentiate, for every row or per row.
        dtype : str or numpy dtype, optional
            Precision of the computation: the network's own by default; ``float64`` computes a float32
            network's gradient in float64 (its weights converted, not retrained).

        Returns
        -------
        values : ndarray of shape (n_samples,)
            ``predict(x)[i, output[i]]``.
        gradient : ndarray of shape (n_samples, n_features)
            d values[i] / d x[i].
        """
        n_features, n_outputs = self._require_built()
        dt: FloatDType = self.dtype if dtype is None else np.dtype(dtype)
        if dt not in (np.float32, np.float64):
            raise ValueError(f"Network: dtype must be float32 or float64, got {dtype!r}")
        rows = np.ascontiguousarray(x, dtype=dt)
        if rows.ndim != 2 or rows.shape[1] != n_features:
            raise ValueError(f"Network: x must have shape (n_samples, {n_features}), got {rows.shape}")
        columns = output_columns(output, len(rows), n_outputs)
        layers = self._detached_layers(dt)
        h = rows
        for layer in layers:
            h = layer.forward(h)
        out = self.loss.output(h)
        picked = np.arange(len(rows))
        seed = np.zeros_like(out)
        seed[picked, columns] = 1
        grad = self.loss.output_backward(out, seed)
        for layer in reversed(layers):
            grad = layer.input_backward(grad)
        return out[picked, columns], grad

    def input_gradient(self, x: npt.ArrayLike, output: npt.ArrayLike, dtype: str | FloatDType | None = None) -> Array:
        """d(output column ``output`` of ``predict``)/d(input), row by row.

        Parameters
        ----------
        x : array-like of shape (n_samples, n_features)
        output : int or array-like of int of shape (n_samples,)
            The output column, for every row or per row: for ``SoftmaxCrossEntropy`` class ``k``'s
            probability, for ``BinaryCrossEntropy`` the probability of the positive class, for
            ``MeanSquaredError`` the raw output.
        dtype : str or numpy dtype, optional
            The network's dtype by default; ``float64`` on request.

        Returns
        -------
        ndarray of shape (n_samples, n_features)

        See Also
        --------
        output_and_input_gradient : the same pass, returning the outputs too.
        """
        return self.output_and_input_gradient(x, output, dtype)[1]

    def train_step(self, x: Array, y: AnyArray) -> float:
        """One forward, backward and optimizer step on a batch; returns the batch loss.

        ``x`` has shape (batch, n_features) and the network's dtype; ``y`` is in the loss's form.
        """
        value = self.loss.forward(self.forward(x, training=True), y)
        self.backward(self.loss.backward())
        self.optimizer.step([self._flat_params], [self._flat_grads])
        return value

    def evaluate(self, x: Array, y: AnyArray, metrics: Mapping[str, Metric] | None = None) -> dict[str, float]:
        """Loss and ``metrics`` (each ``fn(logits, y) -> float``) in inference mode.

        ``x`` has shape (n_samples, n_features); ``y`` is in the loss's form.
        """
        logits = self.forward(x)
        logs = {"loss": self.loss.forward(logits, y)}
        for name, fn in (metrics or {}).items():
            logs[name] = float(fn(logits, y))
        return logs

    def _targets(self, y: AnyArray) -> AnyArray:
        """Float targets in the network's dtype: float64 targets would make a float32 loss gradient float64."""
        y = np.asarray(y)
        return y.astype(self.dtype, copy=False) if y.dtype.kind == "f" else y

    def fit(
        self,
        x: npt.ArrayLike,
        y: AnyArray,
        epochs: int = 1,
        batch_size: int = 32,
        validation_split: float = 0.0,
        validation_data: tuple[npt.ArrayLike, AnyArray] | None = None,
        shuffle: bool = True,
        callbacks: Iterable[Callback] = (),
        metrics: Mapping[str, Metric] | None = None,
        lr_schedule: Schedule | None = None,
    ) -> History:
        """Train with minibatches; returns the ``History`` of epoch logs.

        Parameters
        ----------
        x : array-like of shape (n_samples, n_features)
            Converted to a contiguous array of the network's dtype.
        y : ndarray
            Targets in the form the loss expects: (n_samples, n_outputs), or
            (n_samples,) class indices for ``SoftmaxCrossEntropy``. Float targets
            are converted to the network's dtype.
        epochs, batch_size : int
            Passes over the data and samples per step (the last batch may be smaller).
        validation_split : float
            Fraction of samples, chosen at random from the seeded generator,
            held out for validation when ``validation_data`` is not given.
        validation_data : (x_val, y_val), optional
            Evaluated after every epoch as ``val_loss`` and ``val_<metric>``.
        callbacks : iterable of Callback
            Called after every epoch; may stop training.
        metrics : mapping of name to ``fn(logits, y) -> float``
            Extra validation figures.
        lr_schedule : Schedule, optional
            Sets the optimizer's learning rate before each epoch.

        Raises
        ------
        TrainingDivergedError
            At the end of the first epoch whose loss, validation loss or weights are not finite, before any
            callback sees it.
        """
        if epochs < 1 or batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {epochs!r} and {batch_size!r}")
        x = np.ascontiguousarray(x, dtype=self.dtype)
        y = self._targets(y)
        if not self.built:
            self.build(x.shape[1])
        if validation_data is None and validation_split:
            if not 0.0 < validation_split < 1.0:
                raise ValueError(f"validation_split must be in (0, 1), got {validation_split!r}")
            order = self.rng.permutation(len(x))
            n_val = max(1, round(len(x) * validation_split))
            val_idx, train_idx = order[:n_val], order[n_val:]
            validation_data = (x[val_idx], y[val_idx])
            x, y = x[train_idx], y[train_idx]
        if validation_data is not None:
            validation_data = (np.ascontiguousarray(validation_data[0], self.dtype), self._targets(validation_data[1]))

        history = History()
        all_callbacks = [history, *callbacks]
        for cb in all_callbacks:
            cb.network = self
            cb.on_train_begin({})
        initial_lr = self.optimizer.learning_rate
        self.stop_training = False
        n = len(x)
        logs: dict[str, float] = {}
        for epoch in range(epochs):
            started = time.perf_counter()
            if lr_schedule is not None:
                self.optimizer.learning_rate = lr_schedule(initial_lr, epoch)
            # One gather per epoch, then every batch is a contiguous slice (no per-batch fancy indexing).
            if shuffle:
                order = self.rng.permutation(n)
                xs, ys = x[order], y[order]
            else:
                xs, ys = x, y
            total = 0.0
            # A diverging epoch overflows in every operation: reported once, typed, below, not warned per step.
            with np.errstate(over="ignore", invalid="ignore"):
                for start in range(0, n, batch_size):
                    stop = min(start + batch_size, n)
                    total += self.train_step(xs[start:stop], ys[start:stop]) * (stop - start)
                logs = {"loss": total / n}
                if validation_data is not None:
                    val = self.evaluate(*validation_data, metrics=metrics)
                    logs.update({f"val_{k}": v for k, v in val.items()})
            problem = _divergence(logs, self._flat_params)
            if problem is not None:
                raise TrainingDivergedError(
                    f"training diverged: {problem} at epoch {epoch + 1} (learning rate "
                    f"{self.optimizer.learning_rate:g}); a lower learning rate or clipnorm may help"
                )
            logs["lr"] = self.optimizer.learning_rate
            logs["seconds"] = time.perf_counter() - started
            for cb in all_callbacks:
                cb.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        for cb in all_callbacks:
            cb.on_train_end(logs)
        return history


def output_columns(output: npt.ArrayLike, n_rows: int, n_outputs: int) -> IndexArray:
    """``output`` (one column for every row, or one per row) as checked column indices of shape (n_rows,)."""
    arr = np.asarray(output)
    if arr.dtype.kind not in "iu" and not (arr.dtype.kind == "f" and np.array_equal(arr, np.round(arr))):
        raise ValueError(f"output columns must be integers, got {output!r}")
    if arr.ndim > 1 or (arr.ndim == 1 and len(arr) != n_rows):
        raise ValueError(f"output columns must be one integer or one per row ({n_rows}), got shape {arr.shape}")
    columns: IndexArray = np.broadcast_to(arr.astype(np.intp), (n_rows,)).copy()
    if len(columns) and (columns.min() < 0 or columns.max() >= n_outputs):
        raise ValueError(f"output columns must be in [0, {n_outputs}), got {np.unique(columns).tolist()}")
    return columns
