"""Metrics and request logs through Flask's test client (single-process mode: a plain in-process registry).

The registry is global to the process, so every check is a difference:
the value after the requests minus the value before.
"""

import io
import json
import logging
import time

import pytest
from helpers import REPO
from prometheus_client.parser import text_string_to_metric_families

from service import create_app, logs
from service.server.registry import share
from service.store import FileModelStore, Rollout
from service.training.catalog import load_spec
from service.training.fitting import publish, train_spec
from service.training.worker import Worker

TOKEN = "metrics-admin-token-7e51c0d2"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
PREDICT = "/v1/models/<name>/predict"
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
FAMILIES = {
    "nnserve_requests": "counter",
    "nnserve_request_duration_seconds": "histogram",
    "nnserve_prediction_rows": "counter",
    "nnserve_model_active_version": "gauge",
    "nnserve_rollout_candidate": "gauge",
    "nnserve_model_load_failures": "counter",
    "nnserve_retrain_jobs": "counter",
    "nnserve_training_duration_seconds": "histogram",
}


@pytest.fixture(scope="module")
def base_store(tmp_path_factory):
    """iris version 1 (active) and version 2 (not active), trained from the catalog spec with its dataset."""
    root = tmp_path_factory.mktemp("metrics") / "store"
    store = FileModelStore(root)
    spec = load_spec(REPO / "models" / "iris.toml")
    for seed, activate in ((0, True), (1, False)):
        _, result = train_spec(spec, {"epochs": 5, "seed": seed})
        publish(store, spec.name, result, description=spec.description, target=spec.target, activate=activate)
    return root


@pytest.fixture
def store_root(base_store, store_copy):
    return store_copy(base_store)


def make_app(store_root):
    return create_app(
        {"NNSERVE_STORE": str(store_root), "NNSERVE_ADMIN_TOKEN": TOKEN, "NNSERVE_RELOAD_INTERVAL": 0, "TESTING": True}
    )


@pytest.fixture
def client(store_root):
    return make_app(store_root).test_client()


