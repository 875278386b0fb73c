"""The model store on real files and real processes: atomic publish, verification, refusal of bad input."""

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, flip_byte

import nn
from service.store import (
    CorruptVersionError,
    Dataset,
    FileModelStore,
    InvalidNameError,
    LoadedModel,
    NotFoundError,
    StoreError,
    validate_name,
    validate_version,
)

FEATURES = ["f0", "f1", "f2"]


@pytest.fixture(scope="session")
def rows():
    X = np.random.default_rng(0).normal(size=(12, 3))
    return X, np.array(["setosa", "versicolor", "virginica"] * 4)


@pytest.fixture(scope="session")
def fitted(rows):
    X, y = rows
    return nn.MLPClassifier((4,), max_iter=3, random_state=0).fit(X, y, feature_names=FEATURES)


@pytest.fixture(scope="session")
def artifact(fitted, tmp_path_factory):
    """The fitted model saved outside any store, for subprocesses to load."""
    path = tmp_path_factory.mktemp("artifact") / "model"
    nn.save(fitted, path)
    return path


@pytest.fixture
def store(tmp_path):
    return FileModelStore(tmp_path / "store")


def _run(script: str, *args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", script, *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=60
    )


# -- round trip -------------------------------------------------------------------


def test_publish_activate_load_round_trip(store, fitted, rows):
    X, _ = rows
    version = store.publish("iris", fitted, {"metrics": {"accuracy": 0.9}})
    assert version == 1
    assert store.versions("iris") == [1]
    assert store.model_names() == ["iris"]
    assert store.active_version("iris") is None  # publish does not activate
    with pytest.raises(NotFoundError, match="no active version"):
        store.load("iris")

    store.activate("iris", version)
    loaded = store.load("iris")
    assert isinstance(loaded, LoadedModel)
    assert (loaded.name, loaded.version) == ("iris", 1)
    assert loaded.manifest["metrics"] == {"accuracy": 0.9}
    np.testing.assert_array_equal(loaded.estimator.predict(X), fitted.predict(X))
    np.testing.assert_allclose(loaded.estimator.predict_proba(X), fitted.predict_proba(X))
    assert store.load("iris", 1).version == 1
    assert store.load("iris", "1").version == 1


def test_manifest_records_store_fields(store, fitted):
    store.publish("iris", fitted, {"metrics": {"accuracy": 0.5}, "dataset_sha256": "ab" * 32})
    manifest = store.manifest("iris", 1)
    assert manifest["name"] == "iris"
    assert manifest["version"] == 1
    assert manifest["nnserve_version"] == importlib.metadata.version("nnserve")
    assert manifest["created_at"].endswith("Z")
    created = datetime.fromisoformat(manifest["created_at"])
    assert abs(time.time() - created.timestamp()) < 60
    assert manifest["metrics"] == {"accuracy": 0.5}
    assert manifest["dataset_sha256"] == "ab" * 32
    assert manifest["files"].keys() == {"weights.npz"}


@pytest.mark.parametrize("key", ["name", "version", "created_at", "nnserve_version", "files"])
def test_metadata_may_not_override_what_the_store_or_nn_writes(store, fitted, key):
    with pytest.raises(ValueError, match=key):
        store.publish("iris", fitted, {key: "x"})
    model_dir = store.root / "iris"
    assert not model_dir.exists() or sorted(p.name for p in model_dir.iterdir()) == [".lock"]
    assert store.model_names() == []


def test_versions_increase_and_activation_moves(store, fitted):
    assert [store.publish("iris", fitted) for _ in range(3)] == [1, 2, 3]
    assert store.versions("iris") == [1, 2, 3]
    store.activate("iris", 2)
    infos = store.version_info("iris")
    assert [(i.version, i.ok, i.active, i.error) for i in infos] == [
        (1, True, False, None),
        (2, True, True, None),
        (3, True, False, None),
    ]
    assert infos[1].manifest["version"] == 2
    store.activate("iris", 1)  # roll back
    assert store.active_version("iris") == 1
    assert store.load("iris").version == 1


