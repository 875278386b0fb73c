"""The Open Inference Protocol (v2) through Flask's test client: every endpoint and error path.

Predictions are compared with v1's for the same rows, through the same app.
Binary requests and responses are built and parsed here by hand, from the
binary tensor data extension's description, independently of the server code.
"""

import gzip
import io
import json
import shutil
import struct
import zlib

import numpy as np
import pytest
from v2_models import CLASSIFIERS, MODELS, build_store

from service import create_app
from service.store import FileModelStore

NP = {
    "FP32": "<f4",
    "FP64": "<f8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
}


def corrupt(root, name, version):
    """Flip the weights of a published version: its checksum no longer matches."""
    path = root / name / str(version) / "weights.npz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    cat = build_store(tmp_path_factory.mktemp("v2-store"))
    store = FileModelStore(cat.root)
    X, y = cat.rows["iris"], np.array(["a", "b", "a", "b", "a", "b", "a"])
    from nn import MLPClassifier

    store.publish("draft", MLPClassifier((4,), max_iter=2, random_state=0).fit(X, y))  # never activated
    broken = store.publish("iris", MLPClassifier((4,), max_iter=2, random_state=0).fit(X, y))
    corrupt(cat.root, "iris", broken)
    return cat


@pytest.fixture(scope="module")
def app(catalog):
    return create_app({"NNSERVE_STORE": str(catalog.root), "NNSERVE_MAX_ROWS": 50})


@pytest.fixture
def client(app):
    return app.test_client()


# -- helpers ---------------------------------------------------------------------


def infer_url(name, version=None):
    return f"/v2/models/{name}/infer" if version is None else f"/v2/models/{name}/versions/{version}/infer"


def json_input(rows, datatype="FP32", name="input", nested=False):
    data = rows.tolist() if nested else rows.reshape(-1).tolist()
    if datatype.startswith(("INT", "UINT")):
        data = np.asarray(data).astype(np.int64).tolist()
    return {"name": name, "shape": list(rows.shape), "datatype": datatype, "data": data}


def binary_body(request, *chunks):
    """A JSON header followed by raw tensor bytes, and the headers that announce it."""
    head = json.dumps(request).encode()
    headers = {"Inference-Header-Content-Length": str(len(head)), "Content-Type": "application/octet-stream"}
    return head + b"".join(chunks), headers


def binary_input(rows, datatype="FP32", name="input"):
    raw = np.ascontiguousarray(rows, dtype=NP[datatype]).tobytes()
    return {
        "name": name,
        "shape": list(rows.shape),
        "datatype": datatype,
        "parameters": {"binary_data_size": len(raw)},
    }, raw


def decode_bytes(raw):
    items, i = [], 0
    while i < len(raw):
        (n,) = struct.unpack_from("<I", raw, i)
        items.append(raw[i + 4 : i + 4 + n].decode())
        i += 4 + n
    return items


def outputs_of(response):
    """Response outputs by name, decoded from JSON or binary; also checks the binary framing."""
    assert response.status_code == 200, response.get_data(as_text=True)
    length = response.headers.get("Inference-Header-Content-Length")
    if length is None:
        assert response.mimetype == "application/json"
        head, tail = response.get_json(), b""
    else:
        assert response.mimetype == "application/octet-stream"
        head, tail = json.loads(response.data[: int(length)]), response.data[int(length) :]
    out, offset = {}, 0
    for tensor in head["outputs"]:
        size = tensor.get("parameters", {}).get("binary_data_size")
        if size is None:
            data = tensor["data"]
            values = data if tensor["datatype"] == "BYTES" else np.array(data, dtype=NP[tensor["datatype"]])
        else:
            assert "data" not in tensor
            raw, offset = tail[offset : offset + size], offset + size
            values = decode_bytes(raw) if tensor["datatype"] == "BYTES" else np.frombuffer(raw, NP[tensor["datatype"]])
        out[tensor["name"]] = (tensor["datatype"], np.asarray(values).reshape(tensor["shape"]), size is not None)
    assert offset == len(tail)
    return head, out


