"""GET /v1/models/{name}/monitoring: live metrics per version from labelled predictions, over a window, as the
retraining worker's pass computed them (``monitoring_pass`` runs it in the test), never computed by the read."""

from __future__ import annotations

import time
from datetime import datetime

import numpy as np
import pytest
from helpers import monitoring_pass, read_catalog_csv

from service import telemetry
from service.store import Dataset, FileModelStore
from service.store.monitoring import SqlitePredictionLog
from service.training.fitting import publish, train


def admin(client) -> dict[str, str]:
    """The admin token's header: labels from a key, the only ones a spec trusts by default."""
    return {"Authorization": f"Bearer {client.application.config['NNSERVE_ADMIN_TOKEN']}"}


@pytest.fixture
def logging_app(make_app, tiny_catalog_copy):
    return make_app(tiny_catalog_copy, NNSERVE_LOG_SAMPLE_RATE=1.0)


def label_all(client, model, rows, truth, version=None):
    """Predict each row (pinned to ``version`` when given), label it with ``truth``; the predictions."""
    url = f"/v1/models/{model}/predict" if version is None else f"/v1/models/{model}/versions/{version}/predict"
    predictions = []
    for x, y in zip(rows, truth, strict=True):
        body = client.post(url, json={"instances": [list(map(float, x))]}).get_json()
        predictions.append(body["predictions"][0])
        feedback = {"feedback": [{"request_id": body["request_id"], "target": y}]}
        assert (
            client.post(f"/v1/models/{model}/feedback", json=feedback, headers=admin(client)).get_json()["accepted"]
            == 1
        )
    return predictions


def test_classifier_accuracy_per_version_with_its_count(logging_app, tiny_catalog_store):
    client = logging_app.test_client()
    rows = tiny_catalog_store.models["iris"].rows
    truth = ["setosa", "versicolor", "virginica", "setosa", "versicolor", "virginica"][: len(rows)]
    predicted = label_all(client, "iris", rows, truth)
    label_all(client, "iris", rows[:2], truth[:2], version=2)
    client.post("/v1/models/iris/predict", json={"instances": rows[:1].tolist()})  # logged, never labelled
    before = time.time()
    monitoring_pass(logging_app)
    body = client.get("/v1/models/iris/monitoring").get_json()
    assert body["model"] == "iris" and body["active_version"] == 1 and body["window"] == 1000
    assert datetime.fromisoformat(body["computed_at"]).timestamp() >= before and body["reason"] is None
    one, two = sorted(body["versions"], key=lambda v: v["version"])
    assert (one["version"], one["active"], one["rows"], one["labelled"]) == (1, True, len(rows) + 1, len(rows))
    expected = np.mean([p == t for p, t in zip(predicted, truth, strict=True)])
    assert one["metrics"]["accuracy"] == pytest.approx(expected)
    assert one["metrics"]["log_loss"] > 0
    assert (two["version"], two["active"], two["labelled"]) == (2, False, 2)
    gauge = telemetry.REGISTRY.get_sample_value(
        "nnserve_live_metric", {"model": "iris", "version": "1", "metric": "accuracy"}
    )
    assert gauge == pytest.approx(expected)


def test_the_window_bounds_the_rows(logging_app, tiny_catalog_store):
    client = logging_app.test_client()
    rows = tiny_catalog_store.models["iris"].rows
    label_all(client, "iris", rows, ["setosa"] * len(rows))
    monitoring_pass(logging_app)
    asked = client.get("/v1/models/iris/monitoring?window=3").get_json()  # neither the default nor the largest
    assert (asked["window"], asked["computed_at"], asked["versions"]) == (3, None, [])
    assert asked["reason"].startswith("not computed yet: the retraining worker computes")
    monitoring_pass(logging_app)  # the next pass computes it
    version = client.get("/v1/models/iris/monitoring?window=3").get_json()["versions"][0]
    assert (version["rows"], version["labelled"]) == (3, 3)


def test_regressor_errors(logging_app, tiny_catalog_store):
    client = logging_app.test_client()
    rows = tiny_catalog_store.models["diabetes"].rows[:4]
    truth = [100.0, 150.0, 200.0, 250.0]
    predicted = np.array(label_all(client, "diabetes", rows, truth))
    monitoring_pass(logging_app)
    metrics = client.get("/v1/models/diabetes/monitoring").get_json()["versions"][0]["metrics"]
    assert metrics["mae"] == pytest.approx(np.mean(np.abs(predicted - truth)))
    assert metrics["rmse"] == pytest.approx(np.sqrt(np.mean((predicted - truth) ** 2)))
    assert set(metrics) == {"mae", "rmse", "r2"}


