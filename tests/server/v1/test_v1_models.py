"""Health, readiness, the model list and model detail."""

import pytest
from helpers import read_catalog_csv

from service.store import Dataset, FileModelStore
from service.training import fitting
from service.training.importance import ImportanceBudget

MODELS = ("breast_cancer", "diabetes", "digits", "iris")
CLASSIFIERS = ("breast_cancer", "digits", "iris")


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_ready_with_every_model_loaded(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["ready"] is True
    assert body["reasons"] == []
    assert sorted(body["models"]) == sorted(MODELS)
    for name, info in body["models"].items():
        assert info == {"active_version": 1, "loaded_version": 1, "error": None}, name


def test_readyz_503_when_the_active_version_is_corrupt_in_a_fresh_app(
    tiny_catalog_copy, make_app, corrupt, tiny_catalog_store
):
    corrupt(tiny_catalog_copy, "iris", 1)  # the active version: nothing of iris can be loaded at start
    client = make_app(tiny_catalog_copy).test_client()  # starting must not fail because one model is broken

    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["ready"] is False
    assert body["models"]["iris"]["active_version"] == 1
    assert body["models"]["iris"]["loaded_version"] is None
    assert "checksum" in body["models"]["iris"]["error"]
    assert body["reasons"], body
    assert all(isinstance(r, str) for r in body["reasons"])
    assert any("'iris'" in r and "version 1" in r and "broken" in r for r in body["reasons"]), body["reasons"]
    assert not any("digits" in r or "diabetes" in r for r in body["reasons"]), body["reasons"]
    assert body["models"]["digits"]["loaded_version"] == 1

    # liveness is unaffected, and so are the other models
    assert client.get("/healthz").status_code == 200
    rows = tiny_catalog_store.models["digits"].rows.tolist()
    assert client.post("/v1/models/digits/predict", json={"instances": rows}).status_code == 200


def test_a_model_never_activated_does_not_stop_the_app(tiny_catalog_copy, make_app, tiny_catalog_store, assert_error):
    FileModelStore(tiny_catalog_copy).publish("fresh", tiny_catalog_store.estimator("iris"), {"task": "classification"})
    client = make_app(tiny_catalog_copy).test_client()

    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["models"]["fresh"] == {"active_version": None, "loaded_version": None, "error": None}
    assert "fresh" not in [m["name"] for m in client.get("/v1/models").get_json()["models"]]
    detail = client.get("/v1/models/fresh").get_json()
    assert detail["active_version"] is None
    assert [(v["version"], v["active"], v["ok"]) for v in detail["versions"]] == [(1, False, True)]
    response = client.post("/v1/models/fresh/predict", json={"instances": [[5.1, 3.5, 1.4, 0.2]]})
    assert_error(response, 404, "'fresh'", "no active version")


def test_list_models(client, tiny_catalog_store):
    response = client.get("/v1/models")
    assert response.status_code == 200
    models = response.get_json()["models"]
    assert [m["name"] for m in models] == sorted(MODELS)
    for entry in models:
        name = entry["name"]
        expected = tiny_catalog_store.models[name]
        est = tiny_catalog_store.estimator(name)
        keys = {"name", "version", "task", "n_features", "metrics"} | ({"classes"} if name in CLASSIFIERS else set())
        assert set(entry) == keys, entry
        assert entry["version"] == 1
        assert entry["task"] == expected.task
        assert entry["n_features"] == len(expected.feature_names) == est.n_features_in_
        assert entry["metrics"] == expected.metrics[1]
        if name in CLASSIFIERS:
            assert entry["classes"] == est.classes_.tolist()


def test_list_models_class_labels_keep_their_type(client):
    models = {m["name"]: m for m in client.get("/v1/models").get_json()["models"]}
    assert models["iris"]["classes"] == ["setosa", "versicolor", "virginica"]
    assert models["breast_cancer"]["classes"] == ["benign", "malignant"]
    assert models["digits"]["classes"] == list(range(10))
    assert all(type(c) is int for c in models["digits"]["classes"])


def test_model_detail_iris(client, tiny_catalog_store):
    response = client.get("/v1/models/iris")
    assert response.status_code == 200
    body = response.get_json()
    iris = tiny_catalog_store.models["iris"]
    assert body["name"] == "iris"
    assert body["task"] == "classification"
    assert body["active_version"] == 1
    assert [(v["version"], v["active"], v["ok"], v["error"]) for v in body["versions"]] == [
        (1, True, True, None),
        (2, False, True, None),
    ]
    assert [v["metrics"] for v in body["versions"]] == [iris.metrics[1], iris.metrics[2]]
    assert all(isinstance(v["created_at"], str) and v["created_at"] for v in body["versions"])
    assert body["input"]["n_features"] == 4
    assert body["input"]["feature_names"] == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert body["output"]["classes"] == ["setosa", "versicolor", "virginica"]
    assert body["metrics"] == iris.metrics[1]


@pytest.mark.parametrize("name", MODELS)
def test_model_detail_every_model(client, tiny_catalog_store, name):
    body = client.get(f"/v1/models/{name}").get_json()
    model = tiny_catalog_store.models[name]
    assert body["name"] == name
    assert body["task"] == model.task
    assert body["active_version"] == 1
    assert body["input"] == {"n_features": len(model.feature_names), "feature_names": model.feature_names}
    if name in CLASSIFIERS:
        assert body["output"]["classes"] == tiny_catalog_store.estimator(name).classes_.tolist()
    else:
        assert body["output"]["classes"] is None


def test_model_detail_shows_each_versions_importance_and_none_for_older_versions(tiny_catalog_copy, make_app):
    X, y, names = read_catalog_csv("iris")
    result = fitting.train("classification", {"hidden_layer_sizes": (6,), "max_iter": 30}, Dataset(X, y, names))
    store = FileModelStore(tiny_catalog_copy)
    version = fitting.publish(store, "iris", result, activate=False, importance=ImportanceBudget(rows=20, steps=8))
    response = make_app(tiny_catalog_copy).test_client().get("/v1/models/iris")
    assert response.status_code == 200
    by_version = {v["version"]: v["importance"] for v in response.get_json()["versions"]}
    assert by_version[1] is None and by_version[2] is None  # published before importance was recorded
    shown = by_version[version]
    assert shown == store.manifest("iris", version)["explanations"]["importance"]
    assert (shown["method"], shown["baseline"]) == ("integrated_gradients", "mean")
    assert (shown["steps"], shown["rows"]) == (8, 20)
    assert [f["name"] for f in shown["features"]] == names
    assert all(f["mean_abs_attribution"] > 0 for f in shown["features"])


def test_model_detail_flags_a_corrupt_inactive_version(tiny_catalog_copy, make_app, corrupt):
    corrupt(tiny_catalog_copy, "iris", 2)
    client = make_app(tiny_catalog_copy).test_client()

    response = client.get("/v1/models/iris")
    assert response.status_code == 200
    body = response.get_json()
    assert body["active_version"] == 1
    first, second = body["versions"]
    assert (first["version"], first["ok"], first["active"], first["error"]) == (1, True, True, None)
    assert (second["version"], second["ok"], second["active"]) == (2, False, False)
    assert "version 2" in second["error"] and "checksum" in second["error"]
    # the detail still describes the model from the good, active version
    assert body["input"]["n_features"] == 4
    assert body["output"]["classes"] == ["setosa", "versicolor", "virginica"]


@pytest.mark.parametrize("path", ["/v1/models/nope", "/v1/models/iris2", "/v1/models/IRIS", "/v1/models/%C3%A9"])
def test_model_detail_unknown_model_is_404(client, assert_error, path):
    assert_error(client.get(path), 404, "model")
