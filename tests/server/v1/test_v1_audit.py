"""The audit log over HTTP: every admin action and feedback call, refused ones too, on both backends, read back
with ``GET /v1/audit`` (admin); never a secret, a token or a target."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from service.store import open_audit_log, open_key_store, open_store
from service.store.copy import copy_store
from service.store.rollouts import Rollout

ROW = [5.1, 3.5, 1.4, 0.2]
AUDIT = "/v1/audit"


@pytest.fixture(params=["sqlite", "postgres"])
def site(request, make_app, tiny_catalog_copy, tmp_path):
    """(app, store root, database url) logging every prediction: the filesystem store, or PostgreSQL."""
    if request.param == "sqlite":
        return make_app(tiny_catalog_copy, NNSERVE_LOG_SAMPLE_RATE=1.0), tiny_catalog_copy, None
    url = request.getfixturevalue("database_url")
    copy_store(open_store(tiny_catalog_copy), open_store(tmp_path / "cache", url))
    return make_app(tmp_path / "cache", NNSERVE_DATABASE_URL=url, NNSERVE_LOG_SAMPLE_RATE=1.0), tmp_path / "cache", url


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


def entries(client, headers, **query):
    response = client.get(AUDIT, query_string=query, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["entries"]


def test_every_admin_action_and_feedback_call_is_recorded_with_key_model_and_outcome(site):
    app, root, url = site
    client = app.test_client()
    keys = open_key_store(root, url)
    admin, admin_key = keys.create("ops", ["admin"])
    labeller, labeller_key = keys.create("shop", ["feedback"])
    before = time.time()

    open_store(root, url).start_rollout("iris", Rollout("canary", 2, 1, 0.5, 50, 3600.0, time.time()))
    assert client.delete("/v1/models/iris/rollout", headers=bearer(admin_key)).status_code == 200
    assert client.post("/v1/models/iris/versions/2/activate", headers=bearer(admin_key)).status_code == 200
    job = client.post("/v1/models/iris/retrain", json={}, headers=bearer(admin_key))
    assert job.status_code == 202, job.get_json()
    job_id = job.get_json()["id"]
    assert client.delete(f"/v1/jobs/{job_id}", headers=bearer(admin_key)).status_code == 200
    predicted = client.post("/v1/models/iris/predict", json={"instances": [ROW]}).get_json()
    label = {"feedback": [{"request_id": predicted["request_id"], "target": "setosa"}]}
    assert client.post("/v1/models/iris/feedback", json=label, headers=bearer(labeller_key)).status_code == 200
    token = {"request_id": predicted["request_id"], "target": "setosa", "feedback_token": predicted["feedback_token"]}
    assert client.post("/v1/models/iris/feedback", json={"feedback": [token]}).status_code == 200

    shown = entries(client, bearer(admin_key))
    seen = [(e["action"], e["actor"], e["model"], e["outcome"], e["status"]) for e in reversed(shown)]
    assert seen == [
        ("rollout-stop", admin.id, "iris", "ok", 200),
        ("activate", admin.id, "iris", "ok", 200),
        ("retrain", admin.id, "iris", "ok", 202),
        ("cancel", admin.id, "iris", "ok", 200),
        ("feedback", labeller.id, "iris", "ok", 200),
        ("feedback", "token", "iris", "ok", 200),
    ]
    details = {e["action"]: e["detail"] for e in shown}
    assert details["activate"] == "version 2 active (was 1)"
    assert details["cancel"] == f"job {job_id} cancelled"
    assert details["rollout-stop"] == "canary of version 2 rolled back"
    assert job_id in details["retrain"]
    assert [e["detail"] for e in shown if e["action"] == "feedback"] == [
        "0 accepted, 0 unlogged, 1 conflicts",  # the token's label came second: the key's label stays
        "1 accepted, 0 unlogged, 0 conflicts",
    ]
    for e in shown:
        at = datetime.strptime(e["at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
        assert before - 1 <= at <= time.time() + 1
    assert [e["seq"] for e in shown] == sorted((e["seq"] for e in shown), reverse=True)


def test_refused_calls_are_recorded_without_secrets_tokens_or_targets(site, make_app):
    app, root, url = site
    client = app.test_client()
    keys = open_key_store(root, url)
    _, predict_key = keys.create("app", ["predict"])
    labeller, labeller_key = keys.create("shop", ["feedback"], ["digits"])
    secret_target = "zz-not-a-class-7c1e"
    predicted = client.post("/v1/models/iris/predict", json={"instances": [ROW]}).get_json()
    tampered = predicted["feedback_token"][:-2] + "xx"

    anonymous = client.post("/v1/models/iris/feedback", json={"feedback": [{"request_id": "r", "target": "setosa"}]})
    assert anonymous.status_code == 401
    forged = {"request_id": predicted["request_id"], "target": "setosa", "feedback_token": tampered}
    assert client.post("/v1/models/iris/feedback", json={"feedback": [forged]}).status_code == 401
    assert client.post("/v1/models/iris/versions/2/activate", headers=bearer(predict_key)).status_code == 403
    other_model = client.post(
        "/v1/models/iris/feedback",
        json={"feedback": [{"request_id": "r", "target": "setosa"}]},
        headers=bearer(labeller_key),
    )
    assert other_model.status_code == 403
    wrong_key = predict_key[:-3] + "abc"
    assert client.post("/v1/models/iris/retrain", json={}, headers=bearer(wrong_key)).status_code == 401
    _, feedback_key = keys.create("any", ["feedback"])
    bad_target = {"feedback": [{"request_id": predicted["request_id"], "target": secret_target}]}
    assert client.post("/v1/models/iris/feedback", json=bad_target, headers=bearer(feedback_key)).status_code == 422
    assert client.delete("/v1/jobs/no-such-job", headers=bearer(predict_key)).status_code == 403
    closed = make_app(root, NNSERVE_AUTH="closed", **({"NNSERVE_DATABASE_URL": url} if url else {})).test_client()
    assert closed.delete("/v1/models/iris/rollout").status_code == 401  # the closed-mode gate refuses it first

    shown = open_audit_log(root, url).entries()
    seen = [(e.action, e.actor, e.model, e.outcome, e.status) for e in reversed(shown)]
    key_id = predict_key.split("_")[1]
    assert seen == [
        ("feedback", None, "iris", "refused", 401),
        ("feedback", None, "iris", "refused", 401),
        ("activate", key_id, "iris", "refused", 403),
        ("feedback", labeller.id, "iris", "refused", 403),
        ("retrain", key_id, "iris", "refused", 401),  # the id the bad key claims, never its secret
        ("feedback", feedback_key.split("_")[1], "iris", "failed", 422),
        ("cancel", key_id, None, "refused", 403),
        ("rollout-stop", None, "iris", "refused", 401),
    ]
    by_status = {(e.action, e.status): e.detail for e in shown}
    assert "'admin' scope" in by_status[("activate", 403)]
    assert "digits" not in by_status[("feedback", 403)] and "iris" in by_status[("feedback", 403)]
    assert by_status[("feedback", 422)] == "UNPROCESSABLE ENTITY"  # the message would quote the target
    written = repr([e.to_json() for e in shown])
    for secret in (
        secret_target,
        tampered,
        predicted["feedback_token"],
        *(k.split("_", 2)[2] for k in (predict_key, labeller_key, feedback_key, wrong_key)),
    ):
        assert secret not in written


def test_get_audit_is_for_admins_and_filters_by_model_time_and_limit(site, admin_headers):
    app, root, url = site
    client = app.test_client()
    _, feedback_key = open_key_store(root, url).create("shop", ["feedback"])
    assert client.get(AUDIT).status_code == 401
    assert client.get(AUDIT, headers=bearer(feedback_key)).status_code == 403
    log = open_audit_log(root, url)
    from service.store import AuditEntry

    for i, model in enumerate(["iris", "digits", "iris", None]):
        log.record(AuditEntry("gc", "ok", "cli", model, None, f"pass {i}", at=1_000_000.0 + i))
    shown = entries(client, admin_headers, model="iris")
    assert [e["detail"] for e in shown if e["action"] == "gc"] == ["pass 2", "pass 0"]
    assert all(e["model"] == "iris" for e in shown)
    since = entries(client, admin_headers, since="1970-01-12T13:46:42Z")  # 1,000,002
    assert [e["detail"] for e in since if e["action"] == "gc"] == ["pass 3", "pass 2"]
    assert len(entries(client, admin_headers, limit=2)) == 2
    for query in ({"limit": 1001}, {"limit": 0}, {"model": "../etc"}, {"since": "yesterday"}, {"who": "x"}):
        response = client.get(AUDIT, query_string=query, headers=admin_headers)
        assert response.status_code == 422, query
        assert set(response.get_json()) >= {"code", "status", "message"}
    assert client.get(f"{AUDIT}?limit=1&limit=2", headers=admin_headers).status_code == 422
    assert all(e["action"] != "feedback" for e in entries(client, admin_headers))  # reading it is not recorded


def test_a_flood_of_refused_calls_keeps_the_log_within_its_rows(make_app, tiny_catalog_copy):
    client = make_app(tiny_catalog_copy, NNSERVE_AUDIT_KEEP_ROWS=10).test_client()
    for i in range(60):
        assert client.post(f"/v1/models/made-up-{i}/versions/1/activate").status_code == 401
        assert len(open_audit_log(tiny_catalog_copy).entries(limit=1000)) <= 11  # a trim every 1 entry of 10
    kept = open_audit_log(tiny_catalog_copy).entries(limit=1000)
    assert [e.model for e in kept[:2]] == ["made-up-59", "made-up-58"] and len(kept) >= 10
