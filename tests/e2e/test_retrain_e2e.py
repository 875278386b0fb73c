"""Retraining end to end with real processes: gunicorn (2 web workers) and ``nnserve worker`` processes.

Each test has its own copy of a store trained once per session by the CLI,
its own gunicorn, and its own retraining worker processes (each in a process
group of its own, killed at teardown).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from service.store import FileModelStore

REPO = Path(__file__).resolve().parents[2]
TOKEN = "e2e-retrain-token-4b1d"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
ENV = {"NNSERVE_ADMIN_TOKEN": TOKEN, "NNSERVE_RELOAD_INTERVAL": "0.2", "NNSERVE_ACCESS_LOG": "/dev/null"}
IRIS_ROW = {"instances": [[5.9, 3.0, 5.1, 1.8]]}
LONG = {"epochs": 100000, "patience": 100000}  # hours of training: only a kill, a cancel or SIGTERM ends it


@pytest.fixture
def store_root(trained_store, store_copy):
    """This test's copy of iris, digits and diabetes trained for 20 epochs by the CLI (once per session)."""
    return store_copy(trained_store("iris", "digits", "diabetes", epochs=20))


@pytest.fixture
def workers(tmp_path):
    """Factory: ``workers() -> Popen`` of ``python -m service.cli worker``; every one killed at teardown."""
    started: list[subprocess.Popen] = []

    def start(store_root: Path) -> subprocess.Popen:
        log = open(tmp_path / f"worker-{len(started)}.log", "wb")  # noqa: SIM115 (closed at teardown)
        proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "worker", "--store", str(store_root), "--poll-interval", "0.1"],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        proc.log_file = log
        proc.log_path = tmp_path / f"worker-{len(started)}.log"
        started.append(proc)
        return proc

    yield start
    for proc in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        proc.log_file.close()


def retrain(url: str, model: str, body: dict) -> str:
    r = requests.post(f"{url}/v1/models/{model}/retrain", json=body, headers=ADMIN, timeout=10)
    assert r.status_code == 202, r.text
    return r.json()["id"]


def get_job(url: str, job_id: str) -> dict:
    r = requests.get(f"{url}/v1/jobs/{job_id}", headers=ADMIN, timeout=10)  # with the worker and request
    assert r.status_code == 200, r.text
    return r.json()