def v1_predict(client, name, rows, version=None):
    url = f"/v1/models/{name}/predict" if version is None else f"/v1/models/{name}/versions/{version}/predict"
    response = client.post(url, json={"instances": rows.tolist()})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def assert_agrees_with_v1(outputs, v1, name, classes):
    """v2's outputs carry exactly v1's numbers for the same rows."""
    if name in CLASSIFIERS:
        dtype, index, _ = outputs["predictions"]
        assert dtype == "INT64"
        assert [classes[i] for i in index] == v1["predictions"]
        assert outputs["labels"][0] == "BYTES"
        assert outputs["labels"][1].tolist() == [str(p) for p in v1["predictions"]]
        dtype, proba, _ = outputs["probabilities"]
        assert dtype == "FP32" and proba.dtype == np.float32
        np.testing.assert_array_equal(proba, np.array(v1["probabilities"], dtype=np.float32))
    else:
        dtype, values, _ = outputs["predictions"]
        assert dtype == "FP32"
        np.testing.assert_array_equal(values, np.array(v1["predictions"], dtype=np.float32))


def assert_error(response, status, *fragments):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"}, body
    for fragment in fragments:
        assert fragment in body["error"], body["error"]
    return body["error"]


# -- server ----------------------------------------------------------------------


def test_server_metadata(client, app):
    response = client.get("/v2")
    assert response.status_code == 200
    assert response.get_json() == {
        "name": "nnserve",
        "version": app.config["API_VERSION"],
        "extensions": ["binary_tensor_data"],
    }


def test_health_live_and_ready(client):
    assert client.get("/v2/health/live").get_json() == {"live": True}
    response = client.get("/v2/health/ready")
    assert response.status_code == 200 and response.get_json() == {"ready": True}


def test_not_ready_when_an_active_model_cannot_load(tmp_path):
    cat_root = tmp_path / "store"
    store = FileModelStore(cat_root)
    app = create_app({"NNSERVE_STORE": str(cat_root)})
    client = app.test_client()
    assert client.get("/v2/health/ready").status_code == 200  # an empty store is ready
    from nn import MLPClassifier

    X, y = np.eye(3), np.array([0, 1, 0])
    version = store.publish("broken", MLPClassifier((2,), max_iter=1, random_state=0).fit(X, y))
    store.activate("broken", version)
    corrupt(cat_root, "broken", version)

    response = client.get("/v2/health/ready")
    assert response.status_code == 503
    body = response.get_json()
    assert body["ready"] is False and any("broken" in r for r in body["reasons"])
    response = client.get("/v2/models/broken/ready")
    assert response.status_code == 503
    assert response.get_json()["ready"] is False and "checksum" in response.get_json()["error"]
    assert_error(client.post(infer_url("broken"), json={}), 409, "model 'broken' version 1 is broken")


def test_not_ready_when_the_store_is_gone(tmp_path):
    app = create_app({"NNSERVE_STORE": str(tmp_path / "store")})
    shutil.rmtree(tmp_path / "store")
    response = app.test_client().get("/v2/health/ready")
    assert response.status_code == 503
    assert response.get_json()["ready"] is False
    assert "not readable" in response.get_json()["reasons"][0]
    assert app.test_client().get("/v2/health/live").status_code == 200


# -- model metadata and readiness ------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_model_metadata(client, catalog, name):
    body = client.get(f"/v2/models/{name}").get_json()
    assert body["name"] == name and body["platform"] == "nnserve_numpy"
    assert body["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, catalog.n_features[name]]}]
    if name in CLASSIFIERS:
        assert body["outputs"] == [
            {"name": "predictions", "datatype": "INT64", "shape": [-1]},
            {"name": "labels", "datatype": "BYTES", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(catalog.classes[name])]},
        ]
    else:
        assert body["outputs"] == [{"name": "predictions", "datatype": "FP32", "shape": [-1]}]
    assert body["versions"] == [str(v) for v in catalog.versions[name]]


