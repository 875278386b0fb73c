"""``nnserve keys create``, ``list`` and ``revoke`` on a store directory (PostgreSQL: tests/postgres)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from service.cli.main import main
from service.store import FileKeyStore, KeyRing, split_key


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_create_prints_the_key_once_and_list_never_shows_it(tmp_path: Path):
    store = str(tmp_path / "store")
    made = run(
        "keys",
        "create",
        "shop",
        "--scope",
        "predict",
        "--scope",
        "feedback",
        "--model",
        "iris",
        "--expires-days",
        "30",
        "--json",
        "--store",
        store,
    )
    assert made.exit_code == 0, made.output
    created = json.loads(made.output)
    assert set(created) == {"id", "key", "name", "scopes", "models", "expires"}
    assert created["key"].startswith(f"nns_{created['id']}_")
    assert (created["name"], created["scopes"], created["models"]) == ("shop", ["predict", "feedback"], ["iris"])
    assert KeyRing(FileKeyStore(store)).verify(*split_key(created["key"])).id == created["id"]
    secret = created["key"].split("_", 2)[2]
    listed = run("keys", "list", "--json", "--store", store)
    (row,) = json.loads(listed.output)
    assert row["id"] == created["id"] and row["expires"] == created["expires"] and row["revoked"] is None
    assert set(row) == {"id", "name", "scopes", "models", "created", "expires", "last_used", "revoked"}
    table = run("keys", "list", "--store", store).output
    assert created["id"] in table and "shop" in table and "predict, feedback" in table
    assert secret not in listed.output + table


def test_plain_create_prints_only_the_key_on_stdout(tmp_path: Path):
    made = CliRunner().invoke(main, ["keys", "create", "ops", "--scope", "admin", "--store", str(tmp_path)])
    assert made.exit_code == 0
    assert made.stdout.strip().startswith("nns_") and len(made.stdout.strip().splitlines()) == 1
    assert "not shown again" in made.stderr


def test_revoke_and_its_errors(tmp_path: Path):
    store = str(tmp_path)
    key_id = json.loads(run("keys", "create", "ops", "--scope", "admin", "--json", "--store", store).output)["id"]
    revoked = run("keys", "revoke", key_id, "--store", store)
    assert revoked.exit_code == 0 and f"revoked key {key_id}" in revoked.output
    assert json.loads(run("keys", "list", "--json", "--store", store).output)[0]["revoked"]
    unknown = run("keys", "revoke", "000000000000", "--store", store)
    assert unknown.exit_code == 1 and "no key '000000000000'" in unknown.output
    bad = run("keys", "create", "x", "--scope", "root", "--store", store)
    assert bad.exit_code == 2 and "root" in bad.output
    bad_model = run("keys", "create", "x", "--scope", "predict", "--model", "../etc", "--store", store)
    assert bad_model.exit_code == 1 and "invalid model name" in bad_model.output
    assert run("keys", "list", "--store", store).output.count("\n") == 2  # the header and the one key
