"""``nnserve serve`` binds where NNSERVE_BIND says; NNSERVE_HOST, NNSERVE_PORT (or --host, --port) replace its parts."""

from __future__ import annotations

import os
import signal
from pathlib import Path

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


def test_serve_in_a_folder_with_no_catalog_starts_empty_and_says_how_to_add_a_model(tmp_path):
    port = free_port()
    log = tmp_path / "serve.log"
    args = ["serve", "--port", port, "--workers", 1, "--store", tmp_path / "store", "--models-dir", tmp_path / "none"]
    proc = start_cli(*args, "--no-retrain-worker", env=service_env(), log=log)
    try:
        wait_for(lambda: _ready(port), 60, f"nnserve serve on port {port}")
        url = f"http://127.0.0.1:{port}"
        assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
        assert requests.get(f"{url}/v1/models", timeout=5).json()["models"] == []
        page = requests.get(f"{url}/ui/", timeout=5)
        assert page.status_code == 200 and "<html" in page.text.lower()
        assert "holds no model spec: serving no model yet" in log.read_text()
        assert "`nnserve train SPEC.toml`" in log.read_text()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def _environ(pid: int) -> dict[str, str]:
    """The environment ``pid`` started with."""
    items = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0")
    return dict(item.split("=", 1) for item in items if "=" in item)


@pytest.mark.parametrize(
    ("env", "want"),
    [
        ({}, "2"),
        ({"NNSERVE_MALLOC_ARENAS": "3"}, "3"),
        ({"MALLOC_ARENA_MAX": "5"}, "5"),
        ({"NNSERVE_MALLOC_ARENAS": "0"}, None),
    ],
    ids=["default", "setting", "MALLOC_ARENA_MAX kept", "off"],
)
def test_serve_caps_glibc_malloc_arenas_for_gunicorn_and_its_workers(tmp_path, trained_store, env, want):
    store = copy_store(trained_store("iris", epochs=3), tmp_path)
    port = free_port()
    args = ["serve", "--port", port, "--workers", 1, "--grpc-port", 0, "--store", store, "--no-retrain-worker"]
    proc = start_cli(*args, env=service_env(**env))
    try:
        wait_for(lambda: _ready(port), 60, f"nnserve serve on port {port}")
        workers = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert workers, "gunicorn has no worker"
        for pid in [proc.pid, *map(int, workers)]:  # the master (nnserve serve became gunicorn) and its workers
            assert _environ(pid).get("MALLOC_ARENA_MAX") == want
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
