"""service/tracing.py: when traces are on, what a request and a job record, and that nnserve runs the same
without them (variables unset, or the ``otel`` extra not installed).

Spans go through the real exporter to a real OTLP/HTTP receiver (``tests/otlp_receiver.py``); the
processes of ``nnserve serve`` are in ``tests/e2e/test_tracing_e2e.py``.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from otlp_receiver import ReceivedSpan, otlp_receiver

from service import create_app, logs, tracing
from service.store import FileModelStore, open_store
from service.training.jobs import RetrainRequest, open_queue
from service.training.sqlite_queue import SqliteJobQueue
from service.training.worker import Worker

REPO = Path(__file__).resolve().parents[1]
WITHOUT_OTEL = REPO / "bench" / "without_otel"  # its sitecustomize makes the OpenTelemetry imports fail
TOKEN = "tracing-test-token-41d0"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = "00f067aa0ba902b7"  # the caller's span: the server span's parent
IRIS_ROW = {"instances": [[5.9, 3.0, 5.1, 1.8]]}
V2_ROW = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [5.9, 3.0, 5.1, 1.8]}]}


@pytest.mark.parametrize(
    ("environ", "wanted"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "x"}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, False),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_the_standard_variables_decide_whether_traces_are_wanted(environ: dict[str, str], wanted: bool) -> None:
    assert tracing.wanted(environ) is wanted


@pytest.fixture
def store(trained_store, store_copy) -> Path:
    return store_copy(trained_store("iris", epochs=5))


@pytest.fixture
def no_otel_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


def json_lines(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]


def test_with_the_variables_unset_nothing_is_traced_and_requests_and_jobs_work(store, no_otel_variables) -> None:
    app = create_app({"NNSERVE_STORE": str(store), "NNSERVE_ADMIN_TOKEN": TOKEN, "TESTING": True})
    assert not tracing.enabled()
    assert tracing.span("x") is tracing.NO_SPAN and tracing.traceparent() is None and tracing.ids() is None
    buffer = io.StringIO()
    handler = logs.configure("info", buffer)
    try:
        client = app.test_client()
        headers = {"traceparent": f"00-{TRACE}-{CALLER}-01"}
        assert client.post("/v1/models/iris/predict", json=IRIS_ROW, headers=headers).status_code == 200
        answer = client.post("/v1/models/iris/retrain", json={"hyperparameters": {"epochs": 2}}, headers=ADMIN)
    finally:
        logging.getLogger().removeHandler(handler)
    assert answer.status_code == 202, answer.json
    assert SqliteJobQueue(store).get(answer.json["id"]).request.traceparent is None
    lines = json_lines(buffer)
    assert any(line.get("path") == "/v1/models/iris/predict" for line in lines), lines
    assert not any("trace_id" in line or "span_id" in line for line in lines)
    worker = Worker(store)
    assert worker.run_once()
    assert SqliteJobQueue(store).get(answer.json["id"]).status == "succeeded"


def by_name(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


def test_a_request_and_the_job_it_queued_are_one_trace(store, no_otel_variables, monkeypatch) -> None:
    with otlp_receiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        monkeypatch.setenv("OTEL_SERVICE_NAME", "nnserve-under-test")
        buffer = io.StringIO()
        handler = logs.configure("info", buffer)
        try:
            settings = {"NNSERVE_STORE": str(store), "NNSERVE_ADMIN_TOKEN": TOKEN, "NNSERVE_LOG_SAMPLE_RATE": 1.0}
            app = create_app({**settings, "TESTING": True})
            assert tracing.enabled()
            client = app.test_client()
            parent = {"traceparent": f"00-{TRACE}-{CALLER}-01"}
            assert client.post("/v1/models/iris/predict", json=IRIS_ROW, headers=parent).status_code == 200
            assert client.post("/v2/models/iris/infer", json=V2_ROW).status_code == 200
            body = {"hyperparameters": {"epochs": 3}, "promote": "always"}
            answer = client.post("/v1/models/iris/retrain", json=body, headers=ADMIN)
            assert answer.status_code == 202, answer.json
            assert Worker(store).run_once()
        finally:
            logging.getLogger().removeHandler(handler)
            tracing.shutdown()  # exports what is buffered
        spans = receiver.received()

    predict = by_name(spans, "POST /v1/models/<name>/predict")
    assert predict.trace_id == TRACE and predict.parent_span_id == CALLER and predict.kind == "SPAN_KIND_SERVER"
    assert predict.attributes["http.response.status_code"] == 200 and not predict.error
    assert predict.resource["service.name"] == "nnserve-under-test" and predict.resource["nnserve.process"] == "web"
    for adapter in (predict, by_name(spans, "POST /v2/models/<name>/infer")):  # the data plane's stages, in order
        stages = sorted((s for s in spans if s.parent_span_id == adapter.span_id), key=lambda s: s.start_ns)
        assert [s.name for s in stages] == ["decode", "infer", "log", "encode"], (adapter.name, stages)
        assert all(s.trace_id == adapter.trace_id and not s.error for s in stages)
        infer = stages[1]
        assert infer.attributes == {"nnserve.model": "iris", "nnserve.version": 1, "nnserve.rows": 1}
    access = [line for line in json_lines(buffer) if line.get("path") == "/v1/models/iris/predict"]
    assert len(access) == 1 and access[0]["trace_id"] == TRACE and access[0]["span_id"] == predict.span_id

    retrain = by_name(spans, "POST /v1/models/<name>/retrain")
    assert retrain.parent_span_id == "" and retrain.trace_id != TRACE  # no traceparent sent: a trace of its own
    enqueue = by_name(spans, "queue.enqueue")
    assert (enqueue.trace_id, enqueue.parent_span_id) == (retrain.trace_id, retrain.span_id)
    job = SqliteJobQueue(store).get(answer.json["id"])
    assert job.status == "succeeded" and job.request.traceparent.split("-")[1:3] == [retrain.trace_id, retrain.span_id]

    run = by_name(spans, "job")
    assert (run.trace_id, run.parent_span_id) == (retrain.trace_id, retrain.span_id)
    assert run.attributes["nnserve.job.id"] == job.id and run.attributes["nnserve.job.status"] == "succeeded"
    for name in ("job.queued", "queue.claim"):
        recorded = by_name(spans, name)
        assert (recorded.trace_id, recorded.parent_span_id) == (retrain.trace_id, retrain.span_id)
    stages = {name: by_name(spans, name) for name in ("job.fit", "job.evaluate", "job.publish", "job.promote")}
    assert all(stage.parent_span_id == run.span_id for stage in stages.values())
    assert stages["job.fit"].attributes["nnserve.epochs"] == job.result.epochs == 3
    assert isinstance(stages["job.fit"].attributes["nnserve.loss"], float)
    assert stages["job.promote"].attributes["nnserve.promoted"] is True
    assert by_name(spans, "store.publish").parent_span_id == stages["job.publish"].span_id
    assert by_name(spans, "store.activate").parent_span_id == stages["job.promote"].span_id
    loads = [s for s in spans if s.name == "store.load" and s.parent_span_id == run.span_id]
    assert len(loads) == 1 and loads[0].attributes["nnserve.model"] == "iris"
    [done] = [line for line in json_lines(buffer) if line["message"].startswith(f"job {job.id} succeeded")]
    assert (done["trace_id"], done["span_id"]) == (run.trace_id, run.span_id)  # the worker's lines lead to it too


WITHOUT_THE_EXTRA = """
import logging, sys
from service import create_app, tracing
logging.basicConfig(level=logging.WARNING, stream=sys.stdout)
app = create_app({"NNSERVE_STORE": sys.argv[1], "TESTING": True})
answer = app.test_client().post("/v1/models/iris/predict", json={"instances": [[5.9, 3.0, 5.1, 1.8]]})
with tracing.span("anything") as span:
    span.set_attribute("key", 1)
