"""Layers used on their own, as the origin notebook uses a neuron, and used too early."""

from __future__ import annotations

import numpy as np
import pytest

import nn

LAYERS = [
    lambda: nn.Dense(3),
    lambda: nn.Dropout(0.5),
    nn.ReLU,
    lambda: nn.LeakyReLU(0.1),
    nn.Tanh,
    nn.Sigmoid,
    nn.GELU,
]


def test_the_notebooks_neuron_is_three_lines_of_public_api() -> None:
    layer = nn.Dense.from_weights([[1.0]], [2.0])  # weight 1, bias 2
    y = nn.Sigmoid().forward(layer.forward(np.array([[3.0]])))  # input 3
    assert y[0, 0] == 0.9933071490757153


def test_dense_with_input_dim_is_built_at_construction() -> None:
    layer = nn.Dense(4, input_dim=3, seed=0)
    assert layer.params["W"].shape == (3, 4) and layer.params["b"].shape == (4,)
    assert layer.forward(np.ones((2, 3), np.float32)).shape == (2, 4)
    again = nn.Dense(4, input_dim=3, seed=0)
    np.testing.assert_array_equal(layer.params["W"], again.params["W"])


def test_from_weights_keeps_the_arrays_and_backpropagates() -> None:
    W, b = np.arange(6.0).reshape(3, 2), np.array([0.5, -0.5])
    layer = nn.Dense.from_weights(W, b)
    x = np.ones((4, 3))
    np.testing.assert_allclose(layer.forward(x), x @ W + b)
    dx = layer.backward(np.ones((4, 2)))
    np.testing.assert_allclose(layer.grads["W"], x.T @ np.ones((4, 2)))
    np.testing.assert_allclose(dx, np.ones((4, 2)) @ W.T)


@pytest.mark.parametrize(("W", "b"), [([1.0, 2.0], [0.0]), ([[1.0, 2.0]], [0.0])])
def test_from_weights_refuses_mismatched_shapes(W: list, b: list) -> None:
    with pytest.raises(ValueError, match=r"\(n_in, units\)"):
        nn.Dense.from_weights(W, b)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_dense_refuses_a_bad_input_dim(bad: object) -> None:
    with pytest.raises(ValueError, match="input_dim"):
        nn.Dense(2, input_dim=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("make", [m for m in LAYERS if not isinstance(m(), nn.Dropout)])
def test_backward_before_forward_says_what_to_do(make) -> None:  # type: ignore[no-untyped-def]
    layer = make()
    with pytest.raises((RuntimeError, ValueError)) as info:
        layer.backward(np.ones((2, 3)))
    assert not isinstance(info.value, (KeyError, AttributeError))
    assert "forward" in str(info.value)


@pytest.mark.parametrize("make", LAYERS)
def test_a_training_forward_before_build_is_clear_or_works(make) -> None:  # type: ignore[no-untyped-def]
    layer = make()
    try:
        out = layer.forward(np.ones((2, 3)), training=True)
    except (RuntimeError, ValueError) as exc:
        assert not isinstance(exc, (KeyError, AttributeError))
        assert "Network" in str(exc)
    else:
        assert out.shape == (2, 3)  # element-wise layers need no build


def test_dropout_backward_before_any_training_forward_is_the_identity() -> None:
    grad = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(nn.Dropout(0.5).backward(grad), grad)


def test_a_missing_public_attribute_is_still_an_attribute_error() -> None:
    assert not hasattr(nn.ReLU(), "no_such_thing")
