"""End-to-end fixtures: the real service under gunicorn, on a free loopback port.

``gunicorn_server(store_root, workers=2, env=None)`` starts
``gunicorn -c service/server/gunicorn_conf.py service.server.wsgi:app`` as its own process
group with ``NNSERVE_STORE=store_root`` (plus ``env``), waits until
``GET /readyz`` answers 200, and returns a ``Server`` (``url``, ``process``,
``log``). Every server a module started is stopped when the module ends:
SIGTERM to the whole process group, SIGKILL if it is still there after a
grace period. ``server.stop()`` stops one earlier (idempotent).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from helpers import service_env, start_cli, start_process

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str  # http://127.0.0.1:<port>, no trailing slash
    process: subprocess.Popen
    log: Path  # gunicorn's combined stdout and stderr
    stopped: bool = field(default=False)

    @property
    def host_port(self) -> str:
        """``127.0.0.1:<port>``, the form tritonclient takes."""
        return self.url.removeprefix("http://")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """SIGTERM the process group (gunicorn's graceful stop), SIGKILL it if it lingers."""
        if self.stopped:
            return
        self.stopped = True
        for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, STOP_TIMEOUT)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(wait)
            except subprocess.TimeoutExpired:
                continue
            # the master is gone; make sure no worker of its group outlives it
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            break


def _wait_ready(server: Server, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            if requests.get(f"{server.url}/readyz", timeout=1).status_code == 200:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.1)
    return False


def start_gunicorn(
    store_root: str | os.PathLike[str],
    workers: int = 2,
    env: dict[str, str] | None = None,
    log_dir: str | os.PathLike[str] | None = None,
    port: int | None = None,
) -> Server:
    """Start gunicorn on the store and return once it is ready; raises with the log tail if it never is."""
    environment = service_env(NNSERVE_STORE=str(store_root), PYTHONUNBUFFERED="1", **(env or {}))
    attempts = 1 if port is not None else 3  # a free port can be taken between finding and binding it
    for _ in range(attempts):
        bind_port = port or free_port()
        log = (Path(log_dir) if log_dir is not None else Path(store_root).parent) / f"gunicorn-{bind_port}.log"
        argv = [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "service/server/gunicorn_conf.py",
            "--bind",
            f"127.0.0.1:{bind_port}",
        ]
        process = start_process([*argv, "--workers", str(workers), "service.server.wsgi:app"], environment, log)
        server = Server(f"http://127.0.0.1:{bind_port}", process, log)
        try:
            if _wait_ready(server, START_TIMEOUT):
                return server
        except BaseException:
            server.stop()
            raise
        server.stop()
        if "Address already in use" not in server.log_tail():
            break
    raise RuntimeError(f"gunicorn did not become ready on {server.url}; its log ends with:\n{server.log_tail()}")


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
        if not _wait_ready(server, 90):
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
