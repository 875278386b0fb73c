"""schemathesis against the service's own ``/openapi.json``, in process through the WSGI app.

Every v1 operation of the document is exercised (admin ones with a valid
token) on a throwaway copy of a small trained store in which a classifier
canary (iris) and a regressor canary (diabetes) run, started through the store
as a canary retrain starts them: no 5xx, every status code the service answers
is documented for that operation, and every body and content type conforms to
the documented schema.

Two kinds of run:

- ``test_operation``, per operation and generation mode, fuzzes with the path
  parameters steered to the store's real names, versions and a real job id
  (random strings alone would only ever reach the 404 branches), plus one valid
  body per POST operation, so every operation must answer 2xx at least once and
  its success body is checked too;
- ``test_every_phase_with_canaries_of_both_tasks_running`` runs schemathesis'
  engine as its command line does, every phase: examples, coverage, fuzzing and
  the stateful phase (links it infers from the document: a listing's names, a
  retrain's job id), with the real model names given as the ``name``
  parameter's examples, while a client sends each canary's model valid
  predictions (generated bodies rarely fit a model's width), so the reads
  schemathesis makes (model, rollout, monitoring) judge live evidence; both
  canaries must have answered some of them and still be running at the end.

The document is tested stricter than it is published: its ``default``
responses are removed, so an undocumented status code fails
``status_code_conformance`` instead of matching the catch-all.

Generation is bounded and deterministic (fixed seed, derandomized), so the runs
take seconds and fail the same way on every machine.

Excluded, with reasons:

- ``/openapi.json`` and ``/docs`` are not operations of the document itself.
- ``/metrics`` and the v2 routes (Open Inference Protocol) are not in the
  document (v2 is specified by KServe/Triton, not by our OpenAPI); they are
  covered by ``tests/test_bad_requests.py``, ``tests/test_v2.py`` and the
  metrics tests.
- The ``negative_data_rejection`` and ``positive_data_acceptance`` checks:
  the documented request schemas are what marshmallow can express, not every
  rule the service enforces (the width of a row depends on the model, a
  version must exist, a retrain needs targets of the model's label kind), so
  documented-valid data is legitimately refused with a documented 4xx; and
  ``Matrix`` documents one row, rows or objects, which the JSON Schema cannot
  pin down to what numpy accepts. Refusals still have to be documented and
  well-formed, which the remaining checks assert. The stateful checks
  (``use_after_free``, ``ensure_resource_availability``) likewise: a cancelled
  job is still a job (GET answers 200 with its state), by design.
- In the engine run only, activations and ``DELETE .../rollout``: each ends a
  running rollout (by design), and the canaries must run throughout; both are
  fuzzed by ``test_operation``.
"""

from __future__ import annotations

import copy
import itertools
import shutil
import threading
import time

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode, engine
from schemathesis.checks import not_a_server_error
from schemathesis.engine import events
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from v2_models import build_store

from service import create_app
from service.store import FileModelStore, Rollout
from service.store.monitoring import SqlitePredictionLog

pytestmark = pytest.mark.slow  # hundreds of generated requests: left out of `make test-fast`

ADMIN_TOKEN = "schemathesis-admin-token-0b7e"
SEED = 20240611
MAX_EXAMPLES = 30

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": False},
        },
    }
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
CANARIES = ("iris", "diabetes")  # a classifier's and a regressor's
ENGINE_MAX_EXAMPLES = 8
ENGINE_MAX_STEPS = 10
ENGINE_CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "cache": {"enabled": False},  # nothing written to .schemathesis/ in the working directory
        "headers": {"Authorization": f"Bearer {ADMIN_TOKEN}"},
        "generation": {"max-examples": ENGINE_MAX_EXAMPLES, "deterministic": True, "database": "none"},
        "checks": {"enabled": False, **{check.__name__: {"enabled": True} for check in CHECKS}},
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": True, "max-steps": ENGINE_MAX_STEPS},
        },
    }
)
ENDS_ROLLOUTS = r"(/activate|/rollout)$"  # the operations the engine run leaves to test_operation


def strict_document(doc: dict) -> dict:
    """The published document without its catch-all ``default`` responses."""
    doc = copy.deepcopy(doc)
    for item in doc["paths"].values():
        for key, op in item.items():
            if key != "parameters":
                op["responses"].pop("default", None)
    return doc


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("schemathesis-store"))


