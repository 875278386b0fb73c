"""Process lifecycle with real processes: SIGTERM to gunicorn under load, SIGTERM to ``nnserve serve``
while a retrain runs, kill -9 of one gunicorn worker under load.

The retraining worker's own SIGTERM / kill -9 (run alone) are in test_retrain_e2e.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
from helpers import read_catalog_csv, service_env, start_cli, wait_for

from service.store import FileModelStore
from service.training.sqlite_queue import SqliteJobQueue

REPO = Path(__file__).resolve().parents[2]
TOKEN = "e2e-lifecycle-token-9c2e"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
ENV = {"NNSERVE_ADMIN_TOKEN": TOKEN, "NNSERVE_ACCESS_LOG": "/dev/null"}
GRACEFUL_TIMEOUT = 20  # service/server/gunicorn_conf.py's default
IRIS_ROW = {"instances": [[5.9, 3.0, 5.1, 1.8]]}


def digits_rows(n: int) -> list[list[float]]:
    rows = read_catalog_csv("digits")[0].tolist()
    return [rows[i % len(rows)] for i in range(n)]


BIG = {"instances": digits_rows(10_000)}  # the largest request allowed: hundreds of ms of parsing and predicting


@pytest.fixture
def store_root(trained_store, store_copy):
    """This test's copy of iris and digits trained for 20 epochs by the CLI (once per session)."""
    return store_copy(trained_store("iris", "digits", epochs=20))


class Client(threading.Thread):
    """One keep-alive connection posting ``body`` back to back.

    Records (sent, done, status or None, error); ``in_flight`` says whether a request is out.
    """

    def __init__(self, url: str, model: str, body: dict) -> None:
        super().__init__(daemon=True)
        self.url, self.model, self.body = url, model, body
        self.stop, self.records, self.in_flight = threading.Event(), [], False
        self.stop_on_error = False

    def run(self) -> None:
        with requests.Session() as session:
            while not self.stop.is_set():
                sent = time.monotonic()
                self.in_flight = True
                try:
                    r = session.post(f"{self.url}/v1/models/{self.model}/predict", json=self.body, timeout=30)
                    self.records.append((sent, time.monotonic(), r.status_code, None))
                except requests.RequestException as exc:
                    self.records.append((sent, time.monotonic(), None, repr(exc)))
                    if self.stop_on_error:
                        return
                finally:
                    self.in_flight = False

    def finish(self) -> list[tuple[float, float, int | None, str | None]]:
        self.stop.set()
        self.join(40)
        assert not self.is_alive()
        return self.records


def children(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        kids = children(todo.pop())
        found |= kids
        todo.extend(kids)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigterm_under_load_finishes_in_flight_requests_and_exits_0(store_root, gunicorn_server):
    server = gunicorn_server(store_root, workers=2, env=ENV)
    try:
        big = [Client(server.url, "digits", BIG) for _ in range(3)]
        small = [Client(server.url, "iris", IRIS_ROW) for _ in range(6)]
        clients = big + small
        for c in clients:
            c.start()
        # load established: every client has had answers, and large requests are out right now
        wait_for(lambda: all(c.records for c in clients), 30, "every client to get an answer")
        wait_for(lambda: sum(c.in_flight for c in big) >= 2, 10, "two large requests in flight")
        for c in clients:
            c.stop_on_error = True  # after the signal, a refused connection ends a client
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(GRACEFUL_TIMEOUT + 5)
        exited = time.monotonic()
        server.stopped = True
        records = [r for c in clients for r in c.finish()]
    finally:
        server.stop()

    assert code == 0, server.log_tail()
    assert exited - signalled < GRACEFUL_TIMEOUT, exited - signalled
    before = [r for r in records if r[0] < signalled]
    cut = [r for r in before if r[2] != 200]
    assert not cut, cut[:5]
    # the signal did land while large requests were being served, and they completed
    spanning = [r for r in before if r[1] > signalled]
    assert len(spanning) >= 2, spanning
    assert any(r[1] - r[0] > 0.05 for r in spanning)
    # afterwards: nothing but 200 or a connection that was not served (no 5xx, no half answer)
    after = [r for r in records if r[0] >= signalled]
    assert all(r[2] == 200 or (r[2] is None and "Connection" in r[3]) for r in after), after[:5]
    with pytest.raises(requests.ConnectionError):
        requests.post(f"{server.url}/v1/models/iris/predict", json=IRIS_ROW, timeout=5)
    assert "Shutting down: Master" in server.log_tail(80)


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    return dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)


