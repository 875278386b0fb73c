"""API keys over HTTP: who may call what in each NNSERVE_AUTH mode, 401 and 403 as JSON, revocation, access logs."""

from __future__ import annotations

import logging
import time

import pytest

from service.store import FileKeyStore
from service.training.jobs import RetrainRequest, open_queue

ROW = [5.1, 3.5, 1.4, 0.2]
PREDICT = "/v1/models/iris/predict"
FEEDBACK = "/v1/models/iris/feedback"
LABEL = {"feedback": [{"request_id": "nobody", "target": "setosa"}]}
ACTIVATE = "/v1/models/iris/versions/1/activate"


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def keys(tiny_catalog_copy):
    """``keys(*scopes, models=())``: a real key in the copied store's key file, as request headers."""
    store = FileKeyStore(tiny_catalog_copy)

    def make(*scopes, models=(), name="test"):
        _, key = store.create(name, scopes, models)
        return bearer(key)

    make.store = store
    return make


@pytest.fixture
def open_client(make_app, tiny_catalog_copy):
    return make_app(tiny_catalog_copy).test_client()


@pytest.fixture
def closed_client(make_app, tiny_catalog_copy):
    return make_app(tiny_catalog_copy, NNSERVE_AUTH="closed").test_client()


def test_open_predict_lets_predictions_and_reads_through_without_a_key(open_client):
    assert open_client.post(PREDICT, json={"instances": [ROW]}).status_code == 200
    assert open_client.get("/v1/models/iris").status_code == 200
    assert (
        open_client.post(
            "/v2/models/iris/infer",
            json={"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": ROW}]},
        ).status_code
        == 200
    )
    assert open_client.get("/ui/").status_code == 200


def test_feedback_needs_the_feedback_scope(open_client, keys, assert_error):
    response = open_client.post(FEEDBACK, json=LABEL)
    assert_error(response, 401, "feedback")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert_error(open_client.post(FEEDBACK, json=LABEL, headers=keys("predict")), 403, "'feedback' scope")
    assert open_client.post(FEEDBACK, json=LABEL, headers=keys("feedback")).status_code == 200
    assert open_client.post(FEEDBACK, json=LABEL, headers=keys("admin")).status_code == 200  # admin implies it


def test_admin_calls_need_the_admin_scope(open_client, keys, assert_error):
    for scopes in (("predict",), ("feedback",), ("predict", "feedback")):
        assert_error(open_client.post(ACTIVATE, headers=keys(*scopes)), 403, "'admin' scope")
    answer = open_client.post(ACTIVATE, headers=keys("admin"))
    assert answer.status_code == 200 and answer.get_json()["version"] == 1


def test_a_key_limited_to_models_answers_403_elsewhere(open_client, keys, assert_error):
    iris_only = keys("predict", "feedback", "admin", models=["iris"])
    assert open_client.post(PREDICT, json={"instances": [ROW]}, headers=iris_only).status_code == 200
    assert open_client.post(FEEDBACK, json=LABEL, headers=iris_only).status_code == 200
    digits_row = {"instances": [[0.0] * 64]}
    assert_error(open_client.post("/v1/models/digits/predict", json=digits_row, headers=iris_only), 403, "digits")
    assert_error(open_client.post("/v1/models/digits/feedback", json=LABEL, headers=iris_only), 403, "digits")
    assert_error(open_client.post("/v1/models/digits/versions/1/activate", headers=iris_only), 403, "digits")


def test_a_feedback_key_still_predicts_in_open_predict(open_client, keys):
    response = open_client.post(PREDICT, json={"instances": [ROW]}, headers=keys("feedback"))
    assert response.status_code == 200


def test_a_bad_key_is_401_even_where_none_is_needed(open_client, keys, assert_error):
    good = keys("predict")["Authorization"]
    tampered = good[:-1] + ("A" if good[-1] != "A" else "B")
    for value in (tampered, "Bearer nns_000000000000_" + "x" * 43):
        assert_error(open_client.post(PREDICT, json={"instances": [ROW]}, headers={"Authorization": value}), 401)


