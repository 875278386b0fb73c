"""Closing the loop for real: ``nnserve serve`` (gunicorn, 2 web workers, the supervised retraining worker).

iris is trained by the CLI from a spec that logs every prediction and retrains on drift. 500 predictions
whose petal length and width are shifted, each with its true species sent back as feedback, move the PSI of
those two features past the policy's threshold; the worker enqueues exactly one retrain with that trigger,
on the training set plus the labelled rows. Labelled rows are trained on, never scored on: the new version is
scored on the frozen evaluation set (the spec's unshifted held-out rows), where it is no better, and is not
promoted. The admin, who knows the shift is real, retrains asking to be scored on the labelled rows too; that
version is promoted, and its live accuracy on the shifted flowers is higher than the old version's. The
figures are printed (run with -s).
"""

from __future__ import annotations

import time
from datetime import datetime

import numpy as np
import pytest
import requests
from helpers import REPO, read_catalog_csv, service_env, train_store, wait_for

TOKEN = "e2e-monitoring-token-8c2e"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
SHIFT = np.array([0.0, 0.0, 2.0, 0.8])  # cm added to petal length and petal width
THRESHOLD = 0.25

SPEC = f"""\
task = "classification"
dataset = "{REPO / "models" / "data" / "iris.csv"}"
target = "species"
test_size = 0.25

[network]
hidden_sizes = [16]
activation = "tanh"

[training]
epochs = 200
batch_size = 16
learning_rate = 0.01

[monitoring]
sample_rate = 1.0

[retrain]
on_drift_psi = {THRESHOLD}
drift_min_rows = 500
promote = "if_better"
"""


@pytest.fixture
def server(tmp_path, nnserve_serve):
    spec = tmp_path / "models" / "iris.toml"
    spec.parent.mkdir()
    spec.write_text(SPEC)
    store = train_store(tmp_path / "store", str(spec), epochs=200)
    env = service_env(
        NNSERVE_ADMIN_TOKEN=TOKEN,
        NNSERVE_RELOAD_INTERVAL="0.2",
        NNSERVE_POLICY_INTERVAL="1",
        NNSERVE_ACCESS_LOG="/dev/null",
        NNSERVE_LOG_LEVEL="warning",
    )
    return nnserve_serve(store, env).url


def predict_with_feedback(session: requests.Session, url: str, rows: np.ndarray, truth: np.ndarray) -> list[int]:
    """One prediction per row, each followed by its true species (resent while the log has not written it yet);
    the versions that answered."""
    versions = []
    for x, y in zip(rows, truth, strict=True):
        answer = session.post(f"{url}/v1/models/iris/predict", json={"instances": [x.tolist()]}, timeout=10)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["request_id"] == answer.headers["X-Request-ID"]
        assert answer.headers["X-Model-Version"] == str(body["version"])
        versions.append(body["version"])
        label = {"feedback": [{"request_id": body["request_id"], "target": str(y)}]}
        for _ in range(100):  # another web worker may not have written it yet
            result = session.post(f"{url}/v1/models/iris/feedback", json=label, headers=ADMIN, timeout=10).json()
            if result["accepted"] == 1:
                break
            time.sleep(0.01)
        else:
            raise AssertionError(f"feedback never joined: {result}")
    return versions


def monitoring(session: requests.Session, url: str) -> dict[int, dict]:
    """The figures per version of the retraining worker's first pass from now on (it computes them, not the read)."""
    since = time.time()

    def computed() -> dict | None:
        body = session.get(f"{url}/v1/models/iris/monitoring", timeout=10).json()
        computed_at = body["computed_at"]
        return body if computed_at and datetime.fromisoformat(computed_at).timestamp() > since else None

    wait_for(computed, 10, "the retraining worker's next monitoring snapshot")
    return {v["version"]: v for v in computed()["versions"]}


