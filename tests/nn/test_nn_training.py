"""Network training: the origin notebook, XOR, determinism, dtypes, dropout, callbacks and History."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from nn import (
    GELU,
    SGD,
    Adam,
    BinaryCrossEntropy,
    Callback,
    Dense,
    Dropout,
    EarlyStopping,
    LeakyReLU,
    MeanSquaredError,
    MLPClassifier,
    MLPRegressor,
    Network,
    ReduceLROnPlateau,
    ReLU,
    Sigmoid,
    SoftmaxCrossEntropy,
    StepDecay,
    Tanh,
    TrainingDivergedError,
)
from nn.callbacks import TrainingState
from nn.mlp import _NoImprovementStop

XOR_X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_Y = np.array([0, 1, 1, 0])


def notebook_sigmoid(s):
    """The notebook's own formula, ``1/(1+e**-s)`` with e written out."""
    return 1 / (1 + 2.718281828459045**-s)


def set_dense(layer, W, b):
    layer.params["W"][...] = W
    layer.params["b"][...] = b


# -- the origin notebook nnserve grew from (a neuron, then a layer) -----------------------------------------


def test_origin_single_neuron():
    """neuron(w=1, b=2, x=3).sigmoid_activate() == 0.9933071490757153, as Dense(1) + Sigmoid."""
    net = Network([Dense(1), Sigmoid()], MeanSquaredError(), dtype="float64")
    net.build(1)
    set_dense(net.layers[0], [[1.0]], [2.0])
    out = net.predict([[3.0]])
    assert out.shape == (1, 1)
    assert out[0, 0] == pytest.approx(0.9933071490757153, rel=1e-15, abs=0)
    assert out[0, 0] == pytest.approx(notebook_sigmoid(1 * 3 + 2), rel=1e-15, abs=0)


def test_origin_two_neurons_and_next_layer():
    """The notebook's two-neuron layer and its ``next_layer``.

    Each notebook neuron computes ``sigmoid(w * x + b)`` elementwise on its own input: the
    first layer is neuron(1, 2, 3) and neuron(4, 5, 6), i.e. a Dense(2) on the input row
    [3, 6] with a diagonal W = diag(1, 4) and b = [2, 5]. ``next_layer = neuron([3, 2], [2, 1],
    activations)`` multiplies elementwise (no sum over inputs), i.e. a Dense(2) with
    W = diag(3, 2) and b = [2, 1]. A fully connected next layer (which would sum over both
    activations) is *not* what the notebook computed, so only this diagonal form is
    reproduced. The notebook printed 8 decimals; ``array(1.)`` is sigmoid(29) = 1 - 2.5e-13.
    """
    net = Network([Dense(2), Sigmoid(), Dense(2), Sigmoid()], MeanSquaredError(), dtype="float64")
    net.build(2)
    set_dense(net.layers[0], np.diag([1.0, 4.0]), [2.0, 5.0])
    set_dense(net.layers[2], np.diag([3.0, 2.0]), [2.0, 1.0])
    x = np.array([[3.0, 6.0]])

    activations = net.layers[1].forward(net.layers[0].forward(x))
    assert_allclose(activations, [[0.99330715, 1.0]], atol=5e-9)
    assert_allclose(activations, [[notebook_sigmoid(5.0), notebook_sigmoid(29.0)]], rtol=1e-15)

    out = net.predict(x)
    assert_allclose(out, [[0.99317233, 0.95257413]], atol=5e-9)
    a1, a2 = notebook_sigmoid(5.0), notebook_sigmoid(29.0)
    assert_allclose(out, [[notebook_sigmoid(3 * a1 + 2), notebook_sigmoid(2 * a2 + 1)]], rtol=1e-14)


# -- learning XOR -------------------------------------------------------------------------


def test_network_learns_xor():
    net = Network([Dense(8), Tanh(), Dense(1)], BinaryCrossEntropy(), Adam(0.05), seed=0)
    history = net.fit(XOR_X, XOR_Y.reshape(-1, 1).astype(np.float32), epochs=300, batch_size=4)
    assert_array_equal((net.predict(XOR_X)[:, 0] > 0.5).astype(int), XOR_Y)
    assert history.history["loss"][-1] < 0.1 < history.history["loss"][0]