def test_closed_needs_a_key_for_every_call_but_health_and_metrics(closed_client, keys, assert_error):
    for path in ("/v1/models", "/v1/models/iris", "/v1/jobs", "/ui/", "/openapi.json"):
        assert_error(closed_client.get(path), 401, "token")
    v2 = closed_client.get("/v2/models/iris")  # the Open Inference Protocol's own error shape
    assert v2.status_code == 401 and "this call needs any key" in v2.get_json()["error"]
    assert v2.headers["WWW-Authenticate"].startswith("Bearer")
    assert_error(closed_client.post(PREDICT, json={"instances": [ROW]}), 401, "this call needs any key")
    for path in ("/healthz", "/readyz", "/metrics"):
        assert closed_client.get(path).status_code == 200, path
    predictor, labeller = keys("predict"), keys("feedback")
    assert closed_client.post(PREDICT, json={"instances": [ROW]}, headers=predictor).status_code == 200
    assert closed_client.get("/v1/models", headers=labeller).status_code == 200  # reads: any key
    assert closed_client.get("/ui/", headers=labeller).status_code == 200
    assert_error(closed_client.post(PREDICT, json={"instances": [ROW]}, headers=labeller), 403, "'predict' scope")
    assert_error(closed_client.post(FEEDBACK, json=LABEL, headers=predictor), 403, "'feedback' scope")
    iris_only = keys("predict", models=["iris"])
    assert_error(closed_client.get("/v1/models/digits", headers=iris_only), 403, "digits")


def test_the_bootstrap_token_is_an_admin_in_closed_mode(closed_client, admin_headers):
    assert closed_client.post(PREDICT, json={"instances": [ROW]}, headers=admin_headers).status_code == 200
    assert closed_client.post(ACTIVATE, headers=admin_headers).status_code == 200


def test_a_revoked_key_answers_401(open_client, keys, assert_error):
    headers = keys("feedback")
    assert open_client.post(FEEDBACK, json=LABEL, headers=headers).status_code == 200
    key_id = headers["Authorization"].split("_")[1]
    keys.store.revoke(key_id)
    deadline = time.monotonic() + 30  # the worker looks at the key file at most every NNSERVE_KEY_CHECK_INTERVAL
    while (response := open_client.post(FEEDBACK, json=LABEL, headers=headers)).status_code == 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert_error(response, 401, f"key {key_id} was revoked")


def test_admin_keys_turn_admin_calls_on_without_a_token(make_app, tiny_catalog_copy, keys, assert_error):
    client = make_app(tiny_catalog_copy, NNSERVE_ADMIN_TOKEN=None).test_client()
    admin = keys("admin")
    assert_error(client.post(ACTIVATE), 401, "'admin' scope")
    assert client.post(ACTIVATE, headers=admin).status_code == 200


def test_access_logs_name_the_key_id_never_the_key(open_client, keys, caplog):
    headers = keys("feedback")
    key = headers["Authorization"].removeprefix("Bearer ")
    with caplog.at_level(logging.INFO, logger="nnserve.access"):
        open_client.post(FEEDBACK, json=LABEL, headers=headers)
    (record,) = [r for r in caplog.records if r.name == "nnserve.access"]
    assert record.key_id == key.split("_")[1]
    assert all(key.split("_", 2)[2] not in str(vars(r)) for r in caplog.records)


def test_a_browser_page_without_a_key_gets_the_locked_page_in_closed_mode(closed_client, keys):
    page = closed_client.get("/ui/models/iris", headers={"Accept": "text/html,application/xhtml+xml"})
    assert page.status_code == 401 and page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    assert "/ui/static/locked.js" in text and "A key is needed" in text and "Versions of iris" not in text
    assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert closed_client.get("/ui/static/locked.js").status_code == 200  # its script needs no key
    with_key = closed_client.get("/ui/models/iris", headers={"Accept": "text/html", **keys("predict")})
    assert with_key.status_code == 200 and "Versions of iris" in with_key.get_data(as_text=True)
    api = closed_client.get("/v1/models/iris", headers={"Accept": "text/html"})  # not a page: JSON
    assert api.status_code == 401 and api.mimetype == "application/json"


EVERY_MODEL = ["breast_cancer", "diabetes", "digits", "iris"]


