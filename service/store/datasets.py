"""Training datasets in the store: an ordered list of content-addressed chunks of rows.

Layout in a model's directory::

    datasets/<sha256>.npz           a dataset written whole (the first one, or one extending nothing stored)
    datasets/<sha256>.json          a dataset extending a whole one: {"format": 2, "sha256", "rows",
                                    "base": {"sha256", "rows"}, "chunks": [{"sha256", "rows"}, ...]}
    datasets/chunks/<sha256>.npz    the appended rows, filed under their own content hash

A dataset is named by the hash of its whole canonical content (``dataset_codec``),
however it is stored, so manifests and older stores read the same. When its
first rows are a dataset already stored (an append retrain), it is written as
that dataset's base and chunks plus one chunk of the new rows, so appending N
rows writes O(N) bytes instead of the whole dataset again. Every
chunk is verified against its hash on read, and the reassembled dataset against
the dataset's hash; a damaged copy is refused on load and rewritten by the next
save of the same content. Writes are atomic: chunks before the list naming them.
"""

from __future__ import annotations

import json
import os
import stat
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from service.store import dataset_codec, durable
from service.store.dataset_codec import Dataset
from service.store.exceptions import CorruptVersionError, NotFoundError, StoreError
from service.store.names import SHA256_TEXT

FOLDER = "datasets"
CHUNKS = "chunks"
FORMAT = 2
PARENT_CANDIDATES = 8  # the largest stored datasets tried as the prefix of a new one


def save(model_dir: Path, name: str, data: Dataset) -> str:
    """File the canonical dataset ``data`` of model ``name`` and return its sha256; an intact copy is kept as is."""
    digest = dataset_codec.sha256(data)
    folder = model_dir / FOLDER
    try:
        for path in (folder, folder / CHUNKS):
            if durable.ensure_dir(path):
                durable.fsync_dir(path.parent)
    except NotADirectoryError:
        raise StoreError(f"model {name!r}: {FOLDER} is not a directory") from None
    try:
        _load(folder, name, digest)
        return digest
    except (NotFoundError, CorruptVersionError):
        pass  # absent, or damaged and repaired below
    parent = _parent(folder, data)
    if parent is None:
        _write(name, folder / f"{digest}.npz", dataset_codec.encode(data))
        return digest
    added = tail(data, parent["rows"])
    chunks = [*parent["chunks"], {"sha256": _save_chunk(folder, name, added), "rows": len(added.X)}]
    listing = {"format": FORMAT, "sha256": digest, "rows": len(data.X), "base": parent["base"], "chunks": chunks}
    _write(name, folder / f"{digest}.json", json.dumps(listing, sort_keys=True).encode())
    return digest


def load(model_dir: Path, name: str, sha256: str) -> Dataset:
    """The dataset of model ``name`` (in ``model_dir``) filed under the validated ``sha256``, verified against it."""
    folder = model_dir / FOLDER
    try:
        mode = os.lstat(folder).st_mode
    except FileNotFoundError:
        raise NotFoundError(f"model {name!r} has no dataset {sha256}") from None
    if not stat.S_ISDIR(mode):  # a symlink out of the store would serve files the store never wrote
        raise CorruptVersionError(f"model {name!r}: {FOLDER} is a symbolic link or a file, not a directory")
    return _load(folder, name, sha256)


def digests(model_dir: Path) -> list[str]:
    """The sha256 of every dataset filed in ``model_dir`` (whole or as a chunk list), sorted."""
    folder = model_dir / FOLDER
    if not folder.is_dir():
        return []
    found = {p.stem for p in folder.iterdir() if p.suffix in (".npz", ".json") and SHA256_TEXT.fullmatch(p.stem)}
    return sorted(found)