def start_canaries(root) -> None:
    """A canary of each task, as a canary retrain starts one: ``start_rollout`` on a published candidate."""
    store = FileModelStore(root)
    for name in CANARIES:
        active = store.active_version(name)
        candidate = next((v for v in store.versions(name) if v != active), None)
        if candidate is None:  # one version only: its network again, as the candidate
            loaded = store.load(name, active)
            candidate = store.publish(name, loaded.estimator, {"task": loaded.manifest["task"]})
        store.start_rollout(name, Rollout("canary", candidate, active, 0.5, 100, 3600.0, time.time()))


@pytest.fixture
def served(catalog, tmp_path):
    """(app, its strict document, the store's real path parameters, the store's root), canaries running."""
    root = tmp_path / "store"
    shutil.copytree(catalog.root, root)
    start_canaries(root)
    app = create_app(
        {
            "NNSERVE_STORE": str(root),
            "NNSERVE_ADMIN_TOKEN": ADMIN_TOKEN,
            "NNSERVE_MAX_ROWS": 100,
            "NNSERVE_MAX_BODY_BYTES": 1 << 20,
            "TESTING": True,
        }
    )
    client = app.test_client()
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    job = client.post("/v1/models/iris/retrain", json={"hyperparameters": {"epochs": 1}}, headers=headers)
    assert job.status_code == 202, job.get_data(as_text=True)
    doc = strict_document(client.get("/openapi.json").get_json())
    versions = sorted({str(v) for name in catalog.versions for v in FileModelStore(root).versions(name)})
    known = {"name": sorted(catalog.versions), "version": versions, "job_id": [job.get_json()["id"]]}
    return app, doc, known, root


@pytest.fixture
def api_schema(served):
    app, doc, known, _ = served
    schema = schemathesis.openapi.from_dict(doc, config=CONFIG)
    schema.app = app
    return schema, known


OPERATIONS = [
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/v1/models"),
    ("GET", "/v1/models/{name}"),
    ("POST", "/v1/models/{name}/predict"),
    ("POST", "/v1/models/{name}:predict"),
    ("POST", "/v1/models/{name}/versions/{version}/predict"),
    ("POST", "/v1/models/{name}/explain"),
    ("POST", "/v1/models/{name}:explain"),
    ("POST", "/v1/models/{name}/versions/{version}/explain"),
    ("POST", "/v1/models/{name}/versions/{version}/activate"),
    ("POST", "/v1/models/{name}/retrain"),
    ("POST", "/v1/models/{name}/feedback"),
    ("GET", "/v1/models/{name}/monitoring"),
    ("GET", "/v1/models/{name}/rollout"),
    ("DELETE", "/v1/models/{name}/rollout"),
    ("GET", "/v1/jobs"),
    ("GET", "/v1/jobs/{job_id}"),
    ("GET", "/v1/audit"),
    ("DELETE", "/v1/jobs/{job_id}"),
]
VALID_BODIES = {
    ("POST", "/v1/models/{name}/predict"): {"instances": [[5.1, 3.5, 1.4, 0.2]]},
    ("POST", "/v1/models/{name}:predict"): {"instances": [[5.1, 3.5, 1.4, 0.2]]},
    ("POST", "/v1/models/{name}/versions/{version}/predict"): {"instances": [[5.1, 3.5, 1.4, 0.2]]},
    # a row of the model's own width; these versions were published without training means, so the default
    # baseline ("mean") is refused: zeros, or one of the model's rows
    ("POST", "/v1/models/{name}/explain"): lambda catalog, name: {
        "instances": catalog.rows[name][:1].tolist(),
        "steps": 8,
        "baseline": "zeros",
    },
    ("POST", "/v1/models/{name}:explain"): lambda catalog, name: {
        "instances": catalog.rows[name][:1].tolist(),
        "method": "saliency",
        "baseline": "zeros",
    },
    ("POST", "/v1/models/{name}/versions/{version}/explain"): lambda catalog, name: {
        "instances": catalog.rows[name][:2].tolist(),
        "baseline": catalog.rows[name][-1].tolist(),
    },
    ("POST", "/v1/models/{name}/retrain"): {"hyperparameters": {"epochs": 1}},
    # a target each model takes: its first class, or a number
    ("POST", "/v1/models/{name}/feedback"): lambda catalog, name: {
        "feedback": [{"request_id": "r1", "target": catalog.classes.get(name, [150.0])[0]}]
    },
}
MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]


def test_every_documented_operation_is_fuzzed(api_schema):
    api_schema, _ = api_schema
    documented = {(op.method.upper(), op.path) for op in (r.ok() for r in api_schema.get_all_operations())}
    assert documented == set(OPERATIONS)