@pytest.mark.parametrize("mode", ["open-predict", "closed"])
def test_a_key_limited_to_models_sees_only_them_and_is_refused_the_others_as_its_predictions_are(
    make_app, tiny_catalog_copy, keys, assert_error, mode
):
    client = make_app(tiny_catalog_copy, NNSERVE_AUTH=mode).test_client()
    iris_only, every = keys("predict", models=["iris"]), keys("feedback")

    def listed(headers):
        answer = client.get("/v1/models", headers=headers)
        assert answer.status_code == 200
        return sorted(m["name"] for m in answer.get_json()["models"])

    assert listed(iris_only) == ["iris"]
    assert listed(every) == EVERY_MODEL
    if mode == "open-predict":
        assert listed({}) == EVERY_MODEL
    page = client.get("/ui/", headers=iris_only).get_data(as_text=True)
    assert 'href="/ui/models/iris"' in page and 'href="/ui/models/digits"' not in page
    assert 'href="/ui/models/digits"' in client.get("/ui/", headers=every).get_data(as_text=True)

    refused = "lacks access to model 'digits'"  # what its predictions there answer, over v1 and v2
    assert_error(client.post("/v1/models/digits/predict", json={"instances": [[0.0] * 64]}, headers=iris_only), 403)
    inferred = client.post("/v2/models/digits/infer", json={"inputs": []}, headers=iris_only)
    assert inferred.status_code == 403 and refused in inferred.get_json()["error"]
    for path in ("/v1/models/digits", "/v1/models/digits/monitoring", "/v1/models/digits/rollout"):
        assert_error(client.get(path, headers=iris_only), 403, refused)
    for path in ("/v2/models/digits", "/v2/models/digits/ready", "/v2/models/digits/versions/1"):
        answer = client.get(path, headers=iris_only)
        assert (answer.status_code, answer.get_json()) == (403, inferred.get_json()), path
    page = client.get("/ui/models/digits", headers=iris_only)
    assert page.status_code == 403 and refused in page.get_data(as_text=True)
    for path in ("/v1/models/iris", "/v2/models/iris", "/v2/models/iris/ready", "/ui/models/iris"):
        assert client.get(path, headers=iris_only).status_code == 200, path
    for path in ("/v1/models/digits", "/v2/models/digits", "/ui/models/digits"):
        assert client.get(path, headers=every).status_code == 200, path


@pytest.mark.parametrize("mode", ["open-predict", "closed"])
def test_a_key_limited_to_models_sees_and_cancels_only_their_jobs(
    make_app, tiny_catalog_copy, keys, assert_error, mode
):
    client = make_app(tiny_catalog_copy, NNSERVE_AUTH=mode).test_client()
    queue = open_queue(tiny_catalog_copy)
    iris_job, digits_job = (queue.enqueue(name, RetrainRequest(mode="append")) for name in ("iris", "digits"))
    iris_only, every = keys("admin", models=["iris"]), keys("feedback")

    def listed(path, headers):
        answer = client.get(path, headers=headers)
        assert answer.status_code == 200, answer.get_json()
        return [(job["id"], answer.get_json()["total"]) for job in answer.get_json()["jobs"]]

    assert listed("/v1/jobs", iris_only) == [(iris_job.id, 1)]
    assert listed("/v1/jobs?model=iris", iris_only) == [(iris_job.id, 1)]
    assert listed("/v1/jobs", every) == [(digits_job.id, 2), (iris_job.id, 2)]
    assert_error(client.get("/v1/jobs?model=digits", headers=iris_only), 403, "lacks access to model 'digits'")
    assert_error(client.get(f"/v1/jobs/{digits_job.id}", headers=iris_only), 403, "lacks access to model 'digits'")
    assert client.get(f"/v1/jobs/{iris_job.id}", headers=iris_only).status_code == 200
    for path in ("/ui/jobs", "/ui/jobs/fragment"):
        page = client.get(path, headers=iris_only).get_data(as_text=True)
        assert iris_job.id in page and digits_job.id not in page, path
        assert digits_job.id in client.get(path, headers=every).get_data(as_text=True)
    assert_error(client.delete(f"/v1/jobs/{digits_job.id}", headers=iris_only), 403, "lacks access to model 'digits'")
    assert queue.get(digits_job.id).status == "queued"
    assert client.delete(f"/v1/jobs/{iris_job.id}", headers=iris_only).get_json()["status"] == "cancelled"


def test_an_admin_key_limited_to_models_reads_only_their_audit_entries(open_client, keys, admin_headers, assert_error):
    iris_admin = keys("admin", models=["iris"])
    assert open_client.post(ACTIVATE, headers=iris_admin).status_code == 200
    assert open_client.post("/v1/models/digits/versions/1/activate", headers=admin_headers).status_code == 200

    def models(headers, query=""):
        answer = open_client.get(f"/v1/audit{query}", headers=headers)
        assert answer.status_code == 200, answer.get_json()
        return [entry["model"] for entry in answer.get_json()["entries"]]

    assert models(iris_admin) == ["iris"]
    assert models(iris_admin, "?model=iris") == ["iris"]
    assert models(admin_headers) == ["digits", "iris"]
    assert_error(open_client.get("/v1/audit?model=digits", headers=iris_admin), 403, "lacks access to model 'digits'")
