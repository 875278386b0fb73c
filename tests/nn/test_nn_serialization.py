"""nn.save / nn.load: identical predictions, manifest contents, metadata, and every corruption refused."""

import hashlib
import io
import json

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import nn
from nn import ArtifactError, MLPClassifier, MLPRegressor, load, read_manifest, save

FAST = {"hidden_layer_sizes": (8, 6), "learning_rate_init": 0.01, "batch_size": 16, "max_iter": 10, "random_state": 0}
NAMES = ["f0", "f1", "f2", "f3"]


def make_data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4)) * [1.0, 10.0, 0.1, 5.0] + [0.0, 100.0, -3.0, 7.0]
    return X


def fit_model(kind):
    X = make_data()
    z = (X - X.mean(axis=0)) / X.std(axis=0)
    if kind == "classifier-str":
        y = np.array(["setosa", "versicolor", "virginica"])[np.argmax(z[:, :3], axis=1)]
        return MLPClassifier(**FAST, activation="tanh", dropout=0.1).fit(X, y, feature_names=NAMES)
    if kind == "classifier-int":
        return MLPClassifier(**FAST).fit(X, (z[:, 0] + z[:, 1] > 0).astype(int) * 5 + 2)
    if kind == "classifier-float64":
        return MLPClassifier(**FAST, dtype="float64", activation="gelu").fit(X, np.argmax(z[:, :3], axis=1))
    if kind == "regressor-1":
        return MLPRegressor(**FAST, activation="leaky_relu").fit(X, 3 * X[:, 0] + X[:, 1], feature_names=NAMES)
    if kind == "regressor-2":
        return MLPRegressor(**FAST, activation="logistic").fit(X, np.column_stack([X[:, 0], X[:, 1] * X[:, 2]]))
    if kind == "regressor-float64":
        return MLPRegressor(**FAST, dtype="float64").fit(X, X[:, 3] ** 2)
    raise AssertionError(kind)


KINDS = ["classifier-str", "classifier-int", "classifier-float64", "regressor-1", "regressor-2", "regressor-float64"]


@pytest.fixture(scope="module")
def models():
    return {kind: fit_model(kind) for kind in KINDS}


@pytest.fixture
def artifact(models, tmp_path):
    """A saved string-label classifier; returns its directory."""
    path = tmp_path / "model"
    save(models["classifier-str"], path)
    return path


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def edit_manifest(path, change):
    manifest = json.loads((path / "manifest.json").read_text())
    change(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))


def read_weights(path):
    with np.load(path / "weights.npz", allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def write_weights(path, data):
    """Replace weights.npz with ``data`` (bytes) and fix the manifest's sha256 so only the content is wrong."""
    (path / "weights.npz").write_bytes(data)
    edit_manifest(path, lambda m: m["files"].update({"weights.npz": sha256(path / "weights.npz")}))


def npz_bytes(arrays, allow_pickle=False):
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=allow_pickle, **arrays)
    return buffer.getvalue()


# -- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_gives_identical_predictions(kind, models, tmp_path):
    model = models[kind]
    save(model, tmp_path / "m")
    loaded = load(tmp_path / "m")
    assert type(loaded) is type(model)
    X = make_data(n=50, seed=1)
    pred = loaded.predict(X)
    assert pred.dtype == model.predict(X).dtype
    assert_array_equal(pred, model.predict(X))
    if isinstance(model, MLPClassifier):
        assert_array_equal(loaded.classes_, model.classes_)
        assert loaded.classes_.dtype.kind == model.classes_.dtype.kind
        assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert loaded.network_.dtype == model.network_.dtype
    for a, b in zip(loaded.coefs_, model.coefs_, strict=True):
        assert a.dtype == b.dtype
        assert_array_equal(a, b)
    assert loaded.get_params() == {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in model.get_params().items()
        if k not in ("callbacks", "lr_schedule")
    } | {"callbacks": None, "lr_schedule": None}


def test_loaded_model_checks_its_input_like_the_original(models, tmp_path):
    save(models["regressor-2"], tmp_path / "m")
    loaded = load(tmp_path / "m")
    with pytest.raises(ValueError, match="X has 3 features, but MLPRegressor is expecting 4"):
        loaded.predict(np.ones((1, 3)))


