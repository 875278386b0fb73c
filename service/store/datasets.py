"""Training datasets in the store: content-addressed files ``<model dir>/datasets/<sha256>.npz``.

A dataset is filed under the hash of its canonical content (``dataset_codec``),
written atomically, and verified against that hash on every read; a damaged
copy is refused on load and rewritten by the next save of the same content.
"""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

from service.store import dataset_codec, durable
from service.store.dataset_codec import Dataset
from service.store.exceptions import CorruptVersionError, NotFoundError, StoreError

FOLDER = "datasets"


def save(model_dir: Path, name: str, data: Dataset) -> str:
    """File the canonical dataset ``data`` of model ``name`` and return its sha256; an intact copy is kept as is."""
    digest = dataset_codec.sha256(data)
    folder = model_dir / FOLDER
    try:
        if durable.ensure_dir(folder):
            durable.fsync_dir(model_dir)
    except NotADirectoryError:
        raise StoreError(f"model {name!r}: {FOLDER} is not a directory") from None
    path = folder / f"{digest}.npz"
    try:
        _read(name, path, digest)
        return digest
    except (NotFoundError, CorruptVersionError):
        pass  # absent, or damaged and repaired below
    try:
        durable.write_atomic(path, dataset_codec.encode(data))
    except OSError as exc:
        raise StoreError(f"model {name!r}: storing dataset {digest} failed ({exc.strerror or exc})") from exc
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
    return _read(name, folder / f"{sha256}.npz", sha256)


def _read(name: str, path: Path, digest: str) -> Dataset:
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
