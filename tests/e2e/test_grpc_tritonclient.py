"""tritonclient.grpc, unchanged, against ``nnserve serve``: the Open Inference Protocol over gRPC end to end.

Every answer is compared with HTTP v2's (tritonclient.http, binary tensors) for the same request on the same
server: the same outputs, versions and labels, the same refusals with the same messages. What tritonclient does
not expose (typed contents, trailing metadata, the health service) goes through a raw channel with tritonclient's
own generated messages, which are the protocol's: nothing here imports nnserve's (``service/server/grpc``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from grpc_health.v1 import health_pb2, health_pb2_grpc
from helpers import free_port, read_catalog_csv, service_env, start_cli, wait_for
from servers import START_TIMEOUT, Server, start_serve
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException
from v2_models import CLASSIFIERS, MODELS, build_store

import nn
from service.store import FileKeyStore, FileModelStore
from service.store.rollouts import Rollout

MAX_ROWS = 50
MAX_BODY = 64 * 1024
INFER = "/inference.GRPCInferenceService/ModelInfer"
DTYPES = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64}
HEADER = "'Authorization: Bearer <token>' header"  # how a refusal asks HTTP callers for a key
METADATA = "'authorization: Bearer <token>' metadata entry"  # and gRPC callers


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    """Every catalog model; wine with a second version running as a canary on half the unpinned traffic."""
    catalog = build_store(tmp_path_factory.mktemp("grpc") / "store")
    X, y, names = read_catalog_csv("wine")
    store = FileModelStore(catalog.root)
    est = nn.MLPClassifier(hidden_layer_sizes=(16,), max_iter=8, random_state=5).fit(X, y, feature_names=names)
    candidate = store.publish("wine", est, {"task": "classification"})
    store.start_rollout("wine", Rollout("canary", candidate, catalog.active["wine"], 0.5, 10**6, 86400.0, time.time()))
    return catalog


@pytest.fixture(scope="module")
def server(catalog, tmp_path_factory):
    env = {"NNSERVE_MAX_ROWS": str(MAX_ROWS), "NNSERVE_MAX_BODY_BYTES": str(MAX_BODY)}
    server = start_serve(catalog.root, env, log_dir=tmp_path_factory.mktemp("grpc-logs"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def grpc_client(server):
    client = grpcclient.InferenceServerClient(server.grpc)
    yield client
    client.close()


@pytest.fixture(scope="module")
def http_client(server):
    client = httpclient.InferenceServerClient(server.host_port, network_timeout=30.0)
    yield client
    client.close()


@pytest.fixture(scope="module")
def channel(server):
    with grpc.insecure_channel(server.grpc) as channel:
        yield channel


@pytest.fixture(scope="module")
def stub(channel):
    return service_pb2_grpc.GRPCInferenceServiceStub(channel)


def inputs(module, *tensors):
    """``(name, array, datatype)`` tensors as ``module``'s (tritonclient.grpc or .http) InferInputs."""
    made = []
    for name, arr, datatype in tensors:
        tensor = module.InferInput(name, list(arr.shape), datatype)
        tensor.set_data_from_numpy(arr)
        made.append(tensor)
    return made


def rows_as(rows, datatype):
    return (np.rint(rows) if datatype == "INT64" else rows).astype(DTYPES[datatype])


def refusal(call):
    with pytest.raises(InferenceServerException) as caught:
        call()
    return caught.value


def grpc_and_http_refusals(grpc_client, http_client, name, tensors, **kwargs):
    """What both APIs answer to the same refused inference: (gRPC exception, HTTP exception)."""
    outputs = kwargs.pop("outputs", [])
    headers = kwargs.pop("headers", {})  # copied for each call: tritonclient.http adds its own to it

    def call(module, client):
        wanted = [module.InferRequestedOutput(o) for o in outputs] or None
        return refusal(
            lambda: client.infer(name, inputs(module, *tensors), outputs=wanted, headers=dict(headers), **kwargs)
        )

    return call(grpcclient, grpc_client), call(httpclient, http_client)


# -- the server and its models ---------------------------------------------------------------------------------------