def test_network_learns_xor_as_two_class_softmax():
    net = Network([Dense(8), Tanh(), Dense(2)], SoftmaxCrossEntropy(), Adam(0.05), seed=1)
    net.fit(XOR_X, XOR_Y, epochs=300, batch_size=4)
    probs = net.predict(XOR_X)
    assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    assert_array_equal(probs.argmax(axis=1), XOR_Y)


@pytest.mark.parametrize("labels", [XOR_Y, np.array(["no", "yes", "yes", "no"])])
def test_mlp_classifier_learns_xor(labels):
    clf = MLPClassifier((8,), activation="tanh", learning_rate_init=0.05, max_iter=300, random_state=0)
    clf.fit(XOR_X, labels)
    assert_array_equal(clf.predict(XOR_X), labels)
    assert clf.score(XOR_X, labels) == 1.0


# -- determinism and dtypes -------------------------------------------------------------------


def train_small(seed, dtype="float32", epochs=5):
    rng = np.random.default_rng(42)
    x = rng.standard_normal((64, 5))
    y = (x[:, :1] * x[:, 1:2] > 0).astype(np.float64)
    net = Network([Dense(16), ReLU(), Dropout(0.3), Dense(1)], BinaryCrossEntropy(), Adam(0.01), seed, dtype)
    net.fit(x, y, epochs=epochs, batch_size=8)
    return net, x


def test_same_seed_gives_bit_identical_weights():
    a, x = train_small(seed=123)
    b, _ = train_small(seed=123)
    for key, value in a.get_weights().items():
        assert_array_equal(value, b.get_weights()[key])
    assert_array_equal(a.predict(x), b.predict(x))


def test_different_seed_gives_different_weights():
    a, _ = train_small(seed=123)
    b, _ = train_small(seed=124)
    assert not np.array_equal(a.get_flat_weights(), b.get_flat_weights())


def test_float32_is_the_default():
    net, x = train_small(seed=0)
    assert net.dtype == np.float32
    for layer in net.layers:
        for key in layer.params:
            assert layer.params[key].dtype == np.float32
            assert layer.grads[key].dtype == np.float32
    assert net.predict(x).dtype == np.float32
    assert net.forward(x.astype(np.float32)).dtype == np.float32


@pytest.mark.parametrize("loss", [MeanSquaredError(), BinaryCrossEntropy()])
def test_float64_targets_keep_float32_training_in_float32(loss):
    """Targets as numpy makes them (float64) must not turn the loss gradient and backward pass float64."""
    x = np.random.default_rng(0).standard_normal((40, 3))
    y = (x[:, :1] > 0).astype(np.float64)
    seen = []

    class Watch(ReLU):
        def backward(self, grad):
            seen.append(grad.dtype)
            return super().backward(grad)

    net = Network([Dense(4), Watch(), Dense(1)], loss, seed=0)
    net.fit(x, y, epochs=1, batch_size=8, validation_data=(x, y))
    assert net.loss.backward().dtype == np.float32
    assert set(seen) == {np.dtype(np.float32)}


def test_float64_on_request():
    net, x = train_small(seed=0, dtype="float64")
    assert net.dtype == np.float64
    assert all(p.dtype == np.float64 for p in net.get_weights().values())
    assert net.predict(x).dtype == np.float64
    assert net.predict(x.astype(np.float32)).dtype == np.float64


def test_network_rejects_other_dtypes_and_no_layers():
    with pytest.raises(ValueError, match="float16"):
        Network([Dense(1)], MeanSquaredError(), dtype="float16")
    with pytest.raises(ValueError, match="at least one layer"):
        Network([], MeanSquaredError())


# -- dropout ---------------------------------------------------------------------------------


def test_dropout_is_inactive_at_inference():
    with_dropout = Network([Dense(32), ReLU(), Dropout(0.5), Dense(2)], MeanSquaredError(), seed=0)
    without = Network([Dense(32), ReLU(), Dense(2)], MeanSquaredError(), seed=0)
    with_dropout.build(3)
    without.build(3)
    without.set_flat_weights(with_dropout.get_flat_weights())
    x = np.random.default_rng(0).standard_normal((20, 3)).astype(np.float32)

    inference = with_dropout.predict(x)
    assert_array_equal(inference, without.predict(x))
    assert_array_equal(inference, with_dropout.predict(x))
    assert not np.allclose(with_dropout.forward(x, training=True), inference)


