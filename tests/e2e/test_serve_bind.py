"""``nnserve serve`` binds where NNSERVE_BIND says; NNSERVE_HOST, NNSERVE_PORT (or --host, --port) replace its parts."""

from __future__ import annotations

import os
import signal

import pytest
import requests
from helpers import copy_store, free_port, service_env, start_cli, wait_for


def _ready(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
    except requests.RequestException:  # not listening yet, or too busy starting to answer within 1 s
        return False


@pytest.mark.parametrize("how", ["NNSERVE_BIND", "NNSERVE_PORT", "--port over NNSERVE_BIND"])
def test_serve_listens_where_the_environment_says(tmp_path, trained_store, how):
    store = copy_store(trained_store("iris", epochs=3), tmp_path)
    port, other = free_port(), free_port()
    env = {"NNSERVE_BIND": f"127.0.0.1:{port}"}
    args = ["serve", "--workers", 1, "--store", store, "--no-retrain-worker"]
    if how == "NNSERVE_PORT":
        env = {"NNSERVE_PORT": str(port)}
    elif how.startswith("--port"):
        env = {"NNSERVE_BIND": f"127.0.0.1:{other}"}
        args += ["--port", port]
    proc = start_cli(*args, env=service_env(**env))
    try:
        wait_for(lambda: _ready(port), 60, f"nnserve serve on port {port}")
        assert not _ready(other)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