def test_liveness_readiness_and_server_metadata_are_http_v2s(grpc_client, server):
    assert grpc_client.is_server_live() and grpc_client.is_server_ready()
    meta = grpc_client.get_server_metadata()
    http = requests.get(f"{server.url}/v2", timeout=10).json()
    assert (meta.name, meta.version, list(meta.extensions)) == (http["name"], http["version"], http["extensions"])
    assert meta.name == "nnserve"


def test_every_model_is_ready_and_unknown_ones_are_not_found_as_over_http(grpc_client, server, catalog):
    for name in MODELS:
        assert grpc_client.is_model_ready(name)
        assert grpc_client.is_model_ready(name, str(catalog.versions[name][0]))
    unknown = (("nope", "", "/v2/models/nope/ready"), ("iris", "99", "/v2/models/iris/versions/99/ready"))
    for name, version, path in unknown:
        exc = refusal(lambda n=name, v=version: grpc_client.is_model_ready(n, v))
        http = requests.get(server.url + path, timeout=10)
        assert exc.status() == "StatusCode.NOT_FOUND" and http.status_code == 404
        assert exc.message() == http.json()["error"]


@pytest.mark.parametrize(("name", "version"), [*((m, "") for m in MODELS), ("iris", "1"), ("wine", "2")])
def test_model_metadata_is_http_v2s(grpc_client, server, name, version):
    meta = grpc_client.get_model_metadata(name, version)
    path = f"/v2/models/{name}" + (f"/versions/{version}" if version else "")
    http = requests.get(server.url + path, timeout=10).json()
    tensors = lambda ts: [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in ts]  # noqa: E731
    assert {
        "name": meta.name,
        "versions": list(meta.versions),
        "platform": meta.platform,
        "inputs": tensors(meta.inputs),
        "outputs": tensors(meta.outputs),
    } == http


def test_the_repository_index_lists_every_model_at_its_active_version(grpc_client, catalog):
    index = grpc_client.get_model_repository_index()
    assert {m.name: (m.version, m.state) for m in index.models} == {
        name: (str(catalog.active[name]), "READY") for name in MODELS
    }
    assert [m.name for m in grpc_client.get_model_repository_index().models] == sorted(MODELS)


# -- inference ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("datatype", DTYPES)
@pytest.mark.parametrize("name", MODELS)
def test_inference_equals_http_v2s(grpc_client, http_client, catalog, name, datatype):
    """Raw contents (tritonclient's way) in, raw contents out; the routing key pins wine's canary split for both."""
    X = rows_as(catalog.rows[name], datatype)
    headers = {"x-routing-key": "equal-answers"}  # copied for each call: tritonclient.http adds its own to it
    g = grpc_client.infer(name, inputs(grpcclient, ("input", X, datatype)), headers=dict(headers))
    h = http_client.infer(name, inputs(httpclient, ("input", X, datatype)), headers=dict(headers))
    gr, hr = g.get_response(), h.get_response()
    assert (gr.model_name, gr.model_version) == (hr["model_name"], hr["model_version"])
    assert [(o.name, o.datatype, list(o.shape)) for o in gr.outputs] == [
        (o["name"], o["datatype"], o["shape"]) for o in hr["outputs"]
    ]
    expected = ["predictions", "labels", "probabilities"] if name in CLASSIFIERS else ["predictions"]
    assert [o.name for o in gr.outputs] == expected
    for out in expected:
        assert g.as_numpy(out).dtype == h.as_numpy(out).dtype
        np.testing.assert_array_equal(g.as_numpy(out), h.as_numpy(out))
    assert len(gr.raw_output_contents) == len(expected)


