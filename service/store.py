"""The model store: immutable, versioned, checksummed model artifacts on a filesystem.

Layout (DESIGN.md section 3)::

    <root>/<name>/<version>/manifest.json, weights.npz   written once by publish, never modified
    <root>/<name>/ACTIVE                                   the served version, replaced atomically
    <root>/<name>/datasets/<sha256>.npz                    content-addressed training data
    <root>/<name>/.lock, .tmp-*                            publisher lock, in-flight or crashed writes

Every name and version is validated before a path is built, every read is
verified against the manifest's checksums, nothing is unpickled, and a broken
artifact is reported or refused, never served. The methods below are the seam
(publish/activate/load/watch via ``active_stamp``) a distributed backend would
implement later.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import re
import stat
import time
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import nn

from . import dataset_codec, fsutil
from .dataset_codec import Dataset

if TYPE_CHECKING:
    from nn.estimators import BaseMLP

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
MAX_VERSION = 2**31 - 1
ACTIVE = "ACTIVE"
LOCK = ".lock"
DATASETS = "datasets"
MANIFEST = "manifest.json"
STORE_KEYS = ("name", "version", "created_at", "nnserve_version")
_VERSION_TEXT = re.compile(r"[1-9][0-9]{0,9}")  # canonical spelling only: no sign, no leading zero, ASCII
_SHA256 = re.compile(r"[0-9a-f]{64}")


class StoreError(Exception):
    """Base of every store error; ``str(exc)`` is one human sentence."""


class InvalidNameError(StoreError):
    """A model name, version or dataset hash that could not be a store entry."""


class NotFoundError(StoreError):
    """An unknown model, version or dataset, or a model with no active version."""


class CorruptVersionError(StoreError):
    """An artifact, dataset or ACTIVE file that fails verification."""


class StoreUnavailableError(StoreError):
    """The store, or a model's directory or ACTIVE file, cannot be read (permissions, I/O): not the request's fault."""


def validate_name(name: object) -> str:
    """``name`` if it is a valid model name; checked before any path is built from it."""
    if not isinstance(name, str):
        raise InvalidNameError(f"a model name must be a string, not {type(name).__name__}")
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidNameError(
            f"invalid model name {name!r}: use 1 to 64 lowercase letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return name


def validate_version(version: object) -> int:
    """``version`` as an int if it is a positive version number (int or canonical decimal string)."""
    if isinstance(version, bool | np.bool_) or not isinstance(version, int | np.integer | str):
        raise InvalidNameError(f"a version must be a positive integer, not {type(version).__name__}")
    if isinstance(version, str):
        if not _VERSION_TEXT.fullmatch(version):
            raise InvalidNameError(f"invalid version {version!r}: write digits only, without sign or leading zeros")
        version = int(version)
    if not 1 <= version <= MAX_VERSION:
        raise InvalidNameError(f"invalid version {version}: versions run from 1 to {MAX_VERSION}")
    return int(version)


@dataclass(frozen=True)
class VersionInfo:
    name: str
    version: int
    active: bool
    manifest: dict[str, Any] | None  # None when broken
    error: str | None  # why it is broken, None when ok

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: int
    estimator: BaseMLP
    manifest: dict[str, Any]


class ModelStore:
    """A filesystem model store rooted at ``root``; safe for many reader and publisher processes."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise StoreError(f"the store root {self.root} is not a directory") from None

    # -- listing ---------------------------------------------------------------
    def model_names(self) -> list[str]:
        """Names of the models with a published version or an ACTIVE file (so an ACTIVE naming a vanished
        version is reported, not silently dropped); anything else in the root is ignored."""
        names = []
        try:
            with os.scandir(self.root) as entries:
                candidates = [e for e in entries if NAME_PATTERN.fullmatch(e.name) and e.is_dir(follow_symlinks=False)]
        except OSError as exc:
            raise StoreUnavailableError(f"the store {self.root} cannot be read ({exc.strerror})") from None
        for entry in candidates:
            try:
                listed = any(_VERSION_TEXT.fullmatch(e) or e == ACTIVE for e in os.listdir(entry.path))
            except FileNotFoundError:
                continue  # removed meanwhile
            except OSError:
                listed = True  # a model directory that cannot be read is listed, so readiness can say why
            if listed:
                names.append(entry.name)
        return sorted(names)

    def versions(self, name: str) -> list[int]:
        """Published version numbers, ascending; broken ones included, temporary entries never."""
        model_dir = self._model_dir(name)
        try:
            listing = os.listdir(model_dir)
        except OSError as exc:
            raise _unavailable(name, exc) from None
        found = (int(e) for e in listing if _VERSION_TEXT.fullmatch(e))
        return sorted(v for v in found if v <= MAX_VERSION)

    def version_info(self, name: str) -> list[VersionInfo]:
        """Every version fully verified; a broken one carries its error instead of a manifest."""
        name = validate_name(name)
        versions = self.versions(name)
        try:
            active = self.active_version(name)
        except CorruptVersionError:
            active = None
        infos = []
        for v in versions:
            try:
                infos.append(VersionInfo(name, v, v == active, self._verify(name, v), None))
            except (CorruptVersionError, NotFoundError) as exc:
                infos.append(VersionInfo(name, v, v == active, None, str(exc)))
        return infos

    def active_version(self, name: str) -> int | None:
        """The version ACTIVE names, None if there is none; CorruptVersionError if ACTIVE is unreadable."""
        path = self.root / validate_name(name) / ACTIVE
        try:
            raw = fsutil.read_regular(path, limit=32)
        except FileNotFoundError:
            self._model_dir(name)  # unknown model -> NotFoundError
            return None
        except PermissionError as exc:
            raise _unavailable(name, exc) from None
        except OSError:
            raise CorruptVersionError(f"model {name!r}: ACTIVE is a symbolic link or unreadable") from None
        try:
            return validate_version(raw.decode("ascii").strip())
        except (UnicodeDecodeError, InvalidNameError):
            raise CorruptVersionError(f"model {name!r}: ACTIVE does not hold a version number") from None

    def active_stamp(self, name: str) -> tuple[int, int, int] | None:
        """(inode, mtime_ns, size) of ACTIVE from one lstat, None if absent: a cheap change detector for pollers."""
        try:
            st = os.stat(self.root / validate_name(name) / ACTIVE, follow_symlinks=False)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _unavailable(name, exc) from None
        return st.st_ino, st.st_mtime_ns, st.st_size

    # -- writing -----------------------------------------------------------------
    def publish(self, name: str, estimator: BaseMLP, metadata: dict[str, Any] | None = None) -> int:
        """Write ``estimator`` as the next version (not activated) and return its number.

        The artifact is built in a temporary directory of the model and renamed
        into place under a per-model ``flock``, so racing processes get distinct
        versions and a crash never leaves a half-written version visible.
        """
        name = validate_name(name)
        extra = dict(metadata or {})
        clash = sorted(set(STORE_KEYS).intersection(extra))
        if clash:
            raise ValueError(f"metadata may not override {clash}: the store writes them")
        model_dir = self._ensure_model_dir(name)
        with fsutil.locked(model_dir / LOCK):
            existing = self.versions(name)
            version = existing[-1] + 1 if existing else 1
            if version > MAX_VERSION:
                raise StoreError(f"model {name!r} has no version numbers left")
            target = model_dir / str(version)
            tmp = fsutil.make_temp_dir(model_dir)
            try:
                stamp = {"name": name, "version": version, "created_at": _utc_now(), "nnserve_version": _nn_version()}
                nn.save(estimator, tmp, metadata={**extra, **stamp})
                fsutil.fsync_dir(tmp)
                if os.path.lexists(target):  # only a writer bypassing the lock could get here
                    raise StoreError(f"model {name!r} version {version} appeared while publishing; nothing was written")
                os.rename(tmp, target)
            except BaseException as exc:
                with contextlib.suppress(OSError):  # e.g. EIO: clean_temporary removes it later; never a version
                    fsutil.remove_entry(tmp)
                if isinstance(exc, OSError):  # ENOSPC, EIO, EFBIG...: say what failed, and that nothing is visible
                    raise StoreError(
                        f"model {name!r}: writing version {version} failed ({exc.strerror or exc}); "
                        "nothing was published"
                    ) from exc
                raise
            fsutil.fsync_dir(model_dir)
        return version

    def activate(self, name: str, version: int) -> None:
        """Point ACTIVE at ``version`` after verifying it; a broken or missing version leaves ACTIVE untouched.

        Verifying means rebuilding it: checksums alone pass a crafted file (an object array with its
        checksum fixed up) that only the loader refuses, and ACTIVE must never name what cannot serve.
        """
        name, version = validate_name(name), validate_version(version)
        self.load(name, version)
        fsutil.write_atomic(self.root / name / ACTIVE, f"{version}\n".encode())

    # -- reading -----------------------------------------------------------------
    def load(self, name: str, version: int | None = None) -> LoadedModel:
        """Rebuild a verified version, by default the active one."""
        name = validate_name(name)
        if version is None:
            active = self.active_version(name)
            if active is None:
                raise NotFoundError(f"model {name!r} has no active version; activate one first")
            try:
                manifest = self._verify(name, active)
            except NotFoundError:
                raise CorruptVersionError(f"model {name!r}: ACTIVE names version {active}, which is missing") from None
            version = active
        else:
            version = validate_version(version)
            manifest = self._verify(name, version)
        try:
            estimator = nn.load(self.root / name / str(version))
        except (nn.ArtifactError, EOFError, zipfile.BadZipFile) as exc:  # nn passes zip errors of crafted files
            raise _broken(name, version, _strip(exc, self.root / name / str(version))) from None
        return LoadedModel(name, version, estimator, manifest)

    def manifest(self, name: str, version: int) -> dict[str, Any]:
        """The verified manifest of one version."""
        return self._verify(validate_name(name), validate_version(version))

    # -- datasets ----------------------------------------------------------------
    def save_dataset(self, name: str, dataset: Dataset) -> str:
        """Store ``dataset`` under its canonical sha256 (returned); an intact identical copy is kept as is."""
        name = validate_name(name)
        data = dataset_codec.canonical(dataset)
        digest = dataset_codec.sha256(data)
        model_dir = self._ensure_model_dir(name)
        datasets = model_dir / DATASETS
        try:
            if fsutil.ensure_dir(datasets):
                fsutil.fsync_dir(model_dir)
        except NotADirectoryError:
            raise StoreError(f"model {name!r}: {DATASETS} is not a directory") from None
        path = datasets / f"{digest}.npz"
        try:
            self._read_dataset(name, path, digest)
            return digest
        except (NotFoundError, CorruptVersionError):
            pass  # absent, or damaged and repaired below
        try:
            fsutil.write_atomic(path, dataset_codec.encode(data))
        except OSError as exc:
            raise StoreError(f"model {name!r}: storing dataset {digest} failed ({exc.strerror or exc})") from exc
        return digest

    def load_dataset(self, name: str, sha256: str) -> Dataset:
        """The dataset stored under ``sha256``, verified against that hash."""
        name = validate_name(name)
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
            raise InvalidNameError(f"invalid dataset hash {sha256!r}: expected 64 lowercase hex digits")
        folder = self._model_dir(name) / DATASETS  # a symlinked model directory is no model of this store
        try:
            mode = os.lstat(folder).st_mode
        except FileNotFoundError:
            raise NotFoundError(f"model {name!r} has no dataset {sha256}") from None
        if not stat.S_ISDIR(mode):  # a symlink out of the store would serve files the store never wrote
            raise CorruptVersionError(f"model {name!r}: {DATASETS} is a symbolic link or a file, not a directory")
        return self._read_dataset(name, folder / f"{sha256}.npz", sha256)

    @staticmethod
    def dataset_sha256(dataset: Dataset) -> str:
        """The hash ``save_dataset`` would file ``dataset`` under, without writing anything."""
        return dataset_codec.sha256(dataset_codec.canonical(dataset))

    # -- maintenance -------------------------------------------------------------
    def clean_temporary(self, max_age: float = 3600.0) -> int:
        """Remove temporary entries older than ``max_age`` seconds (left by crashed writers); returns the count."""
        cutoff = time.time() - max_age
        removed = 0
        with os.scandir(self.root) as entries:
            models = [
                Path(e.path) for e in entries if NAME_PATTERN.fullmatch(e.name) and e.is_dir(follow_symlinks=False)
            ]
        for parent in models + [m / DATASETS for m in models]:
            if not parent.is_dir() or parent.is_symlink():
                continue
            with os.scandir(parent) as entries:
                stale = [Path(e.path) for e in entries if e.name.startswith(fsutil.TMP_PREFIX) and _mtime(e) < cutoff]
            for path in stale:
                try:
                    fsutil.remove_entry(path)
                    removed += 1
                except FileNotFoundError:
                    pass  # another cleaner was first
        return removed

    # -- internals ---------------------------------------------------------------
    def _model_dir(self, name: str) -> Path:
        path = self.root / validate_name(name)
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            raise NotFoundError(f"unknown model {name!r}") from None
        except OSError as exc:
            raise _unavailable(name, exc) from None
        if not stat.S_ISDIR(mode):
            raise NotFoundError(f"unknown model {name!r}: its store entry is a symbolic link or a file")
        return path

    def _ensure_model_dir(self, name: str) -> Path:
        path = self.root / name
        try:
            created = fsutil.ensure_dir(path)
        except NotADirectoryError:
            raise StoreError(f"cannot write model {name!r}: its store entry is a symbolic link or a file") from None
        if created:
            fsutil.fsync_dir(self.root)
        return path

    def _verify(self, name: str, version: int) -> dict[str, Any]:
        """The manifest of a version that passes every check, else NotFoundError or CorruptVersionError."""
        path = self._model_dir(name) / str(version)
        try:
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                raise _broken(name, version, "it is a symbolic link, not a directory the store wrote")
            if not stat.S_ISDIR(mode):
                raise _broken(name, version, "it is not a directory")
            entries = os.listdir(path)
            odd = sorted(e for e in entries if not stat.S_ISREG(os.lstat(path / e).st_mode))
        except FileNotFoundError:
            raise NotFoundError(f"model {name!r} has no version {version}") from None
        except PermissionError as exc:
            raise _unavailable(name, exc) from None
        except OSError as exc:
            raise _broken(name, version, f"it cannot be read ({exc.strerror})") from None
        if odd:
            raise _broken(name, version, f"{odd} are not regular files")
        try:
            manifest = nn.read_manifest(path, verify=True)
        except nn.ArtifactError as exc:
            raise _broken(name, version, _strip(exc, path)) from None
        unexpected = sorted(set(entries) - set(manifest["files"]) - {MANIFEST})
        if unexpected:
            raise _broken(name, version, f"it holds files its manifest does not list: {unexpected}")
        stored_version = manifest.get("version")
        if manifest.get("name") != name or type(stored_version) is not int or stored_version != version:
            raise _broken(name, version, f"its manifest is for {manifest.get('name')!r} version {stored_version!r}")
        return manifest

    def _read_dataset(self, name: str, path: Path, digest: str) -> Dataset:
        try:
            raw = fsutil.read_regular(path)
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


def _unavailable(name: str, exc: OSError) -> StoreUnavailableError:
    return StoreUnavailableError(f"model {name!r} cannot be read from the store ({exc.strerror})")


def _broken(name: str, version: int, why: str) -> CorruptVersionError:
    return CorruptVersionError(f"model {name!r} version {version} is broken: {why}")


def _strip(exc: Exception, path: Path) -> str:
    """nn's message without the absolute path, which is noise to API clients."""
    return str(exc).removeprefix(f"{path}: ")


def _mtime(entry: os.DirEntry[str]) -> float:
    try:
        return entry.stat(follow_symlinks=False).st_mtime
    except FileNotFoundError:
        return float("inf")


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@cache
def _nn_version() -> str:
    try:
        return importlib.metadata.version("nnserve")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"
