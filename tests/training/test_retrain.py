"""Retraining (issue 5) through the v1 API with Flask's test client and an in-process worker.

One store (iris, digits, diabetes, 20 epochs each) is trained per session by
the real CLI; every test works on its own copy. Jobs are run by
``Worker(store).run_once()`` in the test's process, or in a thread when a test
needs to act while a job runs (cancel a running job).
"""

import re
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import read_catalog_csv

from service import create_app
from service.store import FileModelStore
from service.training.sqlite_queue import SqliteJobQueue
from service.training.worker import Worker

pytestmark = pytest.mark.slow  # real retraining runs through the worker: left out of `make test-fast`

TOKEN = "retrain-test-token-81c2"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


def csv_rows(name):
    X, y, _ = read_catalog_csv(name)
    return X.tolist(), y.tolist()


@pytest.fixture
def store_root(trained_store, store_copy):
    """This test's copy of iris, digits and diabetes trained for 20 epochs by the CLI (once per session)."""
    return store_copy(trained_store("iris", "digits", "diabetes", epochs=20))


@pytest.fixture
def client(store_root):
    config = {
        "NNSERVE_STORE": str(store_root),
        "NNSERVE_ADMIN_TOKEN": TOKEN,
        "NNSERVE_RELOAD_INTERVAL": 0,
        "TESTING": True,
    }
    return create_app(config).test_client()


def retrain(client, model, body=None, status=202):
    r = client.post(f"/v1/models/{model}/retrain", json=body or {}, headers=ADMIN)
    assert r.status_code == status, r.get_json()
    return r.get_json()


def job(client, job_id):
    """The job as an admin sees it (everything)."""
    r = client.get(f"/v1/jobs/{job_id}", headers=ADMIN)
    assert r.status_code == 200
    return r.get_json()


def run_all(store_root):
    worker = Worker(store_root)
    n = 0
    while worker.run_once():
        n += 1
    return n


def active(store_root, name):
    return FileModelStore(store_root).active_version(name)


def versions(store_root, name):
    return FileModelStore(store_root).versions(name)


def iris_slice():
    X, y = csv_rows("iris")
    # every 3rd row: 50 rows, all three species
    return X[::3], y[::3]


# --- the happy paths -------------------------------------------------------------------------------


def test_job_shape_and_location(client, store_root):
    sent = {"epochs": 5, "learning_rate": 0.01, "hidden_sizes": [6]}
    r = client.post("/v1/models/iris/retrain", json={"hyperparameters": sent}, headers=ADMIN)
    assert r.status_code == 202
    queued = r.get_json()
    assert queued["request"]["hyperparameters"] == sent  # echoed under the names sent, not max_iter & co
    assert r.headers["Location"] == f"/v1/jobs/{queued['id']}"
    assert queued["status"] == "queued" and queued["model"] == "iris"
    assert queued["progress"] is None and queued["result"] is None and queued["error"] is None
    assert queued["created_at"] and queued["started_at"] is None and queued["finished_at"] is None
    assert run_all(store_root) == 1
    done = job(client, queued["id"])
    assert done["status"] == "succeeded", done
    assert done["error"] is None
    assert (
        done["started_at"] and done["finished_at"] and done["created_at"] <= done["started_at"] <= done["finished_at"]
    )
    assert done["worker"] and done["request"]["hyperparameters"] == sent
    progress = done["progress"]
    assert progress["epoch"] == 5 and progress["epochs"] == 5 and progress["loss"] > 0
    result = done["result"]
    assert result["version"] == 2 and result["base_version"] == 1
    assert set(result["metrics"]) >= {"accuracy", "log_loss"}
    assert isinstance(result["promoted"], bool) and result["reason"]
    assert result["epochs"] == 5 and result["n_rows"] == 150


