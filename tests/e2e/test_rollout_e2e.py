"""Canary rollouts for real: ``nnserve serve`` (gunicorn, 2 web workers, the supervised retraining worker), on the
embedded store and on PostgreSQL.

A candidate trained on shuffled labels goes out as a canary to 20% of the traffic; clients predict and send
the true species back; the worker rolls it back on its live accuracy and says so. A candidate trained on the
real labels then goes out the same way and is promoted. During both, no request fails and the candidate
answers 20% (+- 5 points) of the requests made while its canary ran. A third goes out as a shadow: it answers
no request, and completes with its agreement rate. The figures are printed (run with -s).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import datetime

import numpy as np
import pytest
import requests
from helpers import REPO, read_catalog_csv, service_env, wait_for

TOKEN = "e2e-rollout-token-41d7"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
FRACTION = 0.2
MIN_REQUESTS = 300
CLIENTS = 4
SETTLE = 0.5  # seconds after a rollout starts by which every web worker routes by it (reload interval 0.2 s)


@pytest.fixture(params=["embedded", "postgres"])
def server(request, tmp_path, nnserve_serve):
    database = {"NNSERVE_DATABASE_URL": request.getfixturevalue("database_url")} if request.param == "postgres" else {}
    store = tmp_path / "store"
    subprocess.run(
        [sys.executable, "-m", "service.cli", "train", "iris", "--epochs", "300", "--store", str(store)],
        cwd=REPO,
        env=service_env(**database),
        check=True,
        capture_output=True,
        timeout=120,
    )
    env = service_env(
        NNSERVE_ADMIN_TOKEN=TOKEN,
        NNSERVE_RELOAD_INTERVAL="0.2",
        NNSERVE_POLICY_INTERVAL="0.5",
        NNSERVE_ACCESS_LOG="/dev/null",
        NNSERVE_LOG_LEVEL="warning",
        **database,
    )
    return nnserve_serve(store, env).url


class Traffic:
    """Clients predicting iris rows and sending each true species back, until stopped; every answer kept."""

    def __init__(self, url: str, X: np.ndarray, y: np.ndarray) -> None:
        self.url, self.X, self.y = url, X, y
        self.answers: list[tuple[float, int]] = []  # (time sent, version that answered)
        self.failures: list[str] = []
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(seed,)) for seed in range(CLIENTS)]

    def __enter__(self) -> Traffic:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(30)

    def _run(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        pending: list[dict] = []
        with requests.Session() as session:
            while not self.stopping.is_set():
                i = int(rng.integers(len(self.X)))
                sent = time.time()
                try:
                    r = session.post(f"{self.url}/v1/models/iris/predict", json={"instances": [self.X[i].tolist()]},
                                     timeout=10)  # fmt: skip
                except requests.RequestException as exc:
                    self.failures.append(repr(exc))
                    continue
                if r.status_code != 200 or r.headers["X-Model-Version"] != str(r.json()["version"]):
                    self.failures.append(f"{r.status_code} {r.text[:200]}")
                    continue
                self.answers.append((sent, r.json()["version"]))
                if "request_id" in r.json():  # logged: every request while a rollout runs (iris samples none)
                    pending.append({"request_id": r.json()["request_id"], "target": str(self.y[i])})
                if len(pending) >= 10:  # labels come back in batches; one not written yet is sent again
                    result = session.post(f"{self.url}/v1/models/iris/feedback", json={"feedback": pending},
                                          headers=ADMIN, timeout=10).json()  # fmt: skip
                    unlogged = {u["request_id"] for u in result["unlogged"]}
                    pending = [p for p in pending if p["request_id"] in unlogged]

    def share(self, version: int, rollout: dict) -> tuple[float, int]:
        """The share of requests sent during ``rollout`` (after SETTLE) that ``version`` answered, and their count."""
        start, end = (datetime.fromisoformat(rollout[k]).timestamp() for k in ("started_at", "ended_at"))
        seen = [v for t, v in self.answers if start + SETTLE <= t <= end]
        return sum(v == version for v in seen) / max(len(seen), 1), len(seen)


def canary(url: str, X: np.ndarray, y: np.ndarray, body: dict) -> tuple[dict, Traffic, dict]:
    """Retrain with ``body`` as a canary under traffic until the worker ends it: the job, the traffic, the rollout."""
    with requests.Session() as session:
        queued = session.post(f"{url}/v1/models/iris/retrain", json=body, headers=ADMIN, timeout=10)
        assert queued.status_code == 202, queued.text
        job_url = f"{url}/v1/jobs/{queued.json()['id']}"

        def finished():
            job = session.get(job_url, headers=ADMIN, timeout=10).json()
            return job if job["status"] in ("succeeded", "failed", "cancelled") else None

        wait_for(finished, 120, "the canary's retrain to finish")
        job = finished()
        assert job["status"] == "succeeded", job
        with Traffic(url, X, y) as traffic:

            def ended():
                rollout = session.get(f"{url}/v1/models/iris/rollout", timeout=10).json()
                return rollout if rollout["state"] != "running" else None

            wait_for(ended, 120, "the worker to judge the canary")
        return job, traffic, ended()


def confident_rows(url: str, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows version 1 labels right with a probability above 0.9: traffic on which a candidate as good as
    version 1 is right as often, so the test does not depend on the 1% of good canaries the rule rolls back."""
    body = requests.post(f"{url}/v1/models/iris/versions/1/predict", json={"instances": X.tolist()}, timeout=10).json()
    easy = (np.array(body["predictions"]) == y) & (np.max(body["probabilities"], axis=1) > 0.9)
    assert easy.sum() > 100, easy.sum()
    return X[easy], y[easy]


