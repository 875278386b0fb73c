"""Successful predictions: every model, every route, every input form, checked against the stored estimator."""

import numpy as np
import pytest

MODELS = ("breast_cancer", "diabetes", "digits", "iris")
CLASSIFIERS = ("breast_cancer", "digits", "iris")
ROUTES = {
    "predict": "/v1/models/{name}/predict",
    "alias": "/v1/models/{name}:predict",
    "pinned": "/v1/models/{name}/versions/1/predict",
}


def check_prediction(body, name, version, est, X):
    """``body`` is the prediction of ``est`` (version ``version`` of ``name``) for rows ``X``."""
    X = np.asarray(X, dtype=np.float64)
    if name in CLASSIFIERS:
        assert set(body) == {"model", "version", "predictions", "probabilities"}, body
    else:
        assert set(body) == {"model", "version", "predictions"}, body
    assert body["model"] == name
    assert body["version"] == version
    assert len(body["predictions"]) == len(X)
    if name in CLASSIFIERS:
        # the original labels, exactly as the estimator returns them
        assert body["predictions"] == est.predict(X).tolist()
        proba = np.array(body["probabilities"], dtype=np.float64)
        assert proba.shape == (len(X), len(est.classes_))
        np.testing.assert_allclose(proba, est.predict_proba(X), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
        assert (proba >= 0).all()
    else:
        assert all(isinstance(p, float | int) and not isinstance(p, bool) for p in body["predictions"])
        np.testing.assert_allclose(np.array(body["predictions"]), est.predict(X), rtol=1e-6)


@pytest.mark.parametrize("route", sorted(ROUTES))
@pytest.mark.parametrize("name", MODELS)
def test_predict_matches_the_stored_estimator(client, tiny_catalog_store, name, route):
    rows = tiny_catalog_store.models[name].rows
    response = client.post(ROUTES[route].format(name=name), json={"instances": rows.tolist()})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    check_prediction(response.get_json(), name, 1, tiny_catalog_store.estimator(name, 1), rows)


def test_prediction_label_types(client, tiny_catalog_store):
    def predict(name):
        rows = tiny_catalog_store.models[name].rows.tolist()
        return client.post(f"/v1/models/{name}/predict", json={"instances": rows}).get_json()["predictions"]

    iris = predict("iris")
    assert all(isinstance(p, str) for p in iris) and set(iris) <= {"setosa", "versicolor", "virginica"}
    cancer = predict("breast_cancer")
    assert all(isinstance(p, str) for p in cancer) and set(cancer) <= {"benign", "malignant"}
    digits = predict("digits")
    assert all(type(p) is int for p in digits) and set(digits) <= set(range(10))
    assert all(type(p) is float for p in predict("diabetes"))


def test_pinned_inactive_version(client, tiny_catalog_store):
    rows = tiny_catalog_store.models["iris"].rows
    v1 = client.post("/v1/models/iris/versions/1/predict", json={"instances": rows.tolist()}).get_json()
    response = client.post("/v1/models/iris/versions/2/predict", json={"instances": rows.tolist()})
    assert response.status_code == 200
    v2 = response.get_json()
    check_prediction(v2, "iris", 2, tiny_catalog_store.estimator("iris", 2), rows)
    assert v1["version"] == 1
    assert not np.allclose(v1["probabilities"], v2["probabilities"]), "versions 1 and 2 should be different models"
    # pinning does not change what the active route serves
    assert client.post("/v1/models/iris/predict", json={"instances": rows.tolist()}).get_json() == v1


def forms(names, rows):
    """The same rows in every accepted request form."""
    rows = [list(map(float, r)) for r in rows]
    reverse = [dict(reversed(list(zip(names, r, strict=True)))) for r in rows]
    shuffled_names = names[1::2] + names[::2]
    shuffled = [{n: r[names.index(n)] for n in shuffled_names} for r in rows]
    return {
        "rows": {"instances": rows},
        "objects": {"instances": [dict(zip(names, r, strict=True)) for r in rows]},
        "objects_reversed_keys": {"instances": reverse},
        "objects_shuffled_keys": {"instances": shuffled},
        "columns": {"inputs": {n: [r[j] for r in rows] for j, n in enumerate(names)}},
        "columns_reversed_keys": {"inputs": {n: [r[names.index(n)] for r in rows] for n in reversed(names)}},
    }


@pytest.mark.parametrize("form", sorted(forms(["a", "b"], [[1, 2]])))
@pytest.mark.parametrize("name", MODELS)
def test_every_input_form_gives_the_same_answer(client, tiny_catalog_store, name, form):
    model = tiny_catalog_store.models[name]
    body = forms(model.feature_names, model.rows)[form]
    response = client.post(f"/v1/models/{name}/predict", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    check_prediction(response.get_json(), name, 1, tiny_catalog_store.estimator(name), model.rows)


@pytest.mark.parametrize("name", MODELS)
def test_a_single_row_without_the_outer_list(client, tiny_catalog_store, name):
    row = tiny_catalog_store.models[name].rows[1]
    response = client.post(f"/v1/models/{name}:predict", json={"instances": row.tolist()})
    assert response.status_code == 200, response.get_data(as_text=True)
    check_prediction(response.get_json(), name, 1, tiny_catalog_store.estimator(name), [row])


def test_integer_and_float_values_mix(client, tiny_catalog_store):
    rows = [[5, 3.5, 1, 0.2], [6, 3, 5, 2]]
    response = client.post("/v1/models/iris/predict", json={"instances": rows})
    assert response.status_code == 200
    check_prediction(response.get_json(), "iris", 1, tiny_catalog_store.estimator("iris"), rows)


def test_a_large_batch(client, tiny_catalog_store):
    rows = np.tile(tiny_catalog_store.models["digits"].rows, (200, 1))  # 1200 x 64
    response = client.post("/v1/models/digits/predict", json={"instances": rows.tolist()})
    assert response.status_code == 200
    check_prediction(response.get_json(), "digits", 1, tiny_catalog_store.estimator("digits"), rows)


def test_raw_body_with_charset_parameter(client, tiny_catalog_store):
    rows = tiny_catalog_store.models["iris"].rows.tolist()
    data = '{"instances": ' + str(rows) + "}"
    response = client.post("/v1/models/iris/predict", data=data, content_type="application/json; charset=utf-8")
    assert response.status_code == 200
    check_prediction(response.get_json(), "iris", 1, tiny_catalog_store.estimator("iris"), rows)


@pytest.mark.parametrize(
    ("url", "version"), [("/v1/models/iris/predict", 1), ("/v1/models/iris/versions/2/predict", 2)]
)
def test_the_answering_version_is_named_in_body_and_header(client, tiny_catalog_store, url, version):
    response = client.post(url, json={"instances": tiny_catalog_store.models["iris"].rows.tolist()})
    assert response.status_code == 200
    assert response.get_json()["version"] == version
    assert response.headers["X-Model-Version"] == str(version)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("route", sorted(ROUTES))
def test_rows_whose_outputs_are_not_finite_are_a_422_naming_the_row_never_null(
    client, tiny_catalog_store, assert_error, name, route
):
    rows = np.array(tiny_catalog_store.models[name].rows[:4], dtype=np.float64)
    rows[2] = rows[3] = 3e38  # in float32's range, far outside any training data: the network overflows
    response = client.post(ROUTES[route].format(name=name), json={"instances": rows.tolist()})
    body = assert_error(response, 422, "the model's output for row 2 is not finite", "rows with such outputs: 2, 3")
    assert body["errors"] == {"instances": [body["message"]]}
