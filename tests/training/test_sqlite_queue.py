"""What only the SQLite queue promises (the rest is tests/contract/test_queue_contract.py)."""

import sqlite3

from service.training.sqlite_queue import SqliteJobQueue


def test_database_lives_in_the_store_in_wal_mode(tmp_path):
    SqliteJobQueue(tmp_path)
    with sqlite3.connect(tmp_path / ".jobs.sqlite3") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
