"""Traces from real processes: ``nnserve serve`` (gunicorn's web workers and the supervised retraining worker)
exporting over OTLP/HTTP to a receiver in the test (``tests/otlp_receiver.py``), and the same server with tracing
off exporting nothing."""

from __future__ import annotations

import json

import pytest
import requests
from helpers import service_env, wait_for
from otlp_receiver import ReceivedSpan, otlp_receiver

pytestmark = pytest.mark.slow

TOKEN = "e2e-tracing-token-77a1"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
IRIS_ROW = {"instances": [[5.9, 3.0, 5.1, 1.8]]}
PREDICT_TRACE, PREDICT_CALLER = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
RETRAIN_TRACE, RETRAIN_CALLER = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"
WAIT = 120.0  # seconds for spans and jobs to arrive on a loaded machine (a bound, not a measurement)


@pytest.fixture
def store_root(trained_store, store_copy):
    return store_copy(trained_store("iris", epochs=5))


def env(**extra: str) -> dict[str, str]:
    environment = service_env(NNSERVE_ADMIN_TOKEN=TOKEN, PYTHONUNBUFFERED="1", **extra)
    return {k: v for k, v in environment.items() if not k.startswith("OTEL_") or k in extra}


def traceparent(trace: str, span: str) -> dict[str, str]:
    return {"traceparent": f"00-{trace}-{span}-01"}


def retrain_and_wait(url: str, headers: dict[str, str]) -> dict:
    body = {"hyperparameters": {"epochs": 3}, "promote": "always"}
    answer = requests.post(f"{url}/v1/models/iris/retrain", json=body, headers={**ADMIN, **headers}, timeout=30)
    assert answer.status_code == 202, answer.text
    job_url = f"{url}/v1/jobs/{answer.json()['id']}"
    wait_for(lambda: requests.get(job_url, headers=ADMIN, timeout=10).json()["status"] != "queued", WAIT, "a claim")
    wait_for(lambda: requests.get(job_url, headers=ADMIN, timeout=10).json()["status"] != "running", WAIT, "the job")
    return requests.get(job_url, headers=ADMIN, timeout=10).json()


def test_a_predict_and_a_retrain_are_traced_across_the_web_and_retraining_workers(store_root, nnserve_serve) -> None:
    with otlp_receiver() as receiver:
        server = nnserve_serve(
            store_root,
            env(
                OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, OTEL_BSP_SCHEDULE_DELAY="100", OTEL_SERVICE_NAME="nnserve-e2e"
            ),
        )
        headers = traceparent(PREDICT_TRACE, PREDICT_CALLER)
        answer = requests.post(f"{server.url}/v1/models/iris/predict", json=IRIS_ROW, headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text
        job = retrain_and_wait(server.url, traceparent(RETRAIN_TRACE, RETRAIN_CALLER))
        assert job["status"] == "succeeded", job
        assert job["request"]["traceparent"].split("-")[1] == RETRAIN_TRACE

        def predict_span(spans: list[ReceivedSpan]) -> bool:
            return any(s.trace_id == PREDICT_TRACE and s.kind == "SPAN_KIND_SERVER" for s in spans)

        def job_spans(spans: list[ReceivedSpan]) -> bool:
            names = {s.name for s in spans if s.trace_id == RETRAIN_TRACE}
            return {"job", "job.fit", "job.promote", "queue.claim"} <= names

        receiver.wait_for(predict_span, WAIT, "server span of the predict")
        spans = receiver.wait_for(job_spans, WAIT, "spans of the retrain's job")

    [predict] = [s for s in spans if s.trace_id == PREDICT_TRACE and s.kind == "SPAN_KIND_SERVER"]
    assert predict.name == "POST /v1/models/<name>/predict" and predict.parent_span_id == PREDICT_CALLER
    assert predict.attributes["http.response.status_code"] == 200
    assert predict.resource["nnserve.process"] == "web" and predict.resource["service.name"] == "nnserve-e2e"
    stages = sorted((s for s in spans if s.parent_span_id == predict.span_id), key=lambda s: s.start_ns)
    assert [s.name for s in stages] == ["decode", "infer", "encode"], stages  # not logged: no log stage
    assert stages[1].attributes["nnserve.model"] == "iris" and stages[1].attributes["nnserve.rows"] == 1

    retrain = [s for s in spans if s.trace_id == RETRAIN_TRACE]
    [web] = [s for s in retrain if s.kind == "SPAN_KIND_SERVER"]
    assert web.name == "POST /v1/models/<name>/retrain" and web.parent_span_id == RETRAIN_CALLER
    assert web.attributes["http.response.status_code"] == 202
    in_worker = {s.name: s for s in retrain if s.resource["nnserve.process"] == "worker"}
    assert {"job.queued", "queue.claim", "job", "job.fit", "job.evaluate", "job.publish", "job.promote"} <= set(
        in_worker
    ), sorted(in_worker)
    assert in_worker["job"].parent_span_id == web.span_id  # the job's trace continues the request's
    assert in_worker["job"].attributes["nnserve.job.id"] == job["id"]
    assert in_worker["job.fit"].attributes["nnserve.epochs"] == job["result"]["epochs"]
    assert in_worker["job.promote"].attributes["nnserve.promoted"] is True
    worker_pids = {s.resource.get("process.pid") for s in in_worker.values()}
    assert len(worker_pids) == 1 and predict.resource.get("process.pid") not in worker_pids

    lines = [json.loads(line) for line in server.log.read_text().splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("path") == "/v1/models/iris/predict"]
    assert access and access[0]["trace_id"] == PREDICT_TRACE and access[0]["span_id"] == predict.span_id


def test_with_tracing_off_nothing_is_exported_and_nothing_breaks(store_root, nnserve_serve) -> None:
    """``OTEL_TRACES_EXPORTER=none`` beside an endpoint: the variables say no, so no process exports."""
    with otlp_receiver() as receiver:
        server = nnserve_serve(store_root, env(OTEL_TRACES_EXPORTER="none", OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url))
        headers = traceparent(PREDICT_TRACE, PREDICT_CALLER)
        answer = requests.post(f"{server.url}/v1/models/iris/predict", json=IRIS_ROW, headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text
        job = retrain_and_wait(server.url, traceparent(RETRAIN_TRACE, RETRAIN_CALLER))
        assert job["status"] == "succeeded" and job["request"]["traceparent"] is None, job
        server.stop()  # every process exits (and would flush a batch it held) before the receiver is read
        assert receiver.requests == 0 and receiver.received() == []
    lines = [json.loads(line) for line in server.log.read_text().splitlines() if line.startswith("{")]
    assert any(line.get("path") == "/v1/models/iris/predict" for line in lines)
    assert not any("trace_id" in line for line in lines)
