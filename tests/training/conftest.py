"""Fixtures of the retraining tests: a store copy per test and a v1 client with the admin token."""

import pytest
from retraining import TOKEN

from service import create_app


@pytest.fixture
def store_root(trained_store, store_copy):
    """This test's copy of iris, digits and diabetes trained for 20 epochs by the CLI (once per session)."""
    return store_copy(trained_store("iris", "digits", "diabetes", epochs=20))


@pytest.fixture
def client(store_root):
    config = {
        "NNSERVE_STORE": str(store_root),
        "NNSERVE_ADMIN_TOKEN": TOKEN,
        "NNSERVE_RELOAD_INTERVAL": 0,
        "TESTING": True,
    }
    return create_app(config).test_client()
