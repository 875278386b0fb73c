"""The two poisoning attacks of issue 21, rerun through the public API: forged labels cannot make a version that
is worse on the frozen evaluation set active, and the active version's accuracy on the real data stays as it was.

iris is trained by the real CLI from a spec that logs every prediction and retrains when live accuracy drops;
the API is Flask's test client on that store, and the retraining worker's policy pass and job run in-process
(``PolicyRunner.run``, ``Worker.run_once``), as the worker process would run them. Each attack runs twice: with
a valid ``feedback`` key in the attacker's hands, and with the feedback tokens of the attacker's own
predictions, under a spec that trusts token labels too.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import REPO, copy_store, read_catalog_csv, train_store

from service import create_app
from service.store import FileKeyStore, FileModelStore
from service.store.monitoring import SqlitePredictionLog
from service.store.snapshots import FileSnapshots
from service.training.jobs import open_queue
from service.training.policies import PolicyRunner, Settings
from service.training.worker import Worker

pytestmark = pytest.mark.slow  # real retraining runs on a thousand rows: left out of `make test-fast`

TOKEN = "poisoning-test-token-5d1e"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
WRONG = {"setosa": "versicolor", "versicolor": "virginica", "virginica": "setosa"}
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
trusted_labels = ["key", "token"]

[retrain]
on_live_metric_below = {{ metric = "accuracy", threshold = 0.8, min_rows = 50 }}
promote = "if_better"
"""


@pytest.fixture(params=["key", "token"])
def attacker(request, store_root) -> dict[str, str] | None:
    """The attacker's credential: a ``feedback`` key for iris (as request headers), or None: the feedback token
    of each prediction it made."""
    if request.param == "token":
        return None
    _, key = FileKeyStore(store_root).create("attacker", ["feedback"], ["iris"])
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("poisoning")
    spec = root / "models" / "iris.toml"
    spec.parent.mkdir()
    spec.write_text(SPEC)
    return train_store(root / "store", str(spec), epochs=200)


@pytest.fixture
def store_root(trained, tmp_path):
    return copy_store(trained, tmp_path)


def client_of(root):
    config = {"NNSERVE_STORE": str(root), "NNSERVE_ADMIN_TOKEN": TOKEN, "NNSERVE_RELOAD_INTERVAL": 0.0}
    every_row = {"NNSERVE_LOG_MAX_ROWS_PER_REQUEST": 1000}  # the attacker's 1,000-row prediction, all of it logged
    return create_app({**config, **every_row, "TESTING": True}).test_client()


def runner_of(root) -> PolicyRunner:
    settings = Settings(window=1000, max_window=100_000, keep_rows=10_000, keep_days=30, drift_min_rows=100)
    log, snapshots = SqlitePredictionLog(root), FileSnapshots(root)
    return PolicyRunner(FileModelStore(root), open_queue(root), log, settings, snapshots)


def real_accuracy(client, version: int) -> float:
    """The accuracy of ``version`` on the real iris data, asked of it by a pinned (never routed) request."""
    X, y, _ = read_catalog_csv("iris")
    response = client.post(f"/v1/models/iris/versions/{version}/predict", json={"instances": X.tolist()})
    assert response.status_code == 200, response.get_json()
    return float(np.mean(np.asarray(response.get_json()["predictions"]) == y))


def feedback(client, key: dict[str, str] | None, answer: dict, items: list[dict]) -> dict:
    """``items`` as labels of the prediction ``answer``, sent with the ``key`` headers or, with none, with that
    prediction's feedback token."""
    items = [{"request_id": answer["request_id"], **item} for item in items]
    if key is None:
        items = [{**item, "feedback_token": answer["feedback_token"]} for item in items]
    response = client.post("/v1/models/iris/feedback", json={"feedback": items}, headers=key or {})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_forged_feedback_on_a_thousand_real_rows_retrains_nothing_that_serves(store_root, attacker) -> None:
    client, store, queue = client_of(store_root), FileModelStore(store_root), open_queue(store_root)
    before = real_accuracy(client, 1)
    assert store.active_version("iris") == 1 and before > 0.9
    X, y, _ = read_catalog_csv("iris")
    rows = np.random.default_rng(0).integers(0, len(X), 1000)

    answer = client.post(
        "/v1/models/iris/predict", json={"instances": X[rows].tolist()}, headers={"X-Request-ID": "attacker-0"}
    ).get_json()
    labels = [{"row": i, "target": WRONG[y[r]]} for i, r in enumerate(rows)]
    assert feedback(client, attacker, answer, labels)["accepted"] == 1000
    (job,) = runner_of(store_root).run()  # the policy fires on them, as the issue found
    live = client.get("/v1/models/iris/monitoring").get_json()["versions"][0]  # as that pass computed them
    assert live["labelled"] == 1000 and live["metrics"]["accuracy"] < 0.1  # the attack moved the live figures
    assert job.request.trigger.startswith("live accuracy ") and job.request.data_source == "feedback"
    assert Worker(store_root).run_once()
    done = queue.get(job.id)
    assert done.status == "succeeded", done.error
    result = done.result
    # trained on the 112 training rows and the 1,000 forged ones; scored on the spec's 38 held-out rows only
    assert (result.trained_on["base"], result.trained_on["new"], result.trained_on["new_from_feedback"]) == (
        112,
        1000,
        True,
    )
    assert (result.evaluated_on["rows"], result.evaluated_on["frozen"], result.evaluated_on["new"]) == (38, 38, 0)
    assert result.metrics["accuracy"] < result.active_metric and not result.promoted, result.reason
    assert "validation accuracy" in result.reason and " < active " in result.reason
    assert store.active_version("iris") == 1
    assert real_accuracy(client, 1) == before

    # The attacker tries again at once: the policy's candidate was not promoted, so it waits its cooldown.
    again = client.post(
        "/v1/models/iris/predict", json={"instances": X[rows].tolist()}, headers={"X-Request-ID": "attacker-1"}
    ).get_json()
    assert feedback(client, attacker, again, labels)["accepted"] == 1000
    assert runner_of(store_root).run() == []
    assert queue.list_jobs("iris")[1] == 1 and store.active_version("iris") == 1


