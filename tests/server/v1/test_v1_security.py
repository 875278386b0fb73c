"""Security headers on every response the app makes: v1, v2, errors, /docs, /openapi.json.

``X-Content-Type-Options: nosniff`` everywhere, and no header naming a version of the
server software (gunicorn, werkzeug, Python). The same is checked once against real
gunicorn in tests/e2e/test_security_e2e.py.
"""

import re

import pytest

IRIS = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
VERSION_BANNER = re.compile(r"(werkzeug|python|gunicorn)\s*/?\s*\d", re.IGNORECASE)

REQUESTS = [
    ("GET", "/healthz", None, {}, 200),
    ("GET", "/readyz", None, {}, 200),
    ("GET", "/v1/models", None, {}, 200),
    ("POST", "/v1/models/iris/predict", IRIS, {}, 200),
    ("POST", "/v1/models/iris/predict", {"instances": [[1.0]]}, {}, 422),
    ("POST", "/v1/models/nope/predict", IRIS, {}, 404),
    ("GET", "/v1/models/iris/predict", None, {}, 405),
    ("POST", "/v1/models/iris/versions/1/activate", None, {}, 401),
    ("GET", "/no/such/route", None, {}, 404),
    ("GET", "/v2", None, {}, 200),
    ("GET", "/v2/health/ready", None, {}, 200),
    ("POST", "/v2/models/nope/infer", {"inputs": []}, {}, 404),
    ("GET", "/v2/no/such/route", None, {}, 404),
    ("GET", "/openapi.json", None, {}, 200),
    ("GET", "/docs", None, {}, 200),
]


def check_headers(status, headers):
    assert headers.get("X-Content-Type-Options") == "nosniff", (status, dict(headers))
    for name, value in headers.items():
        assert not VERSION_BANNER.search(value), f"{name}: {value}"
    assert "X-Powered-By" not in headers


@pytest.mark.parametrize(("method", "path", "body", "headers", "status"), REQUESTS, ids=lambda v: str(v)[:40])
def test_every_response_carries_nosniff_and_no_version(client, method, path, body, headers, status):
    response = client.open(path, method=method, json=body, headers=headers)
    assert response.status_code == status, response.get_data(as_text=True)
    check_headers(response.status_code, response.headers)


def test_errors_werkzeug_raises_itself_carry_the_headers(client):
    too_big = client.post(
        "/v1/models/iris/predict", data=b"x" * (16 * 1024 * 1024 + 1), content_type="application/json"
    )
    assert too_big.status_code == 413
    check_headers(413, too_big.headers)
    wrong_type = client.post("/v1/models/iris/predict", data=b"{}", content_type="text/plain")
    assert wrong_type.status_code == 415
    check_headers(415, wrong_type.headers)
    malformed = client.post("/v1/models/iris/predict", data=b"{", content_type="application/json")
    assert malformed.status_code == 400
    check_headers(400, malformed.headers)
