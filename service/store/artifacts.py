"""Verification of a published version's directory: is it exactly what ``ModelStore.publish`` wrote?

A version passes when it is a real directory (no symlink) holding only regular
files, its manifest's checksums match every file it lists, it holds nothing the
manifest does not list, and the manifest names this model and version.
Rebuilding the estimator (``nn.load``) is the last check, done by the store.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nn
from service.store import durable
from service.store.exceptions import NotFoundError, broken, unavailable

MANIFEST = "manifest.json"
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # what a version's file may be called


def verify(path: Path, name: str, version: int) -> dict[str, Any]:
    """The manifest of version ``version`` of ``name`` at ``path`` if it passes every check.

    NotFoundError when it is absent, StoreUnavailableError when permissions
    forbid reading it, CorruptVersionError for anything else.
    """
    try:
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode):
            raise broken(name, version, "it is a symbolic link, not a directory the store wrote")
        if not stat.S_ISDIR(mode):
            raise broken(name, version, "it is not a directory")
        entries = os.listdir(path)
        odd = sorted(e for e in entries if not stat.S_ISREG(os.lstat(path / e).st_mode))
    except FileNotFoundError:
        raise NotFoundError(f"model {name!r} has no version {version}") from None
    except PermissionError as exc:
        raise unavailable(name, exc) from None
    except OSError as exc:
        raise broken(name, version, f"it cannot be read ({exc.strerror})") from None
    if odd:
        raise broken(name, version, f"{odd} are not regular files")
    try:
        manifest = nn.read_manifest(path, verify=True)
    except nn.ArtifactError as exc:
        raise broken(name, version, strip_path(exc, path)) from None
    unexpected = sorted(set(entries) - set(manifest["files"]) - {MANIFEST})
    if unexpected:
        raise broken(name, version, f"it holds files its manifest does not list: {unexpected}")
    stored_version = manifest.get("version")
    if manifest.get("name") != name or type(stored_version) is not int or stored_version != version:
        raise broken(name, version, f"its manifest is for {manifest.get('name')!r} version {stored_version!r}")
    return manifest


def read_files(path: Path, name: str, version: int) -> dict[str, bytes]:
    """Every file of the verified version at ``path``, byte for byte, each checked against the manifest as read."""
    manifest = verify(path, name, version)
    try:
        files = {f: durable.read_regular(path / f) for f in [MANIFEST, *manifest["files"]]}
    except FileNotFoundError:
        raise NotFoundError(f"model {name!r} has no version {version}") from None  # removed meanwhile
    except OSError as exc:
        raise unavailable(name, exc) from None
    for filename, digest in manifest["files"].items():
        if hashlib.sha256(files[filename]).hexdigest() != digest:
            raise broken(name, version, f"{filename} changed while it was read")
    return files


def stage(parent: Path, name: str, version: int, files: Mapping[str, bytes]) -> Path:
    """Write ``files`` into a new temporary directory of ``parent`` and check them as version ``version`` of ``name``.

    The checks are ``verify``'s and a rebuild, as for a version the store wrote itself; anything else raises
    ``CorruptVersionError`` and leaves nothing behind. The caller renames the returned directory into place or
    removes it.
    """
    odd = sorted(f for f in files if not FILE_NAME.fullmatch(f))
    if odd:
        raise broken(name, version, f"it names files that are not plain file names: {odd}")
    tmp = durable.make_temp_dir(parent)
    try:
        for filename, data in files.items():
            (tmp / filename).write_bytes(data)
        verify(tmp, name, version)
        try:
            nn.load(tmp)
        except (nn.ArtifactError, EOFError, zipfile.BadZipFile) as exc:
            raise broken(name, version, strip_path(exc, tmp)) from None
    except BaseException:
        durable.remove_entry(tmp)
        raise
    return tmp


def strip_path(exc: Exception, path: Path) -> str:
    """nn's message for ``exc`` without the absolute ``path``, which is noise to API clients."""
    return str(exc).removeprefix(f"{path}: ")
