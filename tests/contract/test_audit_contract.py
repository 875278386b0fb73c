"""The AuditLog contract: entries kept as recorded, read newest first by model and time, bounded by retention."""

from __future__ import annotations

import time

import pytest

from service.store import AuditEntry


def test_entries_come_back_as_recorded_newest_first(audit_backend):
    log = audit_backend.audit()
    assert log.entries() == []
    log.record(AuditEntry("activate", "ok", "3f2a9c01b7de", "iris", 200, "version 2 (was 1)", at=1000.0))
    log.record(AuditEntry("gc", "failed", "cli", None, None, "store unavailable", at=1001.0))
    log.record(AuditEntry("feedback", "refused", None, "wine", 401, "no key"))
    newest, gc, activate = log.entries()
    assert (newest.action, newest.outcome, newest.actor, newest.model, newest.status) == (
        "feedback",
        "refused",
        None,
        "wine",
        401,
    )
    assert abs(newest.at - time.time()) < 60  # at 0 means: when it is recorded
    assert (gc.actor, gc.model, gc.status, gc.detail) == ("cli", None, None, "store unavailable")
    assert activate == AuditEntry("activate", "ok", "3f2a9c01b7de", "iris", 200, "version 2 (was 1)", 1000.0, 1)
    assert activate.seq < gc.seq < newest.seq


def test_entries_filter_by_model_and_time_and_limit(audit_backend):
    log = audit_backend.audit()
    for i in range(6):
        log.record(AuditEntry("retrain", "ok", "bootstrap", "iris" if i % 2 else "wine", 202, at=100.0 + i))
    assert [e.at for e in log.entries(model="iris")] == [105.0, 103.0, 101.0]
    assert [e.at for e in log.entries(since=103.0)] == [105.0, 104.0, 103.0]
    assert [e.at for e in log.entries(model="wine", since=101.5)] == [104.0, 102.0]
    assert [e.at for e in log.entries(limit=2)] == [105.0, 104.0]
    assert log.entries(model="absent") == []
    log.record(AuditEntry("key-create", "ok", "cli", None, None, at=106.0))  # of no model
    assert [e.at for e in log.entries(models=["iris", "absent"])] == [105.0, 103.0, 101.0]  # a key limited to them
    assert [e.at for e in log.entries(models=["iris", "wine"], limit=2)] == [105.0, 104.0]
    assert log.entries(models=[]) == [] and log.entries(model="wine", models=["iris"]) == []


def test_to_json_gives_iso_8601_utc():
    shown = AuditEntry("cancel", "ok", "bootstrap", "iris", 200, "job j1", at=0.5, seq=7).to_json()
    assert shown == {
        "seq": 7,
        "at": "1970-01-01T00:00:00.500Z",
        "actor": "bootstrap",
        "action": "cancel",
        "model": "iris",
        "outcome": "ok",
        "status": 200,
        "detail": "job j1",
    }


@pytest.mark.parametrize(("action", "outcome"), [("drop-table", "ok"), ("activate", "maybe")])
def test_unknown_actions_and_outcomes_are_refused(action, outcome):
    with pytest.raises(ValueError):
        AuditEntry(action, outcome)


def test_details_are_cut_short(audit_backend):
    log = audit_backend.audit()
    log.record(AuditEntry("feedback", "failed", detail="x" * 10_000))
    assert len(log.entries()[0].detail) == 300


def test_prune_keeps_the_newest_rows_and_the_recent_days(audit_backend):
    log = audit_backend.audit()
    now = 10 * 86_400.0
    for i in range(10):
        log.record(AuditEntry("feedback", "refused", model=f"m{i}", status=401, at=now - (9 - i) * 86_400.0))
    assert log.prune(keep_rows=100, keep_days=5.5, now=now) == 4  # days 0-3 go (day 4 is 5 days old)
    assert [e.model for e in log.entries()] == ["m9", "m8", "m7", "m6", "m5", "m4"]
    assert log.prune(keep_rows=2, keep_days=100, now=now) == 4  # over every model, not per model
    assert [e.model for e in log.entries()] == ["m9", "m8"]
    assert log.prune(keep_rows=2, keep_days=100, now=now) == 0


def test_recording_trims_the_log_however_many_calls_come(audit_backend):
    log = audit_backend.audit(keep_rows=20)  # trims every 2nd entry: at most 21 entries, whatever comes
    for i in range(100):
        log.record(AuditEntry("feedback", "refused", model=f"fake{i}", status=401))
        assert len(log.entries(limit=1000)) <= 21
    kept = log.entries(limit=1000)
    assert kept[0].model == "fake99" and len(kept) >= 20


def test_recording_removes_entries_older_than_the_days_kept(audit_backend):
    log = audit_backend.audit(keep_rows=10, keep_days=1.0)  # a trim every entry
    log.record(AuditEntry("gc", "ok", "cli", at=time.time() - 3 * 86_400.0))
    log.record(AuditEntry("gc", "ok", "cli"))
    assert [e.at > time.time() - 60 for e in log.entries()] == [True]


def test_the_sqlite_log_is_private_and_made_only_by_an_entry(tmp_path):
    import stat

    from service.store.audit import SqliteAuditLog

    log = SqliteAuditLog(tmp_path)
    assert log.entries() == [] and log.prune(1, 1.0) == 0
    assert not (tmp_path / ".audit.sqlite3").exists()
    log.record(AuditEntry("gc", "ok", "cli"))
    assert stat.S_IMODE((tmp_path / ".audit.sqlite3").stat().st_mode) == 0o600
