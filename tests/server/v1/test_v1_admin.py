"""Admin activation: authorisation, roll forward and back, refusal of unknown and broken versions."""

import base64

import numpy as np
import pytest

from service.store import FileModelStore

ROW = [5.1, 3.5, 1.4, 0.2]
ACTIVATE = "/v1/models/iris/versions/2/activate"


@pytest.fixture
def copy_app(make_app, tiny_catalog_copy):
    """An app with an admin token on a private copy of the store."""
    return make_app(tiny_catalog_copy)


@pytest.fixture
def copy_client(copy_app):
    return copy_app.test_client()


def active_version(client, name="iris"):
    return client.get(f"/v1/models/{name}").get_json()["active_version"]


def test_admin_calls_are_403_without_a_configured_token(make_app, tiny_catalog_copy, assert_error, admin_headers):
    client = make_app(tiny_catalog_copy, NNSERVE_ADMIN_TOKEN=None).test_client()
    for headers in ({}, admin_headers, {"Authorization": "Bearer "}):
        assert_error(client.post(ACTIVATE, headers=headers), 403, "NNSERVE_ADMIN_TOKEN", "disabled")
    assert FileModelStore(tiny_catalog_copy).active_version("iris") == 1


def test_an_empty_token_setting_disables_admin_calls(make_app, tiny_catalog_copy, assert_error):
    client = make_app(tiny_catalog_copy, NNSERVE_ADMIN_TOKEN="").test_client()
    assert_error(client.post(ACTIVATE, headers={"Authorization": "Bearer "}), 403, "NNSERVE_ADMIN_TOKEN")
    assert FileModelStore(tiny_catalog_copy).active_version("iris") == 1


def bad_authorizations(token):
    last = chr(ord(token[-1]) ^ 1)
    return {
        "missing": [],
        "wrong": [("Authorization", "Bearer not-the-token")],
        "last_byte_differs": [("Authorization", f"Bearer {token[:-1]}{last}")],
        "first_byte_differs": [("Authorization", f"Bearer {chr(ord(token[0]) ^ 1)}{token[1:]}")],
        "prefix": [("Authorization", f"Bearer {token[:-1]}")],
        "extended": [("Authorization", f"Bearer {token}x")],
        "empty_bearer": [("Authorization", "Bearer ")],
        "scheme_only": [("Authorization", "Bearer")],
        "no_scheme": [("Authorization", token)],
        "basic_scheme": [("Authorization", "Basic " + base64.b64encode(f"admin:{token}".encode()).decode())],
        "token_scheme": [("Authorization", f"Token {token}")],
        "two_headers": [("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")],
        "two_headers_one_wrong": [("Authorization", "Bearer nope"), ("Authorization", f"Bearer {token}")],
        "token_in_other_header": [("X-Admin-Token", token)],
    }


@pytest.mark.parametrize("case", sorted(bad_authorizations("token")))
def test_bad_authorization_is_401(copy_client, tiny_catalog_copy, assert_error, admin_token, case):
    headers = bad_authorizations(admin_token)[case]
    response = copy_client.post(ACTIVATE, headers=headers)
    assert_error(response, 401, "token")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert FileModelStore(tiny_catalog_copy).active_version("iris") == 1


def test_authorization_is_checked_before_the_model_exists(copy_client, assert_error):
    # no token: a client cannot probe which models or versions exist
    assert_error(copy_client.post("/v1/models/nope/versions/1/activate"), 401)
    assert_error(copy_client.post("/v1/models/iris/versions/99/activate"), 401)


