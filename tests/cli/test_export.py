"""``nnserve export --format onnx``: every catalog model, run by onnxruntime, answers as nnserve does, and its
graph's tensors are the ones ``GET /v2/models/<name>`` describes."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner
from helpers import copy_store, read_catalog_csv
from onnx import TensorProto

import nn
from service import create_app
from service.cli.main import main
from service.store import FileModelStore, predict
from service.training.fitting import holdout_split

CATALOG = ("iris", "wine", "breast_cancer", "digits", "diabetes")
# the v2 datatype of each ONNX element type the exporter writes
V2_DATATYPE = {
    TensorProto.FLOAT: "FP32",
    TensorProto.DOUBLE: "FP64",
    TensorProto.INT64: "INT64",
    TensorProto.STRING: "BYTES",
}


@pytest.fixture(scope="module")
def catalog(trained_store):
    return trained_store(*CATALOG, epochs=5)


@pytest.mark.parametrize("name", CATALOG)
def test_every_catalog_model_exports_and_onnxruntime_agrees_on_held_out_rows(catalog, tmp_path, name):
    out = tmp_path / f"{name}.onnx"
    result = CliRunner().invoke(main, ["export", name, "--format", "onnx", "-o", str(out), "--store", str(catalog)])
    assert result.exit_code == 0, result.output
    graph = onnx.load(str(out))
    onnx.checker.check_model(graph)

    loaded = FileModelStore(catalog).load(name)
    X, y, _ = read_catalog_csv(name)
    training = loaded.manifest["training"]
    stratify = y if loaded.manifest["task"] == "classification" else None
    _, test = holdout_split(len(X), training["test_size"], training["seed"], stratify)
    rows = X[test].astype(loaded.estimator.network_.dtype)
    expected = predict(loaded.estimator, X[test])

    session = ort.InferenceSession(out.read_bytes(), providers=["CPUExecutionProvider"])
    outputs = dict(
        zip(
            [o.name for o in session.get_outputs()],
            session.run(None, {session.get_inputs()[0].name: rows}),
            strict=True,
        )
    )
    if expected.probabilities is not None:
        np.testing.assert_allclose(outputs["probabilities"], expected.probabilities, atol=1e-5)
        assert outputs["labels"].tolist() == [str(v) for v in expected.values.tolist()]
        assert outputs["predictions"].tolist() == expected.index.tolist()
    else:
        scale = max(1.0, float(np.abs(expected.values).max()))  # float32 resolves ~1e-7 of the value
        np.testing.assert_allclose(
            outputs["predictions"].reshape(expected.values.shape), expected.values, atol=1e-5 * scale
        )


def test_export_of_an_unknown_model_is_a_clear_error(catalog, tmp_path):
    result = CliRunner().invoke(main, ["export", "nope", "-o", str(tmp_path / "x.onnx"), "--store", str(catalog)])
    assert result.exit_code == 1 and "unknown model 'nope'" in result.stderr
    assert not (tmp_path / "x.onnx").exists()


@pytest.fixture(scope="module")
def mixed(catalog, tmp_path_factory):
    """The catalog plus a float64 classifier and a two-output regressor, each with two versions (the first active)."""
    root = copy_store(catalog, tmp_path_factory.mktemp("mixed"))
    store = FileModelStore(root)
    X, y, _ = read_catalog_csv("wine")
    Xd, yd, _ = read_catalog_csv("diabetes")
    for seed in (0, 1):
        wine64 = nn.MLPClassifier((8,), dtype="float64", max_iter=5, random_state=seed).fit(X, y)
        store.publish("wine64", wine64, {"task": "classification"})
        two = nn.MLPRegressor((8,), max_iter=5, random_state=seed).fit(Xd, np.column_stack([yd, -yd]))
        store.publish("diabetes2d", two, {"task": "regression"})
    store.activate("wine64", 1)
    store.activate("diabetes2d", 1)
    return root


def _onnx_tensor(value_info) -> dict:
    """An ONNX graph input or output as the v2 metadata describes a tensor (a named batch dimension is -1)."""
    dims = [-1 if d.dim_param else d.dim_value for d in value_info.type.tensor_type.shape.dim]
    return {"name": value_info.name, "datatype": V2_DATATYPE[value_info.type.tensor_type.elem_type], "shape": dims}


@pytest.mark.parametrize("name", [*CATALOG, "wine64", "diabetes2d"])
def test_the_exported_graph_has_the_v2_tensors_and_onnxruntime_answers_as_v2_infer(mixed, tmp_path, name):
    version = 2 if name in ("wine64", "diabetes2d") else 1  # a pinned version, not the active one, where there is one
    out = tmp_path / f"{name}.onnx"
    argv = ["export", name, "--version", str(version), "-o", str(out), "--store", str(mixed)]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 0, result.output
    graph = onnx.load(str(out)).graph
    client = create_app({"NNSERVE_STORE": str(mixed)}).test_client()

    meta = client.get(f"/v2/models/{name}/versions/{version}").get_json()
    assert [_onnx_tensor(t) for t in graph.input] == meta["inputs"]
    assert [_onnx_tensor(t) for t in graph.output] == meta["outputs"]

    X, _, _ = read_catalog_csv(name.removesuffix("64").removesuffix("2d"))
    rows = X[::20]
    (tensor,) = meta["inputs"]
    body = {"inputs": [{**tensor, "shape": list(rows.shape), "data": rows.reshape(-1).tolist()}]}
    answer = client.post(f"/v2/models/{name}/versions/{version}/infer", json=body)
    assert answer.status_code == 200, answer.get_json()
    expected = {o["name"]: o for o in answer.get_json()["outputs"]}

    session = ort.InferenceSession(out.read_bytes(), providers=["CPUExecutionProvider"])
    dtype = {"FP32": np.float32, "FP64": np.float64}[tensor["datatype"]]
    names = [o.name for o in session.get_outputs()]
    got = dict(zip(names, session.run(None, {tensor["name"]: rows.astype(dtype)}), strict=True))
    assert list(got) == list(expected)
    for out_name, v2 in expected.items():
        value = got[out_name]
        assert list(value.shape) == v2["shape"]
        assert V2_DATATYPE[onnx.helper.np_dtype_to_tensor_dtype(value.dtype)] == v2["datatype"]
        want = np.asarray(v2["data"]).reshape(v2["shape"])
        if v2["datatype"] in ("INT64", "BYTES"):
            assert value.tolist() == want.tolist()
        else:
            scale = max(1.0, float(np.abs(want).max()))  # regressors' values are in the hundreds
            np.testing.assert_allclose(value, want, rtol=0, atol=1e-5 * scale)
