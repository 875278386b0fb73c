"""The data plane and the caller gate on their own: built from their parts, no Flask app, no request.

The HTTP suites (tests/server/v1, tests/server/v2) prove the adapters; here the transport-neutral rules,
answers and errors, which every transport (gRPC included) gets the same.
"""

import numpy as np
import pytest
from helpers import read_catalog_csv

from nn import MLPClassifier, MLPRegressor
from service.server.callers import BOOTSTRAP, Gate, PermissionDeniedError, UnauthenticatedError, bearer
from service.server.dataplane import Call, DataPlane, InputError, TensorSpec, UnanswerableInputError
from service.server.feedback_tokens import FeedbackTokens
from service.server.predlog import Budget, PredictionRecorder
from service.server.registry import ModelRegistry
from service.server.settings import ServerSettings
from service.store import FileKeyStore, FileModelStore, InvalidNameError, KeyRing, NotFoundError
from service.store.monitoring import open_prediction_log

ADMIN_TOKEN = "dataplane-admin-token"
ROW = [5.1, 3.5, 1.4, 0.2]


def settings(**overrides):
    values = {"max_rows": 3, "max_body_bytes": 1 << 20, "auth": "open-predict", "admin_token": ADMIN_TOKEN}
    return ServerSettings(**{**values, **overrides})


@pytest.fixture(scope="module")
def store_root(tmp_path_factory):
    """iris (a classifier, versions 1 and 2, 1 active) and diabetes (a regressor)."""
    root = tmp_path_factory.mktemp("store")
    store = FileModelStore(root)
    X, y, names = read_catalog_csv("iris")
    for seed in (0, 1):
        est = MLPClassifier((8,), max_iter=4, batch_size=32, random_state=seed).fit(
            X, y.astype(str), feature_names=names
        )
        store.publish("iris", est, {"task": "classification"})
    X, y, names = read_catalog_csv("diabetes")
    store.publish("diabetes", MLPRegressor((8,), max_iter=4, random_state=0).fit(X, y, feature_names=names), {})
    store.activate("iris", 1)
    store.activate("diabetes", 1)
    return root


@pytest.fixture
def plane(store_root, tmp_path):
    recorder = PredictionRecorder(lambda: open_prediction_log(tmp_path), Budget(1000, 1 << 20, 100), 1.0)
    tokens = FeedbackTokens(lambda: recorder.log, 3600.0)
    return DataPlane(ModelRegistry(FileModelStore(store_root)), recorder, tokens, settings())


def predict(plane, name, rows, version=None, call=None):
    call = call or Call("req-1")
    return plane.predict(plane.route(name, version, call), np.asarray(rows, dtype=np.float64), call)


def test_a_prediction_answers_what_the_estimator_says_and_names_the_version(plane, store_root):
    call = Call("req-1")
    answered = predict(plane, "iris", [ROW, ROW], call=call)
    expected = FileModelStore(store_root).load("iris", 1).estimator.predict(np.array([ROW, ROW]))
    assert answered.model.version == 1 and call.resolved == ("iris", 1)
    assert list(answered.prediction.values) == list(expected)
    outputs = answered.outputs()
    assert outputs["labels"] == [str(label) for label in expected]
    assert outputs["probabilities"].shape == (2, 3)
    assert answered.logged is not None and answered.logged.request_id == "req-1"  # sampled at rate 1.0
    assert answered.logged.feedback_token and plane.tokens.valid(answered.logged.feedback_token, "iris", "req-1")


def test_the_answer_is_the_estimators_own_bit_for_bit_though_it_skips_the_estimators_checks(plane, store_root):
    rows = np.array([ROW, [6.3, 2.5, 5.0, 1.9], [0.0, -1e30, 3e38, 7.0]])
    store = FileModelStore(store_root)
    iris, diabetes = store.load("iris", 1).estimator, store.load("diabetes", 1).estimator
    classified = predict(plane, "iris", rows).prediction
    np.testing.assert_array_equal(classified.probabilities, iris.predict_proba(rows))
    np.testing.assert_array_equal(classified.values, iris.predict(rows))
    wide = np.linspace(-3.0, 3.0, 3 * diabetes.n_features_in_).reshape(3, -1)
    np.testing.assert_array_equal(predict(plane, "diabetes", wide).prediction.values, diabetes.predict(wide))


