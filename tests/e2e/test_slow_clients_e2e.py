"""Slow and malformed clients against real gunicorn (nnserve's worker class).

32 connections that send headers and one byte of a 100,000-byte body, or headers
a byte at a time, would hold every thread of two gthread workers (2 x 4) for as
long as they like; here one-row predictions are answered beside them, and the
stragglers get a JSON 408 once NNSERVE_READ_TIMEOUT has passed. Requests gunicorn
refuses before the app sees them (414, 431, 400) are answered in JSON too.
"""

from __future__ import annotations

import json
import socket
import time

import pytest
import requests
from helpers import copy_store

IRIS = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
READ_TIMEOUT = 4


@pytest.fixture(scope="module")
def server(tmp_path_factory, trained_store, gunicorn_server):
    root = copy_store(trained_store("iris", epochs=5), tmp_path_factory.mktemp("slow-e2e"))
    return gunicorn_server(
        root, workers=2, env={"NNSERVE_ACCESS_LOG": "/dev/null", "NNSERVE_READ_TIMEOUT": str(READ_TIMEOUT)}
    )


def open_slow(server, count: int) -> list[socket.socket]:
    host, port = server.host_port.split(":")
    slow = []
    for i in range(count):
        s = socket.create_connection((host, int(port)), timeout=10)
        if i % 2:  # the body's first byte of 100,000
            s.sendall(b"POST /v1/models/iris/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
            s.sendall(b"Content-Length: 100000\r\n\r\n{")
        else:  # half a request line
            s.sendall(b"POST /v2/models/iris/in")
        slow.append(s)
    return slow


def read_all(s: socket.socket) -> bytes:
    out = b""
    while chunk := s.recv(4096):
        out += chunk
    return out


def test_predictions_are_answered_beside_32_slow_clients_which_then_get_408(server):
    slow = open_slow(server, 32)
    try:
        time.sleep(0.5)  # every slow connection has reached a worker
        opened = time.monotonic()
        with requests.Session() as session:
            for _ in range(40):
                r = session.post(f"{server.url}/v1/models/iris/predict", json=IRIS, timeout=5)
                assert r.status_code == 200, r.text
        assert time.monotonic() - opened < READ_TIMEOUT, "answered only once the slow clients had timed out"
        for i, s in enumerate(slow):
            s.settimeout(READ_TIMEOUT + 10)
            head, _, body = read_all(s).partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 408 "), head
            message = json.loads(body)["error" if i % 2 == 0 else "message"]
            assert "did not arrive within 4 seconds" in message
    finally:
        for s in slow:
            s.close()


def test_a_request_sent_in_pieces_within_the_limit_is_answered(server):
    host, port = server.host_port.split(":")
    body = json.dumps(IRIS).encode()
    request = b"POST /v1/models/iris/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    request += b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    with socket.create_connection((host, int(port)), timeout=10) as s:
        for i in range(0, len(request), 20):
            s.sendall(request[i : i + 20])
            time.sleep(0.05)
        head, _, answer = read_all(s).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    assert json.loads(answer)["model"] == "iris"


HEAD = b"Host: x\r\nConnection: close\r\n"


@pytest.mark.parametrize(
    ("request_bytes", "status", "api"),
    [
        (b"GET /v1/models/" + b"a" * 5000 + b" HTTP/1.1\r\n" + HEAD + b"\r\n", 414, "v1"),
        (b"GET /v2/models/" + b"a" * 5000 + b" HTTP/1.1\r\n" + HEAD + b"\r\n", 414, "v2"),
        (b"GET /v1/models HTTP/1.1\r\n" + HEAD + b"X-Big: " + b"a" * 9000 + b"\r\n\r\n", 431, "v1"),
        (b"GET /v1/models HTTP/1.1\r\n" + HEAD + b"".join(b"X-%d: 1\r\n" % i for i in range(120)) + b"\r\n", 431, "v1"),
        (b"NOT A REQUEST\r\n\r\n", 400, "v1"),
        (b"GET /v2/models/iris HTTP/9.9\r\n" + HEAD + b"\r\n", 400, "v2"),
    ],
    ids=["414-v1", "414-v2", "431-long-header", "431-many-headers", "400-request-line", "400-version-v2"],
)
def test_gunicorns_own_errors_answer_in_the_json_error_shape(server, request_bytes, status, api):
    host, port = server.host_port.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(request_bytes)
        head, _, body = read_all(s).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status), head
    assert b"\r\ncontent-type: application/json\r\n" in head.lower() + b"\r\n", head
    answer = json.loads(body)
    if api == "v2":
        assert set(answer) == {"error"} and answer["error"], answer
    else:
        assert answer["code"] == status and answer["status"] and answer["message"], answer
        assert set(answer) == {"code", "status", "message"}
    # and the worker that answered it serves the next request
    assert requests.post(f"{server.url}/v1/models/iris/predict", json=IRIS, timeout=5).status_code == 200