def routing_keys(client) -> dict[int, str]:
    """One X-Routing-Key that the canary answers and one the active version answers, found by trying."""
    found: dict[int, str] = {}
    for attempt in range(500):
        key = f"attacker-key-{attempt}"
        body = client.post(
            "/v1/models/iris/predict", json={"instances": [[5.1, 3.5, 1.4, 0.2]]}, headers={"X-Routing-Key": key}
        ).get_json()
        found.setdefault(body["version"], key)
        if len(found) == 2:
            return found
    raise AssertionError(f"no routing key found for both sides: {found}")


def test_a_canary_whose_forged_live_figures_say_promote_is_rolled_back_when_worse_on_the_frozen_set(
    store_root, attacker
) -> None:
    client, store = client_of(store_root), FileModelStore(store_root)
    before = real_accuracy(client, 1)
    bad = {"hyperparameters": {"epochs": 1, "hidden_sizes": [2], "learning_rate": 0.0001}}
    options = {"promote": "canary", "canary_fraction": 0.1, "min_requests": 40}
    started = client.post("/v1/models/iris/retrain", json={**bad, **options}, headers=ADMIN)
    assert started.status_code == 202, started.get_json()
    assert Worker(store_root).run_once()
    rollout = store.rollout("iris")
    assert rollout is not None and rollout.running and (rollout.candidate, rollout.baseline) == (2, 1)
    candidate = store.manifest("iris", 2)
    assert candidate["metrics"]["accuracy"] < candidate["evaluation_set"]["parent_metric"]  # a bad candidate

    client = client_of(store_root)  # a web worker that routes by the rollout
    keys = routing_keys(client)
    X, _, _ = read_catalog_csv("iris")
    for i in range(60):  # candidate's answers labelled "right", the active version's "wrong"
        for version, key in keys.items():
            body = client.post(
                "/v1/models/iris/predict", json={"instances": [X[i].tolist()]}, headers={"X-Routing-Key": key}
            ).get_json()
            assert body["version"] == version
            said = body["predictions"][0]
            feedback(client, attacker, body, [{"target": said if version == 2 else WRONG[said]}])

    runner_of(store_root).run()
    ended = store.rollout("iris")
    assert ended is not None and ended.state == "rolled_back", ended
    assert ended.reason.startswith("frozen evaluation accuracy ") and "is worse, whatever the live figures say" in (
        ended.reason
    )
    assert "live accuracy 1.000 vs active 0.000 is no worse" in ended.reason  # what the live figures alone said
    assert ended.figures["frozen"]["candidate"] < ended.figures["frozen"]["active"]
    assert store.active_version("iris") == 1
    assert real_accuracy(client, 1) == before


def test_an_admin_may_train_on_the_labelled_predictions_and_ask_to_be_scored_on_them_too(store_root) -> None:
    client, queue = client_of(store_root), open_queue(store_root)
    X, y, _ = read_catalog_csv("iris")
    none = client.post("/v1/models/iris/retrain", json={"feedback": "train"}, headers=ADMIN)
    assert none.status_code == 422 and "has no trusted labelled predictions" in none.get_json()["message"]
    answer = client.post("/v1/models/iris/predict", json={"instances": X.tolist()}).get_json()
    feedback(client, ADMIN, answer, [{"row": i, "target": t} for i, t in enumerate(y.tolist())])
    both = {"feedback": "train", "data": {"instances": X[:2].tolist(), "targets": y[:2].tolist()}}
    refused = client.post("/v1/models/iris/retrain", json=both, headers=ADMIN)
    assert refused.status_code == 422 and "send data or feedback, not both" in refused.get_json()["message"]
    assert queue.list_jobs("iris")[1] == 0

    results = {}
    for choice in ("train", "evaluate"):
        started = client.post("/v1/models/iris/retrain", json={"feedback": choice, "promote": "never"}, headers=ADMIN)
        assert started.status_code == 202, started.get_json()
        assert started.get_json()["request"]["n_new_rows"] == 150
        assert Worker(store_root).run_once()
        results[choice] = queue.get(started.get_json()["id"]).result
    assert results["train"].trained_on["new"] == 150 and results["train"].trained_on["new_from_feedback"]
    assert results["train"].evaluated_on["new"] == 0 and results["train"].evaluated_on["frozen"] == 38
    assert results["evaluate"].trained_on["new"] == 112 and not results["evaluate"].trained_on["new_from_feedback"]
    assert results["evaluate"].evaluated_on["new"] == 38 and results["evaluate"].evaluated_on["frozen"] == 38
