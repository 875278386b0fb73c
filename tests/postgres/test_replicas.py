"""Two real gunicorn replicas on one PostgreSQL database: activations reach both, outages degrade cleanly."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import requests
from helpers import REPO, service_env, wait_for
from servers import start_gunicorn

from postgres.server import PostgresServer

TOKEN = "replica-test-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
ROW = {"instances": [[5.1, 3.5, 1.4, 0.2]]}


def served_version(url: str) -> int:
    r = requests.post(f"{url}/v1/models/iris/predict", json=ROW, timeout=5)
    assert r.status_code == 200, r.text
    return int(r.json()["version"])


def test_activation_reaches_the_other_replica_and_an_outage_spares_predictions(
    tmp_path: Path, database_url: str, pg_server: PostgresServer
) -> None:
    for _ in range(2):  # versions 1 and 2, 2 active
        subprocess.run(
            [sys.executable, "-m", "service.cli", "train", "iris", "--epochs", "2", "--store", str(tmp_path / "cli")],
            cwd=REPO,
            env=service_env(NNSERVE_DATABASE_URL=database_url),
            check=True,
            capture_output=True,
            timeout=120,
        )
    env = {"NNSERVE_DATABASE_URL": database_url, "NNSERVE_ADMIN_TOKEN": TOKEN, "NNSERVE_ACCESS_LOG": "/dev/null"}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = start_gunicorn(tmp_path / "a" / "cache", workers=1, env=env)
    b = start_gunicorn(tmp_path / "b" / "cache", workers=1, env=env)
    try:
        assert served_version(a.url) == 2 and served_version(b.url) == 2
        r = requests.post(f"{a.url}/v1/models/iris/versions/1/activate", headers=ADMIN, timeout=10)
        assert r.status_code == 200 and r.json()["previous_version"] == 2
        started = time.monotonic()
        # B hears the NOTIFY: well before its 5 s fallback poll could have found the change.
        wait_for(lambda: served_version(b.url) == 1, 3.0, "replica B to serve the version activated through A")
        activation_seconds = time.monotonic() - started

        queued = requests.post(f"{a.url}/v1/models/iris/retrain", json={}, headers=ADMIN, timeout=10)
        assert queued.status_code == 202, queued.text  # no worker runs here: it must still be queued after
        failures: list[int] = []
        answered = [0]
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                status = requests.post(f"{b.url}/v1/models/iris/predict", json=ROW, timeout=5).status_code
                answered[0] += 1
                if status != 200:
                    failures.append(status)

        loader = threading.Thread(target=load)
        loader.start()
        pg_server.stop()
        down_at = time.monotonic()
        during = answered[0]
        try:
            time.sleep(2.0)
            down = requests.post(f"{a.url}/v1/models/iris/versions/2/activate", headers=ADMIN, timeout=15)
            assert down.status_code == 503 and "database" in down.json()["message"], down.text
            retrain = requests.post(f"{a.url}/v1/models/iris/retrain", json={}, headers=ADMIN, timeout=15)
            assert retrain.status_code == 503, retrain.text
            jobs = requests.get(f"{b.url}/v1/jobs", timeout=15)
            assert jobs.status_code == 503, jobs.text
            ready = requests.get(f"{b.url}/readyz", timeout=15)
            assert ready.status_code == 503 and "database" in str(ready.json()["reasons"])
            time.sleep(max(0.0, 10.0 - (time.monotonic() - down_at)))  # down for 10 s in all
            during = answered[0] - during
        finally:
            outage = time.monotonic() - down_at
            pg_server.start()
            stop.set()
            loader.join(timeout=30)
        assert failures == [] and during > 0  # the loaded model answered throughout the outage

        def ready(url: str) -> bool:  # while the pool reconnects, readiness may take longer than one probe's wait
            try:
                return requests.get(f"{url}/readyz", timeout=5).status_code == 200
            except requests.RequestException:
                return False

        wait_for(lambda: ready(b.url), 60, "B ready again")

        def activated() -> bool:  # A's pool reconnects on its own; its first tries may still meet the outage
            r = requests.post(f"{a.url}/v1/models/iris/versions/2/activate", headers=ADMIN, timeout=15)
            assert r.status_code in (200, 503), r.text
            return r.status_code == 200

        wait_for(activated, 60, "an activation through A after the outage, without restarting A")
        wait_for(lambda: served_version(b.url) == 2, 15.0, "B to follow an activation after the outage")
        job = requests.get(f"{b.url}/v1/jobs/{queued.json()['id']}", timeout=10).json()
        assert job["status"] == "queued"  # nothing lost: the job queued before the outage is still there
        print(
            f"activation served by the other replica after {activation_seconds:.3f} s; database down {outage:.1f} s: "
            f"{during} predictions answered during it, {len(failures)} failed; admin, job and readiness calls 503"
        )
    finally:
        a.stop()
        b.stop()
