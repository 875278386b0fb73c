"""Shared test fixtures and the run's report. Keep this file small and generic: other suites add to it.

Fixtures only: what test modules import lives in ``helpers.py`` (never ``from conftest import``).
"""

from collections import Counter
from collections.abc import Generator

import pytest
from helpers import copy_store, read_catalog_csv, train_store
from postgres.fixtures import database_url, pg_server  # noqa: F401  (shared by tests/postgres and tests/contract)
from postgres.server import NotInstalledError, binaries


def pytest_report_header() -> str:
    """Which PostgreSQL the PostgreSQL tests will start (NNSERVE_TEST_PG: system, wheel, or unset for either)."""
    try:
        found = binaries()
    except NotInstalledError as e:
        return f"postgresql: {e}"
    return f"postgresql: {found.source}, PostgreSQL {found.major} ({found.bin})"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> Generator[None]:
    """The run's last lines (before the counts): every skip and its reason, which names what to install."""
    result = yield
    reasons: Counter[str] = Counter()
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reasons[f"{report.nodeid.split('::')[0]}: {reason.removeprefix('Skipped: ')}"] += 1
    if reasons:
        terminalreporter.section(f"skipped: {sum(reasons.values())} tests", sep="-", yellow=True)
        for what, count in sorted(reasons.items()):
            terminalreporter.line(f"{count:5d} x {what}")
    return result


@pytest.fixture(scope="session")
def dataset():
    """Loader ``dataset(name) -> (X, y, feature_names)`` for the shipped CSVs, cached per session."""
    cache = {}

    def load(name):
        if name not in cache:
            cache[name] = read_catalog_csv(name)
        X, y, names = cache[name]
        return X.copy(), y.copy(), list(names)

    return load


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory):
    """Factory ``trained_store(*models, epochs=N) -> Path``: a store trained by the CLI (``nnserve train``),
    once per session for each (models, epochs) asked for. Shared between tests: copy it before changing it."""
    cache = {}

    def get(*models, epochs):
        if (models, epochs) not in cache:
            cache[(models, epochs)] = train_store(tmp_path_factory.mktemp("trained") / "store", *models, epochs=epochs)
        return cache[(models, epochs)]

    return get


@pytest.fixture
def store_copy(tmp_path):
    """Factory ``store_copy(base) -> Path``: this test's own copy of the store ``base``, at ``tmp_path / "store"``."""
    return lambda base: copy_store(base, tmp_path)