def test_serve_sigterm_during_retrain_requeues_the_job_and_leaves_no_process(store_root, tmp_path, port):
    home = tmp_path / "home"  # gunicorn would put a control socket under $HOME: nnserve opens none
    home.mkdir()
    env = service_env(**ENV, PYTHONUNBUFFERED="1", HOME=str(home))
    env.pop("XDG_RUNTIME_DIR", None)
    log = tmp_path / "serve.log"
    versions_before = FileModelStore(store_root).versions("digits")
    serve = start_cli("serve", "--port", port, "--workers", 2, "--store", store_root, env=env, log=log)
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            assert serve.poll() is None, log.read_text(errors="replace")
            with contextlib.suppress(requests.RequestException):
                return requests.get(f"{url}/readyz", timeout=1).status_code == 200
            return False

        wait_for(ready, 60, "nnserve serve to be ready")
        body = {"promote": "always", "hyperparameters": {"epochs": 100000, "patience": 100000}}
        r = requests.post(f"{url}/v1/models/digits/retrain", json=body, headers=ADMIN, timeout=10)
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]

        def training() -> bool:
            job = requests.get(f"{url}/v1/jobs/{job_id}", headers=ADMIN, timeout=10).json()
            return job["status"] == "running" and (job["progress"] or {}).get("epoch", 0) >= 1

        wait_for(training, 30, "the retrain to be training")
        job = requests.get(f"{url}/v1/jobs/{job_id}", headers=ADMIN, timeout=10).json()
        worker_pid = int(job["worker"].rpartition(":")[2])
        supervisors = {p for p in children(serve.pid) if worker_pid in children(p)}
        assert len(supervisors) == 1, "the retraining worker runs under a supervisor, a child of the gunicorn master"
        web = children(serve.pid) - supervisors
        assert len(web) == 2
        # the one-thread BLAS cap is for web workers: training runs with the environment serve was given
        # (exec'd with its own environment, which /proc shows; forked web workers' changes it would not)
        assert environ_of(worker_pid).get("OPENBLAS_NUM_THREADS") == env.get("OPENBLAS_NUM_THREADS")
        serve.send_signal(signal.SIGTERM)
        code = serve.wait(GRACEFUL_TIMEOUT + 5)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(serve.pid, signal.SIGKILL)
        serve.wait(10)

    text = log.read_text(errors="replace")
    assert code == 0, text[-3000:]
    assert not alive(worker_pid) and not any(alive(p) for p in web | supervisors)
    leftover = subprocess.run(["ps", "-o", "pid=,args=", "-s", str(serve.pid)], capture_output=True, text=True)
    assert leftover.stdout.strip() == "", leftover.stdout
    assert f"job {job_id}: worker stopping, job requeued" in text
    assert "retraining worker stopped" in text
    job = SqliteJobQueue(store_root).get(job_id).to_json()
    assert job["status"] == "queued", job
    assert job["worker"] is None and job["started_at"] is None and job["progress"] is None
    store = FileModelStore(store_root)
    assert store.versions("digits") == versions_before and store.active_version("digits") == versions_before[-1]
    assert [p for p in store_root.rglob("*") if p.name.startswith(".tmp")] == []
    assert list(home.iterdir()) == [] and "control socket" not in text.lower()


