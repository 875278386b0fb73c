"""Metrics across processes: a real 2-worker gunicorn plus retraining worker processes, scraped over HTTP.

Every figure must be the sum over all processes, whichever web worker
answers the scrape; the access log must be our JSON lines only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from service.store import FileModelStore
from service.training.catalog import load_spec
from service.training.fitting import publish, train_spec

REPO = Path(__file__).resolve().parents[2]
TOKEN = "e2e-metrics-token-93af"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
PREDICT = "/v1/models/<name>/predict"
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
N = 120  # predict requests
SESSIONS = 24  # keep-alive sessions they are sent over (one connection stays on one worker), 6 at a time
SCRAPE_ROUNDS = 10  # of 6 concurrent scrapes at most, until both workers have answered one


@pytest.fixture(scope="module")
def store_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("metrics-e2e") / "store"
    spec = load_spec(REPO / "models" / "iris.toml")
    _, result = train_spec(spec, {"epochs": 20})
    publish(FileModelStore(root), spec.name, result, description=spec.description, target=spec.target)
    return root


def scrape(url):
    """{(sample name, sorted labels): value} and the pid of the worker that answered."""
    response = requests.get(f"{url}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def predicts(url, version):
    return value(
        scrape(url), "nnserve_requests_total", endpoint=PREDICT, model="iris", version=str(version), status="200"
    )


def access_lines(server):
    lines = []
    for line in server.log.read_text(errors="replace").splitlines():
        if '"nnserve.access"' in line:
            lines.append(json.loads(line))
    return lines


def wait_for_workers(server, n=2, timeout=30.0):
    """Until ``n`` web workers have loaded their models (gunicorn is ready as soon as the first one is)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        loaded = set()
        for line in server.log.read_text(errors="replace").splitlines():
            record = json.loads(line)
            if record["logger"] == "service.server.registry" and "serving version" in record["message"]:
                loaded.add(record["process"])
        if len(loaded) >= n:
            return
        time.sleep(0.1)
    raise AssertionError(f"only {len(loaded)} of {n} workers loaded their models:\n{server.log_tail()}")


def test_predictions_add_up_over_both_workers(gunicorn_server, store_root, tmp_path):
    server = gunicorn_server(store_root, workers=2, env={"NNSERVE_ADMIN_TOKEN": TOKEN})
    wait_for_workers(server)
    version = FileModelStore(store_root).active_version("iris")

    def run(i):
        with requests.Session() as session:
            out = []
            for _ in range(N // SESSIONS):
                r = session.post(f"{server.url}/v1/models/iris/predict", json={"instances": ROWS}, timeout=10)
                assert r.status_code == 200, r.text
                out.append(r.json()["version"])
            return out

    with ThreadPoolExecutor(6) as pool:
        answered = [v for chunk in pool.map(run, range(SESSIONS)) for v in chunk]
    assert answered == [version] * N

    # Both workers served: each logs its own JSON access lines with its pid.
    deadline = time.monotonic() + 5
    while len(access_lines(server)) < N and time.monotonic() < deadline:
        time.sleep(0.1)
    predict_lines = [rec for rec in access_lines(server) if rec["endpoint"] == PREDICT]
    assert len(predict_lines) == N
    assert len({rec["process"] for rec in predict_lines}) == 2, "the requests all went to one worker"

    # Any worker answering a scrape reports the sum over both. Sequential scrapes on fresh connections can
    # all be accepted by the same idle worker; scrapes in flight together are spread like the predictions.
    def fresh_scrape(_):
        with requests.Session() as fresh:  # a new connection each time: either worker may answer
            response = fresh.get(f"{server.url}/metrics", timeout=10)
        assert response.status_code == 200, response.text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(response.text)
            for s in f.samples
        }

    labels = {"endpoint": PREDICT, "model": "iris", "version": str(version), "status": "200"}
    rows = N * len(ROWS)
    scraped = 0
    for _ in range(SCRAPE_ROUNDS):
        with ThreadPoolExecutor(6) as pool:
            for samples in pool.map(fresh_scrape, range(6)):
                scraped += 1
                assert value(samples, "nnserve_requests_total", **labels) == N
                assert value(samples, "nnserve_prediction_rows_total", model="iris", version=str(version)) == rows
                assert value(samples, "nnserve_request_duration_seconds_count", endpoint=PREDICT) == N
                assert value(samples, "nnserve_model_active_version", model="iris") == version
                assert value(samples, "nnserve_model_load_failures_total") == 0
        scrapers = {rec["process"] for rec in access_lines(server) if rec["endpoint"] == "/metrics"}
        if len(scrapers) == 2:
            break
    assert len(scrapers) == 2, f"all {scraped} scrapes were answered by the same worker"
    # gunicorn's own text access log is off: no line of the log is anything but JSON
    for line in server.log.read_text().splitlines():
        json.loads(line)


def test_a_retrain_job_run_by_a_worker_process_shows_on_the_web_scrape(gunicorn_server, store_root, tmp_path):
    metrics_dir = tmp_path / "prometheus"  # shared by gunicorn (which empties it at start) and the worker
    env = {"NNSERVE_ADMIN_TOKEN": TOKEN, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    server = gunicorn_server(store_root, workers=2, env=env)
    before = scrape(server.url)
    jobs = "nnserve_retrain_jobs_total"
    assert value(before, jobs, status="succeeded") == 0  # a fresh directory: nothing from earlier servers
    body = {"promote": "never", "hyperparameters": {"epochs": 3}}
    queued = requests.post(f"{server.url}/v1/models/iris/retrain", json=body, headers=ADMIN, timeout=10)
    assert queued.status_code == 202, queued.text
    environment = {k: v for k, v in os.environ.items() if not k.startswith("NNSERVE_")}
    environment["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "worker", "--store", str(store_root), "--once"],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    worker_log = [json.loads(line) for line in done.stderr.splitlines()]  # JSON lines, one per event
    assert any(f"job {queued.json()['id']} succeeded" in rec["message"] for rec in worker_log), done.stderr
    job = requests.get(f"{server.url}/v1/jobs/{queued.json()['id']}", timeout=10).json()
    assert job["status"] == "succeeded", job
    for _ in range(4):
        after = scrape(server.url)
        assert value(after, jobs, status="succeeded") == 1
        assert value(after, "nnserve_training_duration_seconds_count") == 1
        assert value(after, "nnserve_training_duration_seconds_sum") > 0


def test_the_retraining_worker_started_by_gunicorn_inherits_the_metrics_directory(gunicorn_server, store_root):
    env = {"NNSERVE_ADMIN_TOKEN": TOKEN, "NNSERVE_RETRAIN_WORKER": "1"}
    server = gunicorn_server(store_root, workers=2, env=env)
    body = {"promote": "never", "hyperparameters": {"epochs": 3}}
    queued = requests.post(f"{server.url}/v1/models/iris/retrain", json=body, headers=ADMIN, timeout=10)
    assert queued.status_code == 202, queued.text
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = requests.get(f"{server.url}/v1/jobs/{queued.json()['id']}", timeout=10).json()
        if job["status"] not in ("queued", "running"):
            break
        time.sleep(0.2)
    assert job["status"] == "succeeded", job
    samples = scrape(server.url)
    assert value(samples, "nnserve_retrain_jobs_total", status="succeeded") == 1
    assert value(samples, "nnserve_training_duration_seconds_count") == 1
