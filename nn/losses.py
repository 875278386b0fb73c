"""Losses computed on logits, with fused, numerically stable gradients.

Each loss's ``forward(logits, y)`` returns the mean loss of the batch and caches
what ``backward()`` needs; ``backward()`` returns dL/d(logits) with the same
shape as ``logits``. ``output(logits)`` maps logits to what the model predicts
(probabilities or values), so no separate output activation layer is needed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from .activations import sigmoid
from .arrays import AnyArray, Array

# What ndarray.max and ndarray.sum reduce with, called directly: the methods' Python wrappers cost more than a
# one-row reduction.
_maximum, _add = np.maximum.reduce, np.add.reduce


class Loss(ABC):
    """A loss on logits of shape (n_samples, n_outputs)."""

    @abstractmethod
    def forward(self, logits: Array, y: AnyArray) -> float:
        """Mean loss of the batch; caches what ``backward`` needs.

        Parameters
        ----------
        logits : ndarray of shape (n_samples, n_outputs)
        y : ndarray
            Targets, shape (n_samples, n_outputs), or (n_samples,) class
            indices where the loss accepts them.

        Returns
        -------
        float
        """

    @abstractmethod
    def backward(self) -> Array:
        """dL/d(logits) of the last ``forward``, shape (n_samples, n_outputs)."""

    def output(self, logits: Array) -> Array:
        """Model output for ``logits``: the identity unless overridden.

        Parameters
        ----------
        logits : ndarray of shape (n_samples, n_outputs)

        Returns
        -------
        ndarray of shape (n_samples, n_outputs)
        """
        return logits

    def output_backward(self, output: Array, grad: Array) -> Array:
        """Gradient through ``output``: d(sum(output * grad))/d(logits), given the outputs it returned.

        Input gradients (``Network.input_gradient``) start here: the identity unless ``output`` is overridden.

        Parameters
        ----------
        output : ndarray of shape (n_samples, n_outputs)
            ``self.output(logits)``.
        grad : ndarray of shape (n_samples, n_outputs)
            d(objective)/d(output).

        Returns
        -------
        ndarray of shape (n_samples, n_outputs)
            d(objective)/d(logits).
        """
        return grad


class MeanSquaredError(Loss):
    """mean((z - y)**2) over every element; gradient 2 (z - y) / z.size.

    ``y`` has the shape of the logits, (n_samples, n_outputs).
    """

    _diff: Array  # logits - y of the last forward

    def forward(self, logits: Array, y: AnyArray) -> float:
        self._diff = logits - y
        return float(np.mean(self._diff * self._diff))

    def backward(self) -> Array:
        return self._diff * self._diff.dtype.type(2.0 / self._diff.size)


class BinaryCrossEntropy(Loss):
    """Sigmoid fused with binary cross-entropy, mean over every element.

    loss = mean(max(z, 0) - z y + log(1 + exp(-|z|))), which never overflows;
    gradient (sigmoid(z) - y) / z.size. ``y`` holds 0/1 with the logits' shape.
    """

    _p: Array  # sigmoid of the last forward's logits
    _y: AnyArray  # targets of the last forward

    def forward(self, logits: Array, y: AnyArray) -> float:
        self._p = sigmoid(logits)
        self._y = y
        per = np.maximum(logits, 0) - logits * y + np.log1p(np.exp(-np.abs(logits)))
        return float(np.mean(per))

    def backward(self) -> Array:
        return (self._p - self._y) * self._p.dtype.type(1.0 / self._p.size)

    def output(self, logits: Array) -> Array:
        return sigmoid(logits)

    def output_backward(self, output: Array, grad: Array) -> Array:
        return grad * output * (1 - output)


def _mean(values: Array) -> float:
    """``float(np.mean(values))`` of a 1-D array, bit for bit, without ``np.mean``'s Python overhead."""
    if not len(values):
        return float(np.mean(values))
    total = values.sum()
    return float(total.dtype.type(float(total) / len(values)))


def _row_max(a: Array) -> Array:
    """``a.max(axis=1, keepdims=True)`` of a 2-D array, the same values, faster on tall narrow arrays.

    numpy reduces each short row in a separate inner loop (about 40 ns a row); for many
    rows and few columns an element-wise maximum over the columns is ~10x faster.
    """
    rows, cols = a.shape
    if rows < 128 or not 0 < cols <= 64:
        row_max: Array = _maximum(a, axis=1, keepdims=True)  # a.max's own reduction, without its Python wrapper
        return row_max
    out = a[:, :1].copy()
    for j in range(1, cols):
        np.maximum(out, a[:, j : j + 1], out=out)
    return out


def softmax(logits: Array) -> Array:
    """Row-wise softmax of (n_samples, n_classes) logits, shifted by the row max."""
    e = logits - _row_max(logits)
    np.exp(e, out=e)
    e /= _add(e, axis=1, keepdims=True)  # e.sum's own reduction
    return e


class SoftmaxCrossEntropy(Loss):
    """Softmax fused with categorical cross-entropy, mean over samples.

    loss = mean(logsumexp(z) - z[y]); gradient (softmax(z) - onehot(y)) / n.
    ``y`` is either class indices of shape (n_samples,) or one-hot/soft targets
    of shape (n_samples, n_classes).
    """

    _p: Array  # softmax of the last forward's logits
    _y: AnyArray  # targets of the last forward

    def forward(self, logits: Array, y: AnyArray) -> float:
        # One buffer goes shifted logits -> exp -> probabilities; z[y] is read before the exp.
        e = logits - _row_max(logits)
        picked = e[np.arange(len(y)), y] if y.ndim == 1 else (e * y).sum(axis=1)
        np.exp(e, out=e)
        total = e.sum(axis=1, keepdims=True)
        e /= total
        self._p = e
        self._y = y
        log_total = np.log(total[:, 0])
        if y.ndim == 1:
            return _mean(log_total - picked)
        return _mean(log_total * y.sum(axis=1) - picked)

    def backward(self) -> Array:
        grad = self._p.copy()
        n = grad.shape[0]
        if self._y.ndim == 1:
            grad[np.arange(n), self._y] -= 1
        else:
            grad -= self._y
        grad *= grad.dtype.type(1.0 / n)
        return grad

    def output(self, logits: Array) -> Array:
        return softmax(logits)

    def output_backward(self, output: Array, grad: Array) -> Array:
        # The softmax Jacobian diag(p) - p p^T applied to grad, without forming it.
        through: Array = output * (grad - (grad * output).sum(axis=1, keepdims=True))
        return through