def test_model_metadata_lists_loadable_versions_and_pins(client):
    assert client.get("/v2/models/iris").get_json()["versions"] == ["1", "2"]  # version 3 is broken
    pinned = client.get("/v2/models/iris/versions/1")
    assert pinned.status_code == 200 and pinned.get_json()["name"] == "iris"
    assert_error(client.get("/v2/models/iris/versions/9"), 404, "model 'iris' has no version 9")
    assert_error(client.get("/v2/models/iris/versions/3"), 409, "model 'iris' version 3 is broken")
    assert_error(client.get("/v2/models/nope"), 404, "unknown model 'nope'")
    assert_error(client.get("/v2/models/draft"), 404, "model 'draft' has no active version")
    assert_error(client.get("/v2/models/Bad%20Name"), 404, "invalid model name")
    assert_error(client.get("/v2/models/iris/versions/01"), 404, "invalid version '01'")


def test_model_ready(client):
    for url in ("/v2/models/iris/ready", "/v2/models/iris/versions/1/ready", "/v2/models/iris/versions/2/ready"):
        response = client.get(url)
        assert response.status_code == 200 and response.get_json()["ready"] is True, url
    assert client.get("/v2/models/iris/ready").get_json() == {"name": "iris", "version": "2", "ready": True}
    assert_error(client.get("/v2/models/nope/ready"), 404, "unknown model 'nope'")
    assert_error(client.get("/v2/models/iris/versions/9/ready"), 404, "model 'iris' has no version 9")
    for url in ("/v2/models/iris/versions/3/ready", "/v2/models/draft/ready"):
        response = client.get(url)
        assert response.status_code == 503 and response.get_json()["ready"] is False, url


# -- inference: agreement with v1 ------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
@pytest.mark.parametrize("nested", [False, True])
def test_infer_json_equals_v1(client, catalog, name, datatype, nested):
    rows = catalog.rows[name]
    request = {"id": f"req-{name}", "inputs": [json_input(rows, datatype, nested=nested)]}
    head, out = outputs_of(client.post(infer_url(name), json=request))
    assert head["model_name"] == name and head["model_version"] == str(catalog.active[name])
    assert head["id"] == f"req-{name}"
    expected = ["predictions", "labels", "probabilities"] if name in CLASSIFIERS else ["predictions"]
    assert [o["name"] for o in head["outputs"]] == expected
    assert not any(binary for _, _, binary in out.values())
    assert out["predictions"][1].shape == (len(rows),)
    assert_agrees_with_v1(out, v1_predict(client, name, rows), name, catalog.classes.get(name))


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
def test_infer_binary_equals_v1(client, catalog, name, datatype):
    rows = catalog.rows[name]
    tensor, raw = binary_input(rows, datatype)
    body, headers = binary_body({"inputs": [tensor], "parameters": {"binary_data_output": True}}, raw)
    head, out = outputs_of(client.post(infer_url(name), data=body, headers=headers))
    assert all(binary for _, _, binary in out.values())
    assert "id" not in head
    assert_agrees_with_v1(out, v1_predict(client, name, rows), name, catalog.classes.get(name))


def test_digits_integer_datatypes_equal_v1(client, catalog):
    rows = catalog.rows["digits"]  # pixel intensities 0..16: exact in every integer type
    expected = v1_predict(client, "digits", rows)
    for datatype in ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"):
        _, out = outputs_of(client.post(infer_url("digits"), json={"inputs": [json_input(rows, datatype)]}))
        assert_agrees_with_v1(out, expected, "digits", catalog.classes["digits"])
        tensor, raw = binary_input(rows, datatype)
        body, headers = binary_body({"inputs": [tensor]}, raw)
        _, out = outputs_of(client.post(infer_url("digits"), data=body, headers=headers))
        assert_agrees_with_v1(out, expected, "digits", catalog.classes["digits"])


