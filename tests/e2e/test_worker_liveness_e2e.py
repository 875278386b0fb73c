"""Retraining-worker liveness under ``nnserve serve``: after kill -9 of the worker a new one runs the next
retrain, and /readyz and /metrics report the new worker's heartbeat."""

from __future__ import annotations

import contextlib
import os
import signal
import time

import pytest
import requests
from helpers import service_env, start_cli, wait_for
from test_lifecycle import descendants

TOKEN = "e2e-liveness-token-5d1a"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def store_root(trained_store, store_copy):
    return store_copy(trained_store("iris", epochs=20))


def retrain_worker_pid(url: str) -> int:
    """Run a short retrain to the end; the pid of the retraining worker that ran it."""
    r = requests.post(f"{url}/v1/models/iris/retrain", json={"hyperparameters": {"epochs": 2}}, headers=ADMIN)
    assert r.status_code == 202, r.text
    job_url = f"{url}/v1/jobs/{r.json()['id']}"
    wait_for(lambda: requests.get(job_url, timeout=10).json()["status"] == "succeeded", 60, "a retrain")
    return int(requests.get(job_url, headers=ADMIN, timeout=10).json()["worker"].rpartition(":")[2])


def readyz(url: str) -> dict:
    with contextlib.suppress(requests.RequestException):
        return requests.get(f"{url}/readyz", timeout=2).json()
    return {}


def test_a_killed_worker_is_restarted_and_readyz_and_metrics_follow_it(store_root, tmp_path, port):
    env = service_env(NNSERVE_ADMIN_TOKEN=TOKEN, NNSERVE_ACCESS_LOG="/dev/null", PYTHONUNBUFFERED="1")
    log = tmp_path / "serve.log"
    serve = start_cli("serve", "--port", port, "--workers", 1, "--store", store_root, env=env, log=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: readyz(url).get("retraining_worker", {}).get("alive"), 60, "a live retraining worker")
        first = retrain_worker_pid(url)
        assert first in descendants(serve.pid)
        os.kill(first, signal.SIGKILL)
        second = retrain_worker_pid(url)  # waits through the restart backoff
        assert second != first and second in descendants(serve.pid)
        time.sleep(3)  # longer than a heartbeat interval: the age below is the new worker's
        body = readyz(url)
        assert body["ready"] is True and body["retraining_worker"]["alive"] is True, body
        assert body["retraining_worker"]["heartbeat_age_seconds"] < 3
        metrics = requests.get(f"{url}/metrics", timeout=10).text
        line = next(x for x in metrics.splitlines() if x.startswith("nnserve_retraining_worker_heartbeat_age_seconds"))
        assert 0 <= float(line.split()[-1]) < 5, line
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(30)
    assert f"retraining worker (pid {first}) exited with status -9" in log.read_text(errors="replace")
