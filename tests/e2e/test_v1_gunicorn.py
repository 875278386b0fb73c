"""v1 against a real gunicorn with 2 workers: every catalog model, and hot activation under load."""

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from helpers import service_env, start_cli

from service.store import FileModelStore
from service.training.catalog import catalog_specs
from service.training.fitting import publish, train_spec

REPO = Path(__file__).resolve().parents[2]
TOKEN = "e2e-token"


@pytest.fixture(scope="module")
def catalog_store(tmp_path_factory):
    """The whole catalog trained as `nnserve train --all` would, plus an inactive second iris version."""
    root = tmp_path_factory.mktemp("v1-e2e") / "store"
    store = FileModelStore(root)
    for spec in catalog_specs(REPO / "models"):
        _, result = train_spec(spec)
        publish(store, spec.name, result, description=spec.description, target=spec.target)
        if spec.name == "iris":
            _, result = train_spec(spec, {"seed": 1, "epochs": 5})
            publish(store, spec.name, result, activate=False)
    return root


@pytest.fixture(scope="module")
def server(gunicorn_server, catalog_store):
    return gunicorn_server(
        catalog_store, workers=2, env={"NNSERVE_ADMIN_TOKEN": TOKEN, "NNSERVE_RELOAD_INTERVAL": "0.25"}
    )


def test_predicts_every_catalog_model_like_the_stored_estimator(server, catalog_store, dataset):
    store = FileModelStore(catalog_store)
    for name in store.model_names():
        X, _, _ = dataset(name)
        rows = X[:25]
        response = requests.post(
            f"{server.url}/v1/models/{name}/predict", json={"instances": rows.tolist()}, timeout=10
        )
        assert response.status_code == 200, response.text
        body = response.json()
        expected = store.load(name).estimator.predict(rows)
        assert body["model"] == name and body["version"] == store.active_version(name)
        if expected.dtype.kind in "fc":
            np.testing.assert_allclose(body["predictions"], expected, rtol=1e-5)
        else:
            assert body["predictions"] == expected.tolist()
            assert ("probabilities" in body) and len(body["probabilities"]) == len(rows)


def _predict_loop(url, stop, log):
    session = requests.Session()
    row = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
    while not stop.is_set():
        sent = time.monotonic()  # requests are judged by when they were sent, not by when a busy CPU answered
        try:
            r = session.post(f"{url}/v1/models/iris/predict", json=row, timeout=10)
            log.append((sent, r.status_code, r.json().get("version")))
        except requests.RequestException as exc:  # a failed request is a test failure, counted below
            log.append((sent, type(exc).__name__, None))


def test_activation_under_load_fails_no_request_and_every_worker_switches_within_a_second(server):
    stop, log = threading.Event(), []
    clients = [threading.Thread(target=_predict_loop, args=(server.url, stop, log)) for _ in range(3)]
    for t in clients:
        t.start()
    try:
        time.sleep(1.0)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        switches = []
        for version in (2, 1):
            requested = time.monotonic()
            r = requests.post(f"{server.url}/v1/models/iris/versions/{version}/activate", headers=auth, timeout=10)
            assert r.status_code == 200, r.text
            switches.append((requested, time.monotonic(), version))
            time.sleep(2.0)
    finally:
        stop.set()
        for t in clients:
            t.join()
    assert len(log) > 100
    failures = [entry for entry in log if entry[1] != 200]
    assert failures == []
    # a switch's window runs from 1 s after it answered until the next activation was requested
    ends = [requested for requested, _, _ in switches[1:]] + [float("inf")]
    for (_, answered, version), until in zip(switches, ends, strict=True):
        settled = [v for t, _, v in log if answered + 1.0 <= t < until]
        assert settled and set(settled) == {version}


def test_nnserve_serve_trains_an_empty_store_then_serves(tmp_path, port):
    serve = ["serve", "--port", port, "--workers", 1, "--store", tmp_path / "store", "--models-dir", REPO / "models"]
    proc = start_cli(*serve, "--no-retrain-worker", env=service_env())
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        models = requests.get(f"http://127.0.0.1:{port}/v1/models", timeout=5).json()["models"]
        assert sorted(m["name"] for m in models) == ["breast_cancer", "diabetes", "digits", "iris", "wine"]
        assert sorted(FileModelStore(tmp_path / "store").model_names()) == sorted(m["name"] for m in models)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0
