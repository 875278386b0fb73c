"""Input gradients against central differences (float64), and the attribution methods built on them."""

from pathlib import Path

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
    MLPClassifier,
    MLPRegressor,
    Network,
    ReLU,
    Sigmoid,
    SoftmaxCrossEntropy,
    Tanh,
    attribution,
)
from nn.attribution import METHODS, attribute, gradient_x_input, integrated_gradients, saliency
from service.training.catalog import catalog_specs
from service.training.fitting import train_spec

EPS = 1e-6
REPO_MODELS = Path(__file__).resolve().parents[2] / "models"


def central_differences(f, x):
    """d f(x)[i] / d x[i, j] for a row-wise ``f`` (rows do not interact), by central differences."""
    grad = np.zeros_like(x)
    for j in range(x.shape[1]):
        step = np.zeros(x.shape[1])
        step[j] = EPS
        grad[:, j] = (f(x + step) - f(x - step)) / (2 * EPS)
    return grad


def assert_matches_differences(analytic, numeric):
    assert np.abs(numeric).max() > 1e-3, "degenerate check: the numerical gradient is about zero"
    assert_allclose(analytic, numeric, rtol=1e-4, atol=1e-4 * np.abs(numeric).max())


ACTIVATIONS = [ReLU, lambda: LeakyReLU(0.1), Tanh, Sigmoid, GELU]
LOSSES = {
    "mse": (MeanSquaredError, 3),
    "bce-one-output": (BinaryCrossEntropy, 1),
    "bce-three-outputs": (BinaryCrossEntropy, 3),
    "softmax": (SoftmaxCrossEntropy, 4),
}


def network(activation, loss, n_outputs, dtype="float64", n_features=5):
    net = Network(
        [Dense(7), activation(), Dropout(0.3), Dense(6), activation(), Dense(n_outputs)], loss(), seed=3, dtype=dtype
    )
    net.build(n_features)
    rng = np.random.default_rng(4)
    net.set_flat_weights(rng.normal(0.0, 0.8, net.get_flat_weights().shape).astype(dtype))
    return net


@pytest.mark.parametrize("loss", LOSSES, ids=str)
@pytest.mark.parametrize("activation", ACTIVATIONS, ids=["relu", "leaky_relu", "tanh", "sigmoid", "gelu"])
def test_input_gradient_matches_central_differences(activation, loss):
    loss_cls, n_outputs = LOSSES[loss]
    net = network(activation, loss_cls, n_outputs)
    x = np.random.default_rng(5).normal(size=(8, 5))
    columns = np.arange(8) % n_outputs
    values, grad = net.output_and_input_gradient(x, columns)
    assert grad.shape == x.shape and grad.dtype == np.float64
    assert_allclose(values, net.predict(x)[np.arange(8), columns], rtol=1e-12)

    def picked(rows):
        return net.predict(rows)[np.arange(len(rows)), columns]

    assert_matches_differences(grad, central_differences(picked, x))
    for k in range(n_outputs):  # one column for every row, as an int
        assert_allclose(net.input_gradient(x, k)[columns == k], grad[columns == k], rtol=1e-12)


def test_a_float32_network_differentiates_in_float64_on_request():
    net32 = network(Tanh, SoftmaxCrossEntropy, 4, dtype="float32")
    net64 = network(Tanh, SoftmaxCrossEntropy, 4, dtype="float64")
    net64.set_flat_weights(net32.get_flat_weights().astype(np.float64))
    x = np.random.default_rng(6).normal(size=(4, 5))
    assert net32.input_gradient(x, 2).dtype == np.float32
    wide = net32.input_gradient(x, 2, dtype=np.float64)
    assert wide.dtype == np.float64
    assert_array_equal(wide, net64.input_gradient(x, 2))


def test_an_input_gradient_changes_nothing_of_the_network():
    net = network(ReLU, SoftmaxCrossEntropy, 4)
    x = np.random.default_rng(7).normal(size=(6, 5))
    weights, grads, before = net.get_flat_weights(), net._flat_grads.copy(), net.predict(x[:2])
    net.input_gradient(x, 1)
    assert_array_equal(net.get_flat_weights(), weights)
    assert_array_equal(net._flat_grads, grads)
    assert_array_equal(net.predict(x[:2]), before)