def test_a_pinned_version_answers_and_unknown_ones_are_not_found(plane):
    call = Call("req-2")
    assert predict(plane, "iris", [ROW], version="2", call=call).model.version == 2
    assert call.resolved == ("iris", 2)
    with pytest.raises(NotFoundError, match="has no version 9"):
        plane.route("iris", 9, Call("req-3"))
    with pytest.raises(NotFoundError, match="unknown model 'nothing'"):
        plane.route("nothing", None, Call("req-4"))
    with pytest.raises(InvalidNameError):
        plane.route("../etc", None, Call("req-5"))


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (np.empty((0, 4)), "the input has no rows: send at least one row"),
        ([ROW] * 4, "the input has 4 rows; at most 3 are accepted per request"),
        ([[*ROW, 1.0]], "rows have 5 values, model 'iris' expects 4 (sepal_length"),
        ([[1e300, 3.5, 1.4, 0.2]], "the input holds 1e+300 at index [0, 0], beyond the range of the FP32 numbers"),
        ([[5.1, np.nan, 1.4, 0.2]], "the input holds nan at index [0, 1]; every value must be a finite number"),
        ([[5.1, 3.5, -np.inf, 0.2]], "the input holds -inf at index [0, 2]; every value must be a finite number"),
    ],
    ids=["no-rows", "too-many-rows", "too-wide", "beyond-float32", "nan", "infinity"],
)
def test_every_input_rule_refuses_with_one_message_and_the_field(plane, rows, message):
    with pytest.raises(InputError) as info:
        plane.predict(plane.route("iris", None, Call("r")), np.asarray(rows, dtype=np.float64), Call("r"), "x")
    assert info.value.message.startswith(message), info.value.message
    assert info.value.field == "x"
    assert not isinstance(info.value, UnanswerableInputError)


def test_rows_the_model_cannot_answer_are_unanswerable_input(plane):
    rows = [[3e38, 3e38, 3e38, 3e38]]  # in float32's range, far outside the training data: the network overflows
    with pytest.raises(UnanswerableInputError, match="the model's output for row 0 is not finite"):
        predict(plane, "iris", rows)


def test_check_shape_refuses_before_values_are_decoded(plane):
    loaded = plane.model("iris", None, Call("r"))
    plane.check_shape(loaded, 3, 4)
    with pytest.raises(InputError, match="rows have 2 values"):
        plane.check_shape(loaded, 1, 2, "x")


def test_metadata_names_the_tensors_of_a_classifier_and_a_regressor(plane):
    meta = plane.metadata("iris", None, Call("r"))
    assert meta.versions == ("1", "2") and meta.platform == "nnserve_numpy"
    assert meta.inputs == (TensorSpec("input", "FP32", (-1, 4)),)
    assert meta.outputs == (
        TensorSpec("predictions", "INT64", (-1,)),
        TensorSpec("labels", "BYTES", (-1,)),
        TensorSpec("probabilities", "FP32", (-1, 3)),
    )
    regressor = plane.metadata("diabetes", None, Call("r"))
    assert regressor.outputs == (TensorSpec("predictions", "FP32", (-1,)),)


def test_readiness_of_the_server_and_of_a_model(plane):
    state = plane.readiness()
    assert state.ready and state.reasons == [] and state.models["iris"]["loaded_version"] == 1
    assert plane.model_ready("iris", "2", Call("r")).ready
    with pytest.raises(NotFoundError):
        plane.model_ready("nothing", None, Call("r"))
    with pytest.raises(NotFoundError):
        plane.model_ready("iris", "7", Call("r"))


# -- the gate ----------------------------------------------------------------------------------------------------------


@pytest.fixture
def keys(tmp_path):
    store = FileKeyStore(tmp_path)
    _, predict_iris = store.create("iris-only", ["predict"], ["iris"])
    _, admin = store.create("ops", ["admin"])
    return KeyRing(store, check_interval=0.0, miss_interval=0.0), predict_iris, admin