def test_active_stamp_changes_after_activate(store, fitted):
    store.publish("iris", fitted)
    store.publish("iris", fitted)
    assert store.active_stamp("iris") is None
    store.activate("iris", 1)
    first = store.active_stamp("iris")
    assert first is not None and all(isinstance(v, int) for v in first)
    assert store.active_stamp("iris") == first  # stable while nothing changes
    store.activate("iris", 2)
    second = store.active_stamp("iris")
    assert second != first
    store.activate("iris", 2)  # re-activating the same version is still a visible change
    assert store.active_stamp("iris") != second
    assert (store.root / "iris" / "ACTIVE").read_text() == "2\n"


def test_regressor_with_two_dimensional_targets_round_trips(store):
    X = np.random.default_rng(1).normal(size=(10, 2))
    y = np.column_stack([X.sum(axis=1), X[:, 0] - X[:, 1]])
    model = nn.MLPRegressor((3,), max_iter=3, random_state=0).fit(X, y)
    store.activate("reg", store.publish("reg", model))
    np.testing.assert_allclose(store.load("reg").estimator.predict(X), model.predict(X))


# -- concurrency and crashes --------------------------------------------------------

RACE = """
import os, sys, time
from pathlib import Path
import nn
from service.store import FileModelStore
root, artifact, go, writer = sys.argv[1:5]
store, model = FileModelStore(root), nn.load(artifact)
Path(f"{go}.ready{writer}").touch()
while not os.path.exists(go):
    time.sleep(0.001)
print(" ".join(str(store.publish("race", model, {"writer": int(writer), "n": n})) for n in range(3)))
"""


@pytest.mark.slow  # four publisher processes: left out of `make test-fast`
def test_racing_publisher_processes_get_distinct_versions(store, artifact, tmp_path, rows):
    go = tmp_path / "go"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, str(store.root), str(artifact), str(go), str(w)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(4)
    ]
    deadline = time.monotonic() + 60
    while not all(Path(f"{go}.ready{w}").exists() for w in range(4)) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()  # release all writers at once
    published = []
    for proc in writers:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        published += [int(v) for v in out.split()]
    assert sorted(published) == list(range(1, 13))
    assert store.versions("race") == list(range(1, 13))
    seen = set()
    for info in store.version_info("race"):
        assert info.ok, info.error
        seen.add((info.manifest["writer"], info.manifest["n"]))
        model = store.load("race", info.version).estimator
        np.testing.assert_array_equal(model.predict(rows[0]), nn.load(artifact).predict(rows[0]))
    assert len(seen) == 12  # no publisher overwrote another
    assert not any(p.name.startswith(".tmp-") for p in (store.root / "race").iterdir())


CRASH = """
import os, sys
import nn
from service.store import FileModelStore
store = FileModelStore(sys.argv[1])
model = nn.load(sys.argv[2])
os.rename = lambda *args, **kwargs: os._exit(3)  # die between writing the artifact and publishing it
store.publish("iris", model)
"""


def test_crash_between_write_and_rename_leaves_store_valid(store, fitted, artifact):
    store.activate("iris", store.publish("iris", fitted))
    result = _run(CRASH, store.root, artifact)
    assert result.returncode == 3, result.stderr
    leftovers = [p for p in (store.root / "iris").iterdir() if p.name.startswith(".tmp-")]
    assert len(leftovers) == 1
    assert {p.name for p in leftovers[0].iterdir()} == {"manifest.json", "weights.npz"}  # fully written, never renamed

    assert store.versions("iris") == [1]
    assert [i.ok for i in store.version_info("iris")] == [True]
    assert store.load("iris").version == 1
    assert store.publish("iris", fitted) == 2  # the lock died with the process

    assert store.clean_temporary() == 0  # too young: could be a publisher at work
    old = time.time() - 2 * 3600
    os.utime(leftovers[0], (old, old))
    assert store.clean_temporary() == 1
    assert not leftovers[0].exists()
    assert store.versions("iris") == [1, 2]


def test_clean_temporary_removes_stale_files_and_dataset_temporaries(store, fitted):
    store.publish("iris", fitted)
    datasets = store.root / "iris" / "datasets"
    datasets.mkdir()
    stale = [store.root / "iris" / ".tmp-active", datasets / ".tmp-abc"]
    fresh = store.root / "iris" / ".tmp-fresh"
    for path in [*stale, fresh]:
        path.write_bytes(b"partial")
    old = time.time() - 2 * 3600
    for path in stale:
        os.utime(path, (old, old))
    assert store.clean_temporary() == 2
    assert not any(p.exists() for p in stale)
    assert fresh.exists()
    assert store.clean_temporary(max_age=0) == 1
    assert store.versions("iris") == [1]