def test_append_rows(client, store_root):
    X, y = iris_slice()
    queued = retrain(client, "iris", {"data": {"instances": X, "targets": y}, "promote": "always"})
    assert queued["request"]["n_new_rows"] == len(X)
    run_all(store_root)
    done = job(client, queued["id"])
    assert done["status"] == "succeeded", done
    result = done["result"]
    assert result["n_rows"] == 150 + len(X)
    assert active(store_root, "iris") == result["version"] == 2
    store = FileModelStore(store_root)
    manifest = store.load("iris", 2).manifest
    # a quarter of the admin's rows joins the frozen evaluation set; the rest joins the training rows
    assert result["trained_on"] == {
        "rows": 112 + 37,
        "base": 112,
        "new": 37,
        "new_from_feedback": False,
        "sha256": manifest["dataset_sha256"],
    }
    assert result["evaluated_on"] == {
        "rows": 38 + 13,
        "frozen": 38,
        "new": 13,
        "sha256": manifest["evaluation_set"]["sha256"],
    }
    trained = store.load_dataset("iris", manifest["dataset_sha256"])
    evaluated = store.load_dataset("iris", manifest["evaluation_set"]["sha256"])
    assert len(trained.X) == 149 and len(evaluated.X) == manifest["evaluation_set"]["rows"] == 51
    first = store.load("iris", 1).manifest["evaluation_set"]["sha256"]
    np.testing.assert_array_equal(evaluated.X[:38], store.load_dataset("iris", first).X)  # carried forward
    assert manifest["evaluation_set"]["parent_metric"] == result["active_metric"]


def test_replace_rows(client, store_root):
    X, y = iris_slice()
    queued = retrain(client, "iris", {"data": {"instances": X, "targets": y}, "mode": "replace", "promote": "always"})
    run_all(store_root)
    done = job(client, queued["id"])
    assert done["status"] == "succeeded", done
    # the new rows alone are trained on; the frozen evaluation set stays, with the new rows' held-out share
    assert done["result"]["trained_on"]["rows"] == done["result"]["trained_on"]["new"] == 37
    assert done["result"]["evaluated_on"]["frozen"] == 38 and done["result"]["evaluated_on"]["new"] == 13
    training = FileModelStore(store_root).load("iris", 2).manifest["training"]
    assert training["n_train"] == 37 and training["n_test"] == 51 and done["result"]["n_rows"] == 88


def test_new_class_label_in_append_mode(client, store_root):
    rows = [[9.0 + 0.05 * i, 9.0 - 0.05 * i, 9.0 + 0.03 * i, 9.0] for i in range(16)]
    body = {
        "data": {"instances": rows, "targets": ["giant"] * len(rows)},
        "promote": "always",
        "hyperparameters": {"epochs": 200},
    }
    queued = retrain(client, "iris", body)
    run_all(store_root)
    done = job(client, queued["id"])
    assert done["status"] == "succeeded", done
    assert list(FileModelStore(store_root).load("iris").estimator.classes_) == [
        "giant",
        "setosa",
        "versicolor",
        "virginica",
    ]
    r = client.post("/v1/models/iris/predict", json={"instances": [[9.2, 8.8, 9.1, 9.0], [5.0, 3.4, 1.5, 0.2]]})
    assert r.status_code == 200
    assert r.get_json()["version"] == 2
    assert r.get_json()["predictions"] == ["giant", "setosa"]
    assert len(r.get_json()["probabilities"][0]) == 4


def test_warm_start_continues_from_active_weights(client, store_root):
    queued = retrain(client, "iris", {"warm_start": True, "hyperparameters": {"epochs": 7}, "promote": "always"})
    run_all(store_root)
    done = job(client, queued["id"])
    assert done["status"] == "succeeded", done
    assert done["result"]["epochs"] == 7 and done["progress"]["epochs"] == 7
    # continued from trained weights: the first epoch's loss already near the active model's, far below
    # a fresh network's; and the held-out accuracy does not drop from scratch level
    base = FileModelStore(store_root).load("iris", 1).manifest
    assert done["result"]["metrics"]["accuracy"] >= base["metrics"]["accuracy"] - 0.1
    assert done["request"]["warm_start"] is True
    assert active(store_root, "iris") == 2