def test_dropout_rate_zero_is_the_identity_in_training_and_rate_is_checked():
    layer = Dropout(0.0)
    layer.build(3, np.random.default_rng(0), np.dtype(np.float32))
    x = np.ones((2, 3), np.float32)
    assert_array_equal(layer.forward(x, training=True), x)
    with pytest.raises(ValueError, match=r"got 1\.0"):
        Dropout(1.0)


def test_dropout_with_a_seed_or_generator_runs_a_training_forward_on_its_own():
    x = np.ones((50, 8))
    first, again = Dropout(0.5, seed=3).forward(x, training=True), Dropout(0.5, seed=3).forward(x, training=True)
    assert_array_equal(first, again)  # the seed decides the mask
    assert set(np.unique(first)) == {0.0, 2.0}  # inverted: kept inputs are scaled by 1/(1-rate)
    layer = Dropout(0.5, rng=np.random.default_rng(3))
    out = layer.forward(x, training=True)
    assert_array_equal(out, first)
    assert_array_equal(layer.backward(np.ones_like(x)), out)  # the gradient goes through the same mask (x is ones)
    assert layer.get_config() == {"rate": 0.5}  # the generator is not part of a saved model
    with pytest.raises(ValueError, match="not both"):
        Dropout(0.5, seed=1, rng=np.random.default_rng(1))
    with pytest.raises(ValueError, match="seed must be"):
        Dropout(0.5, seed=-1)
    with pytest.raises(ValueError, match="rng must be"):
        Dropout(0.5, rng=3)


# -- callbacks, History, early stopping -------------------------------------------------------------


class Recorder(Callback):
    """Records hook calls, epoch logs and a weight snapshot at every epoch end."""

    def __init__(self):
        self.calls, self.epochs, self.logs, self.weights = [], [], [], []

    def on_train_begin(self, logs):
        self.calls.append("begin")

    def on_epoch_end(self, epoch, logs):
        self.calls.append("epoch")
        self.epochs.append(epoch)
        self.logs.append(dict(logs))
        self.weights.append(self.network.get_flat_weights())

    def on_train_end(self, logs):
        self.calls.append("end")


class Inject(Callback):
    """Puts ``values[epoch]`` into the logs as ``key``; callbacks after it see the value."""

    def __init__(self, values, key="score"):
        self.values, self.key = values, key

    def on_epoch_end(self, epoch, logs):
        logs[self.key] = self.values[epoch]


def blobs(n=60, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4))
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.int64)


def classifier_net(seed=0, **kw):
    return Network([Dense(8), Tanh(), Dense(2)], SoftmaxCrossEntropy(), kw.pop("optimizer", Adam(0.01)), seed=seed)


def accuracy(logits, y):
    return float(np.mean(logits.argmax(axis=1) == y))


def test_callbacks_receive_epoch_and_logs_with_loss_and_validation_metrics():
    x, y = blobs()
    recorder = Recorder()
    net = classifier_net()
    net.fit(x[:40], y[:40], epochs=3, validation_data=(x[40:], y[40:]), callbacks=[recorder], metrics={"acc": accuracy})
    assert recorder.calls == ["begin", "epoch", "epoch", "epoch", "end"]
    assert recorder.epochs == [0, 1, 2]
    assert recorder.network is net
    for logs in recorder.logs:
        assert {"loss", "val_loss", "val_acc", "lr"} <= set(logs)
        assert 0.0 <= logs["val_acc"] <= 1.0
    assert recorder.logs[-1]["val_loss"] == pytest.approx(net.evaluate(x[40:], y[40:])["loss"], rel=1e-6)
    assert recorder.logs[-1]["val_acc"] == pytest.approx(accuracy(net.forward(x[40:].astype(np.float32)), y[40:]))


def test_history_contents():
    x, y = blobs()
    net = classifier_net(optimizer=SGD(0.1))
    net.build(4)
    initial_loss = net.evaluate(x.astype(np.float32), y)["loss"]
    history = net.fit(
        x, y, epochs=4, batch_size=len(x), shuffle=False, validation_data=(x, y), metrics={"acc": accuracy}
    )
    assert history.epochs == 4
    assert set(history.history) == {"loss", "val_loss", "val_acc", "lr", "seconds"}
    assert all(len(values) == 4 for values in history.history.values())
    # Full batch, no shuffle: epoch e's training loss is that of the weights before step e,
    # which is the validation loss (on the same data) of epoch e - 1.
    assert history.history["loss"][0] == pytest.approx(initial_loss, rel=1e-6)
    assert_allclose(history.history["loss"][1:], history.history["val_loss"][:-1], rtol=1e-5)
    assert history.history["lr"] == [pytest.approx(0.1)] * 4
    assert all(s >= 0 for s in history.history["seconds"])
    summary = history.summary()
    assert summary["epochs"] == 4
    assert summary["final"]["val_loss"] == history.history["val_loss"][-1]