def test_no_log_yet_and_unknown_model(logging_app, assert_error):
    client = logging_app.test_client()
    nothing = client.get("/v1/models/iris/monitoring").get_json()  # no pass yet: no figures, and why
    assert (nothing["active_version"], nothing["computed_at"], nothing["versions"]) == (1, None, [])
    assert "NNSERVE_POLICY_INTERVAL" in nothing["reason"]
    monitoring_pass(logging_app)
    body = client.get("/v1/models/iris/monitoring").get_json()
    (version,) = body["versions"]
    assert (version["version"], version["rows"], version["labelled"], version["metrics"]) == (1, 0, 0, {})
    assert version["drift"]["available"] is False
    assert "published before reference statistics were recorded" in version["drift"]["reason"]
    assert_error(client.get("/v1/models/nope/monitoring"), 404, "nope")
    assert client.get("/v1/models/iris/monitoring?window=0").status_code == 422


def test_drift_of_shifted_inputs_against_the_training_data(make_app, tiny_catalog_copy):
    X, y, names = read_catalog_csv("iris")
    store = FileModelStore(tiny_catalog_copy)
    result = train(
        "classification", {"hidden_layer_sizes": (8,), "max_iter": 50, "random_state": 0}, Dataset(X, y, names)
    )
    version = publish(store, "iris", result)  # active, with reference statistics
    every_row = {"NNSERVE_LOG_SAMPLE_RATE": 1.0, "NNSERVE_LOG_MAX_ROWS_PER_REQUEST": len(X)}
    client = make_app(tiny_catalog_copy, **every_row).test_client()
    assert client.post("/v1/models/iris/predict", json={"instances": X.tolist()}).status_code == 200
    app = client.application
    monitoring_pass(app)
    same = client.get("/v1/models/iris/monitoring").get_json()["versions"][0]
    assert same["version"] == version and same["drift"]["available"] and same["drift"]["rows"] == len(X)
    assert max(f["psi"] for f in same["drift"]["features"]) < 1e-9  # the training rows themselves: no drift
    assert same["drift"]["predictions"] < 1e-9

    shifted = X.copy()
    shifted[:, 2] += 2.0  # petal_length
    assert client.post("/v1/models/iris/predict", json={"instances": shifted.tolist()}).status_code == 200
    client.get(f"/v1/models/iris/monitoring?window={len(X)}")  # asks for that window
    monitoring_pass(app)
    moved = client.get(f"/v1/models/iris/monitoring?window={len(X)}").get_json()["versions"][0]["drift"]
    psi = {f["name"]: f["psi"] for f in moved["features"]}
    assert [f["name"] for f in moved["features"]] == names
    assert psi["petal_length"] > 0.25 and psi["sepal_length"] < 1e-9
    gauge = telemetry.REGISTRY.get_sample_value(
        "nnserve_drift_psi", {"model": "iris", "version": str(version), "feature": "petal_length"}
    )
    default = client.get("/v1/models/iris/monitoring").get_json()["versions"][0]["drift"]["features"]
    assert gauge == pytest.approx(default[2]["psi"]) and 0 < gauge < psi["petal_length"]  # the default window's


def test_reading_a_store_where_nothing_was_logged_creates_nothing(make_app, tiny_catalog_copy):
    client = make_app(tiny_catalog_copy).test_client()  # logging off
    before = sorted(p.name for p in tiny_catalog_copy.iterdir())
    client.post("/v1/models/iris/predict", json={"instances": [[5.1, 3.5, 1.4, 0.2]]})
    monitoring = client.get("/v1/models/iris/monitoring")
    assert monitoring.status_code == 200 and monitoring.get_json()["computed_at"] is None  # no worker: no figures
    unlogged = client.post("/v1/models/iris/feedback", json={"feedback": [{"request_id": "nope", "target": "setosa"}]},
                           headers=admin(client))  # fmt: skip
    assert unlogged.status_code == 200 and unlogged.get_json()["accepted"] == 0
    after = sorted(p.name for p in tiny_catalog_copy.iterdir() if not p.name.startswith(".audit.sqlite3"))
    assert after == before  # no .predictions.sqlite3, no lock (the feedback call itself is audited)


def test_monitoring_counts_the_labelled_rows_each_source_gave(logging_app, tiny_catalog_store):
    client = logging_app.test_client()
    rows = tiny_catalog_store.models["iris"].rows[:3].tolist()
    answers = [client.post("/v1/models/iris/predict", json={"instances": [r]}).get_json() for r in rows]
    by_key = {"feedback": [{"request_id": a["request_id"], "target": "setosa"} for a in answers[:2]]}
    assert client.post("/v1/models/iris/feedback", json=by_key, headers=admin(client)).get_json()["accepted"] == 2
    token = {"request_id": answers[2]["request_id"], "target": "setosa", "feedback_token": answers[2]["feedback_token"]}
    assert client.post("/v1/models/iris/feedback", json={"feedback": [token]}).get_json()["accepted"] == 1
    assert client.get("/v1/models/iris/monitoring").get_json()["labels"] == []  # no pass of the worker yet
    monitoring_pass(logging_app)
    body = client.get("/v1/models/iris/monitoring").get_json()
    assert body["labels"] == [
        {"source": "key", "key": "bootstrap", "rows": 2},
        {"source": "token", "key": None, "rows": 1},
    ]
    (version,) = body["versions"]
    assert version["labelled"] == 2  # the spec trusts keys only: the token's label is not in the live metrics


