"""The client suite's servers: ``nnserve serve`` on a free port (gunicorn + the retraining worker), and the
same app in-process for the Flask test client, both on copies of one small trained store (iris, diabetes)."""

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from client_support import TOKEN, FlaskClient
from helpers import free_port, service_env, start_cli

from service import create_app
from service.client import Client

START_TIMEOUT = 90.0


@dataclass
class Live:
    url: str
    process: subprocess.Popen
    log: Path

    def stop(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
                self.process.wait(15)
                return
            except ProcessLookupError:
                return
            except subprocess.TimeoutExpired:
                continue


@pytest.fixture(scope="module")
def store_root(trained_store, tmp_path_factory):
    """This module's copy of iris and diabetes, trained for 5 epochs by the CLI."""
    root = tmp_path_factory.mktemp("client") / "store"
    shutil.copytree(trained_store("iris", "diabetes", epochs=5), root)
    return root


@pytest.fixture(scope="module")
def live(store_root):
    """``nnserve serve --workers 1`` with the admin token, stopped (its whole process group) at module end."""
    port = free_port()
    log = store_root.parent / "serve.log"
    env = service_env(NNSERVE_ADMIN_TOKEN=TOKEN, NNSERVE_RELOAD_INTERVAL="0.2", NNSERVE_ACCESS_LOG="/dev/null")
    process = start_cli("serve", "--port", port, "--workers", 1, "--store", store_root, env=env, log=log)
    server = Live(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        probe = Client(server.url, timeout=1)
        while True:
            assert process.poll() is None, f"nnserve serve exited:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"nnserve serve never answered:\n{log.read_text()[-3000:]}"
            try:
                probe.models()
                break
            except Exception:
                time.sleep(0.2)
        yield server
    finally:
        server.stop()


@pytest.fixture
def flask_app(trained_store, tmp_path):
    root = tmp_path / "store"
    shutil.copytree(trained_store("iris", "diabetes", epochs=5), root)
    return create_app({"TESTING": True, "NNSERVE_STORE": str(root), "NNSERVE_ADMIN_TOKEN": TOKEN})


@pytest.fixture(params=["flask", "gunicorn"])
def any_client(request):
    """The client through the Flask test client, then through HTTP to the live server."""
    if request.param == "flask":
        return FlaskClient(request.getfixturevalue("flask_app"), token=TOKEN)
    return Client(request.getfixturevalue("live").url, token=TOKEN, timeout=30)
