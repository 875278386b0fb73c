"""A real PostgreSQL server stopped under the pool: calls fail fast once it is known down, and work once it is back."""

from __future__ import annotations

import threading
import time

import pytest
from helpers import wait_for

from postgres.server import PostgresServer
from service import create_app
from service.store import StoreUnavailableError
from service.store.postgres import Database
from service.training import worker as worker_module
from service.training.pg_queue import PostgresJobQueue
from service.training.worker import Worker


def select_one(db: Database) -> bool:
    try:
        with db.connection() as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)
    except StoreUnavailableError:
        return False


def test_the_breaker_opens_refuses_without_trying_and_finds_the_database_again(
    database_url: str, pg_server: PostgresServer
) -> None:
    db = Database(database_url, retry_interval=5.0)
    try:
        assert select_one(db) and not db.breaker.is_open  # the pool holds a connection the stop will break
        pg_server.stop()
        try:
            with (
                pytest.raises(StoreUnavailableError, match="the database cannot be reached"),
                db.connection() as conn,
            ):
                conn.execute("SELECT 1")
            assert db.breaker.is_open
            messages = []
            for _ in range(10):
                with pytest.raises(StoreUnavailableError) as refused, db.connection():
                    pass
                messages.append(str(refused.value))
            # refused without a connection attempt (only one probe per 5 s tries), saying since when and until when
            assert any("down for" in m and "tried again in" in m for m in messages), messages
            assert all(m.count("the database cannot be reached") == 1 for m in messages), messages  # said once
            assert db.breaker.is_open
        finally:
            pg_server.start()
        wait_for(lambda: select_one(db), 30, "the probe to find the database again")
        assert not db.breaker.is_open
        assert all(select_one(db) for _ in range(5))
    finally:
        db.close()


def test_calls_that_need_the_database_answer_503_while_it_is_down_and_200_after(
    tmp_path, database_url: str, pg_server: PostgresServer, monkeypatch
) -> None:
    monkeypatch.setenv("NNSERVE_DB_RETRY_INTERVAL", "1")
    app = create_app({"NNSERVE_STORE": str(tmp_path / "cache"), "NNSERVE_DATABASE_URL": database_url, "TESTING": True})
    client = app.test_client()
    try:
        assert client.get("/v1/jobs").status_code == 200
        pg_server.stop()
        try:
            for path in ("/v1/jobs", "/v1/models", "/ui/jobs", "/readyz", "/v1/jobs"):
                r = client.get(path)
                assert r.status_code == 503, (path, r.get_data(as_text=True))
                assert r.is_json and "database" in str(r.get_json()), (path, r.get_json())
            assert Database.shared(database_url).breaker.is_open
        finally:
            pg_server.start()
        wait_for(lambda: client.get("/v1/jobs").status_code == 200, 30, "job calls to work again")
        assert client.get("/readyz").status_code == 200
    finally:
        app.extensions["nnserve.watcher"].stop()
        Database.shared(database_url).close()


def test_a_web_worker_boots_while_the_database_is_down_and_serves_once_it_is_back(
    tmp_path, database_url: str, pg_server: PostgresServer, monkeypatch
) -> None:
    """gunicorn stops the whole server when a replaced worker cannot boot: an outage must not stop one booting."""
    monkeypatch.setenv("NNSERVE_DB_RETRY_INTERVAL", "1")
    Database.shared(database_url).migrate()  # the schema, as the processes started before applied it
    config = {"NNSERVE_STORE": str(tmp_path / "cache"), "NNSERVE_DATABASE_URL": database_url, "TESTING": True}
    pg_server.stop()
    try:
        app = create_app(config)
        client = app.test_client()
        down = client.get("/v1/jobs")
        assert down.status_code == 503 and "database" in down.get_json()["message"], down.get_data(as_text=True)
        assert Database.shared(database_url).breaker.is_open  # known down from the start: refused at once
    finally:
        pg_server.start()
    try:
        wait_for(lambda: client.get("/v1/jobs").status_code == 200, 30, "job calls to work once the database is back")
        assert client.get("/readyz").status_code == 200
    finally:
        app.extensions["nnserve.watcher"].stop()
        Database.shared(database_url).close()


def test_the_retraining_worker_waits_out_an_outage_without_spinning_or_dying(
    database_url: str, pg_server: PostgresServer, tmp_path, monkeypatch, caplog
) -> None:
    """While the database is down the worker's loop goes on at its poll interval: the queue's wait sleeps even
    when it cannot listen (it returned at once, so the loop logged thousands of lines a second), and the look
    for abandoned jobs failing is logged like any queue error (it ended the worker)."""
    monkeypatch.setattr(worker_module, "RECOVER_INTERVAL", 0.0)  # look for abandoned jobs at every idle pass
    worker = Worker(tmp_path / "store", poll_interval=0.2, database_url=database_url)
    failures: list[BaseException] = []

    def run() -> None:
        try:
            worker.loop()
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        watcher = PostgresJobQueue(database_url, migrate=False)
        wait_for(lambda: watcher.last_heartbeat() is not None, 30, "the worker's first heartbeat (it is looping)")
        watcher.close()
        caplog.clear()
        pg_server.stop()
        try:
            time.sleep(3.0)  # every pass now waits at least 1 s (the poll, at least 1 s when notified)
            assert thread.is_alive(), failures
        finally:
            pg_server.start()
    finally:
        worker.stopping.set()
        thread.join(30)
    assert failures == [] and not thread.is_alive()
    tries = [r for r in caplog.records if "trying again" in r.getMessage()]
    assert 0 < len(tries) <= 20, len(tries)  # about 2 a pass (heartbeat or claim, and the look): a few passes
    worker.queue.close()


def test_a_retraining_worker_started_during_an_outage_waits_for_the_database(
    database_url: str, pg_server: PostgresServer, tmp_path
) -> None:
    """Its first look for abandoned jobs failing is logged and retried like the later ones: it ended the worker
    (exit 1), which its supervisor restarted every second for as long as the database was down."""
    worker = Worker(tmp_path / "store", poll_interval=0.2, database_url=database_url)
    failures: list[BaseException] = []

    def run() -> None:
        try:
            worker.loop()
        except BaseException as exc:  # the test reports whatever ended the loop
            failures.append(exc)

    pg_server.stop()
    thread = threading.Thread(target=run)
    try:
        thread.start()
        time.sleep(2.0)
        assert thread.is_alive(), failures
    finally:
        pg_server.start()
        worker.stopping.set()
        thread.join(30)
    assert failures == [] and not thread.is_alive()
    worker.queue.close()


def test_a_call_waits_for_a_connection_the_pool_must_open_but_not_long_for_a_busy_pool(database_url: str) -> None:
    # a wait bound far shorter than opening a connection takes: a cold pool must still answer, a busy one not
    db = Database(database_url, max_size=1, pool_timeout=0.001)
    try:
        assert select_one(db)  # the pool opened its connection within the connect timeout, not the 1 ms bound
        with db.connection():
            busy = select_one(db)  # the pool is at its size and its one connection is held: 503 after the bound
        assert not busy
        assert not db.breaker.is_open  # busy is not down
        assert select_one(db)
    finally:
        db.close()