def remove(model_dir: Path, digests: set[str], *, dry_run: bool) -> tuple[list[str], int, int]:
    """Delete the datasets ``digests`` but what other datasets build on; returns (datasets gone, files, bytes).

    The caller holds the model's lock, so no save runs meanwhile.
    """
    folder = model_dir / FOLDER
    if not digests or not folder.is_dir():
        return [], 0, 0
    kept_bases: set[str] = set()
    kept_chunks: set[str] = set()
    doomed_chunks: set[str] = set()
    for path in folder.glob("*.json"):
        listing = _listing_or_none(path)
        if listing is None:
            continue
        names = {c["sha256"] for c in listing["chunks"]}
        if path.stem in digests:
            doomed_chunks |= names
        else:
            kept_chunks |= names
            kept_bases.add(listing["base"]["sha256"])
    gone = sorted(d for d in digests if (folder / f"{d}.json").exists() or d not in kept_bases)
    paths = [folder / f"{d}.json" for d in digests] + [folder / f"{d}.npz" for d in digests - kept_bases]
    paths += [folder / CHUNKS / f"{c}.npz" for c in doomed_chunks - kept_chunks]
    freed = files = 0
    for path in paths:
        try:
            freed += os.lstat(path).st_size
        except FileNotFoundError:
            continue
        files += 1
        if not dry_run:
            path.unlink(missing_ok=True)
    if not dry_run:
        durable.fsync_dir(folder)
        if (folder / CHUNKS).is_dir():
            durable.fsync_dir(folder / CHUNKS)
    return gone, files, freed


def _parent(folder: Path, data: Dataset) -> dict[str, Any] | None:
    """Base and chunks of the largest stored dataset that is the first rows of ``data``; None if none is."""
    candidates: list[dict[str, Any]] = []
    for path in folder.glob("*.json"):
        listing = _listing_or_none(path)
        if listing and listing["rows"] < len(data.X):
            candidates.append(listing)
    for path in folder.glob("*.npz"):
        rows = _npz_rows(path)
        if rows is not None and 0 < rows < len(data.X) and SHA256_TEXT.fullmatch(path.stem):
            whole = {"sha256": path.stem, "rows": rows}
            candidates.append({"sha256": path.stem, "rows": rows, "base": whole, "chunks": []})
    return longest_prefix(data, [c for c in candidates if _chunks_present(folder, c)])