def test_outputs_select_and_order_and_mix_binary_and_json(client, catalog):
    rows = catalog.rows["wine"]
    request = {
        "inputs": [json_input(rows)],
        "outputs": [
            {"name": "probabilities", "parameters": {"binary_data": True}},
            {"name": "labels"},
            {"name": "predictions", "parameters": {"binary_data": True}},
        ],
    }
    head, out = outputs_of(client.post(infer_url("wine"), json=request))
    assert [o["name"] for o in head["outputs"]] == ["probabilities", "labels", "predictions"]
    assert [out[n][2] for n in ("probabilities", "labels", "predictions")] == [True, False, True]
    assert_agrees_with_v1(out, v1_predict(client, "wine", rows), "wine", catalog.classes["wine"])

    # binary_data_output makes every output binary unless one says otherwise
    request = {
        "inputs": [json_input(rows)],
        "parameters": {"binary_data_output": True},
        "outputs": [{"name": "labels"}, {"name": "predictions", "parameters": {"binary_data": False}}],
    }
    head, out = outputs_of(client.post(infer_url("wine"), json=request))
    assert [o["name"] for o in head["outputs"]] == ["labels", "predictions"]
    assert out["labels"][2] is True and out["predictions"][2] is False


@pytest.mark.parametrize("version", [1, 2])
def test_pinned_version_equals_v1_pinned(client, catalog, version):
    rows = catalog.rows["iris"]
    head, out = outputs_of(client.post(infer_url("iris", version), json={"inputs": [json_input(rows)]}))
    assert head["model_version"] == str(version)
    assert_agrees_with_v1(out, v1_predict(client, "iris", rows, version), "iris", catalog.classes["iris"])


def test_pinned_versions_are_different_models(client, catalog):
    rows = catalog.rows["iris"]
    probabilities = [
        outputs_of(client.post(infer_url("iris", v), json={"inputs": [json_input(rows)]}))[1]["probabilities"][1]
        for v in (1, 2)
    ]
    assert not np.array_equal(*probabilities)


def test_any_input_name_and_unknown_parameters_are_accepted(client, catalog):
    rows = catalog.rows["diabetes"]
    tensor = json_input(rows, name="input__0")
    tensor["parameters"] = {"layout": "rows", "x-note": 1}
    request = {
        "id": "",
        "parameters": {"priority": 0, "sequence_id": 0, "custom": "yes", "nested_ok": True},
        "inputs": [tensor],
        "outputs": [{"name": "predictions", "parameters": {"something": 3}}],
    }
    head, out = outputs_of(client.post(infer_url("diabetes"), json=request))
    assert head["id"] == ""
    assert_agrees_with_v1(out, v1_predict(client, "diabetes", rows), "diabetes", None)


def test_gzip_and_deflate_request_bodies(client, catalog):
    rows = catalog.rows["iris"]
    raw = json.dumps({"inputs": [json_input(rows)]}).encode()
    expected = v1_predict(client, "iris", rows)
    for encoding, packed in (("gzip", gzip.compress(raw)), ("deflate", zlib.compress(raw))):
        response = client.post(infer_url("iris"), data=packed, headers={"Content-Encoding": encoding})
        assert_agrees_with_v1(outputs_of(response)[1], expected, "iris", catalog.classes["iris"])


def test_request_id_header_still_set(client, catalog):
    response = client.post(
        infer_url("iris"), json={"inputs": [json_input(catalog.rows["iris"])]}, headers={"X-Request-ID": "abc-1"}
    )
    assert response.headers["X-Request-ID"] == "abc-1"
    assert client.get("/v2/nope").headers["X-Request-ID"]
    assert "parameters" not in response.get_json()  # not logged: nothing to quote in feedback