@pytest.mark.parametrize("output", [4, -1, 1.5, [0, 1]], ids=str)
def test_an_output_column_out_of_range_or_of_the_wrong_shape_is_refused(output):
    net = network(Tanh, SoftmaxCrossEntropy, 4)
    with pytest.raises(ValueError, match="output columns"):
        net.input_gradient(np.zeros((3, 5)), output)


# -- the estimators: raw features, classes and target units ---------------------


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(8)
    X = rng.normal(size=(90, 4)) * [1.0, 10.0, 0.1, 3.0] + [0.0, 50.0, -1.0, 2.0]
    score = X @ [1.0, 0.1, 10.0, 0.3]
    return X, score


def test_a_multiclass_classifier_differentiates_each_class_probability(blobs):
    X, score = blobs
    y = np.digitize(score, np.quantile(score, [0.33, 0.66]))
    clf = MLPClassifier((8,), activation="tanh", max_iter=50, random_state=0, dtype="float64").fit(X, y)
    for k in range(3):
        values, grad = clf.output_and_input_gradient(X[:10], k, dtype=np.float64)
        assert_allclose(values, clf.predict_proba(X[:10])[:, k], rtol=1e-5)
        assert_matches_differences(grad, central_differences(lambda r, k=k: clf.predict_proba(r)[:, k], X[:10]))
    assert_array_equal(clf.target_index(X[:10]), np.searchsorted(clf.classes_, clf.predict(X[:10])))


def test_a_binary_classifier_explains_either_class(blobs):
    X, score = blobs
    y = np.where(score > np.median(score), "yes", "no")
    clf = MLPClassifier((6,), activation="gelu", max_iter=50, random_state=0, dtype="float64").fit(X, y)
    for k in (0, 1):
        values, grad = clf.output_and_input_gradient(X[:10], k)
        assert_allclose(values, clf.predict_proba(X[:10])[:, k], rtol=1e-10)
        assert_matches_differences(grad, central_differences(lambda r, k=k: clf.predict_proba(r)[:, k], X[:10]))
    assert_allclose(clf.input_gradient(X[:5], 0), -clf.input_gradient(X[:5], 1), rtol=1e-12)
    predicted = clf.target_index(X[:10])
    assert_array_equal(clf.classes_[predicted], clf.predict(X[:10]))


def test_a_regressor_differentiates_in_the_targets_units(blobs):
    X, score = blobs
    y = np.column_stack([score * 100 + 7, -score])
    reg = MLPRegressor((8,), activation="sigmoid", max_iter=50, random_state=0, dtype="float64").fit(X, y)
    for k in (0, 1):
        values, grad = reg.output_and_input_gradient(X[:10], k)
        assert_allclose(values, reg.predict(X[:10])[:, k], rtol=1e-10)
        assert_matches_differences(grad, central_differences(lambda r, k=k: reg.predict(r)[:, k], X[:10]))
    assert_array_equal(reg.target_index(X[:3]), [0, 0, 0])
    with pytest.raises(ValueError, match="output columns"):
        reg.target_index(X[:3], 2)


# -- attributions ----------------------------------------------------------------


def linear_network(W, b):
    net = Network([Dense.from_weights(W, b)], MeanSquaredError(), dtype="float64")
    net.build(W.shape[0])
    return net


@pytest.mark.parametrize("steps", [1, 7, 64])
def test_without_a_hidden_layer_attributions_are_the_difference_times_the_weight(steps):
    rng = np.random.default_rng(9)
    W, b = rng.normal(size=(5, 3)), rng.normal(size=3)
    net = linear_network(W, b)
    X, base = rng.normal(size=(6, 5)), rng.normal(size=5)
    for k in range(3):
        expected = (X - base) * W[:, k]
        assert_allclose(integrated_gradients(net, X, base, target=k, steps=steps).values, expected, atol=1e-6)
        assert_allclose(gradient_x_input(net, X, base, target=k).values, expected, atol=1e-6)
        assert_allclose(saliency(net, X, base, target=k).values, np.broadcast_to(np.abs(W[:, k]), X.shape), atol=1e-6)