# -- corruption ------------------------------------------------------------------------


def _flip_weights(v: Path, tmp: Path) -> None:
    flip_byte(v / "weights.npz")


def _remove_weights(v: Path, tmp: Path) -> None:
    (v / "weights.npz").unlink()


def _remove_manifest(v: Path, tmp: Path) -> None:
    (v / "manifest.json").unlink()


def _invalid_manifest(v: Path, tmp: Path) -> None:
    (v / "manifest.json").write_text("{not json")


def _manifest_not_an_object(v: Path, tmp: Path) -> None:
    (v / "manifest.json").write_text("[1, 2]")


def _manifest_of_other_version(v: Path, tmp: Path) -> None:
    manifest = json.loads((v / "manifest.json").read_text())
    manifest["version"] = 1
    (v / "manifest.json").write_text(json.dumps(manifest))


def _inconsistent_architecture(v: Path, tmp: Path) -> None:
    manifest = json.loads((v / "manifest.json").read_text())
    manifest["n_outputs"] = 7
    (v / "manifest.json").write_text(json.dumps(manifest))


def _extra_file(v: Path, tmp: Path) -> None:
    (v / "notes.txt").write_text("hello")


def _extra_directory(v: Path, tmp: Path) -> None:
    (v / "sub").mkdir()


def _weights_symlink(v: Path, tmp: Path) -> None:
    shutil.move(v / "weights.npz", tmp / "weights.npz")
    (v / "weights.npz").symlink_to(tmp / "weights.npz")


def _symlink_version_dir(v: Path, tmp: Path) -> None:
    shutil.move(v, tmp / "elsewhere")  # an intact artifact, but not where the store wrote it
    v.symlink_to(tmp / "elsewhere", target_is_directory=True)


def _file_instead_of_dir(v: Path, tmp: Path) -> None:
    shutil.rmtree(v)
    v.write_text("2")


CORRUPTIONS = {
    _flip_weights: "checksum mismatch for weights.npz",
    _remove_weights: "weights.npz is missing",
    _remove_manifest: "manifest.json is missing",
    _invalid_manifest: "not valid JSON",
    _manifest_not_an_object: "JSON object",
    _manifest_of_other_version: "manifest is for 'iris' version 1",
    _extra_file: "does not list: ['notes.txt']",
    _extra_directory: "['sub'] are not regular files",
    _weights_symlink: "['weights.npz'] are not regular files",
    _symlink_version_dir: "symbolic link",
    _file_instead_of_dir: "not a directory",
}


@pytest.mark.parametrize("corrupt", list(CORRUPTIONS), ids=lambda f: f.__name__.strip("_"))
def test_broken_version_is_reported_and_refused(store, fitted, tmp_path, corrupt):
    store.activate("iris", store.publish("iris", fitted))
    assert store.publish("iris", fitted) == 2
    stamp = store.active_stamp("iris")
    corrupt(store.root / "iris" / "2", tmp_path)

    good, bad = store.version_info("iris")
    assert good.ok and good.active
    assert not bad.ok and bad.manifest is None and not bad.active
    assert CORRUPTIONS[corrupt] in bad.error
    assert bad.error.startswith("model 'iris' version 2 is broken: ")
    assert str(store.root) not in bad.error  # no server paths in messages clients may see
    assert store.versions("iris") == [1, 2]

    with pytest.raises(CorruptVersionError, match="version 2 is broken"):
        store.activate("iris", 2)
    assert store.active_stamp("iris") == stamp  # ACTIVE untouched
    with pytest.raises(CorruptVersionError, match="version 2 is broken"):
        store.load("iris", 2)
    with pytest.raises(CorruptVersionError):
        store.manifest("iris", 2)
    assert store.load("iris").version == 1  # the good active model keeps serving
    assert store.publish("iris", fitted) == 3  # a broken number is never reused