def test_activate_rolls_forward_and_back(copy_client, tiny_catalog_copy, admin_headers, tiny_catalog_store):
    rows = tiny_catalog_store.models["iris"].rows.tolist()
    before = copy_client.post("/v1/models/iris/predict", json={"instances": rows}).get_json()
    assert before["version"] == 1

    response = copy_client.post(ACTIVATE, headers=admin_headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"model": "iris", "version": 2, "previous_version": 1}
    assert FileModelStore(tiny_catalog_copy).active_version("iris") == 2

    after = copy_client.post("/v1/models/iris/predict", json={"instances": rows}).get_json()
    assert after["version"] == 2
    v2 = tiny_catalog_store.estimator("iris", 2)
    assert after["predictions"] == v2.predict(np.array(rows)).tolist()
    np.testing.assert_allclose(after["probabilities"], v2.predict_proba(np.array(rows)), rtol=1e-6, atol=1e-7)
    assert copy_client.post("/v1/models/iris:predict", json={"instances": rows}).get_json()["version"] == 2

    listed = {m["name"]: m for m in copy_client.get("/v1/models").get_json()["models"]}
    assert listed["iris"]["version"] == 2
    assert listed["iris"]["metrics"] == tiny_catalog_store.models["iris"].metrics[2]
    detail = copy_client.get("/v1/models/iris").get_json()
    assert detail["active_version"] == 2
    assert [(v["version"], v["active"]) for v in detail["versions"]] == [(1, False), (2, True)]
    ready = copy_client.get("/readyz").get_json()
    assert ready["models"]["iris"] == {"active_version": 2, "loaded_version": 2, "error": None}

    back = copy_client.post("/v1/models/iris/versions/1/activate", headers=admin_headers)
    assert back.status_code == 200
    assert back.get_json() == {"model": "iris", "version": 1, "previous_version": 2}
    assert copy_client.post("/v1/models/iris/predict", json={"instances": rows}).get_json() == before


def test_activate_the_active_version_is_a_no_op(copy_client, admin_headers):
    response = copy_client.post("/v1/models/iris/versions/1/activate", headers=admin_headers)
    assert response.status_code == 200
    assert response.get_json() == {"model": "iris", "version": 1, "previous_version": 1}


def test_the_bearer_scheme_is_case_insensitive(copy_client, admin_token):
    response = copy_client.post(ACTIVATE, headers={"Authorization": f"bearer {admin_token}"})
    assert response.status_code == 200
    assert response.get_json()["version"] == 2


@pytest.mark.parametrize(
    "path, fragment",
    [
        ("/v1/models/iris/versions/3/activate", "version 3"),
        ("/v1/models/iris/versions/0/activate", "'0'"),
        ("/v1/models/iris/versions/-1/activate", "'-1'"),
        ("/v1/models/iris/versions/abc/activate", "'abc'"),
        ("/v1/models/iris/versions/99999999999999999999/activate", "99999999999999999999"),
        ("/v1/models/nope/versions/1/activate", "'nope'"),
        ("/v1/models/IRIS/versions/1/activate", "'IRIS'"),
    ],
)
def test_activate_unknown_version_or_model_is_404(
    copy_client, tiny_catalog_copy, admin_headers, assert_error, path, fragment
):
    assert_error(copy_client.post(path, headers=admin_headers), 404, fragment)
    assert FileModelStore(tiny_catalog_copy).active_version("iris") == 1


def test_activate_a_corrupt_version_is_409_and_the_active_one_keeps_serving(
    copy_client, tiny_catalog_copy, admin_headers, assert_error, corrupt, tiny_catalog_store
):
    rows = tiny_catalog_store.models["iris"].rows.tolist()
    before = copy_client.post("/v1/models/iris/predict", json={"instances": rows}).get_json()
    corrupt(tiny_catalog_copy, "iris", 2)

    assert_error(copy_client.post(ACTIVATE, headers=admin_headers), 409, "version 2", "broken")

    assert FileModelStore(tiny_catalog_copy).active_version("iris") == 1
    assert active_version(copy_client) == 1
    assert copy_client.post("/v1/models/iris/predict", json={"instances": rows}).get_json() == before
    assert copy_client.get("/readyz").get_json()["models"]["iris"]["loaded_version"] == 1
    assert_error(copy_client.post("/v1/models/iris/versions/2/predict", json={"instances": rows}), 409, "broken")


def test_activate_repairs_an_unreadable_active_file(copy_client, tiny_catalog_copy, admin_headers):
    (tiny_catalog_copy / "iris" / "ACTIVE").write_text("garbage\n")  # what activate exists to repair
    response = copy_client.post(ACTIVATE, headers=admin_headers)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"model": "iris", "version": 2, "previous_version": None}
    assert FileModelStore(tiny_catalog_copy).active_version("iris") == 2
    assert copy_client.post("/v1/models/iris/predict", json={"instances": [ROW]}).get_json()["version"] == 2