def test_a_regressor_without_a_hidden_layer_attributes_in_raw_units(blobs):
    X, score = blobs
    reg = MLPRegressor((), max_iter=30, random_state=0, dtype="float64").fit(X, 3 * score + 1)
    w = reg.coefs_[0][:, 0] / reg.x_scale_ * reg.y_scale_[0]  # d predict / d raw feature
    base = X.mean(axis=0)
    result = integrated_gradients(reg, X[:7], base, steps=16)
    assert_allclose(result.values, (X[:7] - base) * w, atol=1e-6)
    assert_allclose(result.output, reg.predict(X[:7]), rtol=1e-10)
    assert_allclose(result.baseline_output, reg.predict(base[None, :])[0], rtol=1e-10)


def test_completeness_holds_for_a_relu_network_through_its_kinks():
    net = network(ReLU, SoftmaxCrossEntropy, 4)
    rng = np.random.default_rng(10)
    X, base = rng.normal(size=(12, 5)) * 2, rng.normal(size=5)
    kinks = net.kinks_on_path(np.broadcast_to(base, X.shape), X)
    assert sum(len(k) for k in kinks) > 12, "the paths should cross kinks for this to test anything"
    for t, row in zip(kinks, X, strict=True):  # on each kink, some hidden unit's input is zero
        z = net.layers[0].forward(base + t[:, None] * (row - base))
        z2 = net.layers[3].forward(net.layers[1].forward(z))
        assert (np.minimum(np.abs(z).min(axis=1), np.abs(z2).min(axis=1)) < 1e-9).all()
    result = integrated_gradients(net, X, base, steps=16)
    delta = np.abs(result.output - result.baseline_output)
    assert (np.abs(result.completeness_gap) <= 1e-3 * delta + 1e-6).all()


def test_the_paths_ends_are_the_row_and_the_baseline_however_far_apart():
    """f(x) is computed at x itself: b + 1 * (x - b) is 0, not x, once |b| dwarfs |x| (x is lost in x - b)."""
    net = network(Tanh, SoftmaxCrossEntropy, 4)
    X = np.random.default_rng(13).normal(size=(3, 5))
    target = net.target_index(X)
    for far in (1e17, 1e30):
        base = np.full(5, far)
        result = integrated_gradients(net, X, base, target=target, steps=8)
        assert_allclose(result.output, net.output_and_input_gradient(X, target)[0], rtol=1e-12)
        assert_allclose(result.baseline_output, net.output_and_input_gradient(np.tile(base, (3, 1)), target)[0])


def test_long_batches_are_split_without_changing_the_result(monkeypatch):
    net = network(Tanh, SoftmaxCrossEntropy, 4)
    X = np.random.default_rng(11).normal(size=(9, 5))
    whole = integrated_gradients(net, X, np.zeros(5), steps=10)
    monkeypatch.setattr(attribution, "MAX_PATH_POINTS", 25)
    split = integrated_gradients(net, X, np.zeros(5), steps=10)
    assert_allclose(split.values, whole.values, rtol=1e-12)
    assert_allclose(split.output, whole.output, rtol=1e-12)


def test_the_methods_by_name_and_their_relations():
    net = network(GELU, SoftmaxCrossEntropy, 4)
    X = np.random.default_rng(12).normal(size=(5, 5))
    grad = net.input_gradient(X, net.target_index(X))
    by_name = {m: attribute(net, X, np.zeros(5), method=m, steps=8) for m in METHODS}
    assert_allclose(by_name["gradient_x_input"].values, grad * X, rtol=1e-12)
    assert_allclose(by_name["saliency"].values, np.abs(grad), rtol=1e-12)
    assert {a.method for a in by_name.values()} == set(METHODS)
    assert_array_equal(by_name["integrated_gradients"].target, net.predict(X).argmax(axis=1))
    with pytest.raises(ValueError, match="unknown attribution method 'shap'"):
        attribute(net, X, np.zeros(5), method="shap")
    with pytest.raises(ValueError, match="steps"):
        integrated_gradients(net, X, np.zeros(5), steps=0)
    with pytest.raises(ValueError, match="baseline"):
        integrated_gradients(net, X, np.zeros(4))