def test_inconsistent_manifest_is_refused_on_load(store, fitted, tmp_path):
    """A manifest edit the checksums cannot see (it is not checksummed) still fails the rebuild."""
    store.publish("iris", fitted)
    _inconsistent_architecture(store.root / "iris" / "1", tmp_path)
    with pytest.raises(CorruptVersionError, match=r"model 'iris' version 1 is broken: .*outputs"):
        store.load("iris", 1)


def test_publish_never_writes_into_an_existing_version_dir(store, fitted):
    store.publish("iris", fitted)
    squatter = store.root / "iris" / "2"
    squatter.mkdir()
    (squatter / "mine").write_text("keep")
    assert store.publish("iris", fitted) == 3
    assert (squatter / "mine").read_text() == "keep"
    assert [i.ok for i in store.version_info("iris")] == [True, False, True]


def test_missing_version_is_not_found(store, fitted):
    store.publish("iris", fitted)
    with pytest.raises(NotFoundError, match="has no version 5"):
        store.activate("iris", 5)
    with pytest.raises(NotFoundError, match="has no version 5"):
        store.load("iris", 5)
    assert store.active_version("iris") is None


def test_active_naming_a_missing_version(store, fitted):
    store.activate("iris", store.publish("iris", fitted))
    (store.root / "iris" / "ACTIVE").write_text("7\n")
    assert store.active_version("iris") == 7
    with pytest.raises(CorruptVersionError, match="ACTIVE names version 7, which is missing"):
        store.load("iris")
    assert [i.active for i in store.version_info("iris")] == [False]
    shutil.rmtree(store.root / "iris" / "1")
    (store.root / "iris" / "ACTIVE").write_text("1\n")
    with pytest.raises(CorruptVersionError, match="ACTIVE names version 1"):
        store.load("iris")


def test_active_naming_a_broken_version(store, fitted):
    store.activate("iris", store.publish("iris", fitted))
    flip_byte(store.root / "iris" / "1" / "weights.npz")
    with pytest.raises(CorruptVersionError, match="version 1 is broken: checksum mismatch"):
        store.load("iris")


@pytest.mark.parametrize("content", [b"abc\n", b"", b"01\n", b"-1", b"\xff\xfe", b"1e3"])
def test_unreadable_active_is_corrupt(store, fitted, content):
    store.publish("iris", fitted)
    (store.root / "iris" / "ACTIVE").write_bytes(content)
    with pytest.raises(CorruptVersionError, match="ACTIVE does not hold a version number"):
        store.active_version("iris")
    with pytest.raises(CorruptVersionError):
        store.load("iris")
    assert [i.active for i in store.version_info("iris")] == [False]  # listing still works
    store.activate("iris", 1)  # and activation repairs it
    assert store.load("iris").version == 1


def test_symlinked_active_is_refused_and_replaced_by_activate(store, fitted, tmp_path):
    store.publish("iris", fitted)
    outside = tmp_path / "outside"
    outside.write_text("1\n")
    (store.root / "iris" / "ACTIVE").symlink_to(outside)
    with pytest.raises(CorruptVersionError, match="symbolic link"):
        store.load("iris")
    store.activate("iris", 1)
    assert not (store.root / "iris" / "ACTIVE").is_symlink()
    assert outside.read_text() == "1\n"  # the link's target was never written


# -- names, versions, listing ----------------------------------------------------------

BAD_NAMES = ["..", "../etc", "a/b", "A", "", "x" * 65, "a\0b", ".hidden", "é", 123, None, "abc\n", "-a", "a b", "/abs"]
BAD_VERSIONS = [0, -1, "1e3", "01", True, False, 2**40, 2**31, "abc", "", " 1", "+1", "1.0", 1.0, None, "１", "-0"]


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_bad_names_are_refused_before_any_path_is_built(store, fitted, tmp_path, name):
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(InvalidNameError) as info:
        validate_name(name)
    assert "\n" not in str(info.value)
    calls = [
        lambda: store.publish(name, fitted),
        lambda: store.versions(name),
        lambda: store.version_info(name),
        lambda: store.active_version(name),
        lambda: store.active_stamp(name),
        lambda: store.activate(name, 1),
        lambda: store.load(name),
        lambda: store.manifest(name, 1),
        lambda: store.save_dataset(name, Dataset(np.ones((1, 1)), np.ones(1), ["a"])),
        lambda: store.load_dataset(name, "0" * 64),
    ]
    for call in calls:
        with pytest.raises(InvalidNameError):
            call()
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


