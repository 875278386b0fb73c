"""Retraining-worker liveness: heartbeat files, /readyz and /metrics report it, queued jobs without a live
worker are marked stalled."""

import threading
import time

import pytest

from service import create_app
from service.training import heartbeat
from service.training.worker import Worker

TOKEN = "liveness-test-token-3e7f"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def store_root(trained_store, store_copy):
    return store_copy(trained_store("iris", epochs=20))


def make_client(store_root, **config):
    base = {"NNSERVE_STORE": str(store_root), "NNSERVE_ADMIN_TOKEN": TOKEN, "TESTING": True}
    return create_app({**base, **config}).test_client()


def test_heartbeat_file_is_touched_and_removed(tmp_path):
    assert heartbeat.silence(tmp_path) is None
    beat = heartbeat.Heartbeat(tmp_path, "host:42", interval=0.05).start()
    try:
        assert heartbeat.silence(tmp_path) < 1
        assert heartbeat.silence(tmp_path, now=time.time() + 100) > 99  # silence grows once beats stop
        path = tmp_path / heartbeat.FOLDER / "host-42"
        first = path.stat().st_mtime
        deadline = time.monotonic() + 10
        while path.stat().st_mtime == first:
            assert time.monotonic() < deadline, "no second beat"
            time.sleep(0.02)
    finally:
        beat.stop()
    assert not path.exists() and heartbeat.silence(tmp_path) is None


def test_readyz_and_metrics_report_the_worker(store_root):
    client = make_client(store_root)
    body = client.get("/readyz").get_json()
    assert body["ready"] is True and body["worker"] == {"alive": False, "heartbeat_age_seconds": None}
    worker = Worker(store_root, poll_interval=0.05)
    thread = threading.Thread(target=worker.loop, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not client.get("/readyz").get_json()["worker"]["alive"]:
            assert time.monotonic() < deadline, "the worker never beat"
            time.sleep(0.05)
        assert client.get("/readyz").get_json()["worker"]["heartbeat_age_seconds"] < 5
        metrics = client.get("/metrics").get_data(as_text=True)
        line = next(x for x in metrics.splitlines() if x.startswith("nnserve_retrain_worker_heartbeat_timestamp"))
        assert abs(float(line.split()[-1]) - time.time()) < 10
    finally:
        worker.stopping.set()
        thread.join(10)
    assert not thread.is_alive()
    assert client.get("/readyz").get_json()["worker"]["alive"] is False  # a stopped worker removed its file


def test_a_queued_job_with_no_live_worker_is_stalled(store_root):
    client = make_client(store_root, NNSERVE_WORKER_STALE_AFTER=0.2)
    r = client.post("/v1/models/iris/retrain", json={}, headers=ADMIN)
    assert r.status_code == 202, r.get_json()
    queued = r.get_json()
    assert client.get(f"/v1/jobs/{queued['id']}").get_json()["stalled"] is False  # just queued
    time.sleep(0.3)
    assert client.get(f"/v1/jobs/{queued['id']}").get_json()["stalled"] is True
    assert client.get("/v1/jobs", headers=ADMIN).get_json()["jobs"][0]["stalled"] is True
    beat = heartbeat.Heartbeat(store_root, "test:1", interval=0.05).start()
    try:
        assert client.get(f"/v1/jobs/{queued['id']}").get_json()["stalled"] is False
    finally:
        beat.stop()
