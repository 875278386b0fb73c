"""POST /v1/models/{name}/explain, {name}:explain and versions/{v}/explain: every row form predict takes, the
methods, targets and baselines, the budgets (rows, steps, time) and JSON 4xx naming the field."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from helpers import read_catalog_csv
from numpy.testing import assert_allclose

from nn.attribution import integrated_gradients, saliency
from service.store import Dataset, FileKeyStore, FileModelStore
from service.training import fitting
from service.training.importance import ImportanceBudget

ROW = [5.1, 3.5, 1.4, 0.2]
NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@pytest.fixture(scope="module")
def explain_store(tmp_path_factory):
    """iris version 1 as publish keeps it now (active), version 2 as versions were kept before; diabetes."""
    root = tmp_path_factory.mktemp("explain-store")
    store = FileModelStore(root)
    budget = ImportanceBudget(rows=5, steps=4)
    X, y, names = read_catalog_csv("iris")
    iris = fitting.train("classification", {"hidden_layer_sizes": (6,), "max_iter": 60}, Dataset(X, y, names))
    fitting.publish(store, "iris", iris, importance=budget)
    store.publish("iris", iris.estimator, {"task": "classification", "metrics": {}})
    X, y, names = read_catalog_csv("diabetes")
    diabetes = fitting.train("regression", {"hidden_layer_sizes": (4,), "max_iter": 30}, Dataset(X, y, names))
    fitting.publish(store, "diabetes", diabetes, importance=budget)
    return root


@pytest.fixture
def client(make_app, explain_store):
    return make_app(explain_store).test_client()


def iris(explain_store, version=1):
    return FileModelStore(explain_store).load("iris", version)


@pytest.mark.parametrize(
    "path", ["/v1/models/iris/explain", "/v1/models/iris:explain", "/v1/models/iris/versions/1/explain"]
)
def test_integrated_gradients_of_the_predicted_class_from_the_training_means(client, explain_store, path):
    rows = [ROW, [6.7, 3.0, 5.2, 2.3]]
    response = client.post(path, json={"instances": rows})
    assert response.status_code == 200, response.get_json()
    assert response.headers["X-Model-Version"] == "1"
    body = response.get_json()
    assert {k: body[k] for k in ("model", "version", "method", "steps", "baseline")} == {
        "model": "iris", "version": 1, "method": "integrated_gradients", "steps": 32, "baseline": "mean"
    }  # fmt: skip
    loaded = iris(explain_store)
    means = loaded.manifest["explanations"]["baseline_mean"]
    expected = integrated_gradients(loaded.estimator, rows, means, steps=32)
    labels = loaded.estimator.predict(np.array(rows)).tolist()
    for i, row in enumerate(body["explanations"]):
        assert row["prediction"] == row["target"] == labels[i]
        assert list(row["attributions"]) == NAMES
        assert_allclose(list(row["attributions"].values()), expected.values[i], rtol=1e-9)
        assert row["output"] == pytest.approx(loaded.estimator.predict_proba(np.array([rows[i]])).max(), rel=1e-6)
        assert row["baseline_output"] == pytest.approx(expected.baseline_output[i], rel=1e-9)
        gap = sum(row["attributions"].values()) - (row["output"] - row["baseline_output"])
        assert row["completeness_gap"] == pytest.approx(gap, abs=1e-12)
        assert abs(gap) <= 1e-3 * abs(row["output"] - row["baseline_output"]) + 1e-6


def test_rows_by_name_and_columns_explain_the_same(client):
    by_list = client.post("/v1/models/iris/explain", json={"instances": [ROW]}).get_json()
    by_name = client.post("/v1/models/iris/explain", json={"instances": [dict(zip(NAMES, ROW, strict=True))]})
    by_column = client.post(
        "/v1/models/iris/explain", json={"inputs": {n: [v] for n, v in zip(NAMES, ROW, strict=True)}}
    )
    assert by_name.get_json() == by_list == by_column.get_json()


def test_a_target_class_another_method_and_a_baseline_row(client, explain_store):
    body = {"instances": [ROW], "target": "virginica", "method": "saliency", "baseline": [5.0, 3.0, 4.0, 1.0]}
    answer = client.post("/v1/models/iris/explain", json=body).get_json()
    (row,) = answer["explanations"]
    assert (answer["method"], answer["steps"], answer["baseline"]) == ("saliency", None, [5.0, 3.0, 4.0, 1.0])
    assert row["target"] == "virginica" and "completeness_gap" not in row
    expected = saliency(iris(explain_store).estimator, [ROW], [5.0, 3.0, 4.0, 1.0], target=2)
    assert_allclose(list(row["attributions"].values()), expected.values[0], rtol=1e-9)
    zeros = client.post("/v1/models/iris/explain", json={"instances": [ROW], "baseline": "zeros", "steps": 8})
    assert zeros.status_code == 200 and zeros.get_json()["steps"] == 8


def test_a_regressor_explains_its_output_and_ignores_a_target(client, explain_store):
    loaded = FileModelStore(explain_store).load("diabetes")
    X = read_catalog_csv("diabetes")[0][:3]
    answer = client.post("/v1/models/diabetes/explain", json={"instances": X.tolist(), "target": "anything"})
    assert answer.status_code == 200, answer.get_json()
    for i, row in enumerate(answer.get_json()["explanations"]):
        assert row["target"] == 0
        assert row["prediction"] == pytest.approx(float(loaded.estimator.predict(X[i : i + 1])[0]), rel=1e-6)
        assert abs(row["completeness_gap"]) <= 1e-3 * abs(row["output"] - row["baseline_output"]) + 1e-6


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ({"instances": [ROW], "steps": 257}, "steps", "steps is 257; at most 256 are accepted (NNSERVE_"),
        ({"instances": [ROW], "steps": 0}, "steps", "steps"),
        ({"instances": [ROW], "steps": "many"}, "steps", "steps"),
        ({"instances": [ROW], "method": "shap"}, "method", "method"),
        ({"instances": [ROW], "target": "rose"}, "target", "unknown class 'rose'"),
        ({"instances": [ROW], "target": 1}, "target", "unknown class 1"),
        ({"instances": [ROW], "baseline": "median"}, "baseline", "baseline"),
        ({"instances": [ROW], "baseline": [1, 2]}, "baseline", "a baseline row has 4 numbers"),
        ({"instances": [ROW], "baseline": [1, "x", 2, 3]}, "baseline", "baseline"),
        ({"instances": [ROW[:3]]}, "instances", "rows have 3 values, model 'iris' expects 4"),
        ({"instances": [ROW] * 101}, "instances", "has 101 rows; at most 100"),
        ({"inputs": {"sepal_length": [1.0]}}, "inputs", "invalid inputs"),
        ({"instances": [ROW], "extra": 1}, "extra", "extra"),
        ({"instances": [[1e300, 1.0, 1.0, 1.0]]}, "instances", "beyond the range"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(client, assert_error, body, field, fragment):
    answer = assert_error(client.post("/v1/models/iris/explain", json=body), 422, fragment)
    assert field in answer["errors"]


def test_unknown_models_and_versions_are_404_and_bodies_are_json(client, assert_error):
    assert_error(client.post("/v1/models/nope/explain", json={"instances": [ROW]}), 404, "nope")
    assert_error(client.post("/v1/models/iris/versions/9/explain", json={"instances": [ROW]}), 404, "9")
    assert_error(client.post("/v1/models/iris/explain", data="rows", content_type="text/plain"), 415)
    assert_error(client.post("/v1/models/iris/explain", data="{", content_type="application/json"), 400)


def test_a_version_published_before_the_means_explains_from_another_baseline(client, assert_error):
    answer = assert_error(
        client.post("/v1/models/iris/versions/2/explain", json={"instances": [ROW]}), 422, "published before"
    )
    assert "baseline" in answer["errors"]
    zeros = client.post("/v1/models/iris/versions/2/explain", json={"instances": [ROW], "baseline": "zeros"})
    assert zeros.status_code == 200 and zeros.get_json()["version"] == 2


def test_the_budgets_are_settings(make_app, explain_store, assert_error):
    small = make_app(explain_store, NNSERVE_EXPLAIN_MAX_ROWS=2, NNSERVE_EXPLAIN_MAX_STEPS=4).test_client()
    assert_error(small.post("/v1/models/iris/explain", json={"instances": [ROW] * 3}), 422, "at most 2")
    assert_error(small.post("/v1/models/iris/explain", json={"instances": [ROW], "steps": 5}), 422, "at most 4")
    capped = small.post("/v1/models/iris/explain", json={"instances": [ROW] * 2})  # the default, 32, is capped
    assert capped.status_code == 200 and capped.get_json()["steps"] == 4
    hurried = make_app(explain_store, NNSERVE_EXPLAIN_MAX_SECONDS=1e-9).test_client()
    rows = {"instances": [ROW] * 40, "steps": 256}  # 15 rows a chunk at 256 steps: the clock is read after them
    answer = assert_error(hurried.post("/v1/models/iris/explain", json=rows), 422, "NNSERVE_EXPLAIN_MAX_SECONDS")
    assert "steps" in answer["errors"]


def test_explaining_needs_the_predict_scope_when_closed(make_app, explain_store, tmp_path, assert_error):
    root = tmp_path / "store"
    shutil.copytree(explain_store, root)
    keys = FileKeyStore(root)
    closed = make_app(root, NNSERVE_AUTH="closed").test_client()
    assert_error(closed.post("/v1/models/iris/explain", json={"instances": [ROW]}), 401)
    _, reader = keys.create("reader", ["feedback"], ())
    headers = {"Authorization": f"Bearer {reader}"}
    assert_error(closed.post("/v1/models/iris/explain", json={"instances": [ROW]}, headers=headers), 403)
    _, predictor = keys.create("app", ["predict"], ())
    answer = closed.post(
        "/v1/models/iris/explain", json={"instances": [ROW]}, headers={"Authorization": f"Bearer {predictor}"}
    )
    assert answer.status_code == 200
