"""PostgreSQL fixtures (imported by tests/conftest.py): one real server per session, a fresh database per test."""

from __future__ import annotations

import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from postgres.server import NotInstalledError, PostgresServer, binaries
from service.server.registry import ActivationWatcher


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """The session's server, on the binaries ``postgres.server.binaries`` picks (never a skip: a missing
    PostgreSQL fails the tests that need it, saying what to install)."""
    try:
        found = binaries()
    except NotInstalledError as e:
        pytest.fail(str(e))
    base = Path(tempfile.mkdtemp(prefix="nnserve-pg-"))
    server = PostgresServer(base / "cluster", binaries=found)
    base.chmod(0o755)
    server.init()
    try:
        yield server
    finally:
        _stop_watchers()
        server.destroy()
        base.rmdir()


@pytest.fixture
def database_url(pg_server: PostgresServer) -> str:
    """A new, empty database on the session's server (so tests never see each other's rows)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # name is generated above, never input
    return pg_server.url.rsplit("/", 1)[0] + f"/{name}"


def _stop_watchers() -> None:
    """Stop the activation watchers the session's apps left running, before their database goes: otherwise they
    retry it and log to streams pytest has already closed ("--- Logging error ---" after the summary)."""
    watchers = [t for t in threading.enumerate() if isinstance(t, ActivationWatcher)]
    for watcher in watchers:
        watcher.stop()
    for watcher in watchers:
        watcher.join(timeout=5)