def test_a_logged_inference_names_its_request_id_and_feedback_token_and_they_label_it(catalog, tmp_path):
    root = tmp_path / "store"
    shutil.copytree(catalog.root, root)
    client = create_app({"NNSERVE_STORE": str(root), "NNSERVE_LOG_SAMPLE_RATE": 1.0}).test_client()
    body = {"inputs": [json_input(catalog.rows["iris"][:1])]}
    first = client.post(infer_url("iris"), json=body, headers={"X-Request-ID": "abc-1"}).get_json()
    assert first["parameters"]["request_id"] == "abc-1"
    again = client.post(infer_url("iris"), json=body, headers={"X-Request-ID": "abc-1"}).get_json()["parameters"]
    assert again["request_id"] != "abc-1"  # already logged: a fresh id
    item = {"request_id": again["request_id"], "target": catalog.classes["iris"][0]}
    label = client.post(
        "/v1/models/iris/feedback", json={"feedback": [{**item, "feedback_token": again["feedback_token"]}]}
    )
    assert label.status_code == 200 and label.get_json()["accepted"] == 1
    other = {**item, "request_id": "abc-1", "feedback_token": again["feedback_token"]}
    assert client.post("/v1/models/iris/feedback", json={"feedback": [other]}).status_code == 401


# -- inference: errors -----------------------------------------------------------


def post(client, name, request, version=None):
    return client.post(infer_url(name, version), json=request)