def scrape(client):
    """{(sample name, sorted label items): value} of one /metrics answer, parsed by prometheus-client's parser."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def requests_total(samples, endpoint, model, version, status):
    return value(samples, "nnserve_requests_total", endpoint=endpoint, model=model, version=version, status=status)


# -- /metrics ------------------------------------------------------------------------------------------------------


def test_metrics_is_prometheus_text_with_every_nnserve_family(client):
    client.post("/v1/models/iris/predict", json={"instances": ROWS[:1]})
    response = client.get("/metrics")
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f.type for f in text_string_to_metric_families(response.get_data(as_text=True))}
    assert {name: families.get(name) for name in FAMILIES} == FAMILIES


def test_metrics_is_left_out_of_the_openapi_document(client):
    assert "/metrics" not in client.get("/openapi.json").get_json()["paths"]


# -- counters move by exactly what was asked -----------------------------------------------------------------------


def test_predictions_count_requests_rows_and_durations_exactly(client):
    before = scrape(client)
    for i in range(7):
        r = client.post("/v1/models/iris/predict", json={"instances": ROWS}, headers={"X-Request-ID": f"m-{i}"})
        assert r.status_code == 200 and r.get_json()["version"] == 1
    for _ in range(2):
        assert client.post("/v1/models/iris/versions/2/predict", json={"instances": ROWS[:2]}).status_code == 200
    infer = {"inputs": [{"name": "input", "shape": [3, 4], "datatype": "FP64", "data": ROWS}]}
    assert client.post("/v2/models/iris/infer", json=infer).status_code == 200
    after = scrape(client)

    assert requests_total(after, PREDICT, "iris", "1", "200") - requests_total(before, PREDICT, "iris", "1", "200") == 7
    pinned = "/v1/models/<name>/versions/<version>/predict"
    assert requests_total(after, pinned, "iris", "2", "200") - requests_total(before, pinned, "iris", "2", "200") == 2
    v2 = "/v2/models/<name>/infer"
    assert requests_total(after, v2, "iris", "1", "200") - requests_total(before, v2, "iris", "1", "200") == 1
    rows = "nnserve_prediction_rows_total"
    assert value(after, rows, model="iris", version="1") - value(before, rows, model="iris", version="1") == 7 * 3 + 3
    assert value(after, rows, model="iris", version="2") - value(before, rows, model="iris", version="2") == 2 * 2
    count = "nnserve_request_duration_seconds_count"
    assert value(after, count, endpoint=PREDICT) - value(before, count, endpoint=PREDICT) == 7
    total = "nnserve_request_duration_seconds_sum"
    assert 0 < value(after, total, endpoint=PREDICT) - value(before, total, endpoint=PREDICT) < 7 * 5


def test_failed_requests_are_counted_by_status_with_bounded_labels(client):
    before = scrape(client)
    assert client.post("/v1/models/no-such-model-8c1/predict", json={"instances": ROWS}).status_code == 404
    assert client.post("/v1/models/iris/predict", json={"instances": [[1.0, 2.0]]}).status_code == 422
    assert client.post("/v1/models/iris/predict", json={"instances": []}).status_code == 422
    assert client.get("/no/such/path/4d2").status_code == 404
    after = scrape(client)

    def delta(*labels):
        return requests_total(after, *labels) - requests_total(before, *labels)

    assert delta(PREDICT, "", "", "404") == 1  # an unknown name never becomes a label value
    assert delta(PREDICT, "iris", "1", "422") == 1  # the model was resolved, then the rows refused
    assert delta(PREDICT, "iris", "", "422") == 1  # refused by the schema, before a version was resolved
    assert delta("<unmatched>", "", "", "404") == 1  # the raw path never becomes a label value
    labels = {dict(key[1]).get("model") for key in after} | {dict(key[1]).get("endpoint") for key in after}
    assert not any("no-such-model" in str(v) or "/no/such/path" in str(v) for v in labels)
    rows = "nnserve_prediction_rows_total"
    assert value(after, rows, model="iris", version="1") == value(before, rows, model="iris", version="1")


# -- model loading -------------------------------------------------------------------------------------------------


def test_active_version_gauge_follows_activation_forward_and_back(client):
    gauge = "nnserve_model_active_version"
    assert value(scrape(client), gauge, model="iris") == 1
    assert client.post("/v1/models/iris/versions/2/activate", headers=ADMIN).status_code == 200
    assert value(scrape(client), gauge, model="iris") == 2
    assert client.post("/v1/models/iris/versions/1/activate", headers=ADMIN).status_code == 200
    assert value(scrape(client), gauge, model="iris") == 1


def test_rollout_gauge_names_the_candidate_while_it_runs_and_requests_count_who_answered(client, store_root):
    gauge = "nnserve_rollout_candidate"
    assert value(scrape(client), gauge, model="iris", mode="canary") == 0
    store = FileModelStore(store_root)
    canary = Rollout("canary", 2, 1, 0.5, 100, 600.0, time.time())
    store.start_rollout("iris", canary)
    before = scrape(client)
    ids = [f"request-{i}" for i in range(40)]
    for request_id in ids:
        client.post("/v1/models/iris/predict", json={"instances": ROWS[:1]}, headers={"X-Request-ID": request_id})
    samples = scrape(client)
    assert value(samples, gauge, model="iris", mode="canary") == 2
    assert value(samples, gauge, model="iris", mode="shadow") == 0
    routed = sum(share(i) < 0.5 for i in ids)
    for version, answered in (("2", routed), ("1", len(ids) - routed)):
        count = requests_total(samples, PREDICT, "iris", version, "200")
        assert count - requests_total(before, PREDICT, "iris", version, "200") == answered
    store.end_rollout("iris", canary.ended("rolled_back", "test", time.time()))
    client.post("/v1/models/iris/predict", json={"instances": ROWS[:1]})
    assert value(scrape(client), gauge, model="iris", mode="canary") == 0


def test_a_version_that_fails_to_load_is_counted_once(client, store_root):
    failures = "nnserve_model_load_failures_total"
    before = value(scrape(client), failures)
    # verified and activated, then broken on disk before a worker loads it
    FileModelStore(store_root).activate("iris", 2)
    weights = store_root / "iris" / "2" / "weights.npz"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    for _ in range(3):  # the first request sees the new ACTIVE and fails to load it; all keep version 1
        r = client.post("/v1/models/iris/predict", json={"instances": ROWS[:1]})
        assert r.status_code == 200 and r.get_json()["version"] == 1
    after = scrape(client)
    assert value(after, failures) - before == 1
    assert value(after, "nnserve_model_active_version", model="iris") == 1


# -- retraining ----------------------------------------------------------------------------------------------------


def test_retrain_jobs_are_counted_by_final_status_and_training_is_timed(client, store_root):
    before = scrape(client)
    done = client.post(
        "/v1/models/iris/retrain", json={"promote": "never", "hyperparameters": {"epochs": 3}}, headers=ADMIN
    )
    assert done.status_code == 202
    assert Worker(store_root).run_once()
    assert client.get(f"/v1/jobs/{done.get_json()['id']}").get_json()["status"] == "succeeded"
    queued = client.post("/v1/models/iris/retrain", json={"hyperparameters": {"epochs": 3}}, headers=ADMIN)
    assert client.delete(f"/v1/jobs/{queued.get_json()['id']}", headers=ADMIN).get_json()["status"] == "cancelled"
    after = scrape(client)

    jobs = "nnserve_retrain_jobs_total"
    assert value(after, jobs, status="succeeded") - value(before, jobs, status="succeeded") == 1
    assert value(after, jobs, status="cancelled") - value(before, jobs, status="cancelled") == 1
    assert value(after, jobs, status="failed") == value(before, jobs, status="failed")
    count = "nnserve_training_duration_seconds_count"
    assert value(after, count) - value(before, count) == 1
    assert value(after, "nnserve_training_duration_seconds_sum") > value(
        before, "nnserve_training_duration_seconds_sum"
    )


# -- JSON request logs ---------------------------------------------------------------------------------------------


@pytest.fixture
def log_lines():
    """Every log line written while the test runs, through nnserve's real JSON handler; a function returning them."""
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = logs.configure("info", stream)
    try:
        yield lambda: stream.getvalue().splitlines()
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def test_every_request_writes_one_json_line_with_its_fields(client, log_lines):
    r = client.post("/v1/models/iris/predict", json={"instances": ROWS}, headers={"X-Request-ID": "trace-42.a"})
    assert r.status_code == 200 and r.headers["X-Request-ID"] == "trace-42.a"
    generated = client.get("/v1/models/nope").headers["X-Request-ID"]
    lines = log_lines()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    access = [rec for rec in records if rec["logger"] == "nnserve.access"]
    assert len(access) == 2
    ok, missing = access
    assert ok["request_id"] == "trace-42.a"
    assert (ok["method"], ok["path"], ok["endpoint"]) == ("POST", "/v1/models/iris/predict", PREDICT)
    assert (ok["model"], ok["version"], ok["status"]) == ("iris", 1, 200)
    assert isinstance(ok["duration_ms"], float) and 0 < ok["duration_ms"] < 5000
    assert ok["level"] == "INFO" and ok["timestamp"] and ok["message"] == "POST /v1/models/iris/predict 200"
    assert missing["request_id"] == generated
    assert (missing["method"], missing["path"], missing["status"], missing["model"], missing["version"]) == (
        "GET",
        "/v1/models/nope",
        404,
        "",
        None,
    )


def test_the_admin_token_never_reaches_the_logs(client, store_root, log_lines):
    wrong = {"Authorization": f"Bearer {TOKEN}x"}
    assert client.post("/v1/models/iris/versions/2/activate", headers=ADMIN).status_code == 200
    assert client.post("/v1/models/iris/versions/1/activate", headers=wrong).status_code == 401
    assert client.post("/v1/models/iris/versions/1/activate", headers={"Authorization": TOKEN}).status_code == 401
    r = client.post("/v1/models/iris/retrain", json={"hyperparameters": {"epochs": 2}}, headers=ADMIN)
    assert r.status_code == 202
    assert client.get(f"/v1/jobs?token={TOKEN}", headers=ADMIN).status_code == 422  # an unknown argument
    assert Worker(store_root).run_once()
    lines = log_lines()
    assert len([line for line in lines if '"nnserve.access"' in line]) == 5
    assert any("job " in json.loads(line)["message"] for line in lines)  # the worker logged too
    for line in lines:
        json.loads(line)
        assert TOKEN not in line and "Bearer" not in line and "Authorization" not in line, line
