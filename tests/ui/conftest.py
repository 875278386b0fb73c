"""Fixtures of the dashboard tests: a store with a classifier, a regressor, hostile class labels and an old
manifest, and a Flask test client over it."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import copy_store
from ui_support import TOKEN, add_hostile_model, add_old_version

from service.server.app import create_app


@pytest.fixture(scope="session")
def ui_store_base(trained_store, tmp_path_factory) -> Path:
    root = copy_store(trained_store("iris", "diabetes", epochs=12), tmp_path_factory.mktemp("ui-base"))
    add_hostile_model(root)
    add_old_version(root)
    return root


@pytest.fixture
def ui_store(ui_store_base, tmp_path) -> Path:
    return copy_store(ui_store_base, tmp_path)


@pytest.fixture
def client(ui_store):
    app = create_app({"TESTING": True, "NNSERVE_STORE": str(ui_store), "NNSERVE_ADMIN_TOKEN": TOKEN})
    return app.test_client()
