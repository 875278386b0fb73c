"""Predictions reach the prediction log through the v1 and v2 routes, with the request id a client quotes."""

from __future__ import annotations

import numpy as np
import pytest

from service.server.current import recorder
from service.store import FileModelStore
from service.store.monitoring import DATABASE, SqlitePredictionLog


def logged_rows(app, root):
    with app.app_context():
        recorder().flush()
    return SqlitePredictionLog(root).recent("iris", 100)


@pytest.fixture
def logging_app(make_app, tiny_catalog_copy):
    return make_app(tiny_catalog_copy, NNSERVE_LOG_SAMPLE_RATE=1.0)


def test_v1_logs_every_row_and_returns_the_request_id(logging_app, tiny_catalog_copy, tiny_catalog_store):
    rows = tiny_catalog_store.models["iris"].rows[:2]
    response = logging_app.test_client().post("/v1/models/iris/predict", json={"instances": rows.tolist()})
    body = response.get_json()
    assert body["request_id"] == response.headers["X-Request-ID"]
    logged = sorted(logged_rows(logging_app, tiny_catalog_copy), key=lambda r: r.row)
    assert [(r.request_id, r.row, r.version) for r in logged] == [
        (body["request_id"], 0, 1),
        (body["request_id"], 1, 1),
    ]
    assert [r.inputs for r in logged] == rows.tolist()
    assert [r.output for r in logged] == body["predictions"]
    assert np.allclose([r.probabilities for r in logged], body["probabilities"], atol=1e-6)


def test_a_client_request_id_is_the_logged_one(logging_app, tiny_catalog_copy, tiny_catalog_store):
    rows = tiny_catalog_store.models["iris"].rows[:1].tolist()
    headers = {"X-Request-ID": "order-4711"}
    body = logging_app.test_client().post("/v1/models/iris/predict", json={"instances": rows}, headers=headers)
    assert body.get_json()["request_id"] == "order-4711"
    assert [r.request_id for r in logged_rows(logging_app, tiny_catalog_copy)] == ["order-4711"]


def test_v2_infer_is_logged_under_its_x_request_id(logging_app, tiny_catalog_copy, tiny_catalog_store):
    rows = tiny_catalog_store.models["iris"].rows[:1]
    tensor = {"name": "input", "shape": list(rows.shape), "datatype": "FP64", "data": rows.ravel().tolist()}
    response = logging_app.test_client().post("/v2/models/iris/infer", json={"inputs": [tensor]})
    assert response.status_code == 200
    logged = logged_rows(logging_app, tiny_catalog_copy)
    assert [(r.request_id, r.version) for r in logged] == [(response.headers["X-Request-ID"], 1)]


def test_nothing_is_logged_or_created_unless_asked(make_app, tiny_catalog_copy, tiny_catalog_store):
    app = make_app(tiny_catalog_copy)  # no setting, and the versions' manifests have no [monitoring]
    rows = tiny_catalog_store.models["iris"].rows[:1].tolist()
    body = app.test_client().post("/v1/models/iris/predict", json={"instances": rows}).get_json()
    assert "request_id" not in body
    assert not (tiny_catalog_copy / DATABASE).exists()


def test_a_version_that_asks_for_it_is_logged(make_app, tiny_catalog_copy, tiny_catalog_store):
    store = FileModelStore(tiny_catalog_copy)
    estimator = store.load("iris", 1).estimator
    version = store.publish("iris", estimator, {"task": "classification", "monitoring": {"sample_rate": 1.0}})
    store.activate("iris", version)
    app = make_app(tiny_catalog_copy)
    rows = tiny_catalog_store.models["iris"].rows[:1].tolist()
    body = app.test_client().post("/v1/models/iris/predict", json={"instances": rows}).get_json()
    assert body["version"] == version and "request_id" in body
    assert [r.version for r in logged_rows(app, tiny_catalog_copy)] == [version]