print("status", answer.status_code, "enabled", tracing.enabled(), "traceparent", tracing.traceparent())
print("imported", sorted(name for name in sys.modules if name.startswith("opentelemetry")))
"""


def test_without_the_otel_extra_nnserve_runs_the_same_and_says_why_there_are_no_traces(store) -> None:
    """The import of the OpenTelemetry packages fails (bench/without_otel's sitecustomize blocks it, as for the
    benchmark's baseline), the variables ask for traces."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "NNSERVE_"))}
    env.update(PYTHONPATH=f"{WITHOUT_OTEL}{os.pathsep}{REPO}", OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    run = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(WITHOUT_THE_EXTRA), str(store)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "status 200 enabled False traceparent None" in run.stdout
    assert "imported []" in run.stdout
    assert "nnserve[otel] is not installed: no traces" in run.stdout


def test_postgresql_calls_are_spans_of_the_traced_operation_that_made_them(
    trained_store, database_url, tmp_path, no_otel_variables, monkeypatch
) -> None:
    """The PostgreSQL store and queue: one ``postgresql`` span per call inside a traced operation, none for a call
    made on its own (the migrations at open, a heartbeat), which would otherwise start a trace every few seconds."""
    estimator = FileModelStore(trained_store("iris", epochs=5)).load("iris").estimator
    with otlp_receiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        assert tracing.configure("worker", "test")
        try:
            store = open_store(tmp_path / "cache", database_url)
            queue = open_queue(tmp_path / "cache", database_url)
            queue.heartbeat("alone")
            with tracing.span("operation"):
                version = store.publish("iris", estimator, {"task": "classification", "metrics": {}})
                store.activate("iris", version)
                queue.enqueue("iris", RetrainRequest())
        finally:
            tracing.shutdown()
        spans = receiver.received()
    operation = by_name(spans, "operation")
    for name in ("store.publish", "store.activate", "queue.enqueue"):
        assert by_name(spans, name).parent_span_id == operation.span_id
    calls = [s for s in spans if s.name == "postgresql"]
    assert calls and all(s.attributes["db.system.name"] == "postgresql" for s in calls)
    traced = {s.span_id: s.name for s in spans if s.name != "postgresql"}
    assert all(s.parent_span_id in traced for s in calls), "a database call outside a traced operation was recorded"
    assert {traced[s.parent_span_id] for s in calls} >= {"store.publish", "store.activate", "queue.enqueue"}
