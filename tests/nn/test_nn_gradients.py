"""Backpropagation checked against central differences (float64), plus numerical stability."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from nn import (
    GELU,
    BinaryCrossEntropy,
    Dense,
    Dropout,
    LeakyReLU,
    MeanSquaredError,
    Network,
    ReLU,
    Sigmoid,
    SoftmaxCrossEntropy,
    Tanh,
)
from nn.losses import softmax

EPS = 1e-6
TOL = 1e-6


def numerical_grad(f, x):
    """Central differences of the scalar ``f()`` w.r.t. every element of ``x`` (perturbed in place)."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        orig = x[i]
        x[i] = orig + EPS
        plus = f()
        x[i] = orig - EPS
        minus = f()
        x[i] = orig
        grad[i] = (plus - minus) / (2 * EPS)
    return grad


def assert_grad_close(analytic, numeric):
    assert analytic.shape == numeric.shape
    assert np.any(numeric != 0), "degenerate check: the numerical gradient is all zero"
    err = np.linalg.norm(analytic - numeric) / (np.linalg.norm(analytic) + np.linalg.norm(numeric))
    assert err < TOL, f"relative error {err:.3g}"


def away_from_zero(rng, shape, low=0.1, high=2.0):
    """Random values with |x| in [low, high]: no input sits on a ReLU kink."""
    return rng.uniform(low, high, shape) * rng.choice([-1.0, 1.0], shape)


def check_layer(layer, x, training=False, reseed=None, penalty=None):
    """Check dL/dx and every dL/dparam of ``layer`` for L = sum(forward(x) * G) (+ ``penalty()``)."""
    rng = np.random.default_rng(1)

    def forward():
        if reseed is not None:
            reseed()
        return layer.forward(x, training=training)

    upstream = rng.standard_normal(forward().shape)

    def objective():
        value = float(np.sum(forward() * upstream))
        return value + (penalty() if penalty else 0.0)

    forward()
    dx = layer.backward(upstream.copy())
    analytic = {k: g.copy() for k, g in layer.grads.items()}
    assert_grad_close(dx, numerical_grad(objective, x))
    assert set(analytic) == set(layer.params)
    for key, param in layer.params.items():
        assert_grad_close(analytic[key], numerical_grad(objective, param))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def built(layer, n_in, seed=0):
    layer.build(n_in, np.random.default_rng(seed), np.dtype(np.float64))
    return layer


def test_dense_gradients(rng):
    layer = built(Dense(4), 3)
    layer.params["b"][...] = rng.standard_normal(4)
    assert layer.input_grad
    check_layer(layer, rng.standard_normal((5, 3)))


def test_dense_l2_gradient_is_that_of_the_half_squared_penalty(rng):
    layer = built(Dense(3, l2=0.3), 4)
    check_layer(layer, rng.standard_normal((6, 4)), penalty=lambda: 0.5 * 0.3 * float(np.sum(layer.params["W"] ** 2)))


def test_dense_l2_does_not_penalise_biases(rng):
    x, up = rng.standard_normal((6, 4)), rng.standard_normal((6, 3))
    plain, decayed = built(Dense(3), 4), built(Dense(3, l2=0.5), 4)
    for layer in (plain, decayed):
        layer.params["b"][...] = 1.0
        layer.forward(x)
        layer.backward(up)
    assert_allclose(decayed.grads["W"] - plain.grads["W"], 0.5 * plain.params["W"])
    assert_array_equal(decayed.grads["b"], plain.grads["b"])


def test_dropout_gradient_in_training_mode_with_a_fixed_mask(rng):
    layer = built(Dropout(0.4), 6)

    def reseed():
        layer.build(6, np.random.default_rng(7), np.dtype(np.float64))

    x = rng.standard_normal((8, 6))
    reseed()
    out = layer.forward(x, training=True)
    dropped = out == 0
    assert dropped.any() and not dropped.all()
    assert_allclose(out[~dropped], x[~dropped] / 0.6)
    check_layer(layer, x, training=True, reseed=reseed)


@pytest.mark.parametrize(
    "activation", [ReLU(), LeakyReLU(), LeakyReLU(0.2), Tanh(), Sigmoid(), GELU()], ids=lambda a: repr(a)
)
def test_activation_gradients(activation, rng):
    x = away_from_zero(rng, (5, 4), high=3.0)
    check_layer(activation, x)