def test_wrong_shape(client, catalog):
    rows = np.ones((2, 5))
    message = assert_error(post(client, "iris", {"inputs": [json_input(rows, name="x")]}), 400)
    assert message.startswith("rows have 5 values, model 'iris' expects 4 ("), message  # v1's message for the rule
    one_d = {"name": "x", "shape": [4], "datatype": "FP32", "data": [1, 2, 3, 4]}
    assert_error(post(client, "iris", {"inputs": [one_d]}), 400, "has shape [4], model 'iris' expects [-1, 4]")
    empty = {"name": "x", "shape": [0, 4], "datatype": "FP32", "data": []}
    assert_error(post(client, "iris", {"inputs": [empty]}), 400, "send at least one row")
    many = json_input(np.ones((51, 4)))
    assert_error(post(client, "iris", {"inputs": [many]}), 400, "has 51 rows; at most 50 are accepted")
    negative = {"name": "x", "shape": [-1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}
    assert_error(post(client, "iris", {"inputs": [negative]}), 400, "dimensions cannot be negative")
    bad = {"name": "x", "shape": "2x4", "datatype": "FP32", "data": [1, 2, 3, 4]}
    assert_error(post(client, "iris", {"inputs": [bad]}), 400, "needs a 'shape' (an array of integers)")


@pytest.mark.parametrize("datatype", ["BOOL", "BYTES", "FP16", "BF16"])
def test_unsupported_datatypes(client, datatype):
    tensor = {"name": "x", "shape": [1, 4], "datatype": datatype, "data": [True, False, True, False]}
    assert_error(
        post(client, "iris", {"inputs": [tensor]}),
        400,
        f"input 'x' has datatype '{datatype}'; model 'iris' takes FP32, FP64, INT8",
    )


def test_unknown_datatype(client):
    tensor = {"name": "x", "shape": [1, 4], "datatype": "FLOAT", "data": [1, 2, 3, 4]}
    assert_error(post(client, "iris", {"inputs": [tensor]}), 400, "input 'x' has unknown datatype 'FLOAT'")


@pytest.mark.parametrize(
    ("datatype", "data", "fragment"),
    [
        ("FP32", [1, 2, 3], "input 'x' has 3 values, but its shape [1, 4] needs 4"),
        ("FP32", [1, 2, 3, 4, 5], "has 5 values"),
        ("FP32", [1, 2, "3", 4], "value 2 is a string ('3'), expected a number"),
        ("FP32", [1, 2, True, 4], "value 2 is a boolean (true), expected a number"),
        ("FP32", [1, None, 3, 4], "value 1 is null, expected a number"),
        ("FP32", [[1, 2], [3, {}]], "value 3 is an object"),
        ("FP32", [1, 2, 3, 1e39], "holds inf at index [0, 3]; every value must be a finite number"),
        (
            "FP64",
            [1, 2, 3, 1e300],
            "holds 1e+300 at index [0, 3], beyond the range of the FP32 numbers model 'iris' computes with",
        ),
        ("INT32", [1, 2, 3.5, 4], "value 2 is 3.5, expected an integer for INT32"),
        ("INT8", [1, 2, 300, 4], "value 2 is 300, outside the range of INT8 [-128, 127]"),
        ("UINT8", [1, -2, 3, 4], "value 1 is -2, outside the range of UINT8 [0, 255]"),
        ("INT64", [1, 2, 2**63, 4], "outside the range of INT64"),
        ("FP32", "1,2,3,4", "'data' must be an array of numbers, got a string"),
    ],
)
def test_bad_json_data(client, datatype, data, fragment):
    tensor = {"name": "x", "shape": [1, 4], "datatype": datatype, "data": data}
    assert_error(post(client, "iris", {"inputs": [tensor]}), 400, fragment)


def test_bad_binary_data(client):
    rows = np.array([[1, 2, np.nan, 4]], dtype=np.float32)
    tensor, raw = binary_input(rows)
    body, headers = binary_body({"inputs": [tensor]}, raw)
    assert_error(client.post(infer_url("iris"), data=body, headers=headers), 400, "the input holds nan at index [0, 2]")

    tensor, raw = binary_input(np.ones((2, 4)))
    body, headers = binary_body({"inputs": [tensor]}, raw[:-4])
    assert_error(
        client.post(infer_url("iris"), data=body, headers=headers),
        400,
        "the request has 28 bytes of binary tensor data after its JSON header, "
        "but its inputs' binary_data_size add up to 32",
    )
    tensor["parameters"]["binary_data_size"] = 28
    body, headers = binary_body({"inputs": [tensor]}, raw[:-4])
    assert_error(
        client.post(infer_url("iris"), data=body, headers=headers),
        400,
        "input 'input' has binary_data_size 28, but shape [2, 4] of FP32 needs 32 bytes",
    )
    tensor, raw = binary_input(np.ones((2, 4)))
    assert_error(
        client.post(infer_url("iris"), data=json.dumps({"inputs": [tensor]}).encode() + raw),
        400,
        "binary tensor data after the JSON needs the Inference-Header-Content-Length header",
    )
    assert_error(
        client.post(infer_url("iris"), data=json.dumps({"inputs": [tensor]})),
        400,
        "send the JSON header's length in the Inference-Header-Content-Length header",
    )
    tensor["data"] = [1] * 8
    body, headers = binary_body({"inputs": [tensor]}, raw)
    assert_error(
        client.post(infer_url("iris"), data=body, headers=headers),
        400,
        "has both 'data' and parameters.binary_data_size",
    )
    tensor.pop("data")
    tensor["parameters"]["binary_data_size"] = -1
    assert_error(post(client, "iris", {"inputs": [tensor]}), 400, "binary_data_size must be a non-negative integer")


@pytest.mark.parametrize("value", ["abc", "-1", "9999", "1.5"])
def test_bad_header_length(client, value):
    body, headers = binary_body({"inputs": []})
    headers["Inference-Header-Content-Length"] = value
    assert_error(client.post(infer_url("iris"), data=body, headers=headers), 400, "Inference-Header-Content-Length is")


@pytest.mark.parametrize(
    ("request_body", "fragment"),
    [
        ({}, "the request needs 'inputs', an array of tensors, got null"),
        ({"inputs": {}}, "needs 'inputs', an array of tensors, got an object"),
        ({"inputs": []}, "model 'iris' takes exactly one input tensor ('input', shape [-1, 4]), got 0: none"),
        ({"inputs": [1]}, "inputs[0] must be an object, got 1"),
        ({"inputs": [{"shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}, "inputs[0] needs a 'name'"),
        ({"inputs": [{"name": "x", "shape": [1, 4], "data": [1, 2, 3, 4]}]}, "input 'x' needs a 'datatype'"),
        ({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32"}]}, "input 'x' has no data"),
        (
            {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1] * 4, "parameters": []}]},
            "'parameters' must be an object",
        ),
        ({"id": 7, "inputs": []}, "'id' must be a string, got 7"),
        ({"parameters": "fast", "inputs": []}, "'parameters' must be an object, got a string ('fast')"),
        (
            {
                "inputs": [
                    {"name": "x", "shape": [1, 4], "datatype": "FP32", "parameters": {"shared_memory_region": "r"}}
                ]
            },
            "shared memory",
        ),
    ],
)
def test_bad_request_structure(client, request_body, fragment):
    assert_error(post(client, "iris", request_body), 400, fragment)


def test_two_inputs(client):
    one = {"name": "a", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}
    two = {**one, "name": "b"}
    assert_error(post(client, "iris", {"inputs": [one, two]}), 400, "takes exactly one input tensor", "got 2: 'a', 'b'")


@pytest.mark.parametrize(
    ("outputs", "parameters", "fragment"),
    [
        (
            [{"name": "scores"}],
            {},
            "model 'iris' has no output 'scores'; its outputs are 'predictions', 'labels', 'probabilities'",
        ),
        ([{"name": "labels"}, {"name": "labels"}], {}, "output 'labels' is requested twice"),
        ([{"name": "labels", "parameters": {"classification": 2}}], {}, "classification extension"),
        ([{"name": "labels", "parameters": {"binary_data": "yes"}}], {}, "parameters.binary_data must be a boolean"),
        ([{"name": "labels", "parameters": {"shared_memory_region": "r"}}], {}, "shared memory"),
        ([{"nom": "labels"}], {}, "outputs[0] must be an object with a 'name' string"),
        ({"name": "labels"}, {}, "'outputs' must be an array"),
        (None, {"binary_data_output": 1}, "parameters.binary_data_output must be a boolean"),
    ],
)
def test_bad_outputs(client, outputs, parameters, fragment):
    request = {
        "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}],
        "parameters": parameters,
    }
    if outputs is not None:
        request["outputs"] = outputs
    assert_error(post(client, "iris", request), 400, fragment)


def test_regressor_has_only_predictions(client):
    request = {"inputs": [json_input(np.ones((1, 10)))], "outputs": [{"name": "probabilities"}]}
    assert_error(
        post(client, "diabetes", request),
        400,
        "model 'diabetes' has no output 'probabilities'; its outputs are 'predictions'",
    )


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"", "the request body is empty"),
        (b"{not json", "malformed JSON"),
        (b"[1, 2]", "the inference request must be a JSON object, got an array"),
        (
            b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [NaN, 1, 2, 3]}]}',
            "NaN is not a valid JSON number",
        ),
        (b"\xff\xfe", "not valid UTF-8"),
    ],
)
def test_bad_json_body(client, body, fragment):
    assert_error(client.post(infer_url("iris"), data=body, content_type="application/json"), 400, fragment)


