"""Every answer of the API is JSON: paths werkzeug would redirect (an HTML 308) are JSON 404s instead."""

import pytest

from service.server import create_app

PATHS = [
    "/v1/models/%2e%2e%2f/predict",
    "/v1/models/%2E%2E%2F/predict",
    "/v1/models/%2e%2e%2f:predict",
    "/v1/models/%2e%2e%2f/versions/1/predict",
    "/v2/models/%2e%2e%2f/infer",
    "/v2/models/%2e%2e%2f/versions/1/infer",
    "/v1/models//predict",
]


@pytest.fixture
def client(tmp_path):
    return create_app({"NNSERVE_STORE": str(tmp_path), "TESTING": True}).test_client()


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("path", PATHS)
def test_no_redirect_and_no_html(client, method, path):
    response = getattr(client, method)(path, json={"instances": [[1.0]]})
    assert response.status_code in (404, 405), response.status_code
    assert response.content_type == "application/json"
    assert "Location" not in response.headers
    body = response.get_json()
    assert ("error" in body) if path.startswith("/v2") else body["code"] == response.status_code


def test_a_trailing_slash_is_served_not_redirected(client):
    response = client.get("/v1/models/")
    assert response.status_code == 200 and response.get_json() == {"models": []}