def test_gelu_matches_its_tanh_formula(rng):
    x = rng.standard_normal((4, 3)) * 3
    expected = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
    assert_allclose(GELU().forward(x), expected, rtol=1e-12)


def test_leaky_relu_and_relu_forward(rng):
    x = np.array([[-2.0, -0.5, 0.5, 3.0]])
    assert_array_equal(ReLU().forward(x), [[0.0, 0.0, 0.5, 3.0]])
    assert_allclose(LeakyReLU(0.1).forward(x), [[-0.2, -0.05, 0.5, 3.0]])


# -- losses ------------------------------------------------------------------


def check_loss(loss, logits, y):
    loss.forward(logits, y)
    analytic = loss.backward()
    assert_grad_close(analytic, numerical_grad(lambda: loss.forward(logits, y), logits))


def test_mse_value_and_gradient(rng):
    logits, y = rng.standard_normal((5, 2)), rng.standard_normal((5, 2))
    assert MeanSquaredError().forward(logits, y) == pytest.approx(np.mean((logits - y) ** 2))
    check_loss(MeanSquaredError(), logits, y)


@pytest.mark.parametrize("n_outputs", [1, 3])
def test_bce_value_and_gradient(n_outputs, rng):
    logits = rng.standard_normal((6, n_outputs)) * 2
    y = rng.integers(0, 2, (6, n_outputs)).astype(np.float64)
    p = 1 / (1 + np.exp(-logits))
    expected = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert BinaryCrossEntropy().forward(logits, y) == pytest.approx(expected, rel=1e-12)
    check_loss(BinaryCrossEntropy(), logits, y)


def test_softmax_ce_with_integer_labels(rng):
    logits, y = rng.standard_normal((6, 4)), rng.integers(0, 4, 6)
    expected = -np.mean(np.log(softmax(logits)[np.arange(6), y]))
    assert SoftmaxCrossEntropy().forward(logits, y) == pytest.approx(expected, rel=1e-12)
    check_loss(SoftmaxCrossEntropy(), logits, y)


def test_softmax_ce_with_one_hot_targets_matches_integer_labels(rng):
    logits, labels = rng.standard_normal((6, 4)), rng.integers(0, 4, 6)
    one_hot = np.eye(4)[labels]
    loss_int, loss_hot = SoftmaxCrossEntropy(), SoftmaxCrossEntropy()
    assert loss_hot.forward(logits, one_hot) == pytest.approx(loss_int.forward(logits, labels), rel=1e-12)
    assert_allclose(loss_hot.backward(), loss_int.backward(), rtol=1e-12)
    check_loss(SoftmaxCrossEntropy(), logits, one_hot)


def test_softmax_ce_with_soft_targets(rng):
    logits = rng.standard_normal((5, 3))
    soft = rng.dirichlet(np.ones(3), 5)
    expected = -np.mean(np.sum(soft * np.log(softmax(logits)), axis=1))
    assert SoftmaxCrossEntropy().forward(logits, soft) == pytest.approx(expected, rel=1e-12)
    check_loss(SoftmaxCrossEntropy(), logits, soft)


# -- a whole network -----------------------------------------------------------

NETWORKS = {
    "softmax": (
        lambda: [Dense(6), Tanh(), Dense(5), GELU(), Dense(4), ReLU(), Dense(3)],
        SoftmaxCrossEntropy,
        lambda rng: rng.integers(0, 3, 7),
    ),
    "bce": (
        lambda: [Dense(5), Sigmoid(), Dense(5, l2=0.1), LeakyReLU(0.1), Dense(2)],
        BinaryCrossEntropy,
        lambda rng: rng.integers(0, 2, (7, 2)).astype(np.float64),
    ),
    "mse": (
        lambda: [Dense(6, l2=0.05), ReLU(), Dropout(0.0), Dense(4), Tanh(), Dense(2)],
        MeanSquaredError,
        lambda rng: rng.standard_normal((7, 2)),
    ),
}


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_network_gradients_for_every_parameter(name, rng):
    make_layers, make_loss, make_y = NETWORKS[name]
    net = Network(make_layers(), make_loss(), seed=3, dtype="float64")
    net.build(4)
    for layer in net.layers:
        if isinstance(layer, Dense):
            layer.params["b"][...] = rng.uniform(-0.5, 0.5, layer.params["b"].shape)
    x, y = rng.standard_normal((7, 4)), make_y(rng)

    # No pre-activation may sit on a ReLU kink.
    h = x
    for layer in net.layers:
        if isinstance(layer, (ReLU, LeakyReLU)):
            assert np.abs(h).min() > 1e-3
        h = layer.forward(h)

    def objective():
        penalty = sum(
            0.5 * layer.l2 * np.sum(layer.params["W"] ** 2) for layer in net.layers if isinstance(layer, Dense)
        )
        return net.loss.forward(net.forward(x, training=True), y) + penalty

    net.loss.forward(net.forward(x, training=True), y)
    net.backward(net.loss.backward())
    analytic = {(i, k): g.copy() for i, layer in enumerate(net.layers) for k, g in layer.grads.items()}
    assert len(analytic) == 2 * sum(isinstance(layer, Dense) for layer in net.layers)
    for i, layer in enumerate(net.layers):
        for key, param in layer.params.items():
            assert_grad_close(analytic[i, key], numerical_grad(objective, param))