def test_typed_contents_come_back_typed_with_the_same_values(stub, grpc_client, catalog):
    X = catalog.rows["iris"]
    raw = grpc_client.infer("iris", inputs(grpcclient, ("input", X.astype(np.float32), "FP32")))
    for datatype, field in (("FP32", "fp32_contents"), ("FP64", "fp64_contents"), ("INT64", "int64_contents")):
        values = rows_as(X, datatype)
        request = service_pb2.ModelInferRequest(model_name="iris", id="typed-1")
        tensor = request.inputs.add(name="input", datatype=datatype, shape=list(values.shape))
        getattr(tensor.contents, field).extend(values.reshape(-1).tolist())
        response = stub.ModelInfer(request, timeout=30)
        assert response.id == "typed-1" and not response.raw_output_contents
        typed = {o.name: o for o in response.outputs}
        assert list(typed) == ["predictions", "labels", "probabilities"]
        if datatype != "INT64":  # INT64 rounds the rows: other numbers, other answers
            assert list(typed["predictions"].contents.int64_contents) == raw.as_numpy("predictions").tolist()
            assert list(typed["labels"].contents.bytes_contents) == raw.as_numpy("labels").tolist()
            probabilities = np.array(typed["probabilities"].contents.fp32_contents, dtype=np.float32)
            np.testing.assert_array_equal(probabilities.reshape(len(X), -1), raw.as_numpy("probabilities"))


def test_typed_values_beyond_the_models_budget_are_refused(stub):
    """As a JSON body's values: NNSERVE_MAX_ROWS (50 here) rows of iris's 4 inputs and a target, and 1024 more."""
    budget = MAX_ROWS * (4 + 1) + 1024
    request = service_pb2.ModelInferRequest(model_name="iris")
    request.inputs.add(name="input", datatype="FP32", shape=[1, 4]).contents.fp32_contents.extend([1.0] * (budget + 1))
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(request, timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith(f"the request holds {budget + 1} typed values; ")


def test_pinned_versions_answer_with_their_version_in_the_trailing_metadata(stub, grpc_client, http_client, catalog):
    X = catalog.rows["iris"].astype(np.float32)
    for version in ("1", "2", ""):
        request = service_pb2.ModelInferRequest(model_name="iris", model_version=version)
        request.inputs.add(name="input", datatype="FP32", shape=list(X.shape))
        request.raw_input_contents.append(X.tobytes())
        response, call = stub.ModelInfer.with_call(request, timeout=30)
        answered = version or str(catalog.active["iris"])
        assert response.model_version == answered
        assert dict(call.trailing_metadata())["x-model-version"] == answered
    g = grpc_client.infer("iris", inputs(grpcclient, ("input", X, "FP32")), model_version="1")
    h = http_client.infer("iris", inputs(httpclient, ("input", X, "FP32")), model_version="1")
    np.testing.assert_array_equal(g.as_numpy("probabilities"), h.as_numpy("probabilities"))
    v2 = grpc_client.infer("iris", inputs(grpcclient, ("input", X, "FP32")), model_version="2")
    assert not np.array_equal(g.as_numpy("probabilities"), v2.as_numpy("probabilities"))


def test_requested_outputs_only(grpc_client, http_client, catalog):
    X = catalog.rows["iris"].astype(np.float32)
    g = grpc_client.infer(
        "iris", inputs(grpcclient, ("input", X, "FP32")), outputs=[grpcclient.InferRequestedOutput("labels")]
    )
    h = http_client.infer(
        "iris", inputs(httpclient, ("input", X, "FP32")), outputs=[httpclient.InferRequestedOutput("labels")]
    )
    assert [o.name for o in g.get_response().outputs] == ["labels"]
    assert g.as_numpy("labels").tolist() == h.as_numpy("labels").tolist()


# -- refusals: the same messages as HTTP v2 -------------------------------------------------------------------------

IRIS = np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)
REFUSED = {
    "three columns": ("iris", [("input", IRIS[:, :3], "FP32")], {}),
    "bytes": ("iris", [("input", np.array([[b"5.1", b"3.5", b"1.4", b"0.2"]], dtype=object), "BYTES")], {}),
    "two inputs": ("iris", [("input", IRIS, "FP32"), ("other", IRIS, "FP32")], {}),
    "too many rows": ("iris", [("input", np.repeat(IRIS, MAX_ROWS + 1, axis=0), "FP32")], {}),
    "not finite": ("iris", [("input", np.array([[np.nan, 3.5, 1.4, 0.2]], dtype=np.float32), "FP32")], {}),
    "beyond FP32": ("iris", [("input", np.array([[1e300, 3.5, 1.4, 0.2]]), "FP64")], {}),
    "unknown output": ("iris", [("input", IRIS, "FP32")], {"outputs": ["nope"]}),
    "unknown model": ("nope", [("input", IRIS, "FP32")], {}),
    "unknown version": ("iris", [("input", IRIS, "FP32")], {"model_version": "99"}),
}
CODES = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND"}


