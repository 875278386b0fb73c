"""End-to-end fixtures: the real service under gunicorn, on a free loopback port (built on ``tests/servers.py``).

``gunicorn_server(store_root, workers=2, env=None)`` starts
``gunicorn -c service/server/gunicorn_conf.py service.server.wsgi:app`` as its own process
group with ``NNSERVE_STORE=store_root`` (plus ``env``), waits until
``GET /readyz`` answers 200, and returns a ``Server`` (``url``, ``process``,
``log``). Every server a module started is stopped when the module ends:
SIGTERM to the whole process group, SIGKILL if it is still there after a
grace period. ``server.stop()`` stops one earlier (idempotent).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import free_port, start_cli
from servers import Server, start_gunicorn, wait_ready


@pytest.fixture(scope="module")
def gunicorn_server(tmp_path_factory):
    """Factory: ``gunicorn_server(store_root, workers=2, env=None) -> Server``; all stopped at module end."""
    started: list[Server] = []
    log_dir = tmp_path_factory.mktemp("gunicorn-logs")

    def start(store_root, workers: int = 2, env: dict[str, str] | None = None) -> Server:
        server = start_gunicorn(store_root, workers, env, log_dir=log_dir)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def nnserve_serve(tmp_path):
    """Factory ``nnserve_serve(store, env) -> Server``: ``nnserve serve --workers 2`` (gunicorn plus the supervised
    retraining worker) on a free port, ready; stopped when the test ends."""
    started: list[Server] = []

    def start(store: Path, env: dict[str, str]) -> Server:
        port = free_port()
        log = tmp_path / f"serve-{port}.log"
        process = start_cli("serve", "--port", port, "--workers", 2, "--store", store, env=env, log=log)
        server = Server(f"http://127.0.0.1:{port}", process, log)
        started.append(server)
        if not wait_ready(server, 90):
            raise RuntimeError(f"nnserve serve did not become ready; its log ends with:\n{server.log_tail()}")
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def port() -> int:
    """A free TCP port on 127.0.0.1, for servers a test starts itself."""
    return free_port()