def wait_job(url: str, job_id: str, until, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = get_job(url, job_id)
        if until(job):
            return job
        assert time.monotonic() < deadline, f"job never reached the state: {job}"
        time.sleep(0.05)


def final(job: dict) -> bool:
    return job["status"] in ("succeeded", "failed", "cancelled")


def training(job: dict) -> bool:
    return job["status"] == "running" and (job["progress"] or {}).get("epoch", 0) >= 1


class PredictLoop(threading.Thread):
    """Predicts one iris row back to back; records (monotonic start time, status, version or error)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.stop, self.records = url, threading.Event(), []

    def run(self) -> None:
        with requests.Session() as session:
            while not self.stop.is_set():
                started = time.monotonic()
                try:
                    r = session.post(f"{self.url}/v1/models/iris/predict", json=IRIS_ROW, timeout=10)
                    self.records.append((started, r.status_code, r.json().get("version")))
                except (requests.RequestException, ValueError) as exc:
                    self.records.append((started, None, repr(exc)))

    def finish(self) -> list[tuple[float, int | None, object]]:
        self.stop.set()
        self.join(15)
        return self.records


def leftovers(store_root: Path) -> list[Path]:
    return [p for p in store_root.rglob("*") if p.name.startswith(".tmp")]


def test_promotion_under_load_fails_no_request(store_root, gunicorn_server, workers):
    server = gunicorn_server(store_root, workers=2, env=ENV)
    workers(store_root)
    loop = PredictLoop(server.url)
    loop.start()
    time.sleep(0.5)
    job_id = retrain(server.url, "iris", {"promote": "always", "hyperparameters": {"epochs": 300}})
    job = wait_job(server.url, job_id, final)
    succeeded_at = time.monotonic()
    assert job["status"] == "succeeded", job
    new = job["result"]["version"]
    assert new == 2 and job["result"]["promoted"]
    time.sleep(2.0)
    records = loop.finish()
    failures = [r for r in records if r[1] != 200]
    assert not failures, failures[:5]
    assert len(records) > 50
    before = [v for t, _, v in records if t < succeeded_at - 0.05]
    assert before and set(before) <= {1, 2}
    late = [v for t, _, v in records if t > succeeded_at + 1.0]
    assert len(late) > 10 and set(late) == {new}, sorted(set(late))


def test_kill_9_mid_training_fails_the_job_and_publishes_nothing(store_root, gunicorn_server, workers):
    server = gunicorn_server(store_root, workers=2, env=ENV)
    versions_before = FileModelStore(store_root).versions("digits")
    first = workers(store_root)
    loop = PredictLoop(server.url)
    loop.start()
    job_id = retrain(server.url, "digits", {"promote": "always", "hyperparameters": LONG})
    wait_job(server.url, job_id, training)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(10)
    assert get_job(server.url, job_id)["status"] == "running"  # nobody has noticed yet
    workers(store_root)
    job = wait_job(server.url, job_id, final)
    assert job["status"] == "failed" and job["error"] == "worker stopped", job
    assert job["result"] is None and job["finished_at"]
    time.sleep(0.5)
    records = loop.finish()
    assert records and all(r[1] == 200 for r in records), [r for r in records if r[1] != 200][:5]
    store = FileModelStore(store_root)
    assert store.versions("digits") == versions_before and store.active_version("digits") == versions_before[-1]
    store.clean_temporary(max_age=0)
    assert leftovers(store_root) == []
    r = requests.post(f"{server.url}/v1/models/digits/predict", json={"instances": [[0.0] * 64]}, timeout=10)
    assert r.status_code == 200 and r.json()["version"] == versions_before[-1]


def test_two_workers_run_each_job_once(store_root, gunicorn_server, workers):
    server = gunicorn_server(store_root, workers=2, env=ENV)
    store = FileModelStore(store_root)
    plan = ["iris", "diabetes", "digits", "iris", "diabetes", "iris"]
    initial = {m: store.versions(m) for m in set(plan)}
    ids = [retrain(server.url, m, {"promote": "always", "hyperparameters": {"epochs": 30}}) for m in plan]
    a, b = workers(store_root), workers(store_root)
    jobs = [wait_job(server.url, i, final, timeout=60) for i in ids]
    assert [j["status"] for j in jobs] == ["succeeded"] * len(plan), [j["error"] for j in jobs]
    assert all(j["worker"] for j in jobs)
    assert {j["worker"].rpartition(":")[2] for j in jobs} <= {str(a.pid), str(b.pid)}
    for model in set(plan):
        mine = [j for j in jobs if j["model"] == model]
        made = sorted(j["result"]["version"] for j in mine)
        assert len(set(made)) == len(mine)
        assert store.versions(model) == initial[model] + made
        # one job per model at a time: each started after the previous one of its model finished
        ordered = sorted(mine, key=lambda j: j["started_at"])
        assert all(x["finished_at"] <= y["started_at"] for x, y in itertools.pairwise(ordered))
    for proc in (a, b):
        proc.log_file.flush()
    logs = a.log_path.read_text() + b.log_path.read_text()
    for job_id in ids:
        assert logs.count(f"job {job_id}: retraining") == 1


def test_sigterm_requeues_the_running_job_and_the_next_worker_completes_it(store_root, gunicorn_server, workers):
    server = gunicorn_server(store_root, workers=2, env=ENV)
    versions_before = FileModelStore(store_root).versions("digits")
    first = workers(store_root)
    job_id = retrain(server.url, "digits", {"promote": "never", "hyperparameters": {"epochs": 1500, "patience": 1500}})
    wait_job(server.url, job_id, training)
    os.kill(first.pid, signal.SIGTERM)
    assert first.wait(20) == 0
    job = get_job(server.url, job_id)
    assert job["status"] == "queued", job
    assert job["worker"] is None and job["started_at"] is None and job["progress"] is None
    assert FileModelStore(store_root).versions("digits") == versions_before
    workers(store_root)
    job = wait_job(server.url, job_id, final, timeout=240)  # 1500 epochs of digits on a busy 2-core machine
    assert job["status"] == "succeeded", job
    assert job["result"]["epochs"] == 1500 and job["result"]["promoted"] is False
    assert FileModelStore(store_root).versions("digits") == [*versions_before, job["result"]["version"]]


def test_surviving_worker_fails_a_dead_workers_job_and_runs_the_next(store_root, gunicorn_server, workers):
    """Two workers, one killed -9 mid-job: the other must not leave the model blocked behind a dead job."""
    server = gunicorn_server(store_root, workers=2, env=ENV)
    versions_before = FileModelStore(store_root).versions("digits")
    a, b = workers(store_root), workers(store_root)
    stuck = retrain(server.url, "digits", {"promote": "never", "hyperparameters": LONG})
    running = wait_job(server.url, stuck, training)
    victim = a if running["worker"].endswith(f":{a.pid}") else b
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(10)
    follow_up = retrain(server.url, "digits", {"promote": "never", "hyperparameters": {"epochs": 5}})
    assert wait_job(server.url, stuck, final)["error"] == "worker stopped"
    done = wait_job(server.url, follow_up, final)
    assert done["status"] == "succeeded", done
    assert FileModelStore(store_root).versions("digits") == [*versions_before, done["result"]["version"]]


def test_an_activation_during_training_wins_over_the_jobs_promotion(store_root, gunicorn_server, workers):
    """Issue's race with real processes: an admin activates v1 through gunicorn while an ``if_better`` retrain
    scored against v2 trains in a worker process; the job's compare-and-swap sees the change and gives way."""
    server = gunicorn_server(store_root, workers=2, env=ENV)
    workers(store_root)
    first = wait_job(
        server.url, retrain(server.url, "iris", {"promote": "always", "hyperparameters": {"epochs": 2}}), final
    )
    assert first["result"]["version"] == 2 and first["result"]["promoted"], first
    job_id = retrain(server.url, "iris", {"promote": "if_better", "hyperparameters": {"epochs": 300, "patience": 300}})
    wait_job(server.url, job_id, training)
    r = requests.post(f"{server.url}/v1/models/iris/versions/1/activate", headers=ADMIN, timeout=10)
    assert r.status_code == 200 and r.json()["previous_version"] == 2, r.text
    assert get_job(server.url, job_id)["status"] == "running"  # the activation happened while it trained
    done = wait_job(server.url, job_id, final, timeout=120)
    assert done["status"] == "succeeded", done
    reason = done["result"]["reason"]
    assert done["result"]["promoted"] is False and reason.startswith(
        "not promoted: the active version changed (2 -> 1)"
    )
    assert FileModelStore(store_root).active_version("iris") == 1
    assert requests.get(f"{server.url}/v1/models/iris", timeout=10).json()["active_version"] == 1