@pytest.mark.parametrize("kind", KINDS)
def test_manifest_contents(kind, models, tmp_path):
    model = models[kind]
    returned = save(model, tmp_path / "m")
    manifest = read_manifest(tmp_path / "m")
    assert manifest == returned
    assert manifest == json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["format_version"] == 1
    assert manifest["estimator"] == type(model).__name__
    assert manifest["files"] == {"weights.npz": sha256(tmp_path / "m" / "weights.npz")}
    assert manifest["architecture"] == [
        {"type": type(layer).__name__, "config": json.loads(json.dumps(layer.get_config()))}
        for layer in model.network_.layers
    ]
    first = manifest["architecture"][0]
    assert first["type"] == "Dense"
    assert first["config"]["units"] == 8
    assert first["config"]["l2"] == pytest.approx(model.alpha / 16)
    assert manifest["n_features"] == 4
    assert manifest["n_outputs"] == model.n_outputs_
    assert manifest["dtype"] == model.network_.dtype.name
    assert manifest["params"]["hidden_layer_sizes"] == [8, 6]
    assert "callbacks" not in manifest["params"] and "lr_schedule" not in manifest["params"]
    assert manifest["history"]["epochs"] == model.n_iter_
    assert manifest["history"]["final"]["loss"] == pytest.approx(model.loss_)
    if isinstance(model, MLPClassifier):
        assert manifest["classes"] == model.classes_.tolist()
        assert "target_ndim" not in manifest
    else:
        assert manifest["target_ndim"] == (1 if kind != "regressor-2" else 2)
        assert "classes" not in manifest
    expected_names = NAMES if kind in ("classifier-str", "regressor-1") else None
    assert manifest["feature_names"] == expected_names
    if expected_names:
        assert list(load(tmp_path / "m").feature_names_in_) == NAMES


def test_manifest_classes_and_architecture_of_the_string_classifier(artifact):
    manifest = read_manifest(artifact)
    assert manifest["classes"] == ["setosa", "versicolor", "virginica"]
    assert [layer["type"] for layer in manifest["architecture"]] == [
        "Dense", "Tanh", "Dropout", "Dense", "Tanh", "Dropout", "Dense",
    ]  # fmt: skip
    assert manifest["architecture"][2]["config"] == {"rate": 0.1}
    assert set(read_weights(artifact)) == {
        "layer.0.W", "layer.0.b", "layer.3.W", "layer.3.b", "layer.6.W", "layer.6.b", "x_mean", "x_scale",
    }  # fmt: skip


def test_metadata_is_merged_into_the_manifest(models, tmp_path):
    metadata = {"metrics": {"accuracy": 0.97}, "dataset_sha256": "ab" * 32, "name": "iris"}
    manifest = save(models["classifier-int"], tmp_path / "m", metadata=metadata)
    for key, value in metadata.items():
        assert manifest[key] == value
        assert read_manifest(tmp_path / "m")[key] == value
    assert manifest["estimator"] == "MLPClassifier"
    load(tmp_path / "m")


@pytest.mark.parametrize("key", ["format_version", "estimator", "architecture", "classes", "files", "dtype", "params"])
def test_metadata_may_not_override_reserved_keys(key, models, tmp_path):
    with pytest.raises(ValueError, match=key):
        save(models["classifier-int"], tmp_path / "m", metadata={"ok": 1, key: "evil"})
    assert not (tmp_path / "m").exists()


def test_save_refuses_an_unfitted_estimator(tmp_path):
    with pytest.raises(ValueError, match="unfitted"):
        save(MLPClassifier(), tmp_path / "m")


def test_nothing_is_pickled(artifact):
    with np.load(artifact / "weights.npz", allow_pickle=False) as npz:
        assert all(npz[k].dtype.kind == "f" for k in npz.files)


# -- corruption: every case raises ArtifactError -------------------------------------------------------


def test_missing_manifest(artifact):
    (artifact / "manifest.json").unlink()
    with pytest.raises(ArtifactError, match=r"manifest\.json is missing"):
        load(artifact)
    with pytest.raises(ArtifactError, match=r"manifest\.json is missing"):
        read_manifest(artifact)


def test_missing_directory(tmp_path):
    with pytest.raises(ArtifactError, match="missing"):
        load(tmp_path / "nowhere")


def test_missing_weights(artifact):
    (artifact / "weights.npz").unlink()
    with pytest.raises(ArtifactError, match=r"weights\.npz is missing"):
        load(artifact)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
        (b"[1, 2, 3]", "JSON object"),
        (b'"a string"', "JSON object"),
    ],
)
def test_invalid_manifest_json(artifact, content, match):
    (artifact / "manifest.json").write_bytes(content)
    with pytest.raises(ArtifactError, match=match):
        load(artifact)


