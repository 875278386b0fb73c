"""Keys on PostgreSQL: revoked through the CLI while 2 replicas of 2 web workers serve it, every process answers
401, told by NOTIFY (the fallback poll is set far beyond the test); no table holds a key's secret."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import requests
from e2e.test_keys_e2e import ROW, secret_free, until_every_worker_answers
from helpers import REPO, service_env
from servers import start_gunicorn

from postgres.server import PostgresServer


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


def test_a_revoked_key_answers_401_on_every_replica_by_notify(tmp_path, database_url, pg_server: PostgresServer):
    env = service_env(NNSERVE_DATABASE_URL=database_url)
    assert cli("train", "iris", "--epochs", "2", "--store", str(tmp_path / "cli"), env=env).returncode == 0
    made = cli("keys", "create", "app", "--scope", "predict", "--json", "--store", str(tmp_path / "cli"), env=env)
    created = json.loads(made.stdout)
    key_id, key = created["id"], created["key"]
    headers = {"Authorization": f"Bearer {key}"}
    serving = {
        "NNSERVE_DATABASE_URL": database_url,
        "NNSERVE_AUTH": "closed",
        "NNSERVE_ACTIVATION_POLL": "600",  # only a NOTIFY can tell the replicas within this test
        "NNSERVE_KEY_USE_INTERVAL": "0.5",
    }
    replicas = []
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            serving["NNSERVE_ACCESS_LOG"] = str(tmp_path / name / "access.log")
            replicas.append(start_gunicorn(tmp_path / name / "cache", workers=2, env=dict(serving)))
        for replica in replicas:
            assert requests.post(f"{replica.url}/v1/models/iris/predict", json=ROW, timeout=10).status_code == 401
            until_every_worker_answers(replica.url, headers, replica.log, key_id, 200, workers=2)
        revoked = cli("keys", "revoke", key_id, env=env)
        assert revoked.returncode == 0, revoked.stderr
        revoked_at = time.monotonic()
        for replica in replicas:
            until_every_worker_answers(replica.url, headers, replica.log, key_id, 401, workers=2)
            print(f"{replica.url}: 401 from both web workers {time.monotonic() - revoked_at:.3f} s after revoking")
        listed = json.loads(cli("keys", "list", "--json", env=env).stdout)
        assert listed[0]["revoked"] and listed[0]["last_used"]  # the workers' batched writes reached the table
    finally:
        for replica in replicas:
            replica.stop()
    secret = key.split("_", 2)[2]
    dump = tmp_path / "dump.sql"
    subprocess.run(
        [pg_server.binaries.bin / "pg_dump", "--data-only", "--file", str(dump), database_url],
        check=True,
        capture_output=True,
    )
    assert key_id in dump.read_text()  # the dump holds the key's row ...
    secret_free([dump, tmp_path], [secret, key])  # ... and no table, log or cache file its secret
