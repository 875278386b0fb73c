"""Limits on what a retrain may ask for (issue 17): network size, run time, labels, queued jobs, and job
visibility without the admin token; the promotion compare-and-swap against a real worker process."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from retraining import ADMIN, TOKEN, active, iris_slice, job, retrain, run_all

from service import create_app
from service.store import FileModelStore
from service.training.csvdata import CSVError, read_csv_dataset
from service.training.limits import LimitError, Limits, check_network, n_parameters
from service.training.sqlite_queue import SqliteJobQueue

REPO = Path(__file__).resolve().parents[2]


def error_of(response, status):
    assert response.status_code == status, response.get_json()
    body = response.get_json()
    assert body["code"] == status and body["status"] and body["message"]
    return body


# --- network size ---------------------------------------------------------------------------------


def test_a_thousand_layers_of_4096_units_is_refused_by_its_depth(client):
    body = {"hyperparameters": {"hidden_sizes": [4096] * 1000}}
    r = client.post("/v1/models/iris/retrain", json=body, headers=ADMIN)
    err = error_of(r, 422)
    assert "NNSERVE_MAX_LAYERS" in err["message"] and "1000 hidden layers" in err["message"]
    assert "hidden_sizes" in err["errors"]


def test_too_many_weights_is_refused_naming_the_limit(client, store_root):
    body = {"hyperparameters": {"hidden_sizes": [4096, 4096, 4096]}}  # about 33.6 million weights
    err = error_of(client.post("/v1/models/iris/retrain", json=body, headers=ADMIN), 422)
    assert "NNSERVE_MAX_PARAMS" in err["message"]
    assert SqliteJobQueue(store_root).counts().get("queued", 0) == 0


def test_parameter_count_and_budget():
    assert n_parameters(4, [16], 3) == (4 + 1) * 16 + (16 + 1) * 3
    limits = Limits(max_layers=2, max_params=100, max_train_work=1000)
    check_network([4], 4, 3, limits, epochs=2, n_rows=10)  # 35 weights, 700 work units
    with pytest.raises(LimitError, match="NNSERVE_MAX_LAYERS"):
        check_network([1, 1, 1], 1, 1, limits)
    with pytest.raises(LimitError, match="NNSERVE_MAX_PARAMS"):
        check_network([50], 4, 3, limits)
    with pytest.raises(LimitError, match="NNSERVE_MAX_TRAIN_WORK"):
        check_network([4], 4, 3, limits, epochs=3, n_rows=10)


def test_the_worker_checks_again_a_job_queued_before_the_limit_was_lowered(client, store_root, monkeypatch):
    queued = retrain(client, "iris", {"hyperparameters": {"epochs": 5, "hidden_sizes": [64, 64]}})
    monkeypatch.setenv("NNSERVE_MAX_PARAMS", "1000")
    assert run_all(store_root) == 1
    done = job(client, queued["id"])
    assert done["status"] == "failed" and "NNSERVE_MAX_PARAMS" in done["error"]
    assert FileModelStore(store_root).versions("iris") == [1]


def test_a_job_running_longer_than_its_limit_is_failed(client, store_root, monkeypatch):
    monkeypatch.setenv("NNSERVE_JOB_MAX_RUNTIME", "0.2")
    queued = retrain(client, "digits", {"hyperparameters": {"epochs": 100000, "patience": 100000}})
    assert run_all(store_root) == 1
    done = job(client, queued["id"])
    assert done["status"] == "failed", done
    assert "NNSERVE_JOB_MAX_RUNTIME" in done["error"] and "nothing was published" in done["error"]
    assert FileModelStore(store_root).versions("digits") == [1]


# --- labels ---------------------------------------------------------------------------------------


def test_a_long_label_is_refused_naming_its_row_without_echoing_it(client):
    X, y = iris_slice()
    y[3] = "x" * 100_000
    r = client.post("/v1/models/iris/retrain", json={"data": {"instances": X, "targets": y}}, headers=ADMIN)
    err = error_of(r, 422)
    assert "row 4" in err["message"] and "100000 characters" in err["message"]
    assert len(r.get_data()) < 2000


def test_too_many_classes_in_retrain_data_is_refused(client, monkeypatch):
    monkeypatch.setenv("NNSERVE_MAX_CLASSES", "2")
    X, y = iris_slice()
    err = error_of(
        client.post("/v1/models/iris/retrain", json={"data": {"instances": X, "targets": y}}, headers=ADMIN), 422
    )
    assert "NNSERVE_MAX_CLASSES" in err["message"]


def test_csv_labels_are_bounded(tmp_path, monkeypatch):
    path = tmp_path / "d.csv"
    path.write_text("a,label\n1,ok\n2," + "y" * 5000 + "\n")
    with pytest.raises(CSVError, match=r"line 3, column 'label'.*over 256 characters") as info:
        read_csv_dataset(path, "label", "classification")
    assert len(str(info.value)) < 300
    path.write_text("a,label\n1,p\n2,q\n3,r\n")
    monkeypatch.setenv("NNSERVE_MAX_CLASSES", "2")
    with pytest.raises(CSVError, match=r"3 distinct labels; at most 2 \(NNSERVE_MAX_CLASSES\)"):
        read_csv_dataset(path, "label", "classification")


# --- queued jobs ----------------------------------------------------------------------------------


def test_more_queued_jobs_than_allowed_get_429_with_retry_after(store_root):
    config = {"NNSERVE_STORE": str(store_root), "NNSERVE_ADMIN_TOKEN": TOKEN, "NNSERVE_MAX_QUEUED_JOBS": 2}
    c = create_app({**config, "TESTING": True}).test_client()
    for _ in range(2):
        assert c.post("/v1/models/iris/retrain", json={}, headers=ADMIN).status_code == 202
    r = c.post("/v1/models/iris/retrain", json={}, headers=ADMIN)
    err = error_of(r, 429)
    assert "NNSERVE_MAX_QUEUED_JOBS" in err["message"] and int(r.headers["Retry-After"]) > 0
    assert c.post("/v1/models/digits/retrain", json={}, headers=ADMIN).status_code == 202  # per model
    assert SqliteJobQueue(store_root).counts()["queued"] == 3


# --- visibility -----------------------------------------------------------------------------------


def test_without_the_token_jobs_show_no_internals(client, store_root):
    queued = retrain(client, "iris", {"hyperparameters": {"epochs": 3}})
    assert run_all(store_root) == 1
    public = client.get(f"/v1/jobs/{queued['id']}").get_json()
    assert set(public) == {
        "id", "model", "status", "progress", "cancel_requested", "created_at", "started_at", "finished_at",
        "result", "error", "stalled",
    }  # fmt: skip
    assert public["result"] == {"version": 2, "promoted": public["result"]["promoted"]}
    assert public["status"] == "succeeded" and public["progress"]["epoch"] == 3
    listed = client.get("/v1/jobs").get_json()["jobs"][0]
    assert listed == public
    full = client.get(f"/v1/jobs/{queued['id']}", headers=ADMIN).get_json()
    assert full["worker"] and full["request"]["hyperparameters"] == {"max_iter": 3} and full["result"]["reason"]


def test_internal_error_text_is_for_admins_only(client, store_root):
    queued = retrain(client, "iris")
    jobs = SqliteJobQueue(store_root)
    claimed = jobs.claim("test:1")
    assert claimed is not None and claimed.id == queued["id"]
    jobs.finish(claimed.id, "failed", error="store error: cannot read /secret/path/x.npz")
    assert client.get(f"/v1/jobs/{claimed.id}").get_json()["error"].startswith("store error (")
    assert "/secret/path" not in client.get("/v1/jobs").get_data(as_text=True)
    assert "/secret/path" in client.get(f"/v1/jobs/{claimed.id}", headers=ADMIN).get_json()["error"]


def test_list_limit_is_capped(client):
    assert client.get("/v1/jobs?limit=200").status_code == 200
    err = error_of(client.get("/v1/jobs?limit=201"), 422)
    assert "limit" in err["errors"]["query"] or "limit" in str(err["errors"])


# --- promotion compare-and-swap -------------------------------------------------------------------


def test_an_admin_activation_during_a_retrain_is_not_undone(client, store_root):
    """A worker process trains a slow job (promote: always, scored against v2); meanwhile the admin activates
    v1. The job must publish v3 without activating it."""
    retrain(client, "digits", {"hyperparameters": {"epochs": 2}, "promote": "always"})
    assert run_all(store_root) == 1 and active(store_root, "digits") == 2
    slow = retrain(client, "digits", {"hyperparameters": {"epochs": 400, "patience": 100000}, "promote": "always"})
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "service.cli", "worker", "--store", str(store_root), "--poll-interval", "0.05"]
    worker = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (job(client, slow["id"])["progress"] or {}).get("epoch"):
            assert time.monotonic() < deadline, "the worker never started the job"
            time.sleep(0.05)
        r = client.post("/v1/models/digits/versions/1/activate", headers=ADMIN)
        assert r.status_code == 200, r.get_json()
        while job(client, slow["id"])["status"] == "running":
            assert time.monotonic() < deadline + 60, "the job never finished"
            time.sleep(0.05)
    finally:
        worker.terminate()
        worker.wait(30)
    done = job(client, slow["id"])
    assert done["status"] == "succeeded", done
    assert done["result"]["version"] == 3 and done["result"]["promoted"] is False
    assert done["result"]["reason"] == "not promoted: the active version changed (2 -> 1) during training"
    assert active(store_root, "digits") == 1