class CountingLog(SqlitePredictionLog):
    """The real SQLite log, counting the rows its reads return (a label count: one per source and key)."""

    rows_read = 0

    def recent(self, *args, **kwargs):
        found = super().recent(*args, **kwargs)
        CountingLog.rows_read += len(found)
        return found

    def label_counts(self, model):
        found = super().label_counts(model)
        CountingLog.rows_read += max(len(found), 1)
        return found


def test_a_read_at_the_largest_window_reads_no_row_of_the_log(make_app, tiny_catalog_copy, monkeypatch):
    """The work of one call is bounded whatever the log holds: a snapshot is read, the log never is."""
    monkeypatch.setattr("service.server.app.open_prediction_log", lambda root, url, max_bytes: CountingLog(root))
    settings = {"NNSERVE_LOG_SAMPLE_RATE": 1.0, "NNSERVE_LOG_MAX_ROWS_PER_REQUEST": 450}  # every row logged
    app = make_app(tiny_catalog_copy, **settings, NNSERVE_MONITOR_MAX_WINDOW=5000)
    client = app.test_client()
    X, _, _ = read_catalog_csv("iris")
    for _ in range(10):
        assert (
            client.post("/v1/models/iris/predict", json={"instances": np.tile(X, (3, 1)).tolist()}).status_code == 200
        )
    monitoring_pass(app)
    assert CountingLog.rows_read >= 4500  # the pass read the log (at the largest window)
    CountingLog.rows_read = 0
    for window in ("", "?window=5000", "?window=20", "?window=1000"):
        assert client.get(f"/v1/models/iris/monitoring{window}").status_code == 200
    assert CountingLog.rows_read == 0
    body = client.get("/v1/models/iris/monitoring?window=5000").get_json()
    assert body["computed_at"] is not None and body["versions"][0]["rows"] == 4500


def test_window_is_capped_by_configuration_and_asked_windows_per_model_too(make_app, tiny_catalog_copy, assert_error):
    app = make_app(tiny_catalog_copy, NNSERVE_MONITOR_MAX_WINDOW=500, NNSERVE_MONITOR_WINDOWS=4)
    client = app.test_client()
    refused = client.get("/v1/models/iris/monitoring?window=501")
    assert_error(refused, 422, "NNSERVE_MONITOR_MAX_WINDOW")
    assert refused.get_json()["errors"] == {"window": ["Must be at most 500 (NNSERVE_MONITOR_MAX_WINDOW)."]}
    assert client.get("/v1/models/iris/monitoring?window=500").status_code == 200
    monitoring_pass(app)  # writes the default (1000, larger than the cap: the server's own) and 500
    for window in (7, 8):  # two more asked: 4 windows
        assert (
            client.get(f"/v1/models/iris/monitoring?window={window}")
            .get_json()["reason"]
            .startswith("not computed yet")
        )
    full = client.get("/v1/models/iris/monitoring?window=9").get_json()
    assert full["versions"] == [] and full["reason"].endswith("ask for one of 7, 8, 500, 1000")
    monitoring_pass(app)
    assert [v["version"] for v in client.get("/v1/models/iris/monitoring?window=8").get_json()["versions"]] == [1]


def test_the_answer_counts_the_rows_the_log_does_not_hold_by_reason(make_app, tiny_catalog_copy):
    """Read at the call (cheap: the counters' files), not from the worker's snapshot: a drop shows at once."""
    app = make_app(tiny_catalog_copy, NNSERVE_LOG_SAMPLE_RATE=1.0, NNSERVE_LOG_MAX_ROWS_PER_REQUEST=2)
    client = app.test_client()
    reasons = {"per_request", "buffer_rows", "buffer_bytes", "error", "disk"}
    model = "breast_cancer"  # no other test drops its rows: the counters are the process's
    metrics = client.get("/metrics").get_data(as_text=True)
    for reason in reasons:  # shown from the start, before anything was dropped
        assert f'nnserve_prediction_log_dropped_total{{model="{model}",reason="{reason}"}}' in metrics
    before = client.get(f"/v1/models/{model}/monitoring").get_json()
    assert set(before["dropped"]) == reasons
    rows = read_catalog_csv(model)[0][:5].tolist()
    body = client.post(f"/v1/models/{model}/predict", json={"instances": rows}).get_json()
    after = client.get(f"/v1/models/{model}/monitoring").get_json()
    assert after["dropped"]["per_request"] - before["dropped"]["per_request"] == 3  # 2 of the 5 rows kept
    assert {r: after["dropped"][r] - before["dropped"][r] for r in reasons - {"per_request"}} == dict.fromkeys(
        reasons - {"per_request"}, 0
    )
    assert len(body["predictions"]) == 5  # the client still gets every row's answer
    monitoring_pass(app)
    (version,) = client.get(f"/v1/models/{model}/monitoring").get_json()["versions"]
    assert version["rows"] == 2