@pytest.mark.parametrize("version", [2, 0, "1", 1.5, None])
def test_unknown_format_version(artifact, version):
    edit_manifest(artifact, lambda m: m.update(format_version=version))
    with pytest.raises(ArtifactError, match="format_version"):
        load(artifact)


def test_missing_format_version(artifact):
    edit_manifest(artifact, lambda m: m.pop("format_version"))
    with pytest.raises(ArtifactError, match="format_version"):
        load(artifact)


def test_checksum_mismatch_from_one_flipped_byte(artifact):
    data = bytearray((artifact / "weights.npz").read_bytes())
    data[len(data) // 2] ^= 0x01
    (artifact / "weights.npz").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"checksum mismatch for weights\.npz"):
        load(artifact)
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        read_manifest(artifact)
    assert read_manifest(artifact, verify=False)["format_version"] == 1


@pytest.mark.parametrize("files", [{}, {"other.bin": "00"}, None, ["weights.npz"]])
def test_manifest_without_a_weights_checksum(artifact, files):
    edit_manifest(artifact, lambda m: m.update(files=files))
    with pytest.raises(ArtifactError, match=r"no checksum for weights\.npz"):
        load(artifact)


@pytest.mark.parametrize(
    ("key", "shape"),
    [("layer.0.W", (4, 9)), ("layer.0.W", (8, 4)), ("layer.6.b", (4,)), ("x_mean", (5,)), ("x_scale", (4, 1))],
)
def test_weights_with_a_wrong_shape(artifact, key, shape):
    arrays = read_weights(artifact)
    arrays[key] = np.ones(shape, dtype=arrays[key].dtype)
    write_weights(artifact, npz_bytes(arrays))
    read_manifest(artifact)  # the checksum is right: only the shape is wrong
    with pytest.raises(ArtifactError, match="shape"):
        load(artifact)


@pytest.mark.parametrize("change", ["drop", "extra"])
def test_weights_with_missing_or_extra_arrays(artifact, change):
    arrays = read_weights(artifact)
    if change == "drop":
        del arrays["layer.3.W"]
    else:
        arrays["layer.9.W"] = np.ones((2, 2), np.float32)
    write_weights(artifact, npz_bytes(arrays))
    with pytest.raises(ArtifactError):
        load(artifact)


def _flip(data, at):
    data = bytearray(data)
    data[at] ^= 0xFF
    return bytes(data)


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda data: data[: len(data) // 2],
        lambda data: _flip(data, 200),
        lambda data: b"",
        lambda data: b"PK\x03\x04 but not really a zip file",
        lambda data: b"arbitrary bytes",
    ],
    ids=["truncated", "bad-crc", "empty", "not-a-zip", "garbage"],
)
def test_unreadable_weights_with_a_matching_checksum(artifact, corrupt):
    write_weights(artifact, corrupt((artifact / "weights.npz").read_bytes()))
    with pytest.raises(ArtifactError):
        load(artifact)


@pytest.mark.parametrize("layer_type", ["Lambda", "os.system", "Layer", None, 42])
def test_unknown_layer_type(artifact, layer_type):
    edit_manifest(artifact, lambda m: m["architecture"][1].update(type=layer_type))
    with pytest.raises(ArtifactError, match="unknown or malformed layer"):
        load(artifact)


@pytest.mark.parametrize(
    "config", [{"units": -1}, {"units": 8, "activation": "relu"}, {"units": 8, "kernel_initializer": "evil"}, "x"]
)
def test_bad_layer_config(artifact, config):
    edit_manifest(artifact, lambda m: m["architecture"][0].update(config=config))
    with pytest.raises(ArtifactError, match="layer"):
        load(artifact)


