"""POST /v1/models/{name}/feedback: who may label (a key, or each prediction's feedback token), targets checked
per row, joined to logged predictions, the first label winning, the rest reported."""

from __future__ import annotations

import time

import pytest
from helpers import monitoring_pass, read_catalog_csv

from service.server.current import feedback_tokens, recorder
from service.server.feedback_tokens import FeedbackTokens
from service.store import Dataset, FileKeyStore, FileModelStore, StoreUnavailableError, open_store
from service.store.copy import copy_store
from service.store.monitoring import PredictionLog, SqlitePredictionLog
from service.store.snapshots import FileSnapshots
from service.training.fitting import publish, train
from service.training.jobs import open_queue
from service.training.policies import PolicyRunner, Settings


@pytest.fixture(params=["sqlite", "postgres"])
def logging_app(request, make_app, tiny_catalog_copy, tmp_path):
    """An app logging every prediction, on the filesystem store and SQLite log, or on PostgreSQL."""
    if request.param == "sqlite":
        return make_app(tiny_catalog_copy, NNSERVE_LOG_SAMPLE_RATE=1.0)
    url = request.getfixturevalue("database_url")
    copy_store(open_store(tiny_catalog_copy), open_store(tmp_path / "cache", url))
    return make_app(tmp_path / "cache", NNSERVE_DATABASE_URL=url, NNSERVE_LOG_SAMPLE_RATE=1.0)


def predict(client, model, rows, request_id=None):
    headers = {"X-Request-ID": request_id} if request_id else {}
    response = client.post(f"/v1/models/{model}/predict", json={"instances": rows}, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def labelled(app) -> set[tuple]:
    with app.app_context():
        rows = recorder().log.recent("iris", 100, labelled=True)
    return {(r.request_id, r.row, r.target, r.label_source, r.label_key) for r in rows}


def test_feedback_joins_logged_predictions_and_reports_the_rest(
    logging_app, tiny_catalog_copy, tiny_catalog_store, admin_headers
):
    client = logging_app.test_client()
    rows = tiny_catalog_store.models["iris"].rows[:2].tolist()
    one = predict(client, "iris", rows[:1])["request_id"]
    two = predict(client, "iris", rows, request_id="batch-7")["request_id"]
    body = {
        "feedback": [
            {"request_id": one, "target": "setosa"},
            {"request_id": two, "target": "virginica", "row": 1},
            {"request_id": "never-seen", "target": "setosa"},
            {"request_id": two, "target": "setosa", "row": 5},
        ]
    }
    response = client.post("/v1/models/iris/feedback", json=body, headers=admin_headers)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {
        "model": "iris",
        "accepted": 2,
        "unlogged": [{"request_id": "never-seen", "row": 0}, {"request_id": "batch-7", "row": 5}],
        "conflicts": [],
    }
    assert labelled(logging_app) == {
        (one, 0, "setosa", "key", "bootstrap"),  # the admin token's key id
        ("batch-7", 1, "virginica", "key", "bootstrap"),
    }


@pytest.mark.parametrize(
    ("model", "targets", "row", "fragment"),
    [
        ("iris", ["setosa", "rose"], 1, "unknown class 'rose'; the classes of model 'iris': setosa, versicolor"),
        ("iris", ["setosa", "setosa", 3], 2, "class labels of model 'iris' are non-empty strings; got 3"),
        ("digits", [1, "7"], 1, "class labels of model 'digits' are integers; got '7'"),
        ("digits", [True], 0, "are integers; got True"),
        ("digits", [42], 0, "unknown class 42"),
        ("diabetes", [150.0, "high"], 1, "targets of model 'diabetes' are finite numbers; got 'high'"),
        ("diabetes", [[1.0]], 0, "finite numbers; got [1.0]"),
        # a version whose manifest keeps no target range: finite and |y| <= 1e12 (test_v1_targets.py: the rest)
        ("diabetes", [150.0, 1e308], 1, "targets of model 'diabetes' are from -1e+12 to 1e+12; got 1e+308"),
    ],
)
def test_a_bad_target_is_422_naming_its_row(logging_app, assert_error, admin_headers, model, targets, row, fragment):
    body = {"feedback": [{"request_id": f"r{i}", "target": t} for i, t in enumerate(targets)]}
    response = logging_app.test_client().post(f"/v1/models/{model}/feedback", json=body, headers=admin_headers)
    assert_error(response, 422, f"invalid feedback[{row}].target:", fragment)
    assert fragment in response.get_json()["errors"][f"feedback[{row}].target"][0]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"feedback": []},
        {"feedback": [{"target": "setosa"}]},
        {"feedback": [{"request_id": "a"}]},
        {"feedback": [{"request_id": "a b", "target": "setosa"}]},
        {"feedback": [{"request_id": "a", "target": "setosa", "row": -1}]},
        {"feedback": [{"request_id": "a", "target": "setosa", "weight": 2}]},
        {"feedback": [{"request_id": "a", "target": None}]},
        {"feedback": [{"request_id": "a", "target": "setosa", "feedback_token": 7}]},
        {"feedback": [{"request_id": "a", "target": "setosa"}], "replace": "yes"},
    ],
)
def test_a_malformed_body_is_422(logging_app, body):
    response = logging_app.test_client().post("/v1/models/iris/feedback", json=body)
    assert response.status_code == 422, response.get_json()


