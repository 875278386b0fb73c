"""nn.to_onnx on models trained on the shipped CSVs: onnxruntime agrees with nn on held-out rows."""

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.model_selection import train_test_split

onnx = pytest.importorskip("onnx")  # the optional extra; the test extra installs it
ort = pytest.importorskip("onnxruntime")

import nn  # noqa: E402
from nn import MLPClassifier, MLPRegressor, NotFittedError  # noqa: E402

# name, estimator, dataset: every activation, binary and multiclass, string and int labels, a regressor.
CASES = [
    ("iris-relu-dropout", MLPClassifier((16,), activation="relu", dropout=0.2), "iris"),  # strings, 3 classes
    ("breast_cancer-tanh", MLPClassifier((16,), activation="tanh"), "breast_cancer"),  # binary
    ("digits-gelu", MLPClassifier((32,), activation="gelu"), "digits"),  # ints, 10 classes
    ("wine-leaky_relu", MLPClassifier((16, 8), activation="leaky_relu"), "wine"),
    ("wine-logistic-float64", MLPClassifier((16,), activation="logistic", dtype="float64"), "wine"),
    ("diabetes-tanh-float64", MLPRegressor((8,), activation="tanh", dtype="float64"), "diabetes"),
    # float32 targets in the hundreds: 1e-5 absolute is below float32's resolution there (ulp(256) = 3e-5),
    # so this case is held to 1e-5 relative to the target's magnitude.
    ("diabetes-tanh-float32", MLPRegressor((8,), activation="tanh"), "diabetes"),
    ("diabetes-identity-2d", MLPRegressor((8,), activation="identity"), "diabetes"),
]


def run(model, X):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {"input": X}), strict=True))


@pytest.mark.parametrize(("name", "estimator", "data"), CASES, ids=[c[0] for c in CASES])
def test_onnxruntime_agrees_with_nn(name, estimator, data, dataset):
    X, y, _ = dataset(data)
    if name.endswith("-2d"):
        y = np.column_stack([y, -y])
    X_train, X_test, y_train, _ = train_test_split(X, y, test_size=0.25, random_state=0)
    est = estimator.set_params(max_iter=40, learning_rate_init=0.01, random_state=0).fit(X_train, y_train)
    model = nn.to_onnx(est)
    onnx.checker.check_model(model, full_check=True)
    X_test = X_test.astype(est.dtype)
    out = run(model, X_test)
    if isinstance(est, MLPClassifier):
        expected = est.predict_proba(X_test)
        assert out["probabilities"].shape == expected.shape and out["probabilities"].dtype == expected.dtype
        diff = np.abs(out["probabilities"] - expected).max()
        labels = est.predict(X_test)
        assert_array_equal(est.classes_[out["predictions"]], labels)
        assert out["predictions"].dtype == np.int64
        assert out["labels"].dtype == object and out["labels"].tolist() == [str(v) for v in labels.tolist()]
    else:
        expected = est.predict(X_test)
        assert out["predictions"].shape == expected.shape
        diff = np.abs(out["predictions"] - expected).max()
    print(f"{name}: max abs difference {diff:.3g}")
    scale = max(1.0, float(np.abs(expected).max())) if name == "diabetes-tanh-float32" else 1.0
    assert diff <= 1e-5 * scale


def test_every_activation_is_covered():
    covered = {type(layer) for _, est, _ in CASES for layer in est._build_layers((2,), 2)}
    assert {nn.ReLU, nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.GELU, nn.Dropout, nn.Dense} <= covered


def test_opset_and_unfitted_estimators_are_checked(dataset):
    with pytest.raises(NotFittedError):
        nn.to_onnx(MLPClassifier())
    X, y, _ = dataset("iris")
    est = MLPClassifier((4,), max_iter=2).fit(X, y)
    with pytest.raises(ValueError, match="opset"):
        nn.to_onnx(est, opset=12)
    assert nn.to_onnx(est, opset=20).opset_import[0].version == 20


def test_importing_nn_does_not_import_onnx_or_sklearn():
    import subprocess
    import sys

    code = "import sys, nn; assert 'onnx' not in sys.modules and 'sklearn' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
