"""Traces from real processes: ``nnserve serve`` (gunicorn's web workers, their gRPC servers and the supervised
retraining worker) exporting over OTLP/HTTP to a receiver in the test (``tests/otlp_receiver.py``), and the same
server with tracing off exporting nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
from helpers import wait_for
from otlp_receiver import ReceivedSpan, otlp_receiver
from servers import Server, start_serve

pytestmark = pytest.mark.slow

TOKEN = "e2e-tracing-token-77a1"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
IRIS_ROW = {"instances": [[5.9, 3.0, 5.1, 1.8]]}
PREDICT_TRACE, PREDICT_CALLER = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
RETRAIN_TRACE, RETRAIN_CALLER = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"
GRPC_TRACE, GRPC_CALLER = "d4cda95b652f4a1592b449d5929fda1b", "6e0c63257de34c92"
WAIT = 120.0  # seconds for spans and jobs to arrive on a loaded machine (a bound, not a measurement)


@pytest.fixture
def store_root(trained_store, store_copy):
    return store_copy(trained_store("iris", epochs=5))


@contextmanager
def serving(store_root, tmp_path, **otel: str) -> Iterator[Server]:
    """``nnserve serve`` with its retraining worker and a gRPC port, the ``OTEL_*`` variables given; stopped after."""
    server = start_serve(store_root, {"NNSERVE_ADMIN_TOKEN": TOKEN, **otel}, log_dir=tmp_path, retrain_worker=True)
    try:
        yield server
    finally:
        server.stop()


def grpc_infer(server: Server, headers: dict[str, str]) -> None:
    """One iris row through tritonclient.grpc, ``headers`` sent as the call's metadata."""
    client = grpcclient.InferenceServerClient(server.grpc)
    try:
        tensor = grpcclient.InferInput("input", [1, 4], "FP64")
        tensor.set_data_from_numpy(np.array(IRIS_ROW["instances"], dtype=np.float64))
        assert client.infer("iris", [tensor], headers=headers).as_numpy("predictions").shape == (1,)
    finally:
        client.close()


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


def test_a_predict_and_a_retrain_are_traced_across_the_web_and_retraining_workers(store_root, tmp_path) -> None:
    otel = {"OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_SERVICE_NAME": "nnserve-e2e"}
    with (
        otlp_receiver() as receiver,
        serving(store_root, tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, **otel) as server,
    ):
        grpc_infer(server, traceparent(GRPC_TRACE, GRPC_CALLER))
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

        def grpc_span(spans: list[ReceivedSpan]) -> bool:
            return any(s.trace_id == GRPC_TRACE and s.kind == "SPAN_KIND_SERVER" for s in spans)

        receiver.wait_for(predict_span, WAIT, "server span of the predict")
        receiver.wait_for(grpc_span, WAIT, "server span of the gRPC call")
        spans = receiver.wait_for(job_spans, WAIT, "spans of the retrain's job")

    [predict] = [s for s in spans if s.trace_id == PREDICT_TRACE and s.kind == "SPAN_KIND_SERVER"]
    assert predict.name == "POST /v1/models/<name>/predict" and predict.parent_span_id == PREDICT_CALLER
    assert predict.attributes["http.response.status_code"] == 200
    assert predict.resource["nnserve.process"] == "web" and predict.resource["service.name"] == "nnserve-e2e"
    stages = sorted((s for s in spans if s.parent_span_id == predict.span_id), key=lambda s: s.start_ns)
    assert [s.name for s in stages] == ["decode", "infer", "encode"], stages  # not logged: no log stage
    assert stages[1].attributes["nnserve.model"] == "iris" and stages[1].attributes["nnserve.rows"] == 1

    [call] = [s for s in spans if s.trace_id == GRPC_TRACE and s.kind == "SPAN_KIND_SERVER"]
    assert call.name == "inference.GRPCInferenceService/ModelInfer" and call.parent_span_id == GRPC_CALLER
    assert call.attributes["rpc.system"] == "grpc" and call.attributes["rpc.grpc.status_code"] == 0
    stages = sorted((s for s in spans if s.parent_span_id == call.span_id), key=lambda s: s.start_ns)
    assert [s.name for s in stages] == ["decode", "infer", "encode"], stages

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


def test_with_tracing_off_nothing_is_exported_and_nothing_breaks(store_root, tmp_path) -> None:
    """``OTEL_TRACES_EXPORTER=none`` beside an endpoint: the variables say no, so no process exports."""
    off = {"OTEL_TRACES_EXPORTER": "none"}
    with (
        otlp_receiver() as receiver,
        serving(store_root, tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, **off) as server,
    ):
        grpc_infer(server, traceparent(GRPC_TRACE, GRPC_CALLER))
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