def test_feedback_for_an_unknown_model_is_404(logging_app, assert_error):
    body = {"feedback": [{"request_id": "a", "target": "setosa"}]}
    assert_error(logging_app.test_client().post("/v1/models/nope/feedback", json=body), 404, "nope")


def test_feedback_right_after_predicting_is_joined(logging_app):
    """The worker writes its own pending predictions before joining: no race with the writer thread."""
    client = logging_app.test_client()
    for i in range(20):
        given = predict(client, "iris", [[5.0, 3.0, 1.5, 0.2]])
        item = {"request_id": given["request_id"], "target": "setosa", "feedback_token": given["feedback_token"]}
        answer = client.post("/v1/models/iris/feedback", json={"feedback": [item]})
        assert answer.get_json()["accepted"] == 1, (i, answer.get_json())
    with logging_app.app_context():
        assert len(recorder().log.recent("iris", 100, labelled=True)) == 20


def labels_of(answer: dict, target: str = "setosa", **extra) -> dict:
    """A feedback item for a predict answer, with its token."""
    return {"request_id": answer["request_id"], "target": target, "feedback_token": answer["feedback_token"], **extra}


def test_without_a_key_or_a_token_feedback_is_401_and_labels_nothing(logging_app, tiny_catalog_copy, assert_error):
    client = logging_app.test_client()
    rid = predict(client, "iris", [[5.0, 3.0, 1.5, 0.2]])["request_id"]
    response = client.post("/v1/models/iris/feedback", json={"feedback": [{"request_id": rid, "target": "setosa"}]})
    assert_error(response, 401, "feedback[0]: send a key, or the feedback_token of its prediction")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    bad_key = {"Authorization": "Bearer not-the-token"}
    response = client.post("/v1/models/iris/feedback", json={"feedback": [{"request_id": rid, "target": "setosa"}]},
                           headers=bad_key)  # fmt: skip
    assert_error(response, 401, "invalid bearer token")
    assert labelled(logging_app) == set()


def test_a_feedback_token_labels_its_own_prediction_and_nothing_else(logging_app, tiny_catalog_copy, assert_error):
    client = logging_app.test_client()
    mine = predict(client, "iris", [[5.0, 3.0, 1.5, 0.2], [6.5, 3.0, 5.5, 2.0]])
    theirs = predict(client, "iris", [[5.0, 3.0, 1.5, 0.2]])
    assert mine["feedback_token"] != theirs["feedback_token"]
    stolen = {**labels_of(mine), "request_id": theirs["request_id"]}  # my token, their request
    tampered = labels_of(
        mine, feedback_token=mine["feedback_token"][:-2] + ("AA" if mine["feedback_token"][-2:] != "AA" else "BB")
    )
    later = mine["feedback_token"].split(".")
    stretched = labels_of(mine, feedback_token=".".join([later[0], str(int(later[1]) + 1), later[2]]))
    for bad in (stolen, tampered, stretched, labels_of(mine, feedback_token="")):
        response = client.post("/v1/models/iris/feedback", json={"feedback": [labels_of(mine, row=1), bad]})
        assert_error(response, 401, "feedback[1].feedback_token is not valid for this request id")
    digits = client.post("/v1/models/digits/feedback", json={"feedback": [labels_of(mine, target=1)]})
    assert digits.status_code == 401  # another model's feedback: the token names iris
    assert labelled(logging_app) == set()  # a refused call labels none of its items
    response = client.post(
        "/v1/models/iris/feedback", json={"feedback": [labels_of(mine), labels_of(mine, "virginica", row=1)]}
    )
    assert response.status_code == 200 and response.get_json()["accepted"] == 2
    assert labelled(logging_app) == {
        (mine["request_id"], 0, "setosa", "token", None),
        (mine["request_id"], 1, "virginica", "token", None),
    }