def test_regressor_retrain_with_numeric_targets(client, store_root):
    X, y = csv_rows("diabetes")
    queued = retrain(
        client,
        "diabetes",
        {"data": {"instances": X[:40], "targets": [float(t) for t in y[:40]]}, "promote": "always"},
    )
    run_all(store_root)
    done = job(client, queued["id"])
    assert done["status"] == "succeeded", done
    assert set(done["result"]["metrics"]) >= {"r2", "rmse", "mae"}
    assert done["result"]["n_rows"] == len(X) + 40
    assert done["result"]["reason"] == "promote is 'always'" and done["result"]["promoted"] is True
    r = client.post("/v1/models/diabetes/predict", json={"instances": X[:2]})
    assert r.status_code == 200 and r.get_json()["version"] == 2


# --- promotion ------------------------------------------------------------------------------------


def test_promote_always_and_never(client, store_root):
    never = retrain(client, "iris", {"promote": "never", "hyperparameters": {"epochs": 3}})
    run_all(store_root)
    done = job(client, never["id"])
    assert done["status"] == "succeeded" and done["result"]["promoted"] is False
    assert done["result"]["reason"] == "promote is 'never'"
    assert versions(store_root, "iris") == [1, 2] and active(store_root, "iris") == 1

    always = retrain(client, "iris", {"promote": "always", "hyperparameters": {"epochs": 3}})
    run_all(store_root)
    done = job(client, always["id"])
    assert done["result"]["promoted"] is True and done["result"]["reason"] == "promote is 'always'"
    assert active(store_root, "iris") == 3
    assert client.post("/v1/models/iris/predict", json={"instances": [[5.0, 3.4, 1.5, 0.2]]}).get_json()["version"] == 3


REASON = re.compile(r"^validation accuracy (\d\.\d{4}) (>=|<) active (\d\.\d{4})$")


@pytest.mark.parametrize(
    ("hyperparameters", "expect_promoted"),
    [({"epochs": 300, "patience": 300}, True), ({"epochs": 1, "learning_rate": 1e-6, "hidden_sizes": [2]}, False)],
)
def test_promote_if_better(client, store_root, hyperparameters, expect_promoted):
    queued = retrain(client, "iris", {"hyperparameters": hyperparameters})  # if_better is the default
    assert queued["request"]["promote"] == "if_better"
    run_all(store_root)
    result = job(client, queued["id"])["result"]
    new, active_metric = result["metrics"]["accuracy"], result["active_metric"]
    assert result["promoted"] is (new >= active_metric) is expect_promoted, result
    m = REASON.match(result["reason"])
    assert m, result["reason"]
    assert float(m[1]) == pytest.approx(new, abs=1e-4) and float(m[3]) == pytest.approx(active_metric, abs=1e-4)
    assert m[2] == (">=" if expect_promoted else "<")
    # the active model's metric is measured on the same held-out rows as the new one
    assert active_metric == pytest.approx(FileModelStore(store_root).load("iris", 1).manifest["metrics"]["accuracy"])
    assert active(store_root, "iris") == (2 if expect_promoted else 1)
    assert versions(store_root, "iris") == [1, 2]


# --- queue order, listing, cancel -----------------------------------------------------------------


def test_second_retrain_of_a_model_waits_for_the_first(client, store_root):
    first = retrain(client, "iris", {"promote": "always", "hyperparameters": {"epochs": 2}})
    second = retrain(client, "iris", {"promote": "always", "hyperparameters": {"epochs": 2}})
    other = retrain(client, "diabetes", {"promote": "never", "hyperparameters": {"epochs": 2}})
    queue = SqliteJobQueue(store_root)
    claimed = queue.claim("test:1")
    assert claimed is not None and claimed.id == first["id"]
    # iris has a job running: the next claim skips the queued iris job and takes diabetes
    assert getattr(queue.claim("test:2"), "id", None) == other["id"]
    assert queue.claim("test:3") is None
    assert job(client, second["id"])["status"] == "queued"
    queue.finish(first["id"], "failed", error="test")
    queue.finish(other["id"], "failed", error="test")
    assert getattr(queue.claim("test:4"), "id", None) == second["id"]


