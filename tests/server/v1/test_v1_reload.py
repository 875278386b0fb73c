"""Hot reload within one app: a version activated through the store (not HTTP) is served after the interval."""

import threading
import time

import numpy as np
import pytest

from service.store import FileModelStore

INTERVAL = 0.05


@pytest.fixture
def reloading_client(make_app, tiny_catalog_copy):
    return make_app(tiny_catalog_copy, NNSERVE_RELOAD_INTERVAL=INTERVAL).test_client()


def predict(client, rows):
    response = client.post("/v1/models/iris/predict", json={"instances": rows})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def wait_past_the_interval():
    time.sleep(INTERVAL * 2.5)


def test_activation_through_the_store_is_picked_up(reloading_client, tiny_catalog_copy, tiny_catalog_store):
    rows = tiny_catalog_store.models["iris"].rows.tolist()
    assert predict(reloading_client, rows)["version"] == 1

    FileModelStore(tiny_catalog_copy).activate("iris", 2)
    wait_past_the_interval()

    body = predict(reloading_client, rows)
    assert body["version"] == 2
    assert body["predictions"] == tiny_catalog_store.estimator("iris", 2).predict(np.array(rows)).tolist()
    assert reloading_client.get("/v1/models").get_json()["models"][-1] == {
        "name": "iris",
        "version": 2,
        "task": "classification",
        "n_features": 4,
        "classes": ["setosa", "versicolor", "virginica"],
        "metrics": tiny_catalog_store.models["iris"].metrics[2],
    }
    assert reloading_client.get("/readyz").get_json()["models"]["iris"]["loaded_version"] == 2

    FileModelStore(tiny_catalog_copy).activate("iris", 1)  # and back
    wait_past_the_interval()
    assert predict(reloading_client, rows)["version"] == 1


def test_a_corrupt_new_active_version_is_skipped(reloading_client, tiny_catalog_copy, tiny_catalog_store, corrupt):
    rows = tiny_catalog_store.models["iris"].rows.tolist()
    before = predict(reloading_client, rows)
    store = FileModelStore(tiny_catalog_copy)
    v3 = store.publish("iris", tiny_catalog_store.estimator("iris", 2), {"task": "classification"})
    store.activate("iris", v3)  # verified and activated intact ...
    corrupt(tiny_catalog_copy, "iris", v3)  # ... then damaged on disk before this worker loads it
    wait_past_the_interval()

    assert predict(reloading_client, rows) == before  # the old version keeps serving
    ready = reloading_client.get("/readyz")
    assert ready.status_code == 200  # a version is loaded and serving
    body = ready.get_json()
    assert body["models"]["iris"]["active_version"] == v3
    assert body["models"]["iris"]["loaded_version"] == 1
    assert f"version {v3}" in body["models"]["iris"]["error"]
    assert any("'iris'" in r and f"version {v3}" in r and "broken" in r for r in body["reasons"]), body["reasons"]

    store.activate("iris", 2)  # a good version clears the error
    wait_past_the_interval()
    assert predict(reloading_client, rows)["version"] == 2
    ready = reloading_client.get("/readyz").get_json()
    assert ready["reasons"] == []
    assert ready["models"]["iris"] == {"active_version": 2, "loaded_version": 2, "error": None}


def test_a_newly_published_model_is_served_without_a_restart(reloading_client, tiny_catalog_copy, tiny_catalog_store):
    store = FileModelStore(tiny_catalog_copy)
    version = store.publish("iris-copy", tiny_catalog_store.estimator("iris", 2), {"task": "classification"})
    store.activate("iris-copy", version)
    rows = tiny_catalog_store.models["iris"].rows.tolist()
    response = reloading_client.post("/v1/models/iris-copy/predict", json={"instances": rows})
    assert response.status_code == 200
    body = response.get_json()
    assert (body["model"], body["version"]) == ("iris-copy", 1)
    assert body["predictions"] == tiny_catalog_store.estimator("iris", 2).predict(np.array(rows)).tolist()


def test_a_slow_load_holds_up_neither_other_models_nor_the_old_one(
    make_app, tiny_catalog_copy, tiny_catalog_store, monkeypatch
):
    app = make_app(tiny_catalog_copy, NNSERVE_RELOAD_INTERVAL=0)
    client, registry = app.test_client(), app.extensions["nnserve.dataplane"].registry
    loading, release = threading.Event(), threading.Event()
    load = registry.store.load

    def slow_load(name, version=None):
        if name == "iris" and version is None:
            loading.set()
            release.wait(5)
        return load(name, version)

    monkeypatch.setattr(registry.store, "load", slow_load)
    FileModelStore(tiny_catalog_copy).activate("iris", 2)
    loader = threading.Thread(target=registry.active, args=("iris",))
    loader.start()
    try:
        assert loading.wait(5)
        started = time.monotonic()
        digits = client.post("/v1/models/digits/predict", json={"instances": [[0.0] * 64]})
        iris = predict(client, tiny_catalog_store.models["iris"].rows.tolist())
        waited = time.monotonic() - started
    finally:
        release.set()
        loader.join()
    assert digits.status_code == 200
    assert iris["version"] == 1  # the old version serves while the new one loads
    assert waited < 2, f"requests waited {waited:.1f} s for another thread's load"
    assert predict(client, tiny_catalog_store.models["iris"].rows.tolist())["version"] == 2


def test_a_pinned_version_gc_removed_answers_404_after_the_interval(
    reloading_client, tiny_catalog_copy, tiny_catalog_store, assert_error
):
    rows = tiny_catalog_store.models["iris"].rows.tolist()
    store = FileModelStore(tiny_catalog_copy)
    store.activate("iris", store.publish("iris", tiny_catalog_store.estimator("iris", 2), {"task": "classification"}))
    pinned = reloading_client.post("/v1/models/iris/versions/2/predict", json={"instances": rows})
    assert pinned.status_code == 200 and pinned.get_json()["version"] == 2  # now in this worker's cache
    assert store.gc("iris", keep_versions=1).versions == [("iris", 2)]  # the active (3) and previous (1) stay
    wait_past_the_interval()
    assert_error(
        reloading_client.post("/v1/models/iris/versions/2/predict", json={"instances": rows}), 404, "no version 2"
    )
    assert reloading_client.post("/v1/models/iris/versions/1/predict", json={"instances": rows}).status_code == 200