def test_a_token_lasts_the_ttl_and_an_expired_one_is_401(logging_app, assert_error):
    client = logging_app.test_client()
    before = int(time.time())
    given = predict(client, "iris", [[5.0, 3.0, 1.5, 0.2]])
    after = int(time.time()) + 1
    expires = int(given["feedback_token"].split(".")[1])
    assert before + 7 * 86_400 <= expires <= after + 7 * 86_400  # NNSERVE_FEEDBACK_TOKEN_TTL's default
    rid = given["request_id"]
    with logging_app.app_context():
        old = feedback_tokens().issue("iris", 1, rid, now=1_000_000.0)  # expired a week after 1970-01-12
    response = client.post("/v1/models/iris/feedback", json={"feedback": [{"request_id": rid, "target": "setosa",
                                                                            "feedback_token": old}]})  # fmt: skip
    assert_error(response, 401, "expired")
    assert client.post("/v1/models/iris/feedback", json={"feedback": [labels_of(given)]}).status_code == 200


def test_the_token_ttl_is_a_setting(make_app, tiny_catalog_copy):
    client = make_app(tiny_catalog_copy, NNSERVE_LOG_SAMPLE_RATE=1.0, NNSERVE_FEEDBACK_TOKEN_TTL=60).test_client()
    before = int(time.time())
    expires = int(predict(client, "iris", [[5.0, 3.0, 1.5, 0.2]])["feedback_token"].split(".")[1])
    assert before + 60 <= expires <= int(time.time()) + 61


def test_the_first_label_wins_and_only_an_admin_replaces_it(
    logging_app, tiny_catalog_copy, admin_headers, assert_error
):
    client = logging_app.test_client()
    given = predict(client, "iris", [[5.0, 3.0, 1.5, 0.2]])
    first = client.post("/v1/models/iris/feedback", json={"feedback": [labels_of(given, "setosa")]})
    assert first.get_json()["accepted"] == 1
    second = client.post("/v1/models/iris/feedback", json={"feedback": [labels_of(given, "virginica")]})
    assert second.status_code == 200
    assert second.get_json() == {
        "model": "iris",
        "accepted": 0,
        "unlogged": [],
        "conflicts": [{"request_id": given["request_id"], "row": 0}],
    }
    by_key = client.post("/v1/models/iris/feedback", json={"feedback": [labels_of(given, "virginica")]},
                         headers=admin_headers)  # fmt: skip
    assert by_key.get_json()["conflicts"] == [{"request_id": given["request_id"], "row": 0}]
    assert labelled(logging_app) == {(given["request_id"], 0, "setosa", "token", None)}
    refused = client.post(
        "/v1/models/iris/feedback", json={"feedback": [labels_of(given, "virginica")], "replace": True}
    )
    assert_error(refused, 403, "replacing labels takes an admin key")
    replaced = client.post("/v1/models/iris/feedback", json={"feedback": [labels_of(given, "virginica")],
                                                            "replace": True}, headers=admin_headers)  # fmt: skip
    assert replaced.get_json()["accepted"] == 1
    assert labelled(logging_app) == {(given["request_id"], 0, "virginica", "key", "bootstrap")}