@pytest.mark.parametrize("name", ["a", "0", "x" * 64, "iris-v2.1_b", "breast_cancer"])
def test_good_names(name):
    assert validate_name(name) == name


@pytest.mark.parametrize("version", BAD_VERSIONS, ids=repr)
def test_bad_versions_are_refused(store, fitted, version):
    store.publish("iris", fitted)
    with pytest.raises(InvalidNameError):
        validate_version(version)
    for call in (store.activate, store.load, store.manifest):
        if version is None and call == store.load:
            continue  # load(name, None) means the active version
        with pytest.raises(InvalidNameError):
            call("iris", version)


@pytest.mark.parametrize("version", ["2147483648", "99999999999999999999", "9" * 5000, 2**31, 2**70])
def test_a_version_beyond_the_range_says_so_rather_than_how_to_write_it(version):
    with pytest.raises(InvalidNameError, match=r"versions run from 1 to 2147483647") as info:
        validate_version(version)
    assert len(str(info.value)) < 200


@pytest.mark.parametrize(
    ("version", "expected"), [(1, 1), ("1", 1), ("42", 42), (2**31 - 1, 2**31 - 1), (np.int64(3), 3)]
)
def test_good_versions(version, expected):
    assert validate_version(version) == expected
    assert type(validate_version(version)) is int


@pytest.mark.parametrize("digest", ["x" * 64, "A" * 64, "0" * 63, "../" * 21 + "a", 5, None])
def test_bad_dataset_hashes_are_refused(store, digest):
    with pytest.raises(InvalidNameError):
        store.load_dataset("iris", digest)


def test_listing_ignores_what_the_store_did_not_write(store, fitted, tmp_path):
    store.publish("iris", fitted)
    root = store.root
    (root / "jobs.sqlite").write_bytes(b"db")  # a valid-looking name, but a file
    (root / "Bad").mkdir()
    (root / ".hidden").mkdir()
    (root / "empty").mkdir()  # no versions yet (e.g. only a dataset saved)
    (tmp_path / "outside" / "1").mkdir(parents=True)
    (root / "linked").symlink_to(tmp_path / "outside", target_is_directory=True)
    model = root / "iris"
    for junk in ("01", ".tmp-x", "v2", "datasets", "README"):
        (model / junk).mkdir()
    assert store.model_names() == ["iris"]
    assert store.versions("iris") == [1]
    assert store.versions("empty") == []
    with pytest.raises(NotFoundError, match="symbolic link"):
        store.versions("linked")
    with pytest.raises(StoreError, match="symbolic link"):
        store.publish("linked", fitted)
    assert not (tmp_path / "outside" / "2").exists()


def test_unknown_model(store):
    for call in (store.versions, store.version_info, store.active_version, store.load):
        with pytest.raises(NotFoundError, match="unknown model 'nope'"):
            call("nope")
    with pytest.raises(NotFoundError):
        store.load("nope", 1)
    assert store.active_stamp("nope") is None
    assert store.model_names() == []


def test_root_is_created_with_parents(tmp_path):
    store = FileModelStore(tmp_path / "a" / "b" / "store")
    assert store.root.is_dir() and store.root.is_absolute()
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="not a directory"):
        FileModelStore(tmp_path / "file")


# -- datasets ------------------------------------------------------------------------------


def _datasets():
    X = np.random.default_rng(2).normal(size=(6, 3))
    return {
        "str_labels": (Dataset(X, ["a", "bb", "a", "ccc", "bb", "a"], FEATURES), "U"),
        "int_labels": (Dataset(X, np.array([0, 1, 2, 0, 1, 2], dtype=np.int32), FEATURES), "i"),
        "float_2d_targets": (Dataset(X, np.arange(12.0).reshape(6, 2), FEATURES), "f"),
    }