def test_queued_behind_runs_on_the_first_jobs_result(client, store_root):
    first = retrain(client, "iris", {"promote": "always", "hyperparameters": {"epochs": 2}})
    second = retrain(client, "iris", {"promote": "always", "hyperparameters": {"epochs": 2}})
    assert run_all(store_root) == 2
    a, b = job(client, first["id"]), job(client, second["id"])
    assert a["result"]["version"] == 2 and b["result"]["base_version"] == 2 and b["result"]["version"] == 3
    assert a["finished_at"] <= b["started_at"]


def test_list_jobs_newest_first_filtered_and_paginated(client, store_root):
    ids = [retrain(client, "iris", {"hyperparameters": {"epochs": 1}})["id"] for _ in range(3)]
    diabetes = retrain(client, "diabetes", {"hyperparameters": {"epochs": 1}})["id"]
    everything = client.get("/v1/jobs").get_json()
    assert [j["id"] for j in everything["jobs"]] == [diabetes, *reversed(ids)]
    assert everything["total"] == 4
    page = client.get("/v1/jobs?model=iris&limit=2&offset=1").get_json()
    assert [j["id"] for j in page["jobs"]] == [ids[1], ids[0]]
    assert (page["total"], page["limit"], page["offset"]) == (3, 2, 1)
    assert client.get("/v1/jobs?status=succeeded").get_json()["total"] == 0
    assert client.get("/v1/jobs?status=queued&model=diabetes").get_json()["total"] == 1
    Worker(store_root).run_once()
    done = client.get("/v1/jobs?status=succeeded").get_json()
    assert [j["id"] for j in done["jobs"]] == [ids[0]]
    for query in ("status=bogus", "limit=0", "limit=501", "offset=-1"):
        assert client.get(f"/v1/jobs?{query}").status_code == 422, query


def test_cancel_queued_job(client, store_root):
    queued = retrain(client, "iris")
    r = client.delete(f"/v1/jobs/{queued['id']}", headers=ADMIN)
    assert r.status_code == 200
    assert r.get_json()["status"] == "cancelled" and r.get_json()["finished_at"]
    assert run_all(store_root) == 0
    assert job(client, queued["id"])["status"] == "cancelled"
    assert versions(store_root, "iris") == [1]
    # a finished job cannot be cancelled
    r = client.delete(f"/v1/jobs/{queued['id']}", headers=ADMIN)
    assert r.status_code == 409 and "cancelled" in r.get_json()["message"]


def test_cancel_finished_job_is_409_and_unknown_is_404(client, store_root):
    queued = retrain(client, "iris", {"hyperparameters": {"epochs": 1}})
    run_all(store_root)
    r = client.delete(f"/v1/jobs/{queued['id']}", headers=ADMIN)
    assert r.status_code == 409 and "succeeded" in r.get_json()["message"]
    assert client.get("/v1/jobs/0123456789abcdef").status_code == 404
    assert client.delete("/v1/jobs/0123456789abcdef", headers=ADMIN).status_code == 404


def test_cancel_running_job(client, store_root):
    queued = retrain(client, "digits", {"hyperparameters": {"epochs": 100000, "patience": 100000}})
    worker = Worker(store_root)
    thread = threading.Thread(target=worker.run_once, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not (job(client, queued["id"])["progress"] or {}).get("epoch"):
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.02)
    running = job(client, queued["id"])
    assert running["status"] == "running" and running["progress"]["epochs"] == 100000
    r = client.delete(f"/v1/jobs/{queued['id']}", headers=ADMIN)
    assert r.status_code == 200 and r.get_json()["cancel_requested"] is True
    thread.join(30)
    assert not thread.is_alive()
    done = job(client, queued["id"])
    assert done["status"] == "cancelled" and done["result"] is None and done["finished_at"]
    assert versions(store_root, "digits") == [1] and active(store_root, "digits") == 1
    assert not [p for p in Path(store_root, "digits").iterdir() if p.name.startswith(".tmp")]


# --- refusals ---------------------------------------------------------------------------------------