def test_network_grads_are_views_of_one_flat_buffer(rng):
    net = Network([Dense(3), Tanh(), Dense(2)], MeanSquaredError(), seed=0, dtype="float64")
    net.build(4)
    x, y = rng.standard_normal((5, 4)), rng.standard_normal((5, 2))
    net.loss.forward(net.forward(x), y)
    net.backward(net.loss.backward())
    flat = np.concatenate([g.ravel() for layer in net.layers for g in layer.grads.values()])
    assert_array_equal(flat, net._flat_grads)
    assert_array_equal(net.get_flat_weights(), np.concatenate([p.ravel() for p in net.get_weights().values()]))


# -- numerical stability ---------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_is_stable_at_huge_inputs(dtype):
    """RuntimeWarnings are errors in this suite, so an overflow in exp fails the test."""
    x = np.array([[-1000.0, -50.0, 0.0, 50.0, 1000.0]], dtype=dtype)
    layer = Sigmoid()
    y = layer.forward(x)
    assert y.dtype == dtype
    assert_allclose(y, [[0.0, 0.0, 0.5, 1.0, 1.0]], atol=1e-20)
    grad = layer.backward(np.ones_like(x))
    assert np.isfinite(grad).all()
    assert_allclose(grad[0, [0, 4]], 0.0)


def test_sigmoid_matches_the_textbook_formula(rng):
    x = rng.uniform(-30, 30, (4, 5))
    assert_allclose(Sigmoid().forward(x), 1 / (1 + np.exp(-x)), rtol=1e-14)


@pytest.mark.parametrize("activation", [ReLU, LeakyReLU, Tanh, Sigmoid, GELU])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activations_finite_at_huge_inputs(activation, dtype):
    x = np.array([[-1000.0, 1000.0]], dtype=dtype)
    layer = activation()
    assert np.isfinite(layer.forward(x)).all()
    assert np.isfinite(layer.backward(np.ones_like(x))).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_is_stable_at_huge_logits(dtype):
    logits = np.array([[1000.0], [-1000.0], [1000.0], [-1000.0]], dtype=dtype)
    right = np.array([[1.0], [0.0], [1.0], [0.0]], dtype=dtype)
    loss = BinaryCrossEntropy()
    assert loss.forward(logits, right) == 0.0
    assert_array_equal(loss.backward(), 0.0)
    assert loss.forward(logits, 1 - right) == pytest.approx(1000.0)
    assert_allclose(loss.backward(), (1 - 2 * right) * -0.25)
    assert_array_equal(loss.output(logits), right)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_ce_is_stable_at_huge_logits(dtype):
    logits = np.array([[1000.0, -1000.0, 0.0], [-1e4, 1e4, 5e3]], dtype=dtype)
    loss = SoftmaxCrossEntropy()
    assert loss.forward(logits, np.array([0, 1])) == 0.0
    assert loss.forward(logits, np.array([1, 2])) == pytest.approx((2000.0 + 5e3) / 2)
    grad = loss.backward()
    assert np.isfinite(grad).all()
    assert_allclose(grad, [[0.5, -0.5, 0.0], [0.0, 0.5, -0.5]])
    assert loss.forward(logits, np.eye(3, dtype=dtype)[[1, 2]]) == pytest.approx(3500.0)
    probs = loss.output(logits)
    assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    assert_array_equal(probs.argmax(axis=1), [0, 1])
