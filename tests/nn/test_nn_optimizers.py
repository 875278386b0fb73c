"""Optimizer steps, gradient clipping and learning-rate schedules against hand-computed numbers."""

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from nn import SGD, Adam, AdamW, CosineDecay, InverseScaling, RMSprop, StepDecay
from nn.optimizers import clip_by_global_norm

P0 = [1.0, -2.0, 0.5]
G1 = [0.5, 0.25, -1.0]
G2 = [-0.2, 0.4, 0.1]


def run(optimizer, grads, p0=P0, dtype=np.float64):
    """Apply one step per gradient in ``grads`` to a copy of ``p0``; return the parameter array."""
    p = np.array(p0, dtype=dtype)
    for g in grads:
        optimizer.step([p], [np.array(g, dtype=dtype)])
    return p


def test_sgd_plain_step():
    # p -= lr * g
    expected = [1.0 - 0.1 * 0.5, -2.0 - 0.1 * 0.25, 0.5 - 0.1 * -1.0]
    assert_allclose(run(SGD(0.1), [G1]), expected, rtol=1e-15)
    assert_allclose(expected, [0.95, -2.025, 0.6], rtol=1e-15)


def test_sgd_momentum_two_steps():
    lr, mu = 0.1, 0.9
    p, expected = np.array(P0), []
    v = [0.0, 0.0, 0.0]
    for g in (G1, G2):
        # velocity = momentum * velocity - lr * grad; param += velocity
        v = [mu * vi - lr * gi for vi, gi in zip(v, g, strict=True)]
        p = p + v
        expected.append(p.copy())
    assert_allclose(run(SGD(lr, momentum=mu), [G1, G2]), expected[1], rtol=1e-14)
    # Step 2 by hand: v = 0.9 * (-0.05) - 0.1 * (-0.2) = -0.025; p = 0.95 - 0.025.
    assert run(SGD(lr, momentum=mu), [G1, G2])[0] == pytest.approx(0.925, rel=1e-14)


def test_sgd_nesterov_two_steps():
    lr, mu = 0.1, 0.9
    p = np.array(P0)
    v = np.zeros(3)
    for g in (np.array(G1), np.array(G2)):
        # velocity = momentum * velocity - lr * grad; param += momentum * velocity - lr * grad
        v = mu * v - lr * g
        p = p + mu * v - lr * g
    assert_allclose(run(SGD(lr, momentum=mu, nesterov=True), [G1, G2]), p, rtol=1e-14)
    # Step 1 by hand: v = -0.05; p = 1 + 0.9 * -0.05 - 0.05 = 0.905
    assert run(SGD(lr, momentum=mu, nesterov=True), [G1])[0] == pytest.approx(0.905, rel=1e-14)


def adam_by_hand(grads, lr, b1, b2, eps, weight_decay=0.0):
    p, m, v = np.array(P0), np.zeros(3), np.zeros(3)
    for t, g in enumerate(np.array(grads), start=1):
        p = p - lr * weight_decay * p  # AdamW only: decoupled decay before the Adam update
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr * math.sqrt(1 - b2**t) / (1 - b1**t) * m / (np.sqrt(v) + eps)
    return p


def test_adam_one_step():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    # t = 1: m = 0.1 g, v = 0.001 g^2, step = lr * sqrt(0.001) / 0.1, so each coordinate
    # moves by lr * g / (|g| + eps / sqrt(0.001)): almost exactly lr against the gradient's sign.
    expected = np.array(P0) - lr * np.array(G1) / (np.abs(G1) + eps / math.sqrt(1 - b2))
    got = run(Adam(lr, b1, b2, eps), [G1])
    assert_allclose(got, expected, rtol=1e-14)
    assert_allclose(got, np.array(P0) - lr * np.sign(G1), rtol=1e-6)


def test_adam_two_steps():
    got = run(Adam(0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-3), [G1, G2])
    assert_allclose(got, adam_by_hand([G1, G2], 0.01, 0.8, 0.99, 1e-3), rtol=1e-14)


def test_adamw_one_step():
    lr, wd, b1, b2, eps = 0.1, 0.5, 0.9, 0.999, 1e-8
    expected = np.array(P0) * (1 - lr * wd) - lr * np.array(G1) / (np.abs(G1) + eps / math.sqrt(1 - b2))
    got = run(AdamW(lr, weight_decay=wd, beta_1=b1, beta_2=b2, epsilon=eps), [G1])
    assert_allclose(got, expected, rtol=1e-14)
    # First coordinate by hand: 1 * (1 - 0.05) - 0.1 = 0.85
    assert got[0] == pytest.approx(0.85, rel=1e-6)


def test_adamw_two_steps_and_zero_decay_is_adam():
    got = run(AdamW(0.01, weight_decay=0.3, beta_1=0.8, beta_2=0.99, epsilon=1e-3), [G1, G2])
    assert_allclose(got, adam_by_hand([G1, G2], 0.01, 0.8, 0.99, 1e-3, weight_decay=0.3), rtol=1e-14)
    assert_array_equal(run(AdamW(0.01, weight_decay=0.0), [G1, G2]), run(Adam(0.01), [G1, G2]))