def test_bearer_reads_one_credential():
    assert bearer(None) is None
    assert bearer("Bearer abc") == "abc"
    for bad in ("Basic abc", "Bearer ", "Bearer a, Bearer b"):
        with pytest.raises(UnauthenticatedError):
            bearer(bad)


def test_authenticate_tells_keys_the_admin_token_and_strangers_apart(keys):
    ring, predict_iris, admin = keys
    gate = Gate(ring, settings())
    assert gate.authenticate(None) is None
    assert gate.authenticate(ADMIN_TOKEN).key_id == BOOTSTRAP
    assert gate.authenticate(predict_iris).models == frozenset({"iris"})
    assert gate.authenticate(admin).allows("admin")
    with pytest.raises(UnauthenticatedError, match="missing or invalid bearer token"):
        gate.authenticate("not-a-key")
    key_id = predict_iris.split("_")[1]
    with pytest.raises(UnauthenticatedError) as info:
        gate.authenticate(predict_iris[:-2] + "xx")
    assert info.value.key_id == key_id  # the logs name the id it claimed


def test_authorize_by_mode_scope_and_model(keys):
    ring, predict_iris, _ = keys
    open_gate, closed_gate = Gate(ring, settings()), Gate(ring, settings(auth="closed"))
    caller = open_gate.authenticate(predict_iris)
    assert open_gate.authorize(None, "predict", "iris") is None  # open-predict: anonymous predictions
    with pytest.raises(UnauthenticatedError, match="needs a key with the 'predict' scope"):
        closed_gate.authorize(None, "predict", "iris")
    assert closed_gate.authorize(caller, "predict", "iris") is caller
    with pytest.raises(PermissionDeniedError, match="lacks access to model 'wine'"):
        closed_gate.authorize(caller, "predict", "wine")
    with pytest.raises(PermissionDeniedError, match="lacks the 'admin' scope"):
        closed_gate.authorize(caller, "admin")


def test_admin_calls_are_off_without_a_token_or_any_key(tmp_path):
    gate = Gate(KeyRing(FileKeyStore(tmp_path)), settings(admin_token=None))
    with pytest.raises(PermissionDeniedError, match="admin endpoints are disabled"):
        gate.authorize(None, "admin")


def test_an_explanation_runs_the_input_rules_and_its_budgets_without_any_transport(plane, store_root):
    call = Call("req-explain")
    loaded = plane.model("iris", None, call)
    assert call.resolved == ("iris", 1)
    rows = np.asarray([ROW, [6.7, 3.0, 5.2, 2.3]])
    explained = plane.explain(loaded, rows, method="integrated_gradients", target=None, steps=None, baseline="zeros")
    assert explained.steps == 32 and explained.attributions.shape == (2, 4)
    assert explained.target == loaded.estimator.predict(rows).tolist()
    small = DataPlane(plane.registry, plane.recorder, plane.tokens, settings(explain_max_rows=1, explain_max_steps=8))
    cases = [
        ({"steps": 9}, rows[:1], "steps", "at most 8"),
        ({}, rows, "input", "has 2 rows; at most 1"),
        ({}, rows[:1, :3], "input", "expects 4"),
        ({"target": "rose"}, rows[:1], "target", "unknown class 'rose'"),
        ({"method": "shap"}, rows[:1], "method", "method must be one of"),
        ({"baseline": "mean"}, rows[:1], "baseline", "published before the training means were kept"),
        ({"baseline": [1e300, 0.0, 0.0, 0.0]}, rows[:1], "baseline", r"the baseline holds 1e\+300 at index \[0\]"),
        (
            {},
            np.asarray([[np.nan, 3.0, 5.2, 2.3]]),
            "input",
            r"holds nan at index \[0, 0\]; every value must be a finite number",
        ),
    ]
    for kwargs, X, field, fragment in cases:
        given = {"method": "integrated_gradients", "target": None, "steps": None, "baseline": "zeros", **kwargs}
        with pytest.raises(InputError, match=fragment) as info:
            small.explain(loaded, X, **given)
        assert info.value.field == field
    regressor = plane.model("diabetes", None, call)
    X = read_catalog_csv("diabetes")[0][:1]
    answered = plane.explain(regressor, X, method="saliency", target="ignored", steps=None, baseline="zeros")
    assert answered.target == [0]
