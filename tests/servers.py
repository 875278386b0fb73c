"""Servers the tests start: the real service under gunicorn on a free loopback port (``start_gunicorn``), and
``Server``, the handle of any server process the tests start (``nnserve serve`` too). The e2e fixtures in
``tests/e2e/conftest.py`` are built on these; other suites import them from here."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
from helpers import free_port, service_env, start_cli, start_process

START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0


@dataclass
class Server:
    url: str  # http://127.0.0.1:<port>, no trailing slash
    process: subprocess.Popen
    log: Path  # gunicorn's combined stdout and stderr
    stopped: bool = field(default=False)
    grpc: str | None = None  # 127.0.0.1:<port> of its gRPC server, when it runs one

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


def wait_ready(server: Server, timeout: float) -> bool:
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


def ready_or_stopped(server: Server) -> bool:
    """Whether ``server`` became ready within START_TIMEOUT; if not (or the wait is interrupted), it is stopped."""
    try:
        if wait_ready(server, START_TIMEOUT):
            return True
    except BaseException:
        server.stop()
        raise
    server.stop()
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
        if ready_or_stopped(server):
            return server
        if "Address already in use" not in server.log_tail():
            break
    raise RuntimeError(f"gunicorn did not become ready on {server.url}; its log ends with:\n{server.log_tail()}")


def start_serve(
    store: str | os.PathLike[str],
    env: dict[str, str] | None = None,
    workers: int = 2,
    log_dir: str | os.PathLike[str] | None = None,
    grpc: bool = True,
    retrain_worker: bool = False,
) -> Server:
    """``nnserve serve`` on the store, on a free HTTP port and (``grpc``) a free gRPC port, once ready; raises with
    the log tail if it never is. ``env`` is added to ``service_env()``."""
    environment = service_env(PYTHONUNBUFFERED="1", **(env or {}))
    for _ in range(3):  # a free port can be taken between finding and binding it
        port, grpc_port = free_port(), free_port() if grpc else 0
        log = (Path(log_dir) if log_dir is not None else Path(store).parent) / f"serve-{port}.log"
        argv = ["serve", "--port", port, "--grpc-port", grpc_port, "--workers", workers, "--store", store]
        argv.append("--retrain-worker" if retrain_worker else "--no-retrain-worker")
        process = start_cli(*argv, env=environment, log=log)
        server = Server(f"http://127.0.0.1:{port}", process, log, grpc=f"127.0.0.1:{grpc_port}" if grpc else None)
        if ready_or_stopped(server):
            return server
        if "Address already in use" not in server.log_tail() and "cannot bind" not in server.log_tail():
            break
    raise RuntimeError(f"nnserve serve did not become ready on {server.url}; its log ends with:\n{server.log_tail()}")
