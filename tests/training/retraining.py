"""Helpers of the retraining tests: the admin token, starting a job, reading it, running the queue."""

from helpers import read_catalog_csv

from service.store import FileModelStore
from service.training.worker import Worker

TOKEN = "retrain-test-token-81c2"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


def csv_rows(name):
    X, y, _ = read_catalog_csv(name)
    return X.tolist(), y.tolist()


def retrain(client, model, body=None, status=202):
    r = client.post(f"/v1/models/{model}/retrain", json=body or {}, headers=ADMIN)
    assert r.status_code == status, r.get_json()
    return r.get_json()


def job(client, job_id):
    """The job as an admin sees it (all fields)."""
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
