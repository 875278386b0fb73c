"""``nnserve audit`` and the admin commands it records (actor ``cli``): activate (and train's activations), gc,
keys, feedback purge and rotate-secret, on a store directory and on PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import REPO, tiny_classifier

from service.cli.main import main
from service.store import AuditEntry, FileModelStore, open_audit_log

MODELS = REPO / "models"


def run(*args: object, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env or {})


@pytest.fixture
def root(tmp_path: Path) -> Path:
    store = FileModelStore(tmp_path / "store")
    for seed in range(4):
        store.publish("m", tiny_classifier(seed))
    store.activate("m", 1)
    return store.root


def test_admin_commands_are_recorded_as_cli_and_read_back(root: Path) -> None:
    assert run("activate", "m", 2, "--store", root).exit_code == 0
    assert run("activate", "m", 9, "--store", root).exit_code == 1  # no such version: recorded as failed
    assert run("gc", "--keep-versions", 1, "--dry-run", "--store", root).exit_code == 0  # changes nothing: not recorded
    assert run("gc", "m", "--keep-versions", 1, "--store", root).exit_code == 0
    made = run("keys", "create", "ops", "--scope", "admin", "--json", "--store", root)
    key = json.loads(made.output)
    assert run("keys", "revoke", key["id"], "--store", root).exit_code == 0
    assert run("keys", "revoke", key["key"], "--store", root).exit_code == 1  # a whole key pasted by mistake
    assert run("feedback", "purge", "m", "--key", key["id"], "--store", root).exit_code == 0
    assert run("feedback", "rotate-secret", "--store", root).exit_code == 0

    shown = json.loads(run("audit", "--json", "--store", root).output)["entries"]
    seen = [(e["action"], e["actor"], e["model"], e["outcome"], e["status"]) for e in reversed(shown)]
    assert seen == [
        ("activate", "cli", "m", "ok", None),
        ("activate", "cli", "m", "failed", None),
        ("gc", "cli", "m", "ok", None),
        ("key-create", "cli", None, "ok", None),
        ("key-revoke", "cli", None, "ok", None),
        ("key-revoke", "cli", None, "failed", None),
        ("feedback-purge", "cli", "m", "ok", None),
        ("rotate-secret", "cli", None, "ok", None),
    ]
    details = [e["detail"] for e in reversed(shown)]
    assert details[0] == "version 2 active (was 1)"
    assert "version 9" in details[1]
    assert details[2].startswith("1 versions")  # version 3 went (2 is active, 1 was, 4 the newest)
    assert details[3] == f"key {key['id']} (ops): admin" and details[4] == f"key {key['id']} (ops)"
    secret = key["key"].split("_", 2)[2]
    assert secret not in json.dumps(shown) and secret not in (root / ".audit.sqlite3").read_bytes().decode("latin-1")
    assert f"nns_{key['id']}_<secret>" in details[5]
    assert details[6] == f"0 labels of key {key['id']} removed"


def test_audit_filters_by_model_and_time_and_prints_a_table(root: Path) -> None:
    log = open_audit_log(root)
    log.record(AuditEntry("activate", "ok", "3f2a9c01b7de", "m", 200, "version 2 active (was 1)", at=86_400.0))
    log.record(AuditEntry("feedback", "refused", None, "other", 401, "no key", at=2 * 86_400.0))
    shown = run("audit", "--store", root)
    assert shown.exit_code == 0
    lines = shown.output.splitlines()
    assert lines[0].split() == ["at", "actor", "action", "model", "outcome", "status", "detail"]
    assert lines[1].split()[:6] == ["1970-01-03T00:00:00.000Z", "-", "feedback", "other", "refused", "401"]
    only_m = json.loads(run("audit", "--model", "m", "--json", "--store", root).output)["entries"]
    assert [e["model"] for e in only_m] == ["m"]
    later = json.loads(run("audit", "--since", "1970-01-02T12:00:00", "--json", "--store", root).output)["entries"]
    assert [e["model"] for e in later] == ["other"]
    assert len(json.loads(run("audit", "--limit", 1, "--json", "--store", root).output)["entries"]) == 1
    bad = run("audit", "--since", "yesterday", "--store", root)
    assert bad.exit_code == 1 and "ISO 8601" in bad.output
    assert run("audit", "--model", "../x", "--store", root).exit_code == 1
    assert run("audit", "--store", root.parent / "absent").exit_code == 1


def test_the_commands_record_in_postgresql(root: Path, database_url: str) -> None:
    env = {"NNSERVE_DATABASE_URL": database_url}
    made = run("keys", "create", "ops", "--scope", "admin", "--json", "--store", root, env=env)
    assert made.exit_code == 0, made.output
    shown = json.loads(run("audit", "--json", "--store", root, env=env).output)["entries"]
    assert [(e["action"], e["actor"], e["outcome"]) for e in shown] == [("key-create", "cli", "ok")]
    assert not (root / ".audit.sqlite3").exists()


@pytest.mark.parametrize("backend", ["files", "postgresql"])
def test_train_records_the_activations_it_makes(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> None:
    env = {} if backend == "files" else {"NNSERVE_DATABASE_URL": request.getfixturevalue("database_url")}
    root, spec = tmp_path / "store", MODELS / "iris.toml"
    for flags in ((), ("--no-activate",), ()):
        trained = run("train", spec, "--epochs", 2, *flags, "--store", root, env=env)
        assert trained.exit_code == 0, trained.output
    shown = json.loads(run("audit", "--json", "--store", root, env=env).output)["entries"]
    assert [(e["action"], e["actor"], e["model"], e["outcome"], e["detail"]) for e in reversed(shown)] == [
        ("activate", "cli", "iris", "ok", "version 1 active (was None)"),
        ("activate", "cli", "iris", "ok", "version 3 active (was 1)"),  # 2 was published, not activated
    ]