def test_a_bad_canary_is_rolled_back_and_a_good_one_promoted_without_a_failed_request(server):
    url = server
    X, y, _ = read_catalog_csv("iris")
    traffic_X, traffic_y = confident_rows(url, X, y)
    options = {"promote": "canary", "canary_fraction": FRACTION, "min_requests": MIN_REQUESTS, "max_duration": 120}
    shuffled = np.random.default_rng(3).permutation(y)
    bad = {"mode": "replace", "data": {"instances": X.tolist(), "targets": shuffled.tolist()}, **options}
    job, traffic, rollout = canary(url, traffic_X, traffic_y, bad)
    candidate = job["result"]["version"]
    assert job["result"]["reason"].startswith(f"canary started: version {candidate} gets 20% of unpinned requests")
    share, seen = traffic.share(candidate, rollout)
    print(f"\nbad candidate {candidate}: {rollout['state']}: {rollout['reason']}")
    print(f"  answered {share:.1%} of {seen} requests during its canary; {len(traffic.failures)} failed")
    assert traffic.failures == []
    assert rollout["state"] == "rolled_back" and rollout["candidate"] == candidate
    assert rollout["reason"].startswith("live accuracy ") and " is worse " in rollout["reason"]
    assert abs(share - FRACTION) <= 0.05 and seen >= MIN_REQUESTS
    detail = requests.get(f"{url}/v1/models/iris", timeout=10).json()
    assert detail["active_version"] == 1 and detail["rollout"]["state"] == "rolled_back"

    job, traffic, rollout = canary(url, traffic_X, traffic_y, options)
    good = job["result"]["version"]
    share, seen = traffic.share(good, rollout)
    print(f"good candidate {good}: {rollout['state']}: {rollout['reason']}")
    print(f"  answered {share:.1%} of {seen} requests during its canary; {len(traffic.failures)} failed")
    assert traffic.failures == []
    assert rollout["state"] == "promoted" and rollout["candidate"] == good, rollout
    assert abs(share - FRACTION) <= 0.05 and seen >= MIN_REQUESTS
    assert requests.get(f"{url}/v1/models/iris", timeout=10).json()["active_version"] == good

    def serving(version: int) -> bool:
        one = {"instances": [X[0].tolist()]}
        answers = [requests.post(f"{url}/v1/models/iris/predict", json=one, timeout=10) for _ in range(10)]
        return all(a.headers["X-Model-Version"] == str(version) for a in answers)

    wait_for(lambda: serving(good), 10, "both web workers to serve the promoted version alone")

    shadow = {"promote": "shadow", "min_requests": MIN_REQUESTS, "max_duration": 120}
    job, traffic, rollout = canary(url, traffic_X, traffic_y, shadow)
    copy = job["result"]["version"]
    print(f"shadow candidate {copy}: {rollout['state']}: {rollout['reason']}")
    assert traffic.failures == [] and {v for _, v in traffic.answers} == {good}  # a shadow never answers
    assert rollout["state"] == "completed" and rollout["figures"]["candidate"]["requests"] >= MIN_REQUESTS
    assert rollout["figures"]["agreement"] > 0.9 and "agreement" in rollout["reason"]
    assert requests.get(f"{url}/v1/models/iris", timeout=10).json()["active_version"] == good