@pytest.mark.parametrize("estimator", ["MLPSomething", "BaseMLP", "nn.estimators.MLPClassifier", None])
def test_unknown_estimator(artifact, estimator):
    edit_manifest(artifact, lambda m: m.update(estimator=estimator))
    with pytest.raises(ArtifactError, match="unknown estimator"):
        load(artifact)


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m.pop("architecture"),
        lambda m: m.pop("params"),
        lambda m: m.pop("classes"),
        lambda m: m["params"].update(evil=1),
        lambda m: m["params"].update(solver="lbfgs"),
        lambda m: m.update(n_outputs=7),
        lambda m: m.update(n_features="four"),
        lambda m: m.update(dtype="float16"),
        lambda m: m.update(n_features=0),
        lambda m: m.update(n_features=float("inf")),
        lambda m: m.update(n_features=10**9),
        lambda m: m["architecture"][0]["config"].update(units=10**9),
    ],
    ids=[
        "no-architecture",
        "no-params",
        "no-classes",
        "unknown-param",
        "bad-param",
        "n_outputs",
        "n_features",
        "dtype",
        "n_features-zero",
        "n_features-infinite",
        "n_features-huge",
        "units-huge",
    ],
)
def test_inconsistent_manifest(artifact, change):
    edit_manifest(artifact, change)
    with pytest.raises(ArtifactError):
        load(artifact)


@pytest.mark.parametrize("classes", [["setosa", "versicolor"], ["a", "b", "c", "d"], ["only"]])
def test_classes_inconsistent_with_the_outputs(artifact, classes):
    edit_manifest(artifact, lambda m: m.update(classes=classes))
    with pytest.raises(ArtifactError, match="classes"):
        load(artifact)


def test_regressor_target_ndim_inconsistent_with_the_outputs(models, tmp_path):
    save(models["regressor-2"], tmp_path / "m")
    edit_manifest(tmp_path / "m", lambda m: m.update(target_ndim=1))
    with pytest.raises(ArtifactError, match="target_ndim"):
        load(tmp_path / "m")


UNPICKLED = []


def _record_unpickling():
    UNPICKLED.append(True)
    return "payload"


class Payload:
    """Unpickling this object calls ``_record_unpickling``: a stand-in for arbitrary code execution."""

    def __reduce__(self):
        return (_record_unpickling, ())


@pytest.mark.parametrize("form", ["npz-member", "bare-npy"])
def test_pickled_object_array_is_refused_without_unpickling(artifact, form):
    payload = np.empty(1, dtype=object)
    payload[0] = Payload()
    if form == "npz-member":
        arrays = read_weights(artifact)
        arrays["layer.0.W"] = payload
        data = npz_bytes(arrays, allow_pickle=True)
    else:
        buffer = io.BytesIO()
        np.save(buffer, payload, allow_pickle=True)
        data = buffer.getvalue()
    write_weights(artifact, data)
    UNPICKLED.clear()
    with pytest.raises(ArtifactError):
        load(artifact)
    assert UNPICKLED == []
    # The payload is live: unpickling it really would have run code.
    loaded = np.load(io.BytesIO(data), allow_pickle=True)
    member = loaded["layer.0.W"] if form == "npz-member" else loaded
    assert member[0] == "payload"
    assert UNPICKLED == [True]


@pytest.mark.parametrize("name", ["../x", "a/b", "/abs", "..", "", ".hidden", "a\\b", "x" * 200])
def test_manifest_file_entry_with_a_path_is_refused(artifact, name):
    # Put a real file where the entry points (when it can), with the right checksum: only the name is wrong.
    target = artifact / name if name not in ("", "/abs", "..") and len(name) < 100 else None
    digest = "0" * 64
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"hello")
        digest = sha256(target)
    edit_manifest(artifact, lambda m: m["files"].update({name: digest}))
    with pytest.raises(ArtifactError, match="invalid file entry"):
        load(artifact)
    with pytest.raises(ArtifactError, match="invalid file entry"):
        read_manifest(artifact)


def test_extra_listed_file_is_verified(artifact):
    (artifact / "card.md").write_text("notes")
    edit_manifest(artifact, lambda m: m["files"].update({"card.md": sha256(artifact / "card.md")}))
    load(artifact)
    (artifact / "card.md").write_text("tampered")
    with pytest.raises(ArtifactError, match=r"checksum mismatch for card\.md"):
        load(artifact)
    (artifact / "card.md").unlink()
    with pytest.raises(ArtifactError, match=r"card\.md is missing"):
        load(artifact)


def test_symlinked_weights_are_refused(artifact, tmp_path):
    real = tmp_path / "elsewhere.npz"
    (artifact / "weights.npz").rename(real)
    (artifact / "weights.npz").symlink_to(real)
    with pytest.raises(ArtifactError, match="symbolic link"):
        load(artifact)


def test_artifact_error_is_exported():
    assert nn.ArtifactError is ArtifactError
    assert issubclass(ArtifactError, Exception)
