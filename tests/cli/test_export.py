"""``nnserve export --format onnx``: every catalog model, run by onnxruntime, answers as nnserve does."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner
from helpers import read_catalog_csv

from service.cli.main import main
from service.store import FileModelStore, predict
from service.training.fitting import holdout_split

CATALOG = ("iris", "wine", "breast_cancer", "digits", "diabetes")


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
        assert outputs["label"].tolist() == expected.values.tolist()
    else:
        scale = max(1.0, float(np.abs(expected.values).max()))  # float32 resolves ~1e-7 of the value
        np.testing.assert_allclose(
            outputs["predictions"].reshape(expected.values.shape), expected.values, atol=1e-5 * scale
        )


def test_export_of_an_unknown_model_is_a_clear_error(catalog, tmp_path):
    result = CliRunner().invoke(main, ["export", "nope", "-o", str(tmp_path / "x.onnx"), "--store", str(catalog)])
    assert result.exit_code == 1 and "unknown model 'nope'" in result.stderr
    assert not (tmp_path / "x.onnx").exists()
