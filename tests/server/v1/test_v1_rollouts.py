"""Rollouts as a web worker serves them: canary routing (by request id, sticky by X-Routing-Key), a failing
candidate answered by the active version, shadow copies, the rollout in the model's detail, and stopping one."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime

import numpy as np
import pytest
from helpers import monitoring_pass

from nn import MLPRegressor
from service.server.registry import share
from service.store import FileModelStore, Rollout
from service.store.monitoring import SqlitePredictionLog
from service.store.snapshots import FileSnapshots
from service.training.jobs import open_queue
from service.training.policies import PolicyRunner, Settings

ROW = [[5.1, 3.5, 1.4, 0.2]]


def start(root, mode="canary", fraction=0.3) -> Rollout:
    rollout = Rollout(mode, 2, 1, fraction, 50, 3600.0, time.time())
    FileModelStore(root).start_rollout("iris", rollout)
    return rollout


@pytest.fixture
def app(make_app, tiny_catalog_copy):
    return make_app(tiny_catalog_copy, NNSERVE_RELOAD_INTERVAL=0.0)


def predict(client, request_id=None, **headers):
    if request_id is not None:
        headers["X-Request-ID"] = request_id
    response = client.post("/v1/models/iris/predict", json={"instances": ROW}, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert response.headers["X-Model-Version"] == str(body["version"])
    return body


def test_a_canary_answers_the_requests_whose_id_falls_in_its_fraction(app, tiny_catalog_copy) -> None:
    start(tiny_catalog_copy, fraction=0.3)
    client = app.test_client()
    ids = [uuid.uuid4().hex for _ in range(400)]
    answered = {i: predict(client, i)["version"] for i in ids}
    assert answered == {i: 2 if share(i) < 0.3 else 1 for i in ids}  # the same split on every worker
    assert abs(sum(v == 2 for v in answered.values()) / len(ids) - 0.3) < 0.08
    for i in ids[:20]:  # deterministic: the same id, the same version
        assert predict(client, i)["version"] == answered[i]
    pinned = client.post(
        "/v1/models/iris/versions/1/predict", json={"instances": ROW}, headers={"X-Request-ID": ids[0]}
    )
    assert pinned.get_json()["version"] == 1  # a pinned request is never routed


def test_a_routing_key_keeps_a_client_on_one_version(app, tiny_catalog_copy) -> None:
    start(tiny_catalog_copy, fraction=0.5)
    client = app.test_client()
    for key in ("user-1", "user-2", "user-3", "user-4"):
        versions = {predict(client, **{"X-Routing-Key": key})["version"] for _ in range(10)}
        assert versions == {2 if share(key) < 0.5 else 1}


def test_every_prediction_is_logged_during_a_rollout_and_shows_in_its_evidence(app, tiny_catalog_copy) -> None:
    start(tiny_catalog_copy, fraction=0.5)
    client = app.test_client()
    bodies = [predict(client) for _ in range(40)]
    assert all("request_id" in b for b in bodies)  # the spec samples nothing: the rollout logs every one
    assert client.get("/v1/models/iris").get_json()["rollout"]["figures"] == {}  # no pass of the worker yet
    before = time.time()
    monitoring_pass(app)
    detail = client.get("/v1/models/iris").get_json()["rollout"]
    assert datetime.fromisoformat(detail["computed_at"]).timestamp() >= before  # ISO 8601 UTC
    assert (detail["mode"], detail["state"], detail["candidate"], detail["baseline"]) == ("canary", "running", 2, 1)
    figures = detail["figures"]
    on_two = sum(b["version"] == 2 for b in bodies)
    assert (figures["candidate"]["requests"], figures["active"]["requests"]) == (on_two, 40 - on_two)
    assert client.get("/v1/models/iris/rollout").get_json() == detail


def test_a_candidate_that_fails_is_replaced_by_the_active_version_and_its_failure_logged(
    app, tiny_catalog_copy
) -> None:
    start(tiny_catalog_copy, fraction=1.0 - 1e-9)
    client = app.test_client()
    assert predict(client)["version"] == 2
    candidate = app.extensions["nnserve.dataplane"].registry._slots["iris"].trial.candidate

    def broken(X, check_input=True):
        raise RuntimeError("weights went bad")

    candidate.estimator.predict_proba = broken  # a fault injected into the loaded candidate only
    bodies = [predict(client) for _ in range(5)]
    assert {b["version"] for b in bodies} == {1}  # no failed request: the active version answered
    app.extensions["nnserve.dataplane"].recorder.flush()
    rows = SqlitePredictionLog(tiny_catalog_copy).recent("iris", 100, version=2)
    failures = [r for r in rows if r.error is not None]
    assert len(failures) == 5 and failures[0].error == "RuntimeError: weights went bad"
    assert {r.request_id for r in failures} == {b["request_id"] for b in bodies}
    monitoring_pass(app)
    figures = client.get("/v1/models/iris/rollout").get_json()["figures"]
    assert (figures["candidate"]["requests"], figures["candidate"]["errors"]) == (1, 5)


def test_a_candidate_that_cannot_load_counts_as_failing_and_nothing_fails(app, tiny_catalog_copy, corrupt) -> None:
    corrupt(tiny_catalog_copy, "iris", 2)
    store = FileModelStore(tiny_catalog_copy)
    rollout = Rollout("canary", 2, 1, 1.0, 50, 3600.0, time.time())
    (tiny_catalog_copy / "iris" / "ROLLOUT").write_text(json.dumps(rollout.to_json()))  # start_rollout would refuse it
    assert store.rollout("iris") == rollout
    client = app.test_client()
    assert {predict(client)["version"] for _ in range(5)} == {1}
    app.extensions["nnserve.dataplane"].recorder.flush()
    failures = SqlitePredictionLog(tiny_catalog_copy).recent("iris", 100, version=2)
    assert len(failures) == 5 and all("broken" in (r.error or "") for r in failures)


def test_a_shadow_answers_nothing_and_its_copies_are_logged_beside_the_answers(app, tiny_catalog_copy) -> None:
    start(tiny_catalog_copy, mode="shadow", fraction=1.0)
    client = app.test_client()
    bodies = [predict(client) for _ in range(20)]
    assert {b["version"] for b in bodies} == {1}
    app.extensions["nnserve.dataplane"].recorder.flush()
    log = SqlitePredictionLog(tiny_catalog_copy)
    copies = log.recent("iris", 100, version=2)
    assert len(copies) == 20 and all(r.shadow and r.error is None for r in copies)
    assert {r.request_id for r in copies} == {b["request_id"] for b in bodies}
    answers = {r.request_id: r.output for r in log.recent("iris", 100, version=1)}
    agreement = sum(answers[r.request_id] == r.output for r in copies) / 20
    monitoring_pass(app)
    figures = client.get("/v1/models/iris/rollout").get_json()["figures"]
    assert figures["agreement"] == pytest.approx(agreement) and figures["candidate"]["requests"] == 20


def test_an_admin_stops_a_rollout_and_the_active_version_serves_alone(
    app, tiny_catalog_copy, admin_headers, assert_error
) -> None:
    start(tiny_catalog_copy, fraction=1.0)
    client = app.test_client()
    assert predict(client)["version"] == 2
    assert_error(client.delete("/v1/models/iris/rollout"), 401)
    stopped = client.delete("/v1/models/iris/rollout", headers=admin_headers)
    assert stopped.status_code == 200, stopped.get_data(as_text=True)
    assert (stopped.get_json()["state"], stopped.get_json()["reason"]) == ("rolled_back", "stopped by an admin")
    started, ended = (datetime.fromisoformat(stopped.get_json()[k]) for k in ("started_at", "ended_at"))
    assert started.tzinfo == UTC and ended.tzinfo == UTC and started <= ended  # ISO 8601 UTC, as jobs' times
    assert {predict(client)["version"] for _ in range(5)} == {1}
    assert_error(client.delete("/v1/models/iris/rollout", headers=admin_headers), 409, "no rollout running")
    assert client.get("/v1/models/iris").get_json()["rollout"]["state"] == "rolled_back"


def test_no_rollout_is_null_in_the_detail_and_404_on_its_own(app, assert_error) -> None:
    client = app.test_client()
    assert client.get("/v1/models/iris").get_json()["rollout"] is None
    assert_error(client.get("/v1/models/iris/rollout"), 404, "no rollout")
    assert_error(client.get("/v1/models/nosuch/rollout"), 404)


def test_v2_infer_is_routed_like_v1(app, tiny_catalog_copy) -> None:
    start(tiny_catalog_copy, fraction=0.5)
    client = app.test_client()
    body = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": ROW[0]}]}
    for i in (uuid.uuid4().hex for _ in range(30)):
        response = client.post("/v2/models/iris/infer", json=body, headers={"X-Request-ID": i})
        assert response.status_code == 200, response.get_data(as_text=True)
        expected = 2 if share(i) < 0.5 else 1
        assert response.get_json()["model_version"] == str(expected) == response.headers["X-Model-Version"]


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ({"min_requests": 50}, "min_requests", "need promote 'canary' or 'shadow'"),
        ({"promote": "if_better", "max_duration": 60}, "max_duration", "need promote 'canary' or 'shadow'"),
        ({"promote": "shadow", "canary_fraction": 0.5}, "canary_fraction", "a shadow sees every request"),
        ({"promote": "canary", "canary_fraction": 0}, "canary_fraction", "canary_fraction: must be in (0, 1], got 0"),
        ({"promote": "canary", "canary_fraction": 1.5}, "canary_fraction", "must be in (0, 1], got 1.5"),
        ({"promote": "canary", "min_requests": 0}, "min_requests", "must be from 1 to 1000000, got 0"),
        ({"promote": "canary", "max_duration": 10**9}, "max_duration", "must be from 1 to 2592000 seconds, got"),
        ({"promote": "sometimes"}, "promote", "Must be one of"),
    ],
)
def test_rollout_options_are_validated_and_nothing_is_queued(app, admin_headers, assert_error, body, field, fragment):
    client = app.test_client()
    response = client.post("/v1/models/iris/retrain", json=body, headers=admin_headers)
    found = assert_error(response, 422, fragment)
    assert field in found["errors"]
    assert client.get("/v1/jobs?model=iris", headers=admin_headers).get_json()["total"] == 0


def test_a_canary_retrain_is_queued_with_its_options(app, admin_headers) -> None:
    body = {"promote": "canary", "canary_fraction": 0.25, "min_requests": 30, "max_duration": 90}
    job = app.test_client().post("/v1/models/iris/retrain", json=body, headers=admin_headers).get_json()
    assert {k: job["request"][k] for k in body} == body


def test_v2_metadata_names_the_active_version_whatever_the_canary(app, tiny_catalog_copy) -> None:
    start(tiny_catalog_copy, fraction=1.0)
    client = app.test_client()
    for _ in range(10):
        assert client.get("/v2/models/iris/ready").get_json()["version"] == "1"


READS = (
    "/v1/models",
    "/v1/models/{name}",
    "/v1/models/{name}/rollout",
    "/v1/models/{name}/monitoring",
    "/v2/models/{name}",
    "/ui/",
    "/ui/models/{name}",
    "/ui/jobs",
    "/ui/jobs/fragment",
    "/metrics",
    "/readyz",
)


def every_read_answers_200(client, name):
    for path in READS:
        response = client.get(path.format(name=name))
        assert response.status_code == 200, (path, response.get_data(as_text=True)[:500])


@pytest.mark.parametrize("name", ["diabetes", "iris"])
@pytest.mark.parametrize("labelled_side", [None, "active"])
def test_a_canary_without_feedback_on_a_side_ends_by_max_duration_and_every_read_answers_200(
    make_app, tiny_catalog_copy, tiny_catalog_store, admin_headers, name, labelled_side
) -> None:
    store = FileModelStore(tiny_catalog_copy)
    if name == "diabetes":  # the session store has one version of it: publish a candidate
        model = tiny_catalog_store.models["diabetes"]
        candidate = MLPRegressor((8,), max_iter=4, random_state=1).fit(model.rows, [100.0, 120.0, 80.0, 150, 90, 60])
        store.publish("diabetes", candidate, {"task": "regression"})
    started = time.time()
    rollout = Rollout("canary", 2, 1, 0.5, 10, 60.0, started)
    store.start_rollout(name, rollout)
    app = make_app(tiny_catalog_copy, NNSERVE_RELOAD_INTERVAL=0.0)
    client = app.test_client()
    rows = tiny_catalog_store.models[name].rows
    bodies = []
    for i in range(60):
        response = client.post(f"/v1/models/{name}/predict", json={"instances": [rows[i % len(rows)].tolist()]})
        assert response.status_code == 200, response.get_data(as_text=True)
        bodies.append(response.get_json())
    assert {b["version"] for b in bodies} == {1, 2}
    if labelled_side == "active":  # labels on one side only: the other side has none to compare
        truth = {"diabetes": 100.0, "iris": "setosa"}[name]
        feedback = [{"request_id": b["request_id"], "target": truth} for b in bodies if b["version"] == 1]
        answer = client.post(f"/v1/models/{name}/feedback", json={"feedback": feedback}, headers=admin_headers)
        assert answer.status_code == 200
    app.extensions["nnserve.dataplane"].recorder.flush()
    every_read_answers_200(client, name)  # before the worker's first pass
    monitoring_pass(app)
    every_read_answers_200(client, name)
    figures = client.get(f"/v1/models/{name}/rollout").get_json()["figures"]
    assert figures["candidate"]["labelled"] == 0 and figures["candidate"]["loss"] is None

    settings = Settings(window=1000, max_window=100_000, keep_rows=10_000, keep_days=30, drift_min_rows=100)
    log, snapshots = SqlitePredictionLog(tiny_catalog_copy), FileSnapshots(tiny_catalog_copy)
    policies = PolicyRunner(store, open_queue(tiny_catalog_copy), log, settings, snapshots)
    assert policies.judge_rollout(name, store.rollout(name), started + 59) is None  # not enough evidence yet
    assert store.rollout(name).running
    policies.run(now=started + 60)
    ended = store.rollout(name)
    assert ended.state == "promoted", ended.reason  # every request answered: judged on its error rate alone
    assert "too few labelled rows" in ended.reason and ended.figures["candidate"]["labelled"] == 0
    every_read_answers_200(client, name)


def test_a_candidate_whose_outputs_are_not_finite_fails_over_and_the_active_one_answers(app, tiny_catalog_copy) -> None:
    start(tiny_catalog_copy, fraction=1.0 - 1e-9)
    client = app.test_client()
    assert predict(client)["version"] == 2
    candidate = app.extensions["nnserve.dataplane"].registry._slots["iris"].trial.candidate

    def diverged(X, check_input=True):
        return np.full((len(X), 3), np.nan)

    candidate.estimator.predict_proba = diverged  # a diverged candidate, say
    bodies = [predict(client) for _ in range(3)]
    assert {b["version"] for b in bodies} == {1}
    app.extensions["nnserve.dataplane"].recorder.flush()
    failures = [r for r in SqlitePredictionLog(tiny_catalog_copy).recent("iris", 100, version=2) if r.error]
    assert len(failures) == 3 and failures[0].error.startswith("NonFiniteOutputError: the model's output for row 0")