# Negative (schema-violating) cases need something to violate: these operations take no body and no query,
# and their only parameters are any non-empty string in the path (an empty one cannot reach the operation).
NOTHING_TO_VIOLATE = {
    "/healthz",
    "/readyz",
    "/v1/models",
    "/v1/models/{name}",
    "/v1/models/{name}/rollout",
    "/v1/jobs/{job_id}",
}
CASES = [
    pytest.param(method, path, mode, id=f"{method} {path} {mode.value}")
    for method, path in OPERATIONS
    for mode in MODES
    if mode is GenerationMode.POSITIVE or method != "GET" or path not in NOTHING_TO_VIOLATE
]


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_operation(api_schema, catalog, method, path, mode):
    api_schema, known = api_schema
    operation = api_schema[path][method]
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    # generated path parameters alone would only reach the 404 branches: mix in the store's real entries
    names = [n for n in ("name", "version", "job_id") if "{" + n + "}" in path]
    strategies = [operation.as_strategy(generation_mode=mode)]
    # (with the path fixed, a GET has nothing left to make invalid)
    steer = names and (mode is GenerationMode.POSITIVE or method != "GET")
    for values in itertools.product(*(known[n] for n in names)) if steer else []:
        strategies.append(
            operation.as_strategy(generation_mode=mode, path_parameters=dict(zip(names, values, strict=True)))
        )
    if mode is GenerationMode.POSITIVE and (method, path) in VALID_BODIES:
        # and a request that must succeed, so the 2xx bodies are checked too
        for values in itertools.product(*(known[n] for n in names)):
            parameters = dict(zip(names, values, strict=True))
            body = VALID_BODIES[method, path]
            if callable(body):
                body = body(catalog, parameters["name"])
            strategies.append(operation.as_strategy(path_parameters=parameters, body=body))

    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=st.one_of(strategies))
    def run(case):
        response = case.call_and_validate(headers=headers, checks=CHECKS)
        seen.append(response.status_code)

    seen: list[int] = []
    run()
    if mode is GenerationMode.POSITIVE:
        assert any(200 <= code < 300 for code in seen), seen


def with_name_examples(doc: dict, names: list[str]) -> dict:
    """``doc`` with the store's model names as the examples of every ``name`` path parameter."""
    doc = copy.deepcopy(doc)
    for item in doc["paths"].values():
        for key, op in item.items():
            for parameter in item.get("parameters", []) if key == "parameters" else op.get("parameters", []):
                if parameter["in"] == "path" and parameter["name"] == "name":
                    parameter["examples"] = {name: {"value": name} for name in names}
    return doc


def predict_until(app, catalog, stop: threading.Event, statuses: list[int]) -> None:
    """Valid predictions of every canary's model, under fixed routing keys (some route to each side)."""
    client = app.test_client()
    while not stop.is_set():
        for name in CANARIES:
            for key in range(8):
                body = {"instances": [catalog.rows[name][key % len(catalog.rows[name])].tolist()]}
                response = client.post(f"/v1/models/{name}/predict", json=body, headers={"X-Routing-Key": f"k{key}"})
                statuses.append(response.status_code)
        stop.wait(0.05)


def test_every_phase_with_canaries_of_both_tasks_running(served, catalog):
    app, doc, known, root = served
    schema = schemathesis.openapi.from_dict(with_name_examples(doc, known["name"]), config=ENGINE_CONFIG)
    schema = schema.exclude(path_regex=ENDS_ROLLOUTS)
    schema.app = app
    failures, phases, statuses, predictions = [], set(), [], []
    stop = threading.Event()
    traffic = threading.Thread(target=predict_until, args=(app, catalog, stop, predictions))
    traffic.start()
    try:
        for event in engine.from_schema(schema).execute():
            if isinstance(event, events.FatalError | events.NonFatalError):
                failures.append(f"{type(event).__name__}: {event}")
            if not isinstance(event, events.ScenarioFinished):
                continue
            phases.add(event.phase.value)
            statuses += [i.response.status_code for i in event.recorder.interactions.values() if i.response]
            for checks in event.recorder.checks.values():
                failures += [
                    f"{event.phase.value} {event.recorder.label}: {c.name}: {c.failure_info.failure.title}"
                    for c in checks
                    if c.failure_info is not None
                ]
    finally:
        stop.set()
        traffic.join()
    assert failures == []
    assert phases == {"examples", "coverage", "fuzzing", "stateful"}
    assert any(200 <= code < 300 for code in statuses) and all(code < 500 for code in statuses)
    assert predictions and set(predictions) == {200}
    app.extensions["nnserve.dataplane"].recorder.flush()
    store, log = FileModelStore(root), SqlitePredictionLog(root)
    for name in CANARIES:
        rollout = store.rollout(name)
        assert rollout is not None and rollout.running, rollout
        assert log.recent(name, 1000, version=rollout.candidate), f"the {name} canary answered none"