def test_drift_feedback_retrain_and_a_better_live_accuracy(server):
    url = server
    X, y, _ = read_catalog_csv("iris")
    rng = np.random.default_rng(14)
    with requests.Session() as session:
        pick = rng.integers(0, len(X), 500)
        versions = predict_with_feedback(session, url, X[pick] + SHIFT, y[pick])
        assert set(versions) == {1}

        def job_started():
            return session.get(f"{url}/v1/jobs?model=iris", headers=ADMIN, timeout=10).json()["total"] > 0

        wait_for(job_started, 30, "the drift policy to enqueue a retrain")
        before = monitoring(session, url)[1]
        psi = {f["name"]: f["psi"] for f in before["drift"]["features"]}
        shift = before["drift"]["predictions"]
        print(f"\nversion 1 over {before['drift']['rows']} shifted rows: PSI {psi}, predictions {shift:.3f}")
        print(f"version 1 live metrics over {before['labelled']} labelled rows: {before['metrics']}")
        assert psi["petal_length"] >= THRESHOLD and psi["petal_width"] >= THRESHOLD
        assert psi["sepal_length"] < 0.1 and psi["sepal_width"] < 0.1

        def finished():
            jobs = session.get(f"{url}/v1/jobs?model=iris", headers=ADMIN, timeout=10).json()["jobs"]
            return jobs[0]["status"] in ("succeeded", "failed", "cancelled") and jobs

        wait_for(finished, 120, "the retrain to finish")
        (job,) = finished()
        trigger = job["request"]["trigger"]
        added = job["request"]["n_new_rows"]
        print(f"job {job['id']}: trigger {trigger!r}, {added} feedback rows, result {job['result']}")
        assert job["status"] == "succeeded", job
        assert trigger.startswith("drift: PSI ") and (" on petal_length " in trigger or " on petal_width " in trigger)
        assert job["request"]["n_new_rows"] >= 495 and job["result"]["n_rows"] == 150 + job["request"]["n_new_rows"]
        assert job["result"]["trained_on"]["new_from_feedback"] and job["result"]["evaluated_on"]["new"] == 0
        assert not job["result"]["promoted"] and " < active " in job["result"]["reason"], job["result"]
        assert session.get(f"{url}/v1/models/iris", timeout=10).json()["active_version"] == 1

        started = session.post(
            f"{url}/v1/models/iris/retrain", json={"feedback": "evaluate"}, headers=ADMIN, timeout=10
        )
        assert started.status_code == 202, started.text
        wait_for(lambda: finished() and len(finished()) == 2, 120, "the admin's retrain to finish")
        job = finished()[0]
        print(f"admin's job {job['id']}: result {job['result']}")
        assert job["status"] == "succeeded" and job["result"]["promoted"], job
        assert job["result"]["evaluated_on"]["new"] > 100 and job["result"]["evaluated_on"]["frozen"] == 38
        assert session.get(f"{url}/v1/models/iris", timeout=10).json()["active_version"] == 3

        def serving(version: int) -> bool:
            one = {"instances": [X[0].tolist()]}
            answers = [session.post(f"{url}/v1/models/iris/predict", json=one, timeout=10) for _ in range(10)]
            return all(a.headers["X-Model-Version"] == str(version) for a in answers)

        wait_for(lambda: serving(3), 10, "both web workers to serve version 3")
        pick = rng.integers(0, len(X), 300)
        assert set(predict_with_feedback(session, url, X[pick] + SHIFT, y[pick])) == {3}
        after = monitoring(session, url)
        old, new = after[1]["metrics"]["accuracy"], after[3]["metrics"]["accuracy"]
        print(f"live accuracy on shifted flowers: version 1 {old:.3f} ({after[1]['labelled']} rows), "
              f"version 3 {new:.3f} ({after[3]['labelled']} rows)")  # fmt: skip
        print(f"version 3 PSI: { {f['name']: round(f['psi'], 3) for f in after[3]['drift']['features']} }")
        assert new > old + 0.2
        time.sleep(2.5)  # two more policy passes: still the two jobs
        assert session.get(f"{url}/v1/jobs?model=iris", headers=ADMIN, timeout=10).json()["total"] == 2