def test_unknown_model_and_versions(client, catalog):
    request = {"inputs": [json_input(catalog.rows["iris"])]}
    assert_error(post(client, "nope", request), 404, "unknown model 'nope'")
    assert_error(post(client, "iris", request, version=9), 404, "model 'iris' has no version 9")
    assert_error(post(client, "iris", request, version="abc"), 404, "invalid version 'abc'")
    assert_error(post(client, "draft", request), 404, "model 'draft' has no active version")
    assert_error(post(client, "iris", request, version=3), 409, "model 'iris' version 3 is broken")


def test_werkzeug_errors_under_v2_have_the_protocol_shape(client):
    response = client.get(infer_url("iris"))
    assert_error(response, 405, "GET is not allowed on /v2/models/iris/infer; use OPTIONS, POST")
    assert "POST" in response.headers["Allow"]
    assert_error(client.delete("/v2/health/ready"), 405, "DELETE is not allowed")
    assert_error(client.get("/v2/models"), 404, "no such endpoint: /v2/models")
    assert_error(client.post("/v2/models/iris/predict", json={}), 404, "no such endpoint")
    # v1 keeps its own shape
    body = client.get("/v1/no-such-thing").get_json()
    assert body["code"] == 404 and "error" not in body
    assert client.get("/v2x").get_json()["code"] == 404


