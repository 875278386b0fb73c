"""The store ignores and reports what it did not write itself: hostile content planted in a store directory.

Complements ``tests/test_store.py`` (which covers flipped bytes, missing or
extra files and directories, a symlinked weights file, version directory,
ACTIVE file or model directory, and a dataset holding an object array) with
what an attacker with write access to the store's disk would try next:

- a ``weights.npz`` holding a pickled object array whose checksum is fixed up,
  so only the loader's refusal to unpickle stands between it and code
  execution (the pickle is a live trap: loading it with pickle allowed runs it);
- manifests whose file entries point outside their directory;
- symlinks out of the store for the ``datasets`` directory and its files;
- FIFOs where regular files belong (reading one would block a worker forever);
- and that the HTTP API reports such versions and never serves them.
"""

from __future__ import annotations

import io
import json
import os
import pathlib
import shutil

import numpy as np
import pytest

import nn
from nn.serialization import sha256_bytes
from service import create_app
from service.store import CorruptVersionError, Dataset, FileModelStore, NotFoundError, StoreError

FEATURES = ["p", "q", "r"]


class Trap:
    """Unpickling this creates ``marker``: proof that code from the file ran."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 3))
    return nn.MLPClassifier((4,), max_iter=3, random_state=0).fit(
        X, np.where(X[:, 0] > 0, "a", "b"), feature_names=FEATURES
    )


@pytest.fixture
def store(tmp_path, fitted):
    """A store with model ``m``: version 1 active and good, version 2 published for the test to spoil."""
    store = FileModelStore(tmp_path / "store")
    store.activate("m", store.publish("m", fitted))
    assert store.publish("m", fitted) == 2
    return store


def version_dir(store, version=2):
    return store.root / "m" / str(version)


def rewrite_manifest(path, edit):
    manifest = json.loads((path / "manifest.json").read_text())
    edit(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))


def assert_reported_and_refused(store, fragment, version=2):
    """The version is listed as broken with ``fragment`` in its error, refused everywhere; version 1 keeps serving."""
    info = {i.version: i for i in store.version_info("m")}
    assert not info[version].ok and info[version].manifest is None
    assert fragment in info[version].error, info[version].error
    assert str(store.root) not in info[version].error
    with pytest.raises(CorruptVersionError, match=f"version {version} is broken"):
        store.load("m", version)
    with pytest.raises(CorruptVersionError):
        store.activate("m", version)
    assert store.active_version("m") == 1
    assert store.load("m").version == 1


# -- pickles ---------------------------------------------------------------------------------------------------------


def pickled_weights(marker, original: bytes) -> bytes:
    """``original``'s arrays plus an object array holding a ``Trap``, as a valid npz."""
    with np.load(io.BytesIO(original), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["x_mean"] = np.array([Trap(marker)] * 3, dtype=object)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@pytest.mark.parametrize("fix_checksum", [True, False], ids=["checksum-fixed-up", "checksum-stale"])
def test_pickled_object_array_in_weights_is_refused_without_running_it(store, tmp_path, fix_checksum):
    marker = tmp_path / "code-ran"
    v2 = version_dir(store)
    weights = pickled_weights(marker, (v2 / "weights.npz").read_bytes())
    (v2 / "weights.npz").write_bytes(weights)
    if fix_checksum:
        rewrite_manifest(v2, lambda m: m["files"].update({"weights.npz": sha256_bytes(weights)}))
        assert store.manifest("m", 2)["files"]["weights.npz"] == sha256_bytes(weights)  # passes every checksum
        with pytest.raises(CorruptVersionError, match=r"version 2 is broken: .*Object arrays cannot be loaded"):
            store.load("m", 2)
        with pytest.raises(nn.ArtifactError, match="allow_pickle=False"):
            nn.load(v2)
    else:
        assert_reported_and_refused(store, "checksum mismatch for weights.npz")
    assert not marker.exists(), "the pickle ran"

    # the control: the trap is live, pickle-enabled numpy would have run it
    with np.load(v2 / "weights.npz", allow_pickle=True) as npz:
        npz["x_mean"]
    assert marker.exists()


def test_pickled_weights_are_reported_over_http_and_never_served(store, tmp_path):
    marker = tmp_path / "code-ran"
    v2 = version_dir(store)
    weights = pickled_weights(marker, (v2 / "weights.npz").read_bytes())
    (v2 / "weights.npz").write_bytes(weights)
    rewrite_manifest(v2, lambda m: m["files"].update({"weights.npz": sha256_bytes(weights)}))
    app = create_app({"NNSERVE_STORE": str(store.root), "NNSERVE_ADMIN_TOKEN": "t", "TESTING": True})
    client = app.test_client()

    detail = client.get("/v1/models/m").get_json()
    v = {x["version"]: x for x in detail["versions"]}
    assert v[1]["ok"] and v[1]["active"] and v[2]["ok"] is True  # checksums pass: only loading can tell
    pinned = client.post("/v1/models/m/versions/2/predict", json={"instances": [[0.1, 0.2, 0.3]]})
    assert pinned.status_code == 409, pinned.get_data(as_text=True)
    assert "Object arrays cannot be loaded" in pinned.get_json()["message"]
    infer = client.post(
        "/v2/models/m/versions/2/infer",
        json={"inputs": [{"name": "input", "datatype": "FP64", "shape": [1, 3], "data": [0.1, 0.2, 0.3]}]},
    )
    assert infer.status_code == 409 and "Object arrays cannot be loaded" in infer.get_json()["error"]
    activate = client.post("/v1/models/m/versions/2/activate", headers={"Authorization": "Bearer t"})
    assert activate.status_code == 409, activate.get_data(as_text=True)
    assert client.post("/v1/models/m/predict", json={"instances": [[0.1, 0.2, 0.3]]}).get_json()["version"] == 1
    assert not marker.exists()


# -- manifests pointing outside their directory ---------------------------------------------------------------------


def _outside(store, tmp_path, entry):
    target = tmp_path / "secret"
    target.write_bytes(b"not the store's")
    name = entry.format(abs=target, rel=os.path.relpath(target, version_dir(store)))
    rewrite_manifest(version_dir(store), lambda m: m["files"].update({name: sha256_bytes(target.read_bytes())}))
    return name


@pytest.mark.parametrize(
    "entry",
    [
        "{rel}",
        "../1/weights.npz",
        "../../../etc/passwd",
        "{abs}",
        "/etc/passwd",
        "./weights.npz",
        "sub/weights.npz",
        "",
    ],
)
def test_manifest_file_entries_outside_the_directory_are_refused(store, tmp_path, entry):
    name = _outside(store, tmp_path, entry)
    assert_reported_and_refused(store, "manifest names an invalid file entry")
    assert repr(name) in store.version_info("m")[1].error


@pytest.mark.parametrize("entry", ["../2/weights.npz", "{abs}"])
def test_manifest_weights_entry_replaced_by_an_outside_path_is_refused(store, tmp_path, entry):
    """The manifest's only weights entry moved outside: there is no weights.npz checksum left to trust."""
    name = _outside(store, tmp_path, entry)
    rewrite_manifest(version_dir(store), lambda m: m["files"].pop("weights.npz"))
    assert name in json.loads((version_dir(store) / "manifest.json").read_text())["files"]
    assert_reported_and_refused(store, "manifest lists no checksum for weights.npz")


# -- symlinks out of the store: datasets ------------------------------------------------------------------------


def dataset():
    X = np.arange(6.0).reshape(2, 3)
    return Dataset(X, np.array(["a", "b"]), FEATURES)


def test_datasets_directory_symlinked_out_of_the_store_is_refused(store, tmp_path):
    outside = tmp_path / "outside-datasets"
    outside.mkdir()
    # a genuine dataset file, written by a store elsewhere, under its correct hash
    other = FileModelStore(tmp_path / "other")
    digest = other.save_dataset("m", dataset())
    shutil.copy(other.root / "m" / "datasets" / f"{digest}.npz", outside / f"{digest}.npz")
    (store.root / "m" / "datasets").symlink_to(outside, target_is_directory=True)

    with pytest.raises(StoreError, match="datasets is not a directory"):
        store.save_dataset("m", dataset())
    with pytest.raises(CorruptVersionError, match="symbolic link"):
        store.load_dataset("m", digest)
    assert sorted(p.name for p in outside.iterdir()) == [f"{digest}.npz"]  # nothing written through the link


def test_dataset_file_symlinked_out_of_the_store_is_refused_and_replaced(store, tmp_path):
    other = FileModelStore(tmp_path / "other")
    digest = other.save_dataset("m", dataset())
    folder = store.root / "m" / "datasets"
    folder.mkdir()
    target = other.root / "m" / "datasets" / f"{digest}.npz"
    (folder / f"{digest}.npz").symlink_to(target)
    before = target.read_bytes()

    with pytest.raises(CorruptVersionError, match="symbolic link"):
        store.load_dataset("m", digest)
    assert store.save_dataset("m", dataset()) == digest  # saving again replaces the link with the store's own file
    assert not (folder / f"{digest}.npz").is_symlink()
    assert target.read_bytes() == before  # the link's target was never written
    np.testing.assert_array_equal(store.load_dataset("m", digest).X, dataset().X)


def test_model_directory_symlinked_out_of_the_store_serves_no_dataset(store, tmp_path):
    other = FileModelStore(tmp_path / "other")
    digest = other.save_dataset("m", dataset())
    (store.root / "linked").symlink_to(other.root / "m", target_is_directory=True)
    with pytest.raises(StoreError, match="symbolic link"):
        store.load_dataset("linked", digest)
    with pytest.raises(StoreError, match="symbolic link"):
        store.save_dataset("linked", dataset())
    assert "linked" not in store.model_names()


# -- special files where regular files belong: never opened for reading (a FIFO would block) ------------------------


def test_fifo_as_weights_is_reported_without_blocking(store):
    v2 = version_dir(store)
    (v2 / "weights.npz").unlink()
    os.mkfifo(v2 / "weights.npz")
    assert_reported_and_refused(store, "['weights.npz'] are not regular files")


def test_fifo_as_manifest_is_reported_without_blocking(store):
    v2 = version_dir(store)
    (v2 / "manifest.json").unlink()
    os.mkfifo(v2 / "manifest.json")
    assert_reported_and_refused(store, "['manifest.json'] are not regular files")


def test_fifo_as_active_is_refused_without_blocking(store):
    (store.root / "m" / "ACTIVE").unlink()
    os.mkfifo(store.root / "m" / "ACTIVE")
    with pytest.raises(CorruptVersionError, match="ACTIVE"):
        store.active_version("m")
    with pytest.raises(CorruptVersionError):
        store.load("m")
    store.activate("m", 1)  # activation replaces it with a regular file
    assert store.load("m").version == 1


def test_fifo_as_dataset_is_refused_without_blocking(store):
    digest = "0" * 64
    folder = store.root / "m" / "datasets"
    folder.mkdir()
    os.mkfifo(folder / f"{digest}.npz")
    with pytest.raises(CorruptVersionError, match="unreadable"):
        store.load_dataset("m", digest)


def test_extra_files_do_not_hide_the_good_versions(store):
    """Junk beside the versions is ignored by listing; junk inside a version breaks only that version."""
    model = store.root / "m"
    (model / "notes.txt").write_text("x")
    (model / "3.bak").mkdir()
    (model / "0").mkdir()
    (model / "00002").mkdir()
    (version_dir(store) / "extra.npz").write_bytes(b"PK")
    assert store.versions("m") == [1, 2]
    assert_reported_and_refused(store, "does not list: ['extra.npz']")
    with pytest.raises(NotFoundError):
        store.load("m", 3)