def longest_prefix(data: Dataset, candidates: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The candidate (a dict with its ``sha256`` and ``rows``) whose content is the longest first rows of ``data``.

    Only the ``PARENT_CANDIDATES`` largest are hashed, so a save costs a bounded number of prefix hashes.
    """
    ordered = sorted((c for c in candidates if 0 < c["rows"] < len(data.X)), key=lambda c: -c["rows"])
    for candidate in ordered[:PARENT_CANDIDATES]:
        rows = candidate["rows"]
        try:
            prefix = dataset_codec.canonical(Dataset(data.X[:rows], data.y[:rows], data.feature_names))
        except ValueError:
            continue
        if dataset_codec.sha256(prefix) == candidate["sha256"]:
            return candidate
    return None


def tail(data: Dataset, rows: int) -> Dataset:
    """The canonical rows of ``data`` after its first ``rows``: the chunk an append adds."""
    return dataset_codec.canonical(Dataset(data.X[rows:], data.y[rows:], data.feature_names))


def concatenate(parts: list[Dataset], name: str, digest: str) -> Dataset:
    """A dataset's base and chunks put back together, verified against the dataset's ``digest``."""
    try:
        whole = dataset_codec.canonical(
            Dataset(
                np.concatenate([p.X for p in parts]),
                np.concatenate([p.y for p in parts]),
                parts[0].feature_names,
            )
        )
    except ValueError as exc:
        raise CorruptVersionError(
            f"dataset {digest} of model {name!r}: its chunks do not fit together: {exc}"
        ) from None
    if dataset_codec.sha256(whole) != digest:
        raise CorruptVersionError(f"dataset {digest} of model {name!r} fails its checksum: it was modified")
    return whole


def _npz_rows(path: Path) -> int | None:
    """The row count in the header of a stored dataset's X, without reading its data; None if unreadable."""
    try:
        with zipfile.ZipFile(path) as archive, archive.open("X.npy") as f:
            major, _minor = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape = read(f)[0]  # the header only, no data
        return int(shape[0]) if len(shape) == 2 else None
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None


def _chunks_present(folder: Path, listing: dict[str, Any]) -> bool:
    base = (folder / f"{listing['base']['sha256']}.npz").is_file()
    return base and all((folder / CHUNKS / f"{c['sha256']}.npz").is_file() for c in listing["chunks"])


def _save_chunk(folder: Path, name: str, chunk: Dataset) -> str:
    digest = dataset_codec.sha256(chunk)
    path = folder / CHUNKS / f"{digest}.npz"
    try:
        _read_npz(name, path, digest)
        return digest
    except (NotFoundError, CorruptVersionError):
        pass
    _write(name, path, dataset_codec.encode(chunk))
    return digest


def _write(name: str, path: Path, data: bytes) -> None:
    try:
        durable.write_atomic(path, data)
    except OSError as exc:
        raise StoreError(f"model {name!r}: storing dataset file {path.name} failed ({exc.strerror or exc})") from exc


def _load(folder: Path, name: str, digest: str) -> Dataset:
    listing_path = folder / f"{digest}.json"
    try:
        raw = durable.read_regular(listing_path, limit=1 << 24)
    except FileNotFoundError:
        return _read_npz(name, folder / f"{digest}.npz", digest)  # a dataset written whole, or none
    except OSError:
        raise CorruptVersionError(f"dataset {digest} of model {name!r} is a symbolic link or unreadable") from None
    listing = _parse_listing(raw)
    if listing is None or listing["sha256"] != digest:
        raise CorruptVersionError(f"dataset {digest} of model {name!r}: its chunk list is malformed")
    base = listing["base"]["sha256"]
    parts = [_read_npz(name, folder / f"{base}.npz", base)]
    parts += [_read_npz(name, folder / CHUNKS / f"{c['sha256']}.npz", c["sha256"]) for c in listing["chunks"]]
    return concatenate(parts, name, digest)


def _listing_or_none(path: Path) -> dict[str, Any] | None:
    try:
        return _parse_listing(durable.read_regular(path, limit=1 << 24))
    except OSError:
        return None


def _parse_listing(raw: bytes) -> dict[str, Any] | None:
    """A chunk list if ``raw`` is one (hashes validated before they name a file), else None."""
    try:
        listing = json.loads(raw)
        parts = [listing["base"], *listing["chunks"]]
        ok = (
            listing["format"] == FORMAT
            and SHA256_TEXT.fullmatch(listing["sha256"])
            and type(listing["rows"]) is int
            and all(SHA256_TEXT.fullmatch(c["sha256"]) and type(c["rows"]) is int and c["rows"] > 0 for c in parts)
            and sum(c["rows"] for c in parts) == listing["rows"]
        )
    except (ValueError, TypeError, KeyError):
        return None
    return listing if ok else None


def _read_npz(name: str, path: Path, digest: str) -> Dataset:
    try:
        raw = durable.read_regular(path)
    except FileNotFoundError:
        raise NotFoundError(f"model {name!r} has no dataset {digest}") from None
    except OSError:
        raise CorruptVersionError(f"dataset {digest} of model {name!r} is a symbolic link or unreadable") from None
    try:
        data = dataset_codec.decode(raw)
        actual = dataset_codec.sha256(data)
    except (ValueError, TypeError, EOFError, zipfile.BadZipFile) as exc:
        raise CorruptVersionError(f"dataset {digest} of model {name!r} cannot be read: {exc}") from None
    if actual != digest:
        raise CorruptVersionError(f"dataset {digest} of model {name!r} fails its checksum: it was modified")
    return data