@pytest.mark.parametrize("kind", list(_datasets()))
def test_dataset_round_trip(store, kind):
    dataset, dtype_kind = _datasets()[kind]
    digest = store.save_dataset("iris", dataset)
    assert len(digest) == 64 and digest == store.dataset_sha256(dataset)
    path = store.root / "iris" / "datasets" / f"{digest}.npz"
    with np.load(path, allow_pickle=False) as npz:  # plain arrays only: never object dtype
        assert npz["y"].dtype.kind == dtype_kind
    loaded = store.load_dataset("iris", digest)
    assert loaded.X.dtype == np.float64
    np.testing.assert_array_equal(loaded.X, dataset.X)
    np.testing.assert_array_equal(loaded.y, np.asarray(dataset.y))
    assert loaded.y.dtype.kind == dtype_kind and loaded.y.shape == np.shape(dataset.y)
    assert loaded.feature_names == FEATURES

    stat = path.stat()
    time.sleep(0.01)
    assert store.save_dataset("iris", dataset) == digest  # stable hash, and not rewritten
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)


def test_dataset_hash_depends_on_content_not_representation(store):
    X = np.arange(6.0).reshape(3, 2)
    base = store.dataset_sha256(Dataset(X, np.array(["a", "b", "a"]), ["p", "q"]))
    same = [
        Dataset(X.astype(np.float32), ["a", "b", "a"], ["p", "q"]),
        Dataset(X.tolist(), np.array(["a", "b", "a"], dtype="<U10"), ["p", "q"]),
        Dataset(np.asfortranarray(X), np.array(["a", "b", "a"], dtype=object), ["p", "q"]),
    ]
    assert {store.dataset_sha256(d) for d in same} == {base}
    different = [
        Dataset(X + 1, ["a", "b", "a"], ["p", "q"]),
        Dataset(X, ["a", "b", "b"], ["p", "q"]),
        Dataset(X, ["a", "b", "a"], ["q", "p"]),
        Dataset(X, [0, 1, 0], ["p", "q"]),
        Dataset(X, [0.0, 1.0, 0.0], ["p", "q"]),
    ]
    assert len({base} | {store.dataset_sha256(d) for d in different}) == 6


@pytest.mark.parametrize(
    "dataset",
    [
        Dataset(np.ones((2, 2)), ["a", 1], ["p", "q"]),  # mixed label types
        Dataset(np.ones((2, 2)), ["a"], ["p", "q"]),  # length mismatch
        Dataset(np.ones((2, 2)), [1, 2], ["p"]),  # feature names do not match the columns
        Dataset(np.ones(2), [1, 2], ["p"]),  # X not 2-D
        Dataset(np.ones((0, 2)), [], ["p", "q"]),  # empty
        Dataset(np.array([["a", "b"]]), [1], ["p", "q"]),  # non-numeric X
    ],
)
def test_malformed_datasets_are_refused(store, dataset):
    with pytest.raises(ValueError):
        store.save_dataset("iris", dataset)


def test_corrupt_dataset_is_detected_and_repaired_by_saving_again(store):
    first, _ = _datasets()["str_labels"]
    second, _ = _datasets()["int_labels"]
    a, b = store.save_dataset("iris", first), store.save_dataset("iris", second)
    folder = store.root / "iris" / "datasets"

    shutil.copy(folder / f"{a}.npz", folder / f"{b}.npz")  # a valid file under the wrong hash
    with pytest.raises(CorruptVersionError, match="fails its checksum"):
        store.load_dataset("iris", b)

    flip_byte(folder / f"{a}.npz")
    with pytest.raises(CorruptVersionError, match=a):
        store.load_dataset("iris", a)
    assert store.save_dataset("iris", first) == a  # an identical save repairs the damage
    np.testing.assert_array_equal(store.load_dataset("iris", a).y, first.y)

    (folder / f"{a}.npz").unlink()
    with pytest.raises(NotFoundError, match="has no dataset"):
        store.load_dataset("iris", a)


def test_dataset_with_object_array_is_never_unpickled(store):
    digest = "0" * 64
    folder = store.root / "iris" / "datasets"
    folder.mkdir(parents=True)
    np.savez(folder / f"{digest}.npz", X=np.ones((1, 1)), y=np.array([{"pickled": True}], dtype=object),
             feature_names=np.array(["a"]))  # fmt: skip
    with pytest.raises(CorruptVersionError, match="cannot be read"):
        store.load_dataset("iris", digest)