def test_content_encoding_errors(client):
    assert_error(
        client.post(infer_url("iris"), data=b"xx", headers={"Content-Encoding": "br"}),
        415,
        "Content-Encoding 'br' is not supported",
    )
    assert_error(
        client.post(infer_url("iris"), data=b"not gzip", headers={"Content-Encoding": "gzip"}),
        400,
        "not valid gzip data",
    )
    truncated = gzip.compress(b'{"inputs": []}')[:-12]
    assert_error(
        client.post(infer_url("iris"), data=truncated, headers={"Content-Encoding": "gzip"}), 400, "truncated gzip data"
    )


@pytest.fixture
def small_app(catalog):
    return create_app({"NNSERVE_STORE": str(catalog.root), "NNSERVE_MAX_BODY_BYTES": 2048})


def test_body_too_large(small_app, catalog):
    client = small_app.test_client()
    rows = np.ones((200, 4))
    message = "the request body is larger than the 2048 bytes accepted (NNSERVE_MAX_BODY_BYTES)"
    assert_error(post(client, "iris", {"inputs": [json_input(rows)]}), 413, message)
    tensor, raw = binary_input(rows)
    body, headers = binary_body({"inputs": [tensor]}, raw)
    assert_error(client.post(infer_url("iris"), data=body, headers=headers), 413, message)
    assert_error(client.post(infer_url("iris", 1), data=body, headers=headers), 413, message)
    # a small compressed body that inflates past the limit
    bomb = gzip.compress(b" " * 1_000_000)
    assert len(bomb) < 2048
    assert_error(client.post(infer_url("iris"), data=bomb, headers={"Content-Encoding": "gzip"}), 413, message)
    # under the limit all is well, and v1 keeps its shape for its own 413
    small = {"inputs": [json_input(catalog.rows["iris"][:2])]}
    assert post(client, "iris", small).status_code == 200
    assert client.post("/v1/models/iris/predict", json={"instances": rows.tolist()}).get_json()["code"] == 413


def test_body_too_large_without_content_length(small_app):
    """A chunked body has no Content-Length: werkzeug stops reading at the limit, still 413 {"error"}."""

    response = small_app.test_client().post(
        infer_url("iris"),
        input_stream=io.BytesIO(b" " * 10_000),
        headers={"Transfer-Encoding": "chunked"},
        # what gunicorn gives a chunked body: no length, and the server says the stream ends
        environ_overrides={"wsgi.input_terminated": True, "CONTENT_LENGTH": ""},
    )
    assert response.request.content_length is None
    assert_error(response, 413, "larger than the 2048 bytes")


@pytest.mark.parametrize(("version", "expected"), [(None, "2"), ("1", "1")])
@pytest.mark.parametrize("binary", [False, True])
def test_infer_names_the_answering_version_in_body_and_header(client, catalog, version, expected, binary):
    rows = catalog.rows["iris"]
    if binary:
        tensor, raw = binary_input(rows)
        body, headers = binary_body({"inputs": [tensor], "parameters": {"binary_data_output": True}}, raw)
        response = client.post(infer_url("iris", version), data=body, headers=headers)
    else:
        response = client.post(infer_url("iris", version), json={"inputs": [json_input(rows)]})
    head, _ = outputs_of(response)
    assert head["model_version"] == expected == response.headers["X-Model-Version"]


@pytest.mark.parametrize("name", ["diabetes", "iris"])
def test_rows_whose_outputs_are_not_finite_are_a_422_naming_the_row(client, catalog, name):
    rows = np.array(catalog.rows[name][:3], dtype=np.float64)
    rows[1] = 3e38  # in float32's range, far outside any training data: the network overflows
    message = assert_error(post(client, name, {"inputs": [json_input(rows, datatype="FP64")]}), 422)
    assert message.startswith("the model's output for row 1 is not finite"), message  # as v1 says it
