"""``retrain.validated``: the one set of rules a retrain passes, whoever asks (the API, a policy, the worker)."""

import pytest
from helpers import read_catalog_csv

from nn import MLPClassifier
from service.store import FileModelStore
from service.training.jobs import RetrainRequest
from service.training.limits import Limits
from service.training.retrain import RetrainError, planned_rows, validated

LIMITS = Limits(
    max_layers=4,
    max_parameters=10_000,
    max_training_work=1e12,
    max_runtime=60.0,
    max_label_length=64,
    max_classes=100,
    max_queued_jobs=5,
)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    store = FileModelStore(tmp_path_factory.mktemp("store"))
    X, y, names = read_catalog_csv("iris")
    est = MLPClassifier((16,), max_iter=3, random_state=0).fit(X, y.astype(str), feature_names=names)
    store.publish("iris", est, {"task": "classification", "training": {"n_train": 112, "n_test": 38}})
    store.activate("iris", 1)
    return store.load("iris")


def refused(request, base, rows=None):
    with pytest.raises(RetrainError) as info:
        validated(request, base, LIMITS, rows)
    return info.value


def test_a_plain_retrain_passes_and_counts_the_base_rows(base):
    request = RetrainRequest(n_new_rows=10)
    assert validated(request, base, LIMITS) is request
    assert planned_rows(request, base) == 10 + 150
    assert planned_rows(RetrainRequest(mode="replace", n_new_rows=10), base) == 10


@pytest.mark.parametrize("fraction", [0.0, -0.5, 1.5, float("nan")])
def test_a_canary_fraction_outside_zero_to_one_is_refused(base, fraction):
    error = refused(RetrainRequest(promote="canary", canary_fraction=fraction), base)
    assert error.field == "canary_fraction" and error.message.startswith("canary_fraction must be in (0, 1]")


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({"min_requests": 0}, "min_requests", "min_requests must be from 1 to 1000000, got 0"),
        ({"max_duration": 10.0**9}, "max_duration", "max_duration must be from 1 to 2592000 seconds, got 1000000000.0"),
        ({"max_duration": float("nan")}, "max_duration", "max_duration must be from 1 to 2592000 seconds, got nan"),
    ],
)
@pytest.mark.parametrize("promote", ["canary", "shadow"])
def test_every_rollout_option_has_its_range_whoever_asks(base, promote, options, field, message):
    """A policy's or a queued job's rollout options meet the ranges the API's schema and a spec's [retrain]
    table check: the same rule (``ROLLOUT_RANGES``), the same words."""
    error = refused(RetrainRequest(promote=promote, **options), base)
    assert (error.field, error.message) == (field, message)


def test_replace_without_rows_is_refused(base):
    error = refused(RetrainRequest(mode="replace"), base)
    assert (error.field, error.message) == ("data", "mode 'replace' trains on the new rows alone: send data")


def test_a_warm_start_keeps_the_network_shape(base):
    error = refused(RetrainRequest(warm_start=True, hyperparameters={"hidden_layer_sizes": [4, 4]}), base)
    assert error.field == "hidden_sizes" and "[16]" in error.message and "[4, 4]" in error.message
    assert validated(RetrainRequest(warm_start=True, hyperparameters={"hidden_layer_sizes": [16]}), base, LIMITS)


def test_the_limits_name_the_hyperparameters(base):
    error = refused(RetrainRequest(hyperparameters={"hidden_layer_sizes": [200, 200]}), base)
    assert error.field == "hyperparameters" and "NNSERVE_MAX_PARAMETERS" in error.message
    error = refused(RetrainRequest(), base, rows=10**12)  # the worker's count of the rows it would train on
    assert "NNSERVE_MAX_TRAINING_WORK" in error.message
