"""Filesystem specifics of appended datasets and gc: bytes on disk, old layouts, crash-safe removal."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import nn
from service.store import CorruptVersionError, Dataset, FileModelStore, dataset_codec

FEATURES = [f"f{i}" for i in range(8)]
APPENDS, ROWS = 50, 500


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def chunk(i: int) -> Dataset:
    rng = np.random.default_rng(i)
    X = rng.normal(size=(ROWS, len(FEATURES)))
    return Dataset(X, np.where(X[:, 0] > 0, "yes", "no"), FEATURES)


@pytest.mark.slow  # many appends measured on disk: left out of `make test-fast`
def test_appending_rows_costs_what_they_add_not_the_whole_dataset(tmp_path: Path) -> None:
    store = FileModelStore(tmp_path / "store")
    X, y = chunk(0).X, chunk(0).y
    store.save_dataset("m", Dataset(X, y, FEATURES))
    one_chunk = du(store.root)
    for i in range(1, APPENDS):
        X, y = np.vstack([X, chunk(i).X]), np.concatenate([y, chunk(i).y])
        digest = store.save_dataset("m", Dataset(X, y, FEATURES))
    grown = du(store.root)
    whole_copies = sum(len(dataset_codec.encode(dataset_codec.canonical(chunk(0)))) * (i + 1) for i in range(APPENDS))
    # linear: about one chunk per append (plus a small chunk list each), where whole copies grow quadratically
    assert grown < 1.3 * APPENDS * one_chunk < whole_copies / 15, (grown, one_chunk, whole_copies)
    back = store.load_dataset("m", digest)
    np.testing.assert_array_equal(back.X, X)
    np.testing.assert_array_equal(back.y, y)


def test_a_dataset_written_whole_by_an_older_store_still_loads_and_is_built_on(tmp_path: Path) -> None:
    store = FileModelStore(tmp_path / "store")
    first = dataset_codec.canonical(chunk(0))
    folder = store.root / "m" / "datasets"
    folder.mkdir(parents=True)
    old_digest = dataset_codec.sha256(first)
    (folder / f"{old_digest}.npz").write_bytes(dataset_codec.encode(first))  # the old layout: one file
    np.testing.assert_array_equal(store.load_dataset("m", old_digest).X, first.X)
    both = Dataset(np.vstack([first.X, chunk(1).X]), np.concatenate([first.y, chunk(1).y]), FEATURES)
    digest = store.save_dataset("m", both)
    listing = json.loads((folder / f"{digest}.json").read_text())
    assert listing["base"] == {"sha256": old_digest, "rows": ROWS} and len(listing["chunks"]) == 1
    np.testing.assert_array_equal(store.load_dataset("m", digest).X, both.X)


def test_a_damaged_chunk_or_chunk_list_is_refused_and_repaired_by_saving_again(tmp_path: Path) -> None:
    store = FileModelStore(tmp_path / "store")
    store.save_dataset("m", chunk(0))
    both = Dataset(np.vstack([chunk(0).X, chunk(1).X]), np.concatenate([chunk(0).y, chunk(1).y]), FEATURES)
    digest = store.save_dataset("m", both)
    folder = store.root / "m" / "datasets"
    (tail,) = (folder / "chunks").iterdir()
    tail.write_bytes(dataset_codec.encode(dataset_codec.canonical(chunk(2))))  # valid rows, wrong ones
    with pytest.raises(CorruptVersionError, match="fails its checksum"):
        store.load_dataset("m", digest)
    assert store.save_dataset("m", both) == digest
    np.testing.assert_array_equal(store.load_dataset("m", digest).X, both.X)
    listing = folder / f"{digest}.json"
    listing.write_text(listing.read_text().replace('"rows": 1000', '"rows": 999'))
    with pytest.raises(CorruptVersionError, match="malformed"):
        store.load_dataset("m", digest)


def test_gc_renames_before_deleting_and_leftovers_are_never_versions(tmp_path: Path, monkeypatch) -> None:
    store = FileModelStore(tmp_path / "store")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 2))
    for seed in range(3):
        store.publish("m", nn.MLPClassifier(hidden_layer_sizes=(2,), max_iter=1, random_state=seed).fit(X, X[:, 0] > 0))
    store.activate("m", 3)
    monkeypatch.setattr("service.store.durable.remove_entry", lambda path: None)  # a crash after the rename
    assert [v for _, v in store.gc("m", keep_versions=1).versions] == [1, 2]
    leftovers = [p.name for p in (store.root / "m").iterdir() if p.name.startswith(".tmp-gc-")]
    assert len(leftovers) == 2 and store.versions("m") == [3]
    monkeypatch.undo()
    old = 0
    for name in leftovers:
        os.utime(store.root / "m" / name, (old, old))
    assert store.clean_temporary() == 2
    assert sorted(os.listdir(store.root / "m")) == [".lock", "3", "ACTIVE"]
