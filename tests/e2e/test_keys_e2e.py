"""Keys against real ``nnserve serve --workers 2``: a revoked key answers 401 on every web worker, and no log or
store file ever holds a key's secret."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import requests
from helpers import REPO, service_env, wait_for

from service.store import FileKeyStore

ROW = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
ATTEMPTS = 400  # requests that may go by before both workers have answered (each on a fresh connection)


def access_lines(log: Path, key_id: str) -> list[dict]:
    """The JSON access lines of the server's log that name ``key_id``."""
    lines = []
    for text in log.read_text(errors="replace").splitlines():
        if text.startswith("{") and f'"key_id": "{key_id}"' in text.replace('":"', '": "'):
            line = json.loads(text)
            if line.get("logger") == "nnserve.access":
                lines.append(line)
    return lines


def answering_processes(log: Path, key_id: str, status: int) -> set[int]:
    return {line["process"] for line in access_lines(log, key_id) if line["status"] == status}


def until_every_worker_answers(url: str, headers: dict, log: Path, key_id: str, status: int, workers: int) -> float:
    """Predict on fresh connections until ``workers`` distinct processes answered ``status`` for the key (every
    answer of the last ones must be ``status``); returns the seconds it took."""
    started = time.monotonic()
    for _ in range(ATTEMPTS):
        answer = requests.post(f"{url}/v1/models/iris/predict", json=ROW, headers=headers, timeout=10)
        if answer.status_code == status and len(answering_processes(log, key_id, status)) >= workers:
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(f"not every worker answered {status} for key {key_id}: {access_lines(log, key_id)[-5:]}")


def secret_free(paths: list[Path], secrets: list[str]) -> None:
    for path in paths:
        for file in [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]:
            data = file.read_bytes()
            for secret in secrets:
                assert secret.encode() not in data, f"{file} holds a key's secret"


def test_a_revoked_key_answers_401_on_every_worker_and_no_file_holds_a_secret(
    tmp_path, trained_store, store_copy, nnserve_serve
):
    store = store_copy(trained_store("iris", epochs=2))
    access = tmp_path / "access.log"
    env = service_env(
        NNSERVE_AUTH="closed",
        NNSERVE_ACCESS_LOG=str(access),
        NNSERVE_ADMIN_TOKEN="bootstrap-e2e",
        NNSERVE_KEY_USE_INTERVAL="0.5",
    )
    made = subprocess.run(
        [sys.executable, "-m", "service.cli", "keys", "create", "app", "--scope", "predict", "--json",
         "--store", str(store)],
        cwd=REPO, env=env, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    created = json.loads(made.stdout)
    key_id, key = created["id"], created["key"]
    headers = {"Authorization": f"Bearer {key}"}
    server = nnserve_serve(store, env)
    assert requests.post(f"{server.url}/v1/models/iris/predict", json=ROW, timeout=10).status_code == 401
    wrong = {"Authorization": f"Bearer nns_{key_id}_{'A' * 43}"}  # the right id, a wrong secret
    assert requests.post(f"{server.url}/v1/models/iris/predict", json=ROW, headers=wrong, timeout=10).status_code == 401

    until_every_worker_answers(server.url, headers, server.log, key_id, 200, workers=2)
    wait_for(lambda: FileKeyStore(store).records()[0].last_used is not None, 30, "the workers to record the use")
    revoke = subprocess.run(
        [sys.executable, "-m", "service.cli", "keys", "revoke", key_id, "--store", str(store)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert revoke.returncode == 0, revoke.stderr
    seconds = until_every_worker_answers(server.url, headers, server.log, key_id, 401, workers=2)
    # the mechanism: each worker looks at the key file's stamp every NNSERVE_KEY_CHECK_INTERVAL (0.25 s)
    print(f"revoked key {key_id}: 401 from both web workers {seconds:.3f} s after revoking")
    refused = requests.post(f"{server.url}/v1/models/iris/predict", json=ROW, headers=headers, timeout=10)
    assert refused.status_code == 401 and f"key {key_id} was revoked" in refused.json()["message"]
    server.stop()
    secret = key.split("_", 2)[2]
    secret_free([store, server.log, access], [secret, key])
    assert any(line["status"] == 200 for line in access_lines(server.log, key_id))  # the log names the id
