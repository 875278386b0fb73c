"""One SQLite connection per thread and process, for the embedded logs (prediction log, audit log).

A connection is opened on a thread's first use and again in a forked process (gunicorn forks its web
workers after the app is built); a transaction left open by a failure is rolled back, and the errors of
an unreachable file become ``StoreUnavailableError`` naming what was being read or written.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from service.store.exceptions import StoreUnavailableError


class ThreadConnections:
    """``connect()`` yields this thread's connection, opened by ``open_db`` when the thread has none."""

    def __init__(
        self, open_db: Callable[[], sqlite3.Connection], what: str, errors: tuple[type[Exception], ...]
    ) -> None:
        self._open, self._what, self._errors = open_db, what, errors
        self._local = threading.local()

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection; a transaction left open by a failure is rolled back."""
        try:
            if getattr(self._local, "pid", None) != os.getpid():
                self._local.db, self._local.pid = self._open(), os.getpid()
            db: sqlite3.Connection = self._local.db
            try:
                yield db
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except self._errors as exc:
            raise StoreUnavailableError(f"{self._what}: {exc}") from None
