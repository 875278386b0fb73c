"""gunicorn run directly on ``service.server.wsgi:app`` (as a deployment may, instead of ``nnserve serve``): a
configuration the operator has to fix stops it with the CLI's one line and a non-zero exit, not a worker's
traceback, whether the app loads in the workers or (``--preload``) in the master."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import REPO, free_port, service_env

MISSING_DRIVER = (
    "Error: NNSERVE_DATABASE_URL names a PostgreSQL database but psycopg and psycopg_pool are not installed: "
    "pip install 'nnserve[postgres]'"
)  # what `nnserve serve` says (tests/packaging/test_install.py)
APP_LOAD_ERROR = 4  # gunicorn's exit code when the application cannot be loaded


def gunicorn(tmp_path, preload: bool, **env: str) -> subprocess.CompletedProcess[str]:
    # One worker unless preloaded: when two workers fail to load at once, gunicorn 27's master may reap the second
    # while halting for the first and print its own HaltServer traceback (its race, whatever the app raises).
    workers = "2" if preload else "1"
    argv = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{free_port()}", "--workers", workers]
    argv += ["--no-control-socket", *(["--preload"] if preload else []), "service.server.wsgi:app"]
    environment = service_env(NNSERVE_STORE=str(tmp_path / "store"), **env)
    return subprocess.run(argv, cwd=REPO, env=environment, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("preload", [False, True], ids=["workers", "preload"])
def test_a_database_url_without_the_postgres_extra_is_one_line(tmp_path, preload):
    hidden = tmp_path / "without_psycopg"
    hidden.mkdir()
    (hidden / "sitecustomize.py").write_text(  # as where the postgres extra is not installed: find_spec gives None
        "import sys\nsys.modules['psycopg'] = sys.modules['psycopg_pool'] = None\n"
    )
    done = gunicorn(
        tmp_path, preload, NNSERVE_DATABASE_URL="postgresql://nnserve@127.0.0.1:1/nnserve", PYTHONPATH=str(hidden)
    )
    assert done.returncode == APP_LOAD_ERROR, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    said = {line for line in done.stderr.splitlines() if line.startswith("Error: ")}
    assert said == {MISSING_DRIVER}, done.stderr


def test_a_bad_setting_is_one_line(tmp_path):
    done = gunicorn(tmp_path, False, NNSERVE_MAX_ROWS="many")
    assert done.returncode == APP_LOAD_ERROR, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    said = {line for line in done.stderr.splitlines() if line.startswith("Error: ")}
    assert said == {"Error: NNSERVE_MAX_ROWS='many' is not a valid int"}, done.stderr