# -- the catalog ------------------------------------------------------------------


@pytest.fixture(scope="module")
def catalog():
    """Every catalog model trained as its spec says, with its held-out rows and its training rows' means."""
    trained = {}
    for spec in catalog_specs(REPO_MODELS):
        _, result = train_spec(spec)
        trained[spec.name] = result
    return trained


@pytest.mark.parametrize("name", [s.name for s in catalog_specs(REPO_MODELS)])
def test_integrated_gradients_meet_completeness_on_every_catalog_model(catalog, name):
    result = catalog[name]
    X = np.asarray(result.evaluation.X, np.float64)[:60]
    mean = np.asarray(result.training.X, np.float64).mean(axis=0)  # the service's default baseline
    explained = integrated_gradients(result.estimator, X, mean, steps=64)
    delta = np.abs(explained.output - explained.baseline_output)
    assert (delta > 0.1).sum() >= 10, "most rows should be far from the baseline's output"
    assert (np.abs(explained.completeness_gap) <= 1e-3 * delta + 1e-6).all(), name


def test_a_held_out_zero_and_one_are_explained_by_their_own_ink(catalog):
    """From a blank page (zeros), the pixels that most make a 0 a 0 are the 0's ink where the 1 has none, and
    the other way round."""
    result = catalog["digits"]
    X, y = np.asarray(result.evaluation.X, np.float64), np.asarray(result.evaluation.y)
    zero, one = X[np.flatnonzero(y == 0)[0]], X[np.flatnonzero(y == 1)[0]]
    explained = integrated_gradients(result.estimator, np.vstack([zero, one]), np.zeros(64), steps=64)
    assert_array_equal(result.estimator.classes_[explained.target], [0, 1])
    for row, other, values in ((zero, one, explained.values[0]), (one, zero, explained.values[1])):
        top = np.argsort(values)[::-1][:5]
        assert (values[top] > 0).all()
        assert (row[top] > 0).all(), "a top pixel is blank in its own digit"
        assert (other[top] == 0).any(), "the top pixels are the other digit's ink too"


def test_dense_input_backward_is_backwards_input_gradient_without_touching_its_gradients():
    layer = Dense(3, input_dim=4)
    x, up = np.random.default_rng(13).normal(size=(5, 4)), np.random.default_rng(14).normal(size=(5, 3))
    layer.forward(x)
    before = {k: g.copy() for k, g in layer.grads.items()}
    through = layer.input_backward(up)
    assert all((layer.grads[k] == before[k]).all() for k in before)
    assert_allclose(through, layer.backward(up), rtol=1e-12)
    with pytest.raises(RuntimeError, match="backward called before forward"):
        Dense(3, input_dim=4).input_backward(up)


def test_input_gradients_beside_predictions_on_other_threads_are_those_computed_alone():
    """Gradients run on copies of the layers: a prediction (or another gradient) on the same network in another
    thread cannot overwrite what their backward pass reads."""
    import threading

    net = network(ReLU, SoftmaxCrossEntropy, 4)
    rng = np.random.default_rng(15)
    batches = [rng.normal(size=(50 + i, 5)) for i in range(8)]
    alone = [net.input_gradient(x, 2) for x in batches]
    found: dict[int, np.ndarray] = {}

    def gradients(i):
        for _ in range(20):
            found[i] = net.input_gradient(batches[i], 2)

    def predictions():
        for _ in range(200):
            net.predict(rng.normal(size=(37, 5)))

    threads = [threading.Thread(target=gradients, args=(i,)) for i in range(8)]
    threads += [threading.Thread(target=predictions) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, expected in enumerate(alone):
        assert_array_equal(found[i], expected)