def test_a_squatted_request_id_is_logged_under_a_fresh_one_and_the_victims_feedback_joins_its_own_row(
    logging_app, tiny_catalog_copy, tiny_catalog_store
):
    client = logging_app.test_client()
    attacker = predict(client, "iris", [[7.7, 2.6, 6.9, 2.3]], request_id="victim-0001")
    assert attacker["request_id"] == "victim-0001"  # not logged before: the client's own id is kept
    victim = predict(client, "iris", [[5.0, 3.0, 1.5, 0.2]], request_id="victim-0001")
    assert victim["request_id"] != "victim-0001" and len(victim["request_id"]) == 32
    response = client.post("/v1/models/iris/feedback", json={"feedback": [labels_of(victim, "setosa")]})
    assert response.get_json()["accepted"] == 1
    with logging_app.app_context():
        (row,) = recorder().log.recent("iris", 10, labelled=True)
    assert (row.request_id, row.inputs) == (victim["request_id"], [5.0, 3.0, 1.5, 0.2])
    with logging_app.app_context():
        recorder().flush()
    again = predict(logging_app.test_client(), "iris", [[5.0, 3.0, 1.5, 0.2]], request_id="victim-0001")
    assert again["request_id"] not in ("victim-0001", victim["request_id"])  # found in the log this time
    rows = tiny_catalog_store.models["digits"].rows[:1].tolist()
    other_model = predict(client, "digits", rows, request_id="victim-0001")
    assert other_model["request_id"] == "victim-0001"  # taken per model


def test_a_rotated_secret_voids_every_token_issued_before(logging_app, tiny_catalog_copy, assert_error):
    client = logging_app.test_client()
    before = predict(client, "iris", [[5.0, 3.0, 1.5, 0.2]])
    with logging_app.app_context():
        feedback_tokens().rotate()
    after = predict(client, "iris", [[5.0, 3.0, 1.5, 0.2]])
    assert_error(client.post("/v1/models/iris/feedback", json={"feedback": [labels_of(before)]}), 401, "not valid")
    assert client.post("/v1/models/iris/feedback", json={"feedback": [labels_of(after)]}).status_code == 200


def test_an_unlogged_prediction_has_no_request_id_and_no_token(client):
    body = client.post("/v1/models/iris/predict", json={"instances": [[5.0, 3.0, 1.5, 0.2]]}).get_json()
    assert "request_id" not in body and "feedback_token" not in body


def test_an_attackers_token_labels_move_no_live_metric_and_fire_no_policy_unless_the_spec_trusts_tokens(
    make_app, tmp_path
):
    """Issue 21's first attack through the API, with the feedback tokens of the attacker's own predictions."""
    X, y, names = read_catalog_csv("iris")
    data = Dataset(X, y, names)
    root = tmp_path / "store"
    store = FileModelStore(root)
    rule = {"on_live_metric_below": {"metric": "accuracy", "threshold": 0.8, "min_rows": 50}}
    for trusted in (["key"], ["key", "token"]):
        sections = {"retrain": rule, "monitoring": {"trusted_labels": trusted}}
        version = publish(store, "iris", train("classification", {"max_iter": 60}, data), spec_sections=sections)
        store.activate("iris", version)
        settings = {"NNSERVE_LOG_SAMPLE_RATE": 1.0, "NNSERVE_RELOAD_INTERVAL": 0.0}
        app = make_app(root, **settings, NNSERVE_LOG_MAX_ROWS_PER_REQUEST=len(X))  # every row logged
        client = app.test_client()
        answer = predict(client, "iris", X.tolist(), request_id=f"attacker-{len(trusted)}")
        wrong = [{"request_id": answer["request_id"], "row": i, "target": "virginica" if t == "setosa" else "setosa",
                  "feedback_token": answer["feedback_token"]} for i, t in enumerate(y.tolist())]  # fmt: skip
        assert client.post("/v1/models/iris/feedback", json={"feedback": wrong}).get_json()["accepted"] == len(X)
        monitoring_pass(app)
        (shown,) = [v for v in client.get("/v1/models/iris/monitoring").get_json()["versions"] if v["active"]]
        log, snapshots = SqlitePredictionLog(root), FileSnapshots(root)
        runner = PolicyRunner(store, open_queue(root), log, Settings(1000, 100_000, 10_000, 30, 100), snapshots)
        if trusted == ["key"]:
            assert shown["labelled"] == 0 and shown["metrics"] == {}
            assert runner.run(now=time.time() + 1) == []
        else:  # a spec that trusts tokens counts them: what trusted_labels is for
            assert shown["labelled"] == len(X) and shown["metrics"]["accuracy"] < 0.1
            (job,) = runner.run(now=time.time() + 1)
            assert job.request.trigger.startswith("live accuracy")


