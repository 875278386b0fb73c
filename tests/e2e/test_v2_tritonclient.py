"""tritonclient.http, unchanged, against nnserve under a real gunicorn: the Open Inference Protocol end to end.

Every prediction is compared with v1's (``POST /v1/models/<name>/predict``)
for the same rows on the same server.
"""

import re
import subprocess
import sys

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient
from helpers import REPO, read_catalog_csv
from tritonclient.utils import InferenceServerException
from v2_models import CLASSIFIERS, MODELS, build_store

PAGE = REPO / "docs" / "inference-protocol.md"


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("oip") / "store")


@pytest.fixture(scope="module")
def server(gunicorn_server, catalog):
    return gunicorn_server(catalog.root, workers=2)


@pytest.fixture(scope="module")
def client(server):
    client = httpclient.InferenceServerClient(server.host_port, network_timeout=30.0)
    yield client
    client.close()


def v1_predict(server, name, rows, version=None):
    path = f"/v1/models/{name}/predict" if version is None else f"/v1/models/{name}/versions/{version}/predict"
    response = requests.post(server.url + path, json={"instances": rows.tolist()}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def make_input(rows, datatype, binary, name="input"):
    tensor = httpclient.InferInput(name, list(rows.shape), datatype)
    tensor.set_data_from_numpy(rows.astype({"FP32": np.float32, "FP64": np.float64}.get(datatype, rows.dtype)), binary)
    return tensor


def texts(values):
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values.tolist()]


def assert_agrees_with_v1(result, v1, name, classes, outputs=None):
    names = [o["name"] for o in result.get_response()["outputs"]]
    expected = outputs or (["predictions", "labels", "probabilities"] if name in CLASSIFIERS else ["predictions"])
    assert names == expected
    if name in CLASSIFIERS:
        if "predictions" in names:
            index = result.as_numpy("predictions")
            assert index.dtype == np.int64
            assert [classes[i] for i in index] == v1["predictions"]
        if "labels" in names:
            assert texts(result.as_numpy("labels")) == [str(p) for p in v1["predictions"]]
        if "probabilities" in names:
            proba = result.as_numpy("probabilities")
            assert proba.dtype == np.float32 and proba.shape == (len(v1["predictions"]), len(classes))
            np.testing.assert_array_equal(proba, np.array(v1["probabilities"], dtype=np.float32))
    else:
        values = result.as_numpy("predictions")
        assert values.dtype == np.float32
        np.testing.assert_array_equal(values, np.array(v1["predictions"], dtype=np.float32))


# -- health and metadata -------------------------------------------------------------


def test_server_live_ready_and_metadata(client):
    assert client.is_server_live()
    assert client.is_server_ready()
    metadata = client.get_server_metadata()
    assert metadata["name"] == "nnserve"
    assert "binary_tensor_data" in metadata["extensions"]
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", metadata["version"])


def test_model_ready(client, catalog):
    for name in MODELS:
        assert client.is_model_ready(name)
        assert client.is_model_ready(name, str(catalog.active[name]))
    assert client.is_model_ready("iris", "1")
    assert not client.is_model_ready("nope")
    assert not client.is_model_ready("iris", "9")