def test_validation_split_holds_out_a_fraction():
    x, y = blobs(n=100)
    net = classifier_net(optimizer=SGD(0.01))
    history = net.fit(x, y, epochs=1, batch_size=1, validation_split=0.25)
    assert net.optimizer.iterations == 75
    assert len(history.history["val_loss"]) == 1
    with pytest.raises(ValueError, match="validation_split"):
        classifier_net().fit(x, y, validation_split=1.5)


def test_validation_split_is_seeded():
    x, y = blobs(n=100)
    a = classifier_net(seed=5).fit(x, y, epochs=2, validation_split=0.2)
    b = classifier_net(seed=5).fit(x, y, epochs=2, validation_split=0.2)
    assert a.history["val_loss"] == b.history["val_loss"]


def test_stop_training_ends_after_the_current_epoch():
    class StopAt(Callback):
        def on_epoch_end(self, epoch, logs):
            if epoch == 2:
                self.network.stop_training = True

    x, y = blobs()
    recorder = Recorder()
    net = classifier_net()
    history = net.fit(x, y, epochs=50, callbacks=[StopAt(), recorder])
    assert history.epochs == 3
    assert recorder.calls[-1] == "end"
    assert recorder.epochs == [0, 1, 2]


def fit_with_injected(values, stopper, epochs=None, key="score"):
    x, y = blobs()
    recorder = Recorder()
    net = classifier_net()
    history = net.fit(x, y, epochs=epochs or len(values), callbacks=[Inject(values, key), stopper, recorder])
    return net, history, recorder


@pytest.mark.parametrize(
    ("min_delta", "patience", "stopped"),
    [(0.05, 2, 3), (0.05, 3, 4), (0.05, 0, 2), (0.0, 2, None)],
)
def test_early_stopping_patience_and_min_delta(min_delta, patience, stopped):
    # Improvements: -0.1, -0.01, -0.01, -0.01, -0.3: only the first and last exceed 0.05.
    values = [1.0, 0.9, 0.89, 0.88, 0.87, 0.57]
    stopper = EarlyStopping("score", min_delta=min_delta, patience=patience, mode="min")
    _, history, _ = fit_with_injected(values, stopper)
    assert stopper.stopped_epoch == stopped
    assert history.epochs == (len(values) if stopped is None else stopped + 1)
    if stopped is not None:
        assert stopper.best == 0.9 and stopper.best_epoch == 1


def test_early_stopping_mode_max_and_auto():
    stopper = EarlyStopping("score", patience=1, mode="max")
    _, history, _ = fit_with_injected([0.5, 0.7, 0.6, 0.9], stopper)
    assert stopper.best == 0.7 and stopper.stopped_epoch == 2 and history.epochs == 3
    assert EarlyStopping("val_loss").sign == -1.0
    assert EarlyStopping("val_accuracy").sign == 1.0
    with pytest.raises(ValueError, match="sideways"):
        EarlyStopping(mode="sideways")


def test_early_stopping_unknown_monitor_fails_loudly():
    with pytest.raises(ValueError, match="nope"):
        fit_with_injected([1.0, 1.0], EarlyStopping("nope"))


@pytest.mark.parametrize("restore", [True, False])
def test_early_stopping_restore_best_weights(restore):
    values = [0.5, 0.1, 0.3, 0.4, 0.6, 0.7]
    stopper = EarlyStopping("score", patience=3, mode="min", restore_best_weights=restore)
    net, history, recorder = fit_with_injected(values, stopper)
    assert stopper.best_epoch == 1 and stopper.stopped_epoch == 4 and history.epochs == 5
    assert not np.array_equal(recorder.weights[1], recorder.weights[4])
    assert_array_equal(net.get_flat_weights(), recorder.weights[1 if restore else 4])


