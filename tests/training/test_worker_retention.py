"""The retraining worker applies the retention settings after each job, and appends are stored as chunks."""

import pytest
from helpers import read_catalog_csv

from service import create_app
from service.store import FileModelStore
from service.training.worker import Worker

pytestmark = pytest.mark.slow  # real retraining runs through the worker: left out of `make test-fast`

TOKEN = "retention-test-token-5e1"


@pytest.fixture
def store_root(trained_store, store_copy):
    return store_copy(trained_store("iris", epochs=20))


def test_worker_keeps_what_the_retention_settings_say(store_root, monkeypatch):
    monkeypatch.setenv("NNSERVE_KEEP_VERSIONS", "1")
    client = create_app({"NNSERVE_STORE": str(store_root), "NNSERVE_ADMIN_TOKEN": TOKEN, "TESTING": True}).test_client()
    X, y, _ = read_catalog_csv("iris")
    for i in range(3):
        body = {"data": {"instances": X[i::7].tolist(), "targets": y[i::7].tolist()}, "promote": "always"}
        r = client.post("/v1/models/iris/retrain", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 202, r.get_json()
        assert Worker(store_root).run_once()
    store = FileModelStore(store_root)
    assert store.active_version("iris") == 4 and store.previous_version("iris") == 3
    assert store.versions("iris") == [3, 4]  # 1 and 2 went: neither newest, active nor previous
    manifest = store.manifest("iris", 4)
    data = store.load_dataset("iris", manifest["dataset_sha256"])
    evaluation = store.load_dataset("iris", manifest["evaluation_set"]["sha256"])  # kept by gc with its version
    assert len(data.X) + len(evaluation.X) == 150 + sum(len(X[i::7]) for i in range(3))
    assert list((store_root / "iris" / "datasets" / "chunks").iterdir())  # appended rows, not whole copies
