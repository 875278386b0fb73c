"""The PostgreSQL backends' driver: psycopg and psycopg-pool come with nnserve's ``postgres`` extra, not with nnserve.

Every module that imports psycopg is imported only when a database URL is configured, and each ``open_*`` seam
calls ``require_postgres`` first, so a file-store install never needs the driver and a database URL without it
is one clear sentence (the CLI's ``Error:`` line), not an ImportError's traceback from deep inside a backend.
"""

from __future__ import annotations

import importlib.util

from service.store.exceptions import StoreError

__all__ = ["POSTGRES_EXTRA", "MissingDriverError", "require_postgres"]

POSTGRES_EXTRA = "pip install 'nnserve[postgres]'"
POSTGRES_MODULES = ("psycopg", "psycopg_pool")


class MissingDriverError(StoreError):
    """A backend is configured whose driver, an extra of nnserve, is not installed."""


def require_postgres() -> None:
    """Raise MissingDriverError, naming the extra to install, unless the PostgreSQL driver can be imported."""
    missing = [name for name in POSTGRES_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingDriverError(
            f"NNSERVE_DATABASE_URL names a PostgreSQL database but {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not installed: {POSTGRES_EXTRA}"
        )