def test_kill_9_of_one_worker_under_load_fails_only_its_requests(store_root, gunicorn_server):
    server = gunicorn_server(store_root, workers=2, env=ENV)
    try:
        clients = [Client(server.url, "digits", BIG) for _ in range(2)]
        clients += [Client(server.url, "iris", IRIS_ROW) for _ in range(6)]
        for c in clients:
            c.start()
        wait_for(lambda: all(c.records for c in clients), 30, "every client to get an answer")
        before = children(server.process.pid)
        assert len(before) == 2
        victim = min(before)
        killed = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: len(children(server.process.pid) - {victim}) == 2, 15, "the master to respawn the worker")
        after = children(server.process.pid)
        respawned = time.monotonic()
        # the service answers on both workers again; the load runs on for a while
        wait_for(lambda: requests.get(f"{server.url}/readyz", timeout=5).status_code == 200, 10, "readiness")
        time.sleep(1.5)
        settled = time.monotonic()
        time.sleep(1.0)
        records = {id(c): c.finish() for c in clients}
        assert server.process.poll() is None
        r = requests.post(f"{server.url}/v1/models/iris/predict", json=IRIS_ROW, timeout=10)
    finally:
        server.stop()

    assert victim not in after and len(after) == 2 and len(after - before) == 1
    assert r.status_code == 200
    failures = [rec for recs in records.values() for rec in recs if rec[2] != 200]
    # only the killed worker's connections fail: each client has one connection, so at most one failure each,
    # all of them requests that were out when the worker died
    assert len(failures) <= len(clients), failures
    assert all(sum(rec[2] != 200 for rec in recs) <= 1 for recs in records.values()), failures
    assert all(rec[2] is None and rec[0] <= killed + 0.2 for rec in failures), failures
    assert all(rec[2] == 200 for recs in records.values() for rec in recs if rec[0] >= settled)
    served_late = sum(1 for recs in records.values() for rec in recs if rec[0] >= settled)
    assert served_late > 10
    print(f"kill -9 of one worker: {len(failures)} failed request(s); respawned in {respawned - killed:.2f} s")


def test_serve_restarts_a_killed_retraining_worker_and_its_job_ends_clearly(store_root, tmp_path, port):
    """kill -9 of the retraining worker mid-job: the master starts a new one, which fails the orphaned job
    ("worker stopped") and runs the next retrain to the end."""
    env = service_env(**ENV, PYTHONUNBUFFERED="1")
    log = tmp_path / "serve.log"
    serve = start_cli("serve", "--port", port, "--workers", 1, "--store", store_root, env=env, log=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(f"{url}/readyz"), 60, "nnserve serve to be ready")
        body = {"promote": "never", "hyperparameters": {"epochs": 100000, "patience": 100000}}
        r = requests.post(f"{url}/v1/models/digits/retrain", json=body, headers=ADMIN, timeout=10)
        first = r.json()["id"]
        wait_for(lambda: _job(url, first)["status"] == "running", 30, "the first retrain to run")
        killed = int(_job(url, first)["worker"].rpartition(":")[2])
        os.kill(killed, signal.SIGKILL)
        wait_for(lambda: _job(url, first)["status"] == "failed", 30, "the new worker to fail the orphaned job")
        assert _job(url, first)["error"] == "worker stopped"
        body = {"promote": "never", "hyperparameters": {"epochs": 2}}
        second = requests.post(f"{url}/v1/models/iris/retrain", json=body, headers=ADMIN, timeout=10).json()["id"]
        wait_for(lambda: _job(url, second)["status"] == "succeeded", 60, "a retrain after the restart")
        restarted = int(_job(url, second)["worker"].rpartition(":")[2])
        assert restarted != killed and restarted in descendants(serve.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(GRACEFUL_TIMEOUT + 5)
    assert f"retraining worker (pid {killed}) exited with status -9; restarting it" in log.read_text(errors="replace")


def _answers(url: str) -> bool:
    with contextlib.suppress(requests.RequestException):
        return requests.get(url, timeout=1).status_code == 200
    return False


def _job(url: str, job_id: str) -> dict:
    return requests.get(f"{url}/v1/jobs/{job_id}", headers=ADMIN, timeout=10).json()