def test_rmsprop_two_steps():
    lr, rho, eps = 0.01, 0.9, 1e-7
    p, s = np.array(P0), np.zeros(3)
    for g in (np.array(G1), np.array(G2)):
        # s = rho s + (1 - rho) g^2; param -= lr g / (sqrt(s) + epsilon)
        s = rho * s + (1 - rho) * g * g
        p = p - lr * g / (np.sqrt(s) + eps)
    assert_allclose(run(RMSprop(lr, rho, eps), [G1, G2]), p, rtol=1e-14)
    # Step 1, first coordinate by hand: s = 0.1 * 0.25 = 0.025; p = 1 - 0.01 * 0.5 / sqrt(0.025)
    assert run(RMSprop(lr, rho, eps), [G1])[0] == pytest.approx(1 - 0.005 / (math.sqrt(0.025) + 1e-7), rel=1e-14)


@pytest.mark.parametrize(
    "make", [lambda: SGD(0.1, momentum=0.9, nesterov=True), lambda: Adam(0.01), lambda: AdamW(0.01), RMSprop]
)
def test_step_updates_in_place_and_keeps_float32(make):
    p = np.array(P0, dtype=np.float32)
    before = p.copy()
    make().step([p], [np.array(G1, dtype=np.float32)])
    assert p.dtype == np.float32
    assert not np.array_equal(p, before)


def test_state_is_kept_per_parameter_position():
    """Two arrays stepped together move exactly as each would alone."""
    a, b = np.array(P0), np.array([3.0, 4.0])
    opt = Adam(0.01)
    for ga, gb in ((G1, [1.0, -1.0]), (G2, [0.5, 0.5])):
        opt.step([a, b], [np.array(ga), np.array(gb)])
    assert opt.iterations == 2
    assert_array_equal(a, run(Adam(0.01), [G1, G2]))
    assert_array_equal(b, run(Adam(0.01), [[1.0, -1.0], [0.5, 0.5]], p0=[3.0, 4.0]))


# -- clipping -------------------------------------------------------------------


def test_clip_by_global_norm_scales_all_arrays_jointly():
    grads = [np.array([3.0]), np.array([0.0, 4.0]), np.array([[12.0]])]
    norm = clip_by_global_norm(grads, 6.5)
    assert norm == pytest.approx(13.0)
    assert_allclose(grads[0], [1.5])
    assert_allclose(grads[1], [0.0, 2.0])
    assert_allclose(grads[2], [[6.0]])
    assert math.sqrt(sum(float(np.sum(g * g)) for g in grads)) == pytest.approx(6.5)


def test_clip_by_global_norm_leaves_small_gradients_alone():
    grads = [np.array([0.3, 0.4])]
    assert clip_by_global_norm(grads, 1.0) == pytest.approx(0.5)
    assert_array_equal(grads[0], [0.3, 0.4])


def test_optimizer_clipnorm_clips_before_the_update():
    # Global norm of ([3], [4]) is 5; clipped to 1 they are (0.6, 0.8).
    a, b = np.array([0.0]), np.array([0.0])
    SGD(1.0, clipnorm=1.0).step([a, b], [np.array([3.0]), np.array([4.0])])
    assert_allclose(a, [-0.6])
    assert_allclose(b, [-0.8])
    c = np.array([0.0])
    SGD(1.0, clipnorm=10.0).step([c], [np.array([3.0])])
    assert_allclose(c, [-3.0])


# -- schedules ---------------------------------------------------------------------


def test_step_decay():
    schedule = StepDecay(step_size=2, gamma=0.5)
    assert [schedule(0.8, e) for e in range(6)] == pytest.approx([0.8, 0.8, 0.4, 0.4, 0.2, 0.2])


def test_cosine_decay():
    schedule = CosineDecay(decay_epochs=4, alpha=0.1)
    # lr * ((1 - alpha) * 0.5 * (1 + cos(pi * e / 4)) + alpha), flat after epoch 4
    expected = [1.0, 0.9 * 0.5 * (1 + math.cos(math.pi / 4)) + 0.1, 0.55, 0.9 * 0.5 * (1 - math.cos(math.pi / 4)) + 0.1]
    assert [schedule(1.0, e) for e in range(4)] == pytest.approx(expected)
    assert schedule(2.0, 4) == pytest.approx(0.2)
    assert schedule(2.0, 40) == pytest.approx(0.2)
    assert CosineDecay(10)(1.0, 10) == 0.0


def test_inverse_scaling():
    schedule = InverseScaling(power_t=0.5)
    assert [schedule(1.0, e) for e in range(4)] == pytest.approx([1.0, 1 / math.sqrt(2), 1 / math.sqrt(3), 0.5])


# -- constructor checks -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "shown"),
    [
        (lambda: SGD(0.0), "0.0"),
        (lambda: SGD(-1), "-1"),
        (lambda: SGD(0.1, momentum=1.0), "1.0"),
        (lambda: SGD(0.1, clipnorm=0), "0"),
        (lambda: Adam(beta_1=1.5), "1.5"),
        (lambda: Adam(epsilon=0), "0"),
        (lambda: AdamW(weight_decay=-0.1), "-0.1"),
        (lambda: RMSprop(rho=2), "2"),
        (lambda: StepDecay(0), "0"),
        (lambda: StepDecay(2, gamma=0), "0"),
        (lambda: CosineDecay(0), "0"),
        (lambda: CosineDecay(5, alpha=2.0), "2.0"),
        (lambda: InverseScaling(-1.0), "-1.0"),
    ],
)
def test_bad_hyperparameters_are_refused_with_the_value(make, shown):
    with pytest.raises(ValueError, match=f"got {shown}"):
        make()