def test_early_stopping_on_a_worsening_validation_loss_restores_the_best_epoch():
    """Validate on the opposite labels: val_loss rises as training fits the train labels."""
    x, y = blobs()
    stopper = EarlyStopping("val_loss", patience=2, restore_best_weights=True)
    recorder = Recorder()
    net = classifier_net(optimizer=Adam(0.05))
    history = net.fit(x, y, epochs=100, validation_data=(x, 1 - y), callbacks=[stopper, recorder])
    assert history.epochs < 100
    assert stopper.best_epoch < history.epochs - 1
    assert_array_equal(net.get_flat_weights(), recorder.weights[stopper.best_epoch])
    assert net.evaluate(x.astype(np.float32), 1 - y)["loss"] == pytest.approx(stopper.best, rel=1e-6)
    assert not np.array_equal(net.get_flat_weights(), recorder.weights[-1])


@pytest.mark.parametrize(
    ("key", "values", "stopped_after", "best_epoch"),
    [
        # Every epoch gains 0.02 < tol: each counts as no improvement, yet the best follows it.
        ("score", [0.5, 0.52, 0.54, 0.56, 0.58, 0.9], 4, 3),
        ("val_loss", [1.0, 0.98, 0.96, 0.99, 0.94, 0.1], 4, 2),
        # A gain of tol or more resets the count.
        ("score", [0.5, 0.6, 0.61, 0.7, 0.71, 0.72, 0.73, 0.74, 0.75], 7, 6),
    ],
)
def test_estimator_stopping_rule_is_scikit_learns(key, values, stopped_after, best_epoch):
    """tol=0.05, n_iter_no_change=2: stop once more than 2 epochs in a row fail to beat the best by tol
    (scikit-learn's ``_update_no_improvement_count``); the restored weights are the best epoch's."""
    stopper = _NoImprovementStop(key, tol=0.05, n_iter_no_change=2, restore=True)
    net, history, recorder = fit_with_injected(values, stopper, key=key)
    assert history.epochs == stopped_after
    assert_array_equal(net.get_flat_weights(), recorder.weights[best_epoch])


def test_lr_schedule_sets_the_rate_before_each_epoch():
    x, y = blobs()
    net = classifier_net(optimizer=SGD(0.8))
    history = net.fit(x, y, epochs=5, lr_schedule=StepDecay(step_size=2, gamma=0.5))
    assert history.history["lr"] == pytest.approx([0.8, 0.8, 0.4, 0.4, 0.2])


def test_reduce_lr_on_plateau():
    stopper = ReduceLROnPlateau("score", factor=0.5, patience=2)
    net, history, _ = fit_with_injected([1.0] * 7, stopper)
    # Plateau from epoch 1: the rate halves after epochs 2 and 4; logs show it from the next epoch.
    assert history.history["lr"] == pytest.approx([0.01, 0.01, 0.01, 0.005, 0.005, 0.0025, 0.0025])
    assert net.optimizer.learning_rate == pytest.approx(0.00125)


def test_fit_rejects_bad_epochs_and_batch_size():
    x, y = blobs()
    with pytest.raises(ValueError, match="epochs"):
        classifier_net().fit(x, y, epochs=0)
    with pytest.raises(ValueError, match="batch_size"):
        classifier_net().fit(x, y, batch_size=0)


def test_callbacks_module_does_not_import_network():
    """Callbacks depend on the TrainingState protocol, so there is no import circle with nn.network."""
    import ast
    import inspect

    import nn.callbacks

    tree = ast.parse(inspect.getsource(nn.callbacks))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "network" not in imported and "nn.network" not in imported


def test_network_satisfies_the_callback_protocol():
    """A Network is what callbacks type as TrainingState: the attributes they touch exist and work."""
    net = Network([Dense(2)], MeanSquaredError(), SGD(0.1), seed=0)
    net.build(3)
    state: TrainingState = net
    flat = state.get_flat_weights()
    state.optimizer.learning_rate *= 0.5
    state.set_flat_weights(flat * 0)
    assert net.optimizer.learning_rate == 0.05 and not net.get_flat_weights().any()


# -- layers given their input width or weights; layers used before they are built -----------------


def test_origin_neuron_in_three_lines_of_public_api():
    """The notebook's neuron (w=1, b=2, x=3, sigmoid) with Dense.from_weights: exactly its value."""
    layer = Dense.from_weights([[1.0]], [2.0])
    out = Sigmoid().forward(layer.forward(np.array([[3.0]])))
    assert out[0, 0] == 0.9933071490757153


