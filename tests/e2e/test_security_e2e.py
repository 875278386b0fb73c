"""Security headers through real gunicorn: nosniff on every app response, no version banner anywhere.

gunicorn 27 sends ``Server: gunicorn`` (its name, no version) and has no setting to change it;
the app adds no ``Server`` header of its own, so exactly one, version-free, reaches clients.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest
import requests
from helpers import copy_store

REPO = Path(__file__).resolve().parents[2]
VERSION_BANNER = re.compile(r"(werkzeug|python|gunicorn)\s*/?\s*\d", re.IGNORECASE)
IRIS = {"instances": [[5.1, 3.5, 1.4, 0.2]]}


@pytest.fixture(scope="module")
def server(tmp_path_factory, trained_store, gunicorn_server):
    root = copy_store(trained_store("iris", epochs=5), tmp_path_factory.mktemp("security-e2e"))
    return gunicorn_server(root, workers=1, env={"NNSERVE_ACCESS_LOG": "/dev/null"})


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/readyz", None, 200),
        ("POST", "/v1/models/iris/predict", IRIS, 200),
        ("POST", "/v1/models/iris/predict", {"instances": [[float("nan")] * 4]}, 422),
        ("POST", "/v1/models/nope/predict", IRIS, 404),
        ("POST", "/v1/models/iris/retrain", {}, 403),  # no admin token configured
        ("GET", "/v2/models/iris", None, 200),
        ("GET", "/v2/models/nope", None, 404),
        ("GET", "/openapi.json", None, 200),
        ("GET", "/docs", None, 200),
    ],
)
def test_headers_through_gunicorn(server, method, path, body, status):
    data = None if body is None else json.dumps(body)  # allow_nan: a NaN literal on purpose
    headers = {"Content-Type": "application/json"} if body is not None else {}
    response = requests.request(method, server.url + path, data=data, headers=headers, timeout=10)
    assert response.status_code == status, response.text
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Server"] == "gunicorn"  # one Server header, without a version
    for name, value in response.headers.items():
        assert not VERSION_BANNER.search(value), f"{name}: {value}"


def test_gunicorns_own_error_pages_name_no_version(server):
    """A request gunicorn rejects before the app sees it (a malformed request line) reveals no version either."""
    host, port = server.host_port.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"NOT A REQUEST\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, _page = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), answer
    assert not VERSION_BANNER.search(answer.decode("latin-1")), answer


@pytest.mark.parametrize(
    "path",
    [
        "/v1/models/%2e%2e%2f/predict",
        "/v1/models/%2e%2e%2f:predict",
        "/v2/models/%2e%2e%2f/infer",
        "/v1/models//predict",
    ],
)
def test_a_name_of_encoded_dots_and_slashes_is_a_json_404_not_a_redirect(server, path):
    response = requests.post(server.url + path, json=IRIS, timeout=10, allow_redirects=False)
    assert response.status_code == 404, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert "Location" not in response.headers
