"""Regression targets that can be learned from (issue 21, item 6): finite and inside the model's accepted range,
for feedback and retrain data alike; anything else is a 422 naming the item, and nothing is labelled or queued."""

from __future__ import annotations

import pytest

from service.server.v1.targets import LEGACY_BOUND, accepted_range
from service.store import FileModelStore
from service.store.monitoring import SqlitePredictionLog
from service.training.sqlite_queue import SqliteJobQueue


def test_the_accepted_range_is_the_specs_else_the_training_range_widened_else_the_legacy_bound() -> None:
    assert accepted_range({"target_range": [25.0, 346.0]}) == (25.0 - 321.0, 346.0 + 321.0)
    assert accepted_range({"target_range": [25.0, 346.0], "monitoring": {"target_range": [0.0, 400.0]}}) == (0, 400)
    assert accepted_range({"target_range": [3.0, 3.0]}) == (2.0, 4.0)  # one value seen: still some room
    assert accepted_range({"monitoring": {"sample_rate": 1.0}}) == (-LEGACY_BOUND, LEGACY_BOUND)


@pytest.fixture
def diabetes(make_app, tiny_catalog_copy):
    """The session store's diabetes model with a version 2 that records its training targets' range, active."""
    store = FileModelStore(tiny_catalog_copy)
    estimator = store.load("diabetes", 1).estimator
    store.activate("diabetes", store.publish("diabetes", estimator, {"task": "regression", "target_range": [25, 346]}))
    return make_app(tiny_catalog_copy, NNSERVE_LOG_SAMPLE_RATE=1.0), store


def _predict(client, rows: int = 4) -> str:
    response = client.post("/v1/models/diabetes/predict", json={"instances": [[0.0] * 10] * rows})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["request_id"]


@pytest.mark.parametrize(
    ("target", "ok"),
    [(-296.0, True), (667.0, True), (150, True), (-296.5, False), (667.5, False), (1e308, False), (-1e308, False)],
)
def test_feedback_takes_a_target_inside_the_widened_training_range_only(
    diabetes, assert_error, admin_headers, target, ok
) -> None:
    app, store = diabetes
    client = app.test_client()
    rid = _predict(client)
    body = {"feedback": [{"request_id": rid, "target": 100.0}, {"request_id": rid, "row": 1, "target": target}]}
    response = client.post("/v1/models/diabetes/feedback", json=body, headers=admin_headers)
    labelled = SqlitePredictionLog(store.root).recent("diabetes", 10, labelled=True)
    if ok:
        assert response.status_code == 200 and response.get_json()["accepted"] == 2, response.get_json()
        assert len(labelled) == 2
        return
    assert_error(response, 422, "invalid feedback[1].target:", "targets of model 'diabetes' are from -296 to 667")
    assert labelled == []  # the first, good item is not kept either: the call changed nothing


def test_a_version_without_a_recorded_range_takes_finite_targets_up_to_the_legacy_bound(
    make_app, tiny_catalog_copy, assert_error, admin_headers
) -> None:
    client = make_app(tiny_catalog_copy, NNSERVE_LOG_SAMPLE_RATE=1.0).test_client()  # version 1: no range kept
    rid = _predict(client)
    accepted = client.post(
        "/v1/models/diabetes/feedback", json={"feedback": [{"request_id": rid, "target": 5e11}]}, headers=admin_headers
    )
    assert accepted.status_code == 200 and accepted.get_json()["accepted"] == 1
    body = {"feedback": [{"request_id": rid, "row": 1, "target": 1e308}]}
    response = client.post("/v1/models/diabetes/feedback", json=body, headers=admin_headers)
    assert_error(response, 422, "invalid feedback[0].target:", "are from -1e+12 to 1e+12; got 1e+308")


def test_the_specs_target_range_wins(make_app, tiny_catalog_copy, assert_error, admin_headers) -> None:
    store = FileModelStore(tiny_catalog_copy)
    manifest = {"task": "regression", "target_range": [25, 346], "monitoring": {"target_range": [0, 400]}}
    store.activate("diabetes", store.publish("diabetes", store.load("diabetes", 1).estimator, manifest))
    client = make_app(tiny_catalog_copy, NNSERVE_LOG_SAMPLE_RATE=1.0).test_client()
    rid = _predict(client)
    body = {"feedback": [{"request_id": rid, "target": 400}, {"request_id": rid, "row": 1, "target": -1}]}
    response = client.post("/v1/models/diabetes/feedback", json=body, headers=admin_headers)
    assert_error(response, 422, "invalid feedback[1].target:", "are from 0 to 400; got -1")


def test_retrain_data_follows_the_same_rule(diabetes, admin_headers, assert_error) -> None:
    app, store = diabetes
    rows = [[0.0] * 10] * 3
    body = {"data": {"instances": rows, "targets": [100.0, 1e308, 50.0]}}
    response = app.test_client().post("/v1/models/diabetes/retrain", json=body, headers=admin_headers)
    assert_error(response, 422, "invalid targets: row 1: targets of model 'diabetes' are from -296 to 667; got 1e+308")
    assert SqliteJobQueue(store.root).list_jobs("diabetes")[1] == 0  # nothing queued


def test_retrain_rows_follow_the_input_rule_of_predictions(diabetes, admin_headers, assert_error) -> None:
    """A value beyond the numbers the model computes with (FP32) is refused as a prediction's is
    (``DataPlane.check_values``): it would train on infinity."""
    app, store = diabetes
    rows = [[0.0] * 10, [1e300] + [0.0] * 9, [0.0] * 10]
    body = {"data": {"instances": rows, "targets": [100.0, 150.0, 50.0]}}
    response = app.test_client().post("/v1/models/diabetes/retrain", json=body, headers=admin_headers)
    assert_error(
        response,
        422,
        "invalid instances: the data holds 1e+300 at index [1, 0], beyond the range of the FP32 numbers model "
        "'diabetes' computes with",
    )
    assert SqliteJobQueue(store.root).list_jobs("diabetes")[1] == 0  # nothing queued