@pytest.mark.parametrize("name", MODELS)
def test_model_metadata(client, catalog, name):
    metadata = client.get_model_metadata(name)
    assert metadata["name"] == name and metadata["platform"] == "nnserve_numpy"
    assert metadata["versions"] == [str(v) for v in catalog.versions[name]]
    assert metadata["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, catalog.n_features[name]]}]
    outputs = {o["name"]: (o["datatype"], o["shape"]) for o in metadata["outputs"]}
    if name in CLASSIFIERS:
        n_classes = len(catalog.classes[name])
        assert outputs == {
            "predictions": ("INT64", [-1]),
            "labels": ("BYTES", [-1]),
            "probabilities": ("FP32", [-1, n_classes]),
        }
    else:
        assert outputs == {"predictions": ("FP32", [-1])}
    assert client.get_model_metadata(name, str(catalog.active[name])) == metadata


# -- inference -----------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("select", [False, True], ids=["all-outputs", "selected-outputs"])
@pytest.mark.parametrize("pinned", [False, True], ids=["active", "pinned"])
def test_infer_equals_v1(client, server, catalog, name, datatype, binary, select, pinned):
    rows = catalog.rows[name]
    outputs = None
    if select:
        # a subset, in an order of our choosing, each output binary or JSON like the input
        chosen = ["probabilities", "predictions"] if name in CLASSIFIERS else ["predictions"]
        outputs = [httpclient.InferRequestedOutput(o, binary_data=binary) for o in chosen]
    version = str(catalog.active[name]) if pinned else ""
    result = client.infer(
        name, [make_input(rows, datatype, binary)], model_version=version, outputs=outputs, request_id=f"r-{name}"
    )
    response = result.get_response()
    assert response["model_name"] == name
    assert response["model_version"] == str(catalog.active[name])
    assert response["id"] == f"r-{name}"
    sent_binary = [("binary_data_size" in o.get("parameters", {})) for o in response["outputs"]]
    assert all(sent_binary) if (binary or not select) else not any(sent_binary)  # no outputs: all binary
    v1 = v1_predict(server, name, rows, version or None)
    assert_agrees_with_v1(result, v1, name, catalog.classes.get(name), [o.name() for o in outputs or []] or None)


@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_pinned_versions_equal_v1_pinned(client, server, catalog, version, binary):
    rows = catalog.rows["iris"]
    result = client.infer("iris", [make_input(rows, "FP32", binary)], model_version=version)
    assert result.get_response()["model_version"] == version
    assert_agrees_with_v1(result, v1_predict(server, "iris", rows, version), "iris", catalog.classes["iris"])


def test_integer_inputs(client, server, catalog):
    rows = catalog.rows["digits"].astype(np.uint8)  # pixel intensities 0..16
    v1 = v1_predict(server, "digits", rows.astype(np.float64))
    for datatype, dtype in (("UINT8", np.uint8), ("INT32", np.int32), ("INT64", np.int64)):
        for binary in (True, False):
            tensor = httpclient.InferInput("input", list(rows.shape), datatype)
            tensor.set_data_from_numpy(rows.astype(dtype), binary)
            result = client.infer("digits", [tensor])
            assert_agrees_with_v1(result, v1, "digits", catalog.classes["digits"])


def test_compressed_requests_and_responses(client, server, catalog):
    rows = catalog.rows["wine"]
    v1 = v1_predict(server, "wine", rows)
    for algorithm in ("gzip", "deflate"):
        result = client.infer(
            "wine",
            [make_input(rows, "FP32", True)],
            request_compression_algorithm=algorithm,
            response_compression_algorithm=algorithm,  # may be ignored by the server: the client copes
        )
        assert_agrees_with_v1(result, v1, "wine", catalog.classes["wine"])


def test_many_rows_in_one_request(client, server):
    X = read_catalog_csv("digits")[0].astype(np.float32)
    result = client.infer("digits", [make_input(X, "FP32", True)])
    v1 = v1_predict(server, "digits", X.astype(np.float64))
    assert len(result.as_numpy("predictions")) == len(X)
    np.testing.assert_array_equal(result.as_numpy("probabilities"), np.array(v1["probabilities"], dtype=np.float32))


# -- errors surface as InferenceServerException with our messages ---------------------


def raised(call):
    with pytest.raises(InferenceServerException) as info:
        call()
    return info.value


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_wrong_shape(client, binary):
    error = raised(lambda: client.infer("iris", [make_input(np.ones((2, 5)), "FP32", binary, name="x")]))
    assert error.status() == "400"
    assert error.message().startswith("rows have 5 values, model 'iris' expects 4 ("), error.message()  # as in v1


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_wrong_datatype(client, binary):
    tensor = httpclient.InferInput("input", [1, 4], "BOOL")
    tensor.set_data_from_numpy(np.array([[True, False, True, False]]), binary)
    error = raised(lambda: client.infer("iris", [tensor]))
    assert error.status() == "400"
    assert "input 'input' has datatype 'BOOL'; model 'iris' takes FP32, FP64, INT8" in error.message()

    tensor = httpclient.InferInput("input", [1, 4], "BYTES")
    tensor.set_data_from_numpy(np.array([[b"a", b"b", b"c", b"d"]], dtype=object), binary)
    error = raised(lambda: client.infer("iris", [tensor]))
    assert "input 'input' has datatype 'BYTES'" in error.message()


def test_unknown_model_and_version(client, catalog):
    rows = catalog.rows["iris"]
    error = raised(lambda: client.infer("nope", [make_input(rows, "FP32", True)]))
    assert error.status() == "404" and error.message() == "unknown model 'nope'"
    error = raised(lambda: client.infer("iris", [make_input(rows, "FP32", True)], model_version="9"))
    assert error.status() == "404" and error.message() == "model 'iris' has no version 9"
    error = raised(lambda: client.get_model_metadata("nope"))
    assert error.status() == "404" and "unknown model 'nope'" in error.message()
    error = raised(lambda: client.get_model_metadata("iris", "9"))
    assert "model 'iris' has no version 9" in error.message()


def test_unknown_output_and_bad_values(client, catalog):
    rows = catalog.rows["iris"]
    outputs = [httpclient.InferRequestedOutput("scores")]
    error = raised(lambda: client.infer("iris", [make_input(rows, "FP32", True)], outputs=outputs))
    assert "model 'iris' has no output 'scores'" in error.message()
    bad = rows.astype(np.float32)
    bad[1, 2] = np.inf
    error = raised(lambda: client.infer("iris", [make_input(bad, "FP32", True)]))
    assert error.message() == "the input holds inf at index [1, 2]; every value must be a finite number"


# -- body limits under gunicorn ------------------------------------------------------


@pytest.fixture(scope="module")
def small_server(gunicorn_server, catalog):
    return gunicorn_server(catalog.root, workers=1, env={"NNSERVE_MAX_BODY_BYTES": "4096"})


def test_body_too_large(small_server):
    client = httpclient.InferenceServerClient(small_server.host_port, network_timeout=30.0)
    try:
        error = raised(lambda: client.infer("iris", [make_input(np.ones((400, 4)), "FP32", True)]))
        assert error.status() == "413"
        assert error.message() == "the request body is larger than the 4096 bytes accepted (NNSERVE_MAX_BODY_BYTES)"
        assert client.infer("iris", [make_input(np.ones((4, 4)), "FP32", True)]).as_numpy("labels").shape == (4,)
    finally:
        client.close()


def test_chunked_body_too_large(small_server):
    """No Content-Length: gunicorn passes the chunked body on, and the limit still holds."""

    def body(n):
        yield b'{"inputs": []' + b" " * (n - 14)  # n bytes in all
        yield b"}"

    url = f"{small_server.url}/v2/models/iris/infer"
    response = requests.post(url, data=body(4097), timeout=30)
    assert response.status_code == 413 and "larger than the 4096 bytes" in response.json()["error"]
    response = requests.post(url, data=body(4096), timeout=30)  # exactly the limit: read, and judged on content
    assert response.status_code == 400
    assert "takes exactly one input tensor" in response.json()["error"]


# -- the documentation's example ----------------------------------------------------


def test_docs_example_runs(server):
    """The tritonclient example of docs/inference-protocol.md, run as written but against this test server."""
    code = re.search(r"```python\n(.*?)```", PAGE.read_text(), re.S).group(1)
    assert "127.0.0.1:8000" in code
    code = code.replace("127.0.0.1:8000", server.host_port)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert re.search(r"setosa|versicolor|virginica", done.stdout), done.stdout
