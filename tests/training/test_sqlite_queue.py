"""What only the SQLite queue promises (the rest is tests/contract/test_queue_contract.py)."""

import multiprocessing
import sqlite3

import pytest

from service.training.sqlite_queue import SqliteJobQueue


def test_database_lives_in_the_store_in_wal_mode(tmp_path):
    SqliteJobQueue(tmp_path)
    with sqlite3.connect(tmp_path / ".jobs.sqlite3") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def _open(root, barrier, out):
    barrier.wait()
    try:
        SqliteJobQueue(root)
        out.put("ok")
    except Exception as exc:
        out.put(repr(exc))


@pytest.mark.slow  # five rounds of eight processes: left out of `make test-fast`
def test_processes_starting_together_all_open_a_new_queue(tmp_path):
    """gunicorn's web workers create the queue at the same moment: none may fail to boot on 'database is locked'."""
    ctx = multiprocessing.get_context("fork")
    for attempt in range(5):
        root = tmp_path / str(attempt)
        root.mkdir()
        barrier, out = ctx.Barrier(8), ctx.Queue()
        procs = [ctx.Process(target=_open, args=(root, barrier, out)) for _ in range(8)]
        for p in procs:
            p.start()
        results = [out.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(timeout=30)
        assert results == ["ok"] * 8, results