def test_admin_rules(store_root):
    open_app = create_app({"NNSERVE_STORE": str(store_root), "TESTING": True}).test_client()
    assert open_app.post("/v1/models/iris/retrain", json={}).status_code == 403
    assert open_app.delete("/v1/jobs/abc").status_code == 403
    app = create_app({"NNSERVE_STORE": str(store_root), "NNSERVE_ADMIN_TOKEN": TOKEN, "TESTING": True})
    c = app.test_client()
    assert c.post("/v1/models/iris/retrain", json={}).status_code == 401
    assert c.post("/v1/models/iris/retrain", json={}, headers={"Authorization": "Bearer nope"}).status_code == 401
    # the token is checked before the body: no validation detail for callers without it
    assert c.post("/v1/models/iris/retrain", json={"no such field": 1}).status_code == 401
    assert c.post("/v1/models/iris/retrain", data="{", content_type="application/json").status_code == 401
    queued = retrain(c, "iris")
    assert c.delete(f"/v1/jobs/{queued['id']}").status_code == 401
    assert c.delete(f"/v1/jobs/{queued['id']}", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert job(c, queued["id"])["status"] == "queued"
    # reading jobs needs no token
    assert c.get("/v1/jobs").status_code == 200
    assert SqliteJobQueue(store_root).counts() == {"queued": 1}


FOUR = [5.0, 3.4, 1.5, 0.2]


@pytest.mark.parametrize(
    ("model", "body", "names"),
    [
        ("iris", {"hyperparameters": {"epochz": 3}}, ["epochz", "unknown hyperparameter"]),
        ("iris", {"hyperparameters": {"epochs": 0}}, ["epochs"]),
        ("iris", {"hyperparameters": {"learning_rate": -1}}, ["learning_rate"]),
        ("iris", {"hyperparameters": {"epochs": "many"}}, ["epochs"]),
        ("iris", {"warm_start": True, "hyperparameters": {"hidden_sizes": [4, 4]}}, ["hidden_sizes", "[16]"]),
        ("iris", {"data": {"instances": [[5.0, 3.4, 1.5]], "targets": ["setosa"]}}, ["instances", "expects 4"]),
        ("iris", {"data": {"instances": [FOUR], "targets": [1]}}, ["targets", "strings"]),
        ("digits", {"data": {"instances": [[0.0] * 64], "targets": ["seven"]}}, ["targets", "integers"]),
        ("iris", {"data": {"instances": [FOUR, FOUR], "targets": ["setosa"]}}, ["targets", "2"]),
        ("diabetes", {"data": {"instances": [[0.0] * 10], "targets": ["high"]}}, ["targets", "numbers"]),
        ("iris", {"data": {"instances": [FOUR]}}, ["targets"]),
        ("iris", {"mode": "replace"}, ["data", "replace"]),
        ("iris", {"mode": "overwrite"}, ["mode"]),
        ("iris", {"promote": "sometimes"}, ["promote"]),
        ("iris", {"warm_start": "perhaps"}, ["warm_start"]),
        ("iris", {"epochs": 3}, ["epochs", "Unknown field"]),
        ("iris", {"data": {"instances": [FOUR], "targets": ["setosa"], "weights": [1]}}, ["weights"]),
    ],
)
def test_invalid_retrain_request_is_422_naming_the_problem(client, store_root, model, body, names):
    r = client.post(f"/v1/models/{model}/retrain", json=body, headers=ADMIN)
    assert r.status_code == 422, r.get_json()
    text = r.get_data(as_text=True)
    for name in names:
        assert name in text, (name, text)
    assert SqliteJobQueue(store_root).counts() == {}


def test_nan_literal_is_422(client, store_root):
    body = '{"data": {"instances": [[NaN, 3.4, 1.5, 0.2]], "targets": ["setosa"]}}'
    r = client.post("/v1/models/iris/retrain", data=body, content_type="application/json", headers=ADMIN)
    assert r.status_code == 422 and "NaN" in r.get_json()["message"]
    r = client.post(
        "/v1/models/iris/retrain",
        data='{"hyperparameters": {"learning_rate": Infinity}}',
        content_type="application/json",
        headers=ADMIN,
    )
    assert r.status_code == 422
    assert SqliteJobQueue(store_root).counts() == {}


def test_unknown_model_is_404(client, store_root):
    r = client.post("/v1/models/tulip/retrain", json={}, headers=ADMIN)
    assert r.status_code == 404 and "tulip" in r.get_json()["message"]


def test_warm_start_may_restate_the_active_architecture(client, store_root):
    body = {"warm_start": True, "hyperparameters": {"hidden_sizes": [16], "epochs": 2}, "promote": "always"}
    queued = retrain(client, "iris", body)
    run_all(store_root)
    assert job(client, queued["id"])["status"] == "succeeded"
    model = FileModelStore(store_root).load("iris", 2)
    assert model.manifest["training"]["params"]["hidden_layer_sizes"] == [16]
    assert [w.shape[1] for w in model.estimator.coefs_[:-1]] == [16]


def test_warm_start_with_a_new_class_fails_the_job_with_the_reason(client, store_root):
    rows = [[9.0 + 0.05 * i, 9.0, 9.0, 9.0] for i in range(8)]
    queued = retrain(client, "iris", {"warm_start": True, "data": {"instances": rows, "targets": ["giant"] * 8}})
    run_all(store_root)
    done = job(client, queued["id"])
    assert done["status"] == "failed" and "giant" in done["error"] and done["result"] is None
    assert versions(store_root, "iris") == [1]


@pytest.mark.parametrize(("key", "value"), [("dropout", 0.3), ("activation", "tanh")])
def test_warm_start_refuses_what_it_would_silently_ignore(client, store_root, key, value):
    body = {"warm_start": True, "hyperparameters": {key: value, "epochs": 2}}
    r = client.post("/v1/models/iris/retrain", json=body, headers=ADMIN)
    assert r.status_code == 422, r.get_json()
    assert key in r.get_json()["errors"] and "warm_start" in r.get_json()["message"]
    assert SqliteJobQueue(store_root).counts() == {}


def test_a_locked_queue_database_neither_stops_the_worker_nor_leaves_a_job_running(client, store_root):
    """A real SQLite "database is locked" during a job: the job still ends in a final state, the loop goes on."""
    long = retrain(client, "iris", {"promote": "never", "hyperparameters": {"epochs": 100000, "patience": 100000}})
    worker = Worker(store_root)
    worker.queue = SqliteJobQueue(store_root, busy_timeout=0.05)
    runner = threading.Thread(target=worker.loop, daemon=True)
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while job(client, long["id"])["status"] != "running" and time.monotonic() < deadline:
            time.sleep(0.02)
        with sqlite3.connect(store_root / ".jobs.sqlite3", isolation_level=None) as db:
            db.execute("BEGIN EXCLUSIVE")  # every write of the worker now fails at once
            time.sleep(1.0)
            db.execute("COMMIT")
        deadline = time.monotonic() + 30
        while job(client, long["id"])["status"] == "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        done = job(client, long["id"])
        assert done["status"] == "failed" and "locked" in done["error"], done
        after = retrain(client, "iris", {"promote": "never", "hyperparameters": {"epochs": 2}})
        deadline = time.monotonic() + 30
        while job(client, after["id"])["status"] != "succeeded" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert job(client, after["id"])["status"] == "succeeded"
        assert runner.is_alive()
    finally:
        worker.stopping.set()
        runner.join(timeout=30)


def test_an_activation_during_training_wins_over_the_jobs_promotion(client, store_root):
    """A real race: an admin activates v1 while a promote-always retrain, trained against v2, runs to its end."""
    retrain(client, "iris", {"promote": "always", "hyperparameters": {"epochs": 2}})
    run_all(store_root)
    assert active(store_root, "iris") == 2
    body = {"promote": "always", "hyperparameters": {"epochs": 200, "patience": 100000}}
    long = retrain(client, "iris", body)
    runner = threading.Thread(target=Worker(store_root).run_once, daemon=True)
    runner.start()
    deadline = time.monotonic() + 30
    while (job(client, long["id"])["progress"] or {}).get("epoch", 0) < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    r = client.post("/v1/models/iris/versions/1/activate", headers=ADMIN)
    assert r.status_code == 200 and r.get_json()["previous_version"] == 2
    assert job(client, long["id"])["status"] == "running"  # the activation happened while it trained
    runner.join(timeout=120)
    done = job(client, long["id"])
    assert done["status"] == "succeeded", done
    assert done["result"]["promoted"] is False
    assert done["result"]["reason"] == "not promoted: the active version changed (2 -> 1) during training"
    assert active(store_root, "iris") == 1 and versions(store_root, "iris") == [1, 2, 3]


def test_without_the_token_a_job_shows_no_internals(client, store_root):
    queued = retrain(client, "iris", {"hyperparameters": {"epochs": 3, "learning_rate": 0.01}})
    run_all(store_root)
    public = client.get(f"/v1/jobs/{queued['id']}").get_json()
    assert public["status"] == "succeeded" and public["progress"]["epoch"] == 3
    assert public["worker"] is None and public["request"] is None
    assert public["result"] == {"version": 2, "base_version": 1, "promoted": public["result"]["promoted"]}
    listed = client.get("/v1/jobs").get_json()["jobs"][0]
    assert listed == public
    admin = job(client, queued["id"])
    assert admin["worker"] and admin["request"]["hyperparameters"] == {"epochs": 3, "learning_rate": 0.01}
    assert "metrics" in admin["result"]


def test_an_internal_error_is_told_to_admins_only(client, store_root):
    queue = SqliteJobQueue(store_root)
    queued = retrain(client, "iris", {"hyperparameters": {"epochs": 3}})
    queue.claim("test:1")
    queue.finish(queued["id"], "failed", error="internal error: MemoryError: Unable to allocate 9.1 GiB")
    public = client.get(f"/v1/jobs/{queued['id']}").get_json()
    assert "MemoryError" not in public["error"] and "admin token" in public["error"]
    assert "MemoryError" in job(client, queued["id"])["error"]


def test_the_job_list_limit_is_capped(client):
    r = client.get("/v1/jobs?limit=201")
    assert r.status_code == 422 and "limit" in r.get_json()["errors"]["query"]


def test_a_network_past_the_limits_is_refused_before_anything_is_queued(client, store_root):
    """1,000 layers of 4,096 units (a 6 KB request) is a 422 naming the limit, not an out-of-memory worker."""
    huge = {"hyperparameters": {"hidden_sizes": [4096] * 1000}}
    r = client.post("/v1/models/iris/retrain", json=huge, headers=ADMIN)
    assert r.status_code == 422 and "NNSERVE_MAX_LAYERS" in r.get_json()["message"]
    wide = {"hyperparameters": {"hidden_sizes": [4096, 4096]}}
    r = client.post("/v1/models/iris/retrain", json=wide, headers=ADMIN)
    assert r.status_code == 422 and "NNSERVE_MAX_PARAMETERS" in r.get_json()["message"]
    long = {"hyperparameters": {"hidden_sizes": [2000, 2000], "epochs": 100000}}
    r = client.post("/v1/models/iris/retrain", json=long, headers=ADMIN)
    assert r.status_code == 422 and "NNSERVE_MAX_TRAINING_WORK" in r.get_json()["message"]
    assert SqliteJobQueue(store_root).counts() == {}


def test_the_worker_checks_the_limits_again(client, store_root, monkeypatch):
    queued = retrain(client, "iris", {"hyperparameters": {"hidden_sizes": [64, 64], "epochs": 2}})
    monkeypatch.setenv("NNSERVE_MAX_PARAMETERS", "1000")  # tightened after the job was queued
    run_all(store_root)
    done = job(client, queued["id"])
    assert done["status"] == "failed" and "NNSERVE_MAX_PARAMETERS" in done["error"]
    assert versions(store_root, "iris") == [1]


def test_a_job_over_its_time_limit_is_failed_with_that_reason(client, store_root, monkeypatch):
    queued = retrain(client, "iris", {"hyperparameters": {"epochs": 100000, "patience": 100000}})
    monkeypatch.setenv("NNSERVE_JOB_MAX_RUNTIME", "0.5")
    run_all(store_root)
    done = job(client, queued["id"])
    assert done["status"] == "failed" and "NNSERVE_JOB_MAX_RUNTIME" in done["error"], done
    assert versions(store_root, "iris") == [1]


def test_long_labels_and_too_many_classes_are_refused_without_echoing_them(client, store_root):
    rows = [[5.0, 3.0, 1.5, 0.2]] * 3
    label = "x" * 20_000
    body = {"data": {"instances": rows, "targets": ["setosa", label, "setosa"]}}
    r = client.post("/v1/models/iris/retrain", json=body, headers=ADMIN)
    assert r.status_code == 422 and "NNSERVE_MAX_LABEL_LENGTH" in r.get_json()["message"]
    assert len(r.get_data()) < 2000 and "label 1" in r.get_json()["message"]
    many = {"data": {"instances": [[5.0, 3.0, 1.5, 0.2]] * 1001, "targets": [f"c{i}" for i in range(1001)]}}
    r = client.post("/v1/models/iris/retrain", json=many, headers=ADMIN)
    assert r.status_code == 422 and "NNSERVE_MAX_CLASSES" in r.get_json()["message"]


def test_a_full_queue_answers_429_with_retry_after(client, store_root):
    for _ in range(5):
        retrain(client, "iris", {"hyperparameters": {"epochs": 2}})
    r = client.post("/v1/models/iris/retrain", json={}, headers=ADMIN)
    assert r.status_code == 429 and r.headers["Retry-After"] == "30"
    assert "NNSERVE_MAX_QUEUED_JOBS" in r.get_json()["message"] and r.get_json()["code"] == 429
    retrain(client, "diabetes", {"hyperparameters": {"epochs": 2}})  # the cap is per model


def test_readiness_and_metrics_report_the_retraining_workers_liveness(store_root):
    app = create_app(
        {
            "NNSERVE_STORE": str(store_root),
            "NNSERVE_ADMIN_TOKEN": TOKEN,
            "NNSERVE_WORKER_STALE_AFTER": 30,
            "TESTING": True,
        }
    )
    client = app.test_client()
    ready = client.get("/readyz").get_json()
    assert ready["ready"] is True and ready["retraining_worker"] == {"alive": False, "heartbeat_age_seconds": None}
    queued = retrain(client, "iris", {"hyperparameters": {"epochs": 2}})
    assert job(client, queued["id"])["waiting_for_worker"] is True
    assert heartbeat_age(client) == "NaN"

    SqliteJobQueue(store_root).heartbeat("test:1")
    worker = client.get("/readyz").get_json()["retraining_worker"]
    assert worker["alive"] is True and 0 <= worker["heartbeat_age_seconds"] < 5
    assert job(client, queued["id"])["waiting_for_worker"] is False
    assert 0 <= float(heartbeat_age(client)) < 5


def heartbeat_age(client) -> str:
    for line in client.get("/metrics").get_data(as_text=True).splitlines():
        if line.startswith("nnserve_retraining_worker_heartbeat_age_seconds "):
            return line.split()[1]
    raise AssertionError("no heartbeat age in /metrics")


def test_a_diverging_retrain_fails_with_the_reason_publishes_nothing_and_the_pages_stay_200(client, store_root):
    before = versions(store_root, "diabetes")
    body = {"hyperparameters": {"learning_rate": 9.99, "optimizer": "sgd", "epochs": 50}, "promote": "canary"}
    started = retrain(client, "diabetes", body)
    run_all(store_root)
    done = job(client, started["id"])
    assert done["status"] == "failed" and done["result"] is None
    # which loss goes first (training or validation) depends on the initial weights; both name the rate
    assert re.match(
        r"training diverged: the (validation )?loss is (nan|inf) at epoch \d+ \(learning rate 9\.99\)", done["error"]
    ), done["error"]
    assert versions(store_root, "diabetes") == before and active(store_root, "diabetes") == before[-1]
    assert FileModelStore(store_root).rollout("diabetes") is None  # no canary of a model that never was
    for path in ("/ui/", "/ui/jobs", "/ui/jobs/fragment", "/ui/models/diabetes", "/v1/models/diabetes", "/v1/jobs"):
        response = client.get(path, headers=ADMIN)
        assert response.status_code == 200, (path, response.get_data(as_text=True)[:300])
    prediction = client.post("/v1/models/diabetes/predict", json={"instances": [[0.0] * 10]})
    assert prediction.status_code == 200 and prediction.get_json()["version"] == before[-1]