def test_dense_with_input_dim_is_built_and_a_network_rebuilds_it_with_its_seed():
    layer = Dense(3, input_dim=2)
    assert layer.forward(np.ones((4, 2))).shape == (4, 3)
    nets = [Network([Dense(3, input_dim=2), Dense(1)], MeanSquaredError(), seed=0) for _ in range(2)]
    for net in nets:
        net.build(2)
    assert_array_equal(nets[0].get_flat_weights(), nets[1].get_flat_weights())
    with pytest.raises(ValueError, match="input_dim=2"):
        Network([Dense(3, input_dim=2)], MeanSquaredError()).build(5)


def test_network_keeps_weights_given_to_from_weights():
    W, b = np.array([[1.0, -1.0], [0.5, 2.0]]), np.array([0.1, 0.2])
    net = Network([Dense.from_weights(W, b)], MeanSquaredError(), dtype="float64")
    net.build(2)
    assert_array_equal(net.get_weights()["0.W"], W)
    assert_array_equal(net.predict([[1.0, 1.0]]), [[1.6, 1.2]])
    with pytest.raises(ValueError, match="W must be"):
        Dense.from_weights(W, [1.0, 2.0, 3.0])


UNBUILT = {
    "Dense": lambda: Dense(2),
    "Dropout": lambda: Dropout(0.5),
    "ReLU": ReLU,
    "LeakyReLU": lambda: LeakyReLU(0.1),
    "Tanh": Tanh,
    "Sigmoid": Sigmoid,
    "GELU": GELU,
}


@pytest.mark.parametrize("name", UNBUILT)
def test_layer_used_before_build_says_what_to_do(name):
    layer = UNBUILT[name]()
    x = np.ones((3, 2))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        layer.backward(x)
    with pytest.raises(RuntimeError, match="has no parameter 'W'"):
        layer.params["W"]
    if name == "Dense":
        with pytest.raises(RuntimeError, match=r"input_dim=.*from_weights"):
            layer.forward(x)
    elif name == "Dropout":
        assert layer.forward(x) is x  # inference needs no generator
        with pytest.raises(RuntimeError, match=r"seed=.*Network"):
            layer.forward(x, training=True)
    else:
        assert layer.forward(x).shape == x.shape  # activations need no build


class LossRecorder(Callback):
    def __init__(self):
        self.losses = []

    def on_epoch_end(self, epoch, logs):
        self.losses.append(logs["loss"])


def test_a_diverging_fit_raises_at_the_first_non_finite_epoch_before_any_callback_sees_it():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3))
    y = (X @ np.array([[300.0], [-200.0], [100.0]])) ** 2
    net = Network([Dense(16), ReLU(), Dense(1)], MeanSquaredError(), SGD(5.0), seed=0)
    seen = LossRecorder()
    with pytest.raises(TrainingDivergedError, match=r"^training diverged: the loss is (nan|inf) at epoch \d+ "):
        net.fit(X, y, epochs=50, batch_size=16, callbacks=[seen])
    assert np.isfinite(seen.losses).all()  # the non-finite epoch never reached a callback
    assert isinstance(TrainingDivergedError("x"), ValueError)  # callers that refuse bad data catch it too


def test_weights_that_overflow_after_the_last_loss_are_divergence_too():
    X, y = np.ones((4, 2)), np.full((4, 1), 10.0)
    net = Network([Dense(1)], MeanSquaredError(), SGD(1e39), seed=0)  # the one step overflows float32
    with pytest.raises(TrainingDivergedError, match=r"^training diverged: the weights are not finite at epoch 1 "):
        net.fit(X, y, epochs=1, batch_size=4)  # the loss, computed before that step, is finite
    finite = Network([Dense(1)], MeanSquaredError(), SGD(0.01), seed=0)
    assert np.isfinite(finite.fit(X, y, epochs=3, batch_size=4).history["loss"]).all()


def test_an_estimator_with_too_high_a_learning_rate_raises_instead_of_fitting_nan():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 10))
    y = X @ rng.normal(size=10) * 50 + 150
    model = MLPRegressor((32,), solver="sgd", learning_rate_init=9.99, max_iter=200, random_state=0)
    with pytest.raises(TrainingDivergedError, match=r"learning rate 9\.99"):
        model.fit(X, y)