@pytest.mark.parametrize("case", REFUSED)
def test_a_refused_inference_has_http_v2s_message(grpc_client, http_client, case):
    name, tensors, kwargs = REFUSED[case]
    g, h = grpc_and_http_refusals(grpc_client, http_client, name, tensors, **kwargs)
    assert g.status() == f"StatusCode.{CODES[int(h.status())]}", (g, h)
    assert g.message() == h.message()


def test_a_message_over_the_body_limit_is_resource_exhausted(grpc_client, http_client, catalog):
    X = np.repeat(catalog.rows["digits"], 1 + MAX_BODY // catalog.rows["digits"].nbytes, axis=0)
    g, h = grpc_and_http_refusals(grpc_client, http_client, "digits", [("input", X, "FP64")])
    assert g.status() == "StatusCode.RESOURCE_EXHAUSTED" and h.status() == "413"
    assert g.message().endswith(f" vs. {MAX_BODY})")  # gRPC's core refuses it unread, in its own words (docs/grpc.md)


# -- routing, request ids, metrics, logs, health ---------------------------------------------------------------------


def test_the_routing_key_splits_a_canary_as_over_http_and_sticks(grpc_client, http_client, catalog):
    X = catalog.rows["wine"].astype(np.float32)
    seen = {}
    for i in range(40):
        headers = {"x-routing-key": f"customer-{i}"}  # copied for each call: tritonclient.http adds its own to it
        g = grpc_client.infer("wine", inputs(grpcclient, ("input", X, "FP32")), headers=dict(headers))
        h = http_client.infer("wine", inputs(httpclient, ("input", X, "FP32")), headers=dict(headers))
        again = grpc_client.infer("wine", inputs(grpcclient, ("input", X, "FP32")), headers=dict(headers))
        version = g.get_response().model_version
        assert version == h.get_response()["model_version"] == again.get_response().model_version
        seen[i] = version
    assert set(seen.values()) == {"1", "2"}


def test_request_ids_go_back_and_calls_are_counted_and_logged(stub, server, catalog):
    X = catalog.rows["iris"].astype(np.float32)
    request = service_pb2.ModelInferRequest(model_name="iris")
    request.inputs.add(name="input", datatype="FP32", shape=list(X.shape))
    request.raw_input_contents.append(X.tobytes())
    _, call = stub.ModelInfer.with_call(request, metadata=[("x-request-id", "grpc-e2e-id.1")], timeout=30)
    assert dict(call.initial_metadata())["x-request-id"] == "grpc-e2e-id.1"  # early, as HTTP's header
    assert dict(call.trailing_metadata())["x-request-id"] == "grpc-e2e-id.1"
    for given in ([("x-request-id", "not a good id!")], []):
        _, call = stub.ModelInfer.with_call(request, metadata=given, timeout=30)
        made = dict(call.trailing_metadata())["x-request-id"]
        assert len(made) == 32 and int(made, 16) >= 0
        assert dict(call.initial_metadata())["x-request-id"] == made
    bad = service_pb2.ModelInferRequest(model_name="iris")
    bad.inputs.add(name="input", datatype="FP32", shape=[1, 3]).contents.fp32_contents.extend([1.0, 2.0, 3.0])
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(bad, metadata=[("x-request-id", "grpc-e2e-refused")], timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert dict(caught.value.trailing_metadata())["x-request-id"] == "grpc-e2e-refused"
    assert dict(caught.value.initial_metadata())["x-request-id"] == "grpc-e2e-refused"

    metrics = requests.get(f"{server.url}/metrics", timeout=10).text
    version = catalog.active["iris"]
    ok = f'nnserve_requests_total{{endpoint="{INFER}",model="iris",status="OK",version="{version}"}}'
    refused = f'nnserve_requests_total{{endpoint="{INFER}",model="iris",status="INVALID_ARGUMENT",version="{version}"}}'
    samples = [line.rpartition(" ") for line in metrics.splitlines() if line and not line.startswith("#")]
    counts = {sample: float(value) for sample, _, value in samples}
    assert counts.get(ok, 0) >= 3 and counts.get(refused, 0) >= 1, [k for k in counts if INFER in k]
    assert any(k.startswith(f'nnserve_request_duration_seconds_count{{endpoint="{INFER}"') for k in counts)

    def logged(request_id):
        for line in server.log.read_text(errors="replace").splitlines():
            if line.startswith("{") and f'"{request_id}"' in line:
                entry = json.loads(line)
                if entry.get("logger") == "nnserve.access":
                    return entry
        return None

    wait_for(lambda: logged("grpc-e2e-refused"), 10, "the access log line of the refused call")
    entry = logged("grpc-e2e-id.1")
    assert entry is not None
    assert {k: entry[k] for k in ("method", "path", "endpoint", "model", "version", "status", "grpc_status")} == {
        "method": "POST",
        "path": INFER,
        "endpoint": INFER,
        "model": "iris",
        "version": version,
        "status": 0,
        "grpc_status": "OK",
    }
    assert logged("grpc-e2e-refused")["grpc_status"] == "INVALID_ARGUMENT"


def test_the_health_service_serves_and_readyz_shows_the_grpc_server(channel, server):
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "inference.GRPCInferenceService"):
        response = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert response.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as caught:
        health.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    port = int(server.grpc.rpartition(":")[2])
    assert requests.get(f"{server.url}/readyz", timeout=10).json()["grpc"] == {"port": port, "serving": True}


# -- keys -------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def closed(tmp_path_factory):
    """A server in NNSERVE_AUTH=closed mode and its keys: predict on iris only, feedback only."""
    root = tmp_path_factory.mktemp("grpc-closed") / "store"
    catalog = build_store(root)
    keys = FileKeyStore(catalog.root)
    _, iris_key = keys.create("iris-app", ["predict"], models=["iris"])
    _, feedback_key = keys.create("labeller", ["feedback"])
    env = {"NNSERVE_AUTH": "closed", "NNSERVE_ADMIN_TOKEN": "grpc-admin-token-0d1e"}
    server = start_serve(catalog.root, env, log_dir=tmp_path_factory.mktemp("grpc-closed-logs"))
    yield (
        server,
        {"iris": iris_key, "feedback": feedback_key, "admin": env["NNSERVE_ADMIN_TOKEN"], "root": catalog.root},
    )
    server.stop()


def test_closed_mode_wants_keys_with_the_scope_and_the_model_as_http_does(closed):
    server, keys = closed
    grpc_client = grpcclient.InferenceServerClient(server.grpc)
    http_client = httpclient.InferenceServerClient(server.host_port, network_timeout=30.0)
    bearer = lambda key: {"authorization": f"Bearer {key}"}  # noqa: E731
    cases = [  # (model, headers, gRPC code)
        ("iris", {}, "UNAUTHENTICATED"),
        ("iris", bearer("nns_nope_" + "A" * 43), "UNAUTHENTICATED"),
        ("iris", bearer(keys["feedback"]), "PERMISSION_DENIED"),
        ("wine", bearer(keys["iris"]), "PERMISSION_DENIED"),
    ]
    for name, headers, code in cases:
        g, h = grpc_and_http_refusals(grpc_client, http_client, name, [("input", IRIS, "FP32")], headers=headers)
        assert g.status() == f"StatusCode.{code}", (name, headers, g)
        assert g.message() == h.message().replace(HEADER, METADATA)  # the same sentence, in each transport's words
    missing = grpc_and_http_refusals(grpc_client, http_client, "iris", [("input", IRIS, "FP32")])
    assert [e.message() for e in missing] == [
        f"send exactly one {METADATA}: this call needs any key",
        f"send exactly one {HEADER}: this call needs any key",
    ]
    with grpc.insecure_channel(server.grpc) as channel:  # two credentials: refused, in metadata's words
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        twice = [("authorization", f"Bearer {keys['admin']}")] * 2
        with pytest.raises(grpc.RpcError) as caught:
            stub.ServerLive(service_pb2.ServerLiveRequest(), metadata=twice, timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert caught.value.details() == f"send exactly one {METADATA}"
    for key in (keys["iris"], keys["admin"]):
        answer = grpc_client.infer("iris", inputs(grpcclient, ("input", IRIS, "FP32")), headers=bearer(key))
        assert answer.as_numpy("labels").shape == (1,)
    assert refusal(lambda: grpc_client.is_server_live()).status() == "StatusCode.UNAUTHENTICATED"
    assert grpc_client.is_server_live(headers=bearer(keys["feedback"]))
    with grpc.insecure_channel(server.grpc) as channel:  # the health service stays open, like /healthz
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
    grpc_client.close()
    http_client.close()


def limited_key_sees_only_its_model(server, key, admin=None):
    """What a key limited to iris sees over gRPC and HTTP: iris alone in the listings, PERMISSION_DENIED (403)
    for another model's metadata with the message its inferences there get; what ``admin`` (a key for every model,
    or None: no key) sees: every model."""
    grpc_client = grpcclient.InferenceServerClient(server.grpc)
    http_client = httpclient.InferenceServerClient(server.host_port, network_timeout=30.0)
    limited = {"authorization": f"Bearer {key}"}
    every = {} if admin is None else {"authorization": f"Bearer {admin}"}
    with requests.Session() as http:

        def accepted():  # a key made while the server runs reaches a worker within its key check interval
            live = grpc_client.is_server_live(headers=dict(limited))
            return live and http.get(f"{server.url}/v1/models", headers=limited, timeout=10).status_code == 200

        wait_for(accepted, 10, "the key to be known to the worker of each connection")
        index = grpc_client.get_model_repository_index(headers=dict(limited))
        assert [m.name for m in index.models] == ["iris"]
        assert sorted(m.name for m in grpc_client.get_model_repository_index(headers=dict(every)).models) == sorted(
            MODELS
        )
        listed = http.get(f"{server.url}/v1/models", headers=limited, timeout=10).json()["models"]
        assert [m["name"] for m in listed] == ["iris"]
        assert http.get(f"{server.url}/v2/models/wine", headers=limited, timeout=10).status_code == 403
    g = refusal(lambda: grpc_client.get_model_metadata("wine", headers=dict(limited)))
    h = refusal(lambda: http_client.get_model_metadata("wine", headers=dict(limited)))
    assert (g.status(), h.status()) == ("StatusCode.PERMISSION_DENIED", "403")
    inferred, _ = grpc_and_http_refusals(
        grpc_client, http_client, "wine", [("input", IRIS, "FP32")], headers=dict(limited)
    )
    assert g.message() == h.message() == inferred.message() == f"key {key.split('_')[1]!r} lacks access to model 'wine'"
    assert refusal(lambda: grpc_client.is_model_ready("wine", headers=dict(limited))).status() == g.status()
    assert grpc_client.get_model_metadata("iris", headers=dict(limited)).name == "iris"
    assert grpc_client.get_model_metadata("wine", headers=dict(every)).name == "wine"
    grpc_client.close()
    http_client.close()


def test_a_key_limited_to_models_lists_only_them_as_http_does_in_closed_mode(closed):
    server, keys = closed
    limited_key_sees_only_its_model(server, keys["iris"], keys["admin"])


def test_a_key_limited_to_models_lists_only_them_as_http_does_in_open_predict_mode(server, catalog):
    _, key = FileKeyStore(catalog.root).create("iris-app", ["predict"], models=["iris"])
    limited_key_sees_only_its_model(server, key)


# -- the server's life ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shared", [False, True], ids=["plain", "so_reuseport"])
def test_a_grpc_port_taken_stops_serve_with_the_reason(trained_store, tmp_path, shared):
    """Also when the port's listener allows SO_REUSEPORT, as another nnserve's workers do: joining it would
    silently split the calls between two servers."""
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, int(shared))
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        grpc_port = taken.getsockname()[1]
        log = tmp_path / "serve.log"
        argv = ["serve", "--port", free_port(), "--grpc-port", grpc_port, "--workers", 1, "--no-retrain-worker"]
        process = start_cli(*argv, "--store", trained_store("iris", epochs=2), env=service_env(), log=log)
        try:
            assert process.wait(START_TIMEOUT) != 0
        finally:
            Server("", process, log).stop()
    assert f"gRPC: cannot bind 127.0.0.1:{grpc_port} (NNSERVE_GRPC_PORT)" in log.read_text()


def test_sigterm_drains_every_workers_grpc_server(trained_store, store_copy, tmp_path):
    server = start_serve(store_copy(trained_store("iris", epochs=2)), log_dir=tmp_path)
    try:
        wait_for(lambda: server.log.read_text().count("gRPC: serving") == 2, 30, "both workers to serve gRPC")
        assert grpcclient.InferenceServerClient(server.grpc).is_server_ready()
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(START_TIMEOUT) == 0
    finally:
        server.stop()
    text = server.log.read_text()
    assert text.count("gRPC: draining") == 2 and text.count("gRPC: stopped") == 2, text[-3000:]


def test_serve_without_grpc_listens_on_no_grpc_port(trained_store, store_copy, tmp_path):
    server = start_serve(store_copy(trained_store("iris", epochs=2)), log_dir=tmp_path, grpc=False)
    try:
        assert requests.get(f"{server.url}/readyz", timeout=10).json()["grpc"] is None
    finally:
        server.stop()
    assert "gRPC: serving" not in server.log.read_text()


def test_the_grpc_server_starts_after_the_fork_never_in_the_master(server):
    """gunicorn's master never imports grpc (its threads do not survive a fork): only workers log that they serve."""
    master = server.process.pid
    wait_for(lambda: server.log.read_text().count("gRPC: serving") == 2, 30, "both workers to serve gRPC")
    lines = [json.loads(line) for line in server.log.read_text().splitlines() if "gRPC: serving" in line]
    assert len(lines) == 2 and all(line["process"] != master for line in lines)
    maps = Path(f"/proc/{master}/maps").read_text()
    assert "cygrpc" not in maps and "cygrpc" in Path(f"/proc/{lines[0]['process']}/maps").read_text()


def test_connections_are_spread_over_every_workers_grpc_server(server, catalog):
    """Each channel here is a connection of its own; SO_REUSEPORT lets the kernel hand each new one to one of the
    workers' servers: 32 connections all reaching one of the two workers would be a one-in-two-billion chance."""
    wait_for(lambda: server.log.read_text().count("gRPC: serving") == 2, 30, "both workers to serve gRPC")
    request = service_pb2.ModelInferRequest(model_name="iris")
    request.inputs.add(name="input", datatype="FP32", shape=[1, 4]).contents.fp32_contents.extend(IRIS[0].tolist())
    for i in range(32):
        with grpc.insecure_channel(server.grpc, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            stub.ModelInfer(request, metadata=[("x-request-id", f"spread-{i}")], timeout=30)

    def answered_by():
        lines = [json.loads(line) for line in server.log.read_text().splitlines() if '"spread-' in line]
        return {line["process"] for line in lines if line.get("logger") == "nnserve.access"}, len(lines)

    wait_for(lambda: answered_by()[1] == 32, 10, "the 32 access log lines")
    workers = {json.loads(line)["process"] for line in server.log.read_text().splitlines() if "gRPC: serving" in line}
    assert answered_by()[0] == workers and len(workers) == 2


def test_a_revoked_key_is_refused_over_grpc_within_the_key_check_interval(closed):
    server, keys = closed
    record, key = FileKeyStore(keys["root"]).create("short-lived", ["predict"])
    client = grpcclient.InferenceServerClient(server.grpc)

    def call():
        return client.infer(
            "iris", inputs(grpcclient, ("input", IRIS, "FP32")), headers={"authorization": f"Bearer {key}"}
        )

    assert call().get_response().model_name == "iris"
    FileKeyStore(keys["root"]).revoke(record.id)

    def refused():
        try:
            call()
        except InferenceServerException as exc:
            return exc.status() == "StatusCode.UNAUTHENTICATED" and "revoked" in exc.message()
        return False

    wait_for(refused, 30, "the revoked key to be refused")  # every worker checks the key file every 0.25 s
    client.close()


def serving_workers(server):
    return [json.loads(line)["process"] for line in server.log.read_text().splitlines() if "gRPC: serving" in line]


def test_a_killed_worker_comes_back_with_its_grpc_server(trained_store, store_copy, tmp_path):
    server = start_serve(store_copy(trained_store("iris", epochs=2)), log_dir=tmp_path)
    try:
        wait_for(lambda: len(serving_workers(server)) == 2, 30, "both workers to serve gRPC")
        os.kill(serving_workers(server)[0], signal.SIGKILL)
        wait_for(lambda: len(serving_workers(server)) == 3, 60, "gunicorn to replace the worker and its gRPC server")
        replacement = serving_workers(server)[2]
        request = service_pb2.ModelInferRequest(model_name="iris")
        request.inputs.add(name="input", datatype="FP32", shape=[1, 4]).contents.fp32_contents.extend(IRIS[0].tolist())
        for i in range(32):  # connections of their own: the kernel hands some to the replacement's server
            with grpc.insecure_channel(server.grpc, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
                stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
                stub.ModelInfer(request, metadata=[("x-request-id", f"after-kill-{i}")], timeout=30)

        def answered_by_replacement():
            lines = [json.loads(line) for line in server.log.read_text().splitlines() if '"after-kill-' in line]
            return any(line.get("process") == replacement for line in lines)

        wait_for(answered_by_replacement, 10, "the replacement worker's gRPC server to answer")
    finally:
        server.stop()


def test_health_says_not_serving_while_the_worker_is_not_ready(trained_store, store_copy, tmp_path):
    root = store_copy(trained_store("iris", epochs=2))
    server = start_serve(root, log_dir=tmp_path)
    check = health_pb2.HealthCheckRequest(service="inference.GRPCInferenceService")
    try:
        with grpc.insecure_channel(server.grpc) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            ready = service_pb2_grpc.GRPCInferenceServiceStub(channel).ServerReady
            assert health.Check(check, timeout=10).status == health_pb2.HealthCheckResponse.SERVING
            root.rename(root.with_name("moved"))  # the store cannot be read: not ready, loaded models still answer
            try:
                assert health.Check(check, timeout=10).status == health_pb2.HealthCheckResponse.NOT_SERVING
                assert not ready(service_pb2.ServerReadyRequest(), timeout=10).ready
                assert requests.get(f"{server.url}/readyz", timeout=10).status_code == 503
            finally:
                root.with_name("moved").rename(root)
            assert health.Check(check, timeout=10).status == health_pb2.HealthCheckResponse.SERVING
            assert ready(service_pb2.ServerReadyRequest(), timeout=10).ready
    finally:
        server.stop()


def test_calls_beyond_the_concurrency_budget_are_resource_exhausted(trained_store, store_copy, tmp_path):
    """NNSERVE_GRPC_MAX_CONCURRENT=1 on one worker: of 64 large calls sent at once, those that arrive while another
    is held are refused at once, the others answered."""
    env = {"NNSERVE_GRPC_MAX_CONCURRENT": "1", "NNSERVE_GRPC_THREADS": "1"}
    server = start_serve(store_copy(trained_store("iris", epochs=2)), env, workers=1, log_dir=tmp_path)
    X = np.repeat(IRIS, 10_000, axis=0)
    request = service_pb2.ModelInferRequest(model_name="iris")
    request.inputs.add(name="input", datatype="FP32", shape=list(X.shape))
    request.raw_input_contents.append(X.tobytes())
    try:
        with grpc.insecure_channel(server.grpc) as channel:
            infer = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer
            calls = [infer.future(request, timeout=60) for _ in range(64)]
            codes = [call.code() for call in calls]
        assert set(codes) == {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}, codes
    finally:
        server.stop()
