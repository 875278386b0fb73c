"""Fixtures of the storage contract suites: one run per backend of ``backends.py``."""

from __future__ import annotations

from pathlib import Path

import pytest
from backends import (
    AUDIT_BACKENDS,
    KEY_BACKENDS,
    LOG_BACKENDS,
    QUEUE_BACKENDS,
    SNAPSHOT_BACKENDS,
    STORE_BACKENDS,
    Backend,
)


@pytest.fixture(params=STORE_BACKENDS)
def store_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return Backend(request.param, tmp_path / "store", _database(request))


@pytest.fixture(params=QUEUE_BACKENDS)
def queue_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    root = tmp_path / "store"
    root.mkdir()
    return Backend(request.param, root, _database(request))


@pytest.fixture(params=LOG_BACKENDS)
def log_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    root = tmp_path / "store"
    root.mkdir()
    return Backend(request.param, root, _database(request))


@pytest.fixture(params=KEY_BACKENDS)
def key_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return Backend(request.param, tmp_path / "store", _database(request))


@pytest.fixture(params=SNAPSHOT_BACKENDS)
def snapshot_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    root = tmp_path / "store"
    root.mkdir()
    return Backend(request.param, root, _database(request))


@pytest.fixture(params=AUDIT_BACKENDS)
def audit_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return Backend(request.param, tmp_path / "store", _database(request))


def _database(request: pytest.FixtureRequest) -> str | None:
    """A fresh PostgreSQL database for the postgres backend (a real server, started once per session)."""
    return request.getfixturevalue("database_url") if request.param == "postgres" else None
