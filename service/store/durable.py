"""Durable filesystem primitives for the model store.

A crash must leave either the old state or the new one on disk, never half a
file: data is written to a temporary name in the same directory, fsynced,
renamed over the target, and the directory is fsynced so the rename itself
survives a power cut. Temporary entries share one prefix so listings can skip
them and ``remove_temporaries`` can find what a crashed writer left behind.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

TMP_PREFIX = ".tmp-"
DIR_MODE = 0o755
FILE_MODE = 0o644


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make the entries of directory ``path`` (new names, renames) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_regular(path: Path, limit: int = -1) -> bytes:
    """Bytes of the regular file ``path``; OSError for a symlink, directory or device (never blocks on a FIFO)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        return f.read(limit)


def write_atomic(path: Path, data: bytes, mode: int = FILE_MODE) -> None:
    """Replace ``path`` with ``data`` so readers see the old bytes or the new ones, never a mix."""
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)  # mkstemp creates 0600; other store readers may run as another user
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def make_temp_dir(parent: Path) -> Path:
    """A fresh, uniquely named temporary directory inside ``parent`` (same filesystem, so rename is atomic)."""
    path = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=parent))
    path.chmod(DIR_MODE)
    return path


def ensure_dir(path: Path) -> bool:
    """Create directory ``path`` if missing; True when created. Refuses a symlink or a file in its place."""
    created = False
    try:
        os.mkdir(path, DIR_MODE)
        created = True
    except FileExistsError:
        pass
    if not stat.S_ISDIR(os.lstat(path).st_mode):
        raise NotADirectoryError(f"{path} is a symbolic link or a file, not a directory")
    return created


def remove_entry(path: Path) -> None:
    """Delete a file, symlink or directory tree; a symlink is removed itself, never followed."""
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path)


def remove_temporaries(parent: Path, older_than: float) -> int:
    """Remove the temporary entries of directory ``parent`` last modified before ``older_than`` (epoch seconds).

    Returns how many were removed; a missing or symlinked ``parent`` is skipped.
    """
    if not parent.is_dir() or parent.is_symlink():
        return 0
    with os.scandir(parent) as entries:
        stale = [Path(e.path) for e in entries if e.name.startswith(TMP_PREFIX) and _mtime(e) < older_than]
    removed = 0
    for path in stale:
        try:
            remove_entry(path)
            removed += 1
        except FileNotFoundError:
            pass  # another cleaner was first
    return removed


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on lock file ``path`` (created if missing) across processes.

    Not reentrant: a second ``locked`` on the same path in the same process blocks.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _mtime(entry: os.DirEntry[str]) -> float:
    try:
        return entry.stat(follow_symlinks=False).st_mtime
    except FileNotFoundError:
        return float("inf")