@pytest.fixture
def feedback_keys(tiny_catalog_copy):
    """``feedback_keys(*scopes, models=())``: (key id, headers) of a real key in the copied store."""
    store = FileKeyStore(tiny_catalog_copy)

    def make(*scopes, models=()):
        made, key = store.create("labeller", scopes, models)
        return made.id, {"Authorization": f"Bearer {key}"}

    return make


def test_a_feedback_key_labels_under_its_own_id_and_only_an_admin_key_replaces(
    make_app, tiny_catalog_copy, feedback_keys, assert_error
):
    app = make_app(tiny_catalog_copy, NNSERVE_LOG_SAMPLE_RATE=1.0)
    client = app.test_client()
    labeller, with_labeller = feedback_keys("feedback")
    boss, with_boss = feedback_keys("admin")
    given = predict(client, "iris", [[5.0, 3.0, 1.5, 0.2]])
    item = {"request_id": given["request_id"], "target": "setosa"}
    assert client.post("/v1/models/iris/feedback", json={"feedback": [item]}, headers=with_labeller).status_code == 200
    assert labelled(app) == {(given["request_id"], 0, "setosa", "key", labeller)}
    again = {"feedback": [{**item, "target": "virginica"}], "replace": True}
    assert_error(client.post("/v1/models/iris/feedback", json=again, headers=with_labeller), 403, "'admin' scope")
    assert client.post("/v1/models/iris/feedback", json=again, headers=with_boss).get_json()["accepted"] == 1
    assert labelled(app) == {(given["request_id"], 0, "virginica", "key", boss)}
    monitoring_pass(app)
    shown = client.get("/v1/models/iris/monitoring").get_json()["labels"]
    assert shown == [{"source": "key", "key": boss, "rows": 1}]
    _, predictor = feedback_keys("predict")
    assert_error(client.post("/v1/models/iris/feedback", json={"feedback": [item]}, headers=predictor), 403)
    _, digits_only = feedback_keys("feedback", models=["digits"])
    assert_error(client.post("/v1/models/iris/feedback", json={"feedback": [item]}, headers=digits_only), 403)


def test_with_auth_closed_a_token_still_labels_its_prediction_without_a_key(
    make_app, tiny_catalog_copy, feedback_keys, assert_error
):
    app = make_app(tiny_catalog_copy, NNSERVE_LOG_SAMPLE_RATE=1.0, NNSERVE_AUTH="closed")
    client = app.test_client()
    _, predictor = feedback_keys("predict")
    response = client.post("/v1/models/iris/predict", json={"instances": [[5.0, 3.0, 1.5, 0.2]]}, headers=predictor)
    given = response.get_json()
    assert client.post("/v1/models/iris/feedback", json={"feedback": [labels_of(given)]}).status_code == 200
    bare = {"feedback": [{"request_id": given["request_id"], "target": "setosa"}]}
    assert_error(client.post("/v1/models/iris/feedback", json=bare), 401, "feedback_token")
    assert_error(client.get("/v1/models/iris/monitoring"), 401)  # every other call still needs a key
    assert labelled(app) == {(given["request_id"], 0, "setosa", "token", None)}


def test_a_token_that_cannot_be_checked_is_a_503_not_a_401(make_app, tiny_catalog_copy, assert_error):
    """A worker that never read the secret while the prediction log is down cannot tell a good token from a bad
    one: the client must keep its token and try again, not drop it as invalid."""
    issuing = make_app(tiny_catalog_copy, NNSERVE_LOG_SAMPLE_RATE=1.0)
    given = predict(issuing.test_client(), "iris", [[5.0, 3.0, 1.5, 0.2]])
    checking = make_app(tiny_catalog_copy, NNSERVE_LOG_SAMPLE_RATE=1.0)

    def unreachable() -> PredictionLog:
        raise StoreUnavailableError("the database cannot be reached")

    checking.extensions["nnserve.dataplane"].tokens = FeedbackTokens(unreachable, ttl=3600.0)
    response = checking.test_client().post("/v1/models/iris/feedback", json={"feedback": [labels_of(given)]})
    assert_error(response, 503, "feedback tokens cannot be checked")
    response = issuing.test_client().post("/v1/models/iris/feedback", json={"feedback": [labels_of(given)]})
    assert response.status_code == 200 and response.get_json()["accepted"] == 1  # the same token, once checkable
