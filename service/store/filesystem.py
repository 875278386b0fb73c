"""The model store: immutable, versioned, checksummed model artifacts on a filesystem.

Layout::

    <root>/<name>/<version>/manifest.json, weights.npz   written once by publish, never modified
    <root>/<name>/ACTIVE                                   the served version, replaced atomically
    <root>/<name>/PREVIOUS, PINNED                         the version ACTIVE replaced; versions gc keeps
    <root>/<name>/ROLLOUT                                  the running or last rollout (JSON), replaced atomically
    <root>/<name>/datasets/<sha256>.json                   a dataset: its ordered chunks (``datasets.py``)
    <root>/<name>/datasets/chunks/<sha256>.npz             content-addressed rows; <sha256>.npz: older datasets
    <root>/<name>/.lock, .tmp-*                            publisher lock, in-flight or crashed writes

Every name and version is validated before a path is built, every read is
verified against the manifest's checksums, nothing is unpickled, and a broken
artifact is reported or refused, never served. The methods below are the seam
(publish/activate/load/watch via ``active_stamp``) a distributed backend would
implement later.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import time
import zipfile
from collections.abc import Callable, Hashable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import nn
from service import tracing
from service.store import artifacts, dataset_codec, datasets, durable, retention
from service.store.dataset_codec import Dataset
from service.store.exceptions import (
    ActiveVersionChangedError,
    CorruptVersionError,
    InvalidNameError,
    NotFoundError,
    RolloutConflictError,
    StoreError,
    StoreUnavailableError,
    broken,
    unavailable,
)
from service.store.inference import LoadedModel
from service.store.names import (
    MAX_VERSION,
    NAME_PATTERN,
    VERSION_TEXT,
    validate_name,
    validate_sha256,
    validate_version,
)
from service.store.protocol import UNSET, Unset, VersionInfo
from service.store.rollouts import Rollout
from service.version import __version__

if TYPE_CHECKING:
    from nn.estimators import BaseMLP
    from service.store.retention import GcReport

__all__ = [
    "CorruptVersionError",
    "Dataset",
    "FileModelStore",
    "InvalidNameError",
    "LoadedModel",
    "NotFoundError",
    "StoreError",
    "StoreUnavailableError",
    "VersionInfo",
    "validate_name",
    "validate_version",
]

ACTIVE = "ACTIVE"
PREVIOUS = "PREVIOUS"
PINNED = "PINNED"
ROLLOUT = "ROLLOUT"
LOCK = ".lock"
STORE_KEYS = ("name", "version", "created_at", "nnserve_version")


def publishable(estimator: BaseMLP, metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """The metadata a version is published with, once checked (every backend's ``publish`` calls this).

    ``ValueError`` for keys the store writes itself, and for weights or recorded metrics that are not
    finite: a diverged training is never a version, whoever publishes it.
    """
    extra = dict(metadata or {})
    clash = sorted(set(STORE_KEYS).intersection(extra))
    if clash:
        raise ValueError(f"metadata may not override {clash}: the store writes them")
    network = getattr(estimator, "network_", None)
    if network is not None and not np.isfinite(network.get_flat_weights()).all():
        raise ValueError("version refused: training diverged: its weights are not finite")
    metrics = extra.get("metrics")
    numbers = metrics.items() if isinstance(metrics, Mapping) else ()
    bad = {k: v for k, v in numbers if isinstance(v, int | float) and not np.isfinite(v)}
    if bad:
        raise ValueError(f"version refused: training diverged: metrics {bad} are not finite")
    return extra


class FileModelStore:
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
                listed = any(VERSION_TEXT.fullmatch(e) or e == ACTIVE for e in os.listdir(entry.path))
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
            raise unavailable(name, exc) from None
        found = (int(e) for e in listing if VERSION_TEXT.fullmatch(e))
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
            raw = durable.read_regular(path, limit=32)
        except FileNotFoundError:
            self._model_dir(name)  # unknown model -> NotFoundError
            return None
        except PermissionError as exc:
            raise unavailable(name, exc) from None
        except OSError:
            raise CorruptVersionError(f"model {name!r}: ACTIVE is a symbolic link or unreadable") from None
        try:
            return validate_version(raw.decode("ascii").strip())
        except (UnicodeDecodeError, InvalidNameError):
            raise CorruptVersionError(f"model {name!r}: ACTIVE does not hold a version number") from None

    def active_stamp(self, name: str) -> Hashable | None:
        """(inode, mtime_ns, size) of ACTIVE and of ROLLOUT from two lstats, None if ACTIVE is absent: a cheap
        change detector for pollers, of the activation and of the rollout."""
        model_dir = self.root / validate_name(name)
        try:
            active = os.stat(model_dir / ACTIVE, follow_symlinks=False)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise unavailable(name, exc) from None
        try:
            rollout = os.stat(model_dir / ROLLOUT, follow_symlinks=False)
        except FileNotFoundError:
            return active.st_ino, active.st_mtime_ns, active.st_size
        except OSError as exc:
            raise unavailable(name, exc) from None
        return active.st_ino, active.st_mtime_ns, active.st_size, rollout.st_ino, rollout.st_mtime_ns

    def active_stamps(self) -> dict[str, Hashable | None]:
        """``active_stamp`` of every model: one lstat each."""
        return {name: self.active_stamp(name) for name in self.model_names()}

    # -- writing -----------------------------------------------------------------
    @tracing.traced("store.publish")
    def publish(self, name: str, estimator: BaseMLP, metadata: dict[str, Any] | None = None) -> int:
        """Write ``estimator`` as the next version (not activated) and return its number.

        The artifact is built in a temporary directory of the model and renamed
        into place under a per-model ``flock``, so racing processes get distinct
        versions and a crash never leaves a half-written version visible.
        """
        name = validate_name(name)
        extra = publishable(estimator, metadata)
        model_dir = self._ensure_model_dir(name)
        with durable.locked(model_dir / LOCK):
            existing = self.versions(name)
            version = existing[-1] + 1 if existing else 1
            if version > MAX_VERSION:
                raise StoreError(f"model {name!r} has no version numbers left")
            target = model_dir / str(version)
            tmp = durable.make_temp_dir(model_dir)
            try:
                stamp = {"name": name, "version": version, "created_at": _utc_now(), "nnserve_version": __version__}
                nn.save(estimator, tmp, metadata={**extra, **stamp})
                durable.fsync_dir(tmp)
                if os.path.lexists(target):  # only a writer bypassing the lock could get here
                    raise StoreError(f"model {name!r} version {version} appeared while publishing; nothing was written")
                os.rename(tmp, target)
            except BaseException as exc:
                with contextlib.suppress(OSError):  # e.g. EIO: clean_temporary removes it later; never a version
                    durable.remove_entry(tmp)
                if isinstance(exc, OSError):  # ENOSPC, EIO, EFBIG...: say what failed, and that nothing is visible
                    raise StoreError(
                        f"model {name!r}: writing version {version} failed ({exc.strerror or exc}); "
                        "nothing was published"
                    ) from exc
                raise
            durable.fsync_dir(model_dir)
        return version

    @tracing.traced("store.activate")
    def activate(self, name: str, version: int, expected: int | Unset | None = UNSET) -> int | None:
        """Point ACTIVE at ``version`` after verifying it; returns the version it replaced (None: none was active).

        A broken or missing version leaves ACTIVE untouched. Verifying means rebuilding it: checksums alone
        pass a crafted file (an object array with its checksum fixed up) that only the loader refuses, and
        ACTIVE must never name what cannot serve. With ``expected``, a compare-and-swap: the switch happens
        only if ``expected`` is still active, else ``ActiveVersionChangedError``. Reading the old version and
        writing the new one hold the model's lock, so two activations never both replace the same version;
        the replaced version is remembered as PREVIOUS (``previous_version``). A running rollout ends as
        ``superseded``: the operator's choice wins over the trial.
        """
        name, version = validate_name(name), validate_version(version)
        self.load(name, version)
        with durable.locked(self._ensure_model_dir(name) / LOCK):
            previous = self._switch(name, version, expected)
            rollout = self._read_rollout(name)
            if rollout is not None and rollout.running:
                reason = f"version {version} was activated while the rollout ran"
                self._write_rollout(name, rollout.ended("superseded", reason, time.time()))
        return previous

    def _switch(self, name: str, version: int, expected: int | Unset | None) -> int | None:
        """Point ACTIVE at ``version`` (compare-and-swap with ``expected``), holding the model's lock."""
        try:
            previous = self.active_version(name)
        except CorruptVersionError:  # a damaged ACTIVE is what this activation repairs
            previous = None
        if not isinstance(expected, Unset) and previous != expected:
            raise ActiveVersionChangedError(
                f"model {name!r}: version {previous} is active, not {expected}; version {version} was not activated"
            )
        if previous is not None and previous != version:
            durable.write_atomic(self.root / name / PREVIOUS, f"{previous}\n".encode())
        durable.write_atomic(self.root / name / ACTIVE, f"{version}\n".encode())
        return previous

    # -- rollouts ----------------------------------------------------------------
    def rollout(self, name: str) -> Rollout | None:
        """The model's running rollout, or its last ended one; None if it never had one."""
        self._model_dir(name)  # an unknown model is NotFoundError, not "no rollout"
        return self._read_rollout(name)

    def start_rollout(self, name: str, rollout: Rollout) -> None:
        """Start ``rollout`` if its baseline is still active and no other rollout runs (see ``ModelStore``)."""
        name = validate_name(name)
        self.load(name, rollout.candidate)
        with durable.locked(self._model_dir(name) / LOCK):
            current = self._read_rollout(name)
            if current is not None and current.running:
                raise RolloutConflictError(
                    f"model {name!r}: the {current.mode} of version {current.candidate} is still running"
                )
            active = self.active_version(name)
            if active != rollout.baseline:
                raise ActiveVersionChangedError(
                    f"model {name!r}: version {active} is active, not {rollout.baseline}; no rollout started"
                )
            self._write_rollout(name, rollout)

    def end_rollout(self, name: str, ended: Rollout) -> None:
        """Record the end of the running rollout; a promoted candidate becomes active in the same locked step."""
        name = validate_name(name)
        if ended.state == "promoted":
            self.load(name, ended.candidate)
        with durable.locked(self._model_dir(name) / LOCK):
            current = self._read_rollout(name)
            if current is None or not current.running or current.started_at != ended.started_at:
                raise RolloutConflictError(f"model {name!r}: that rollout is not running")
            if ended.state == "promoted":
                self._switch(name, ended.candidate, ended.baseline)  # ACTIVE first: a crash leaves it running
            self._write_rollout(name, ended)

    def _read_rollout(self, name: str) -> Rollout | None:
        try:
            raw = durable.read_regular(self.root / name / ROLLOUT, limit=1 << 20)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise unavailable(name, exc) from None
        try:
            return Rollout.from_json(json.loads(raw))
        except (ValueError, AttributeError):
            raise CorruptVersionError(f"model {name!r}: ROLLOUT does not hold a rollout") from None

    def _write_rollout(self, name: str, rollout: Rollout) -> None:
        durable.write_atomic(self.root / name / ROLLOUT, json.dumps(rollout.to_json()).encode())

    def previous_version(self, name: str) -> int | None:
        """The version the last activation replaced, None if none (or unreadable)."""
        numbers = self._read_numbers(self._model_dir(name) / PREVIOUS)
        return numbers[0] if numbers else None

    def pin(self, name: str, version: int) -> None:
        """Keep ``version`` through every ``gc``."""
        name, version = validate_name(name), validate_version(version)
        self._verify_exists(name, version)
        self._update_pins(name, lambda pins: pins | {version})

    def unpin(self, name: str, version: int) -> None:
        """Let ``gc`` remove ``version`` again."""
        name, version = validate_name(name), validate_version(version)
        self._update_pins(name, lambda pins: pins - {version})

    def pinned(self, name: str) -> list[int]:
        """The pinned versions, ascending."""
        return self._read_numbers(self._model_dir(name) / PINNED)

    def gc(
        self,
        name: str | None = None,
        *,
        keep_versions: int = 0,
        keep_days: float = 0.0,
        dry_run: bool = False,
    ) -> GcReport:
        """Remove what the retention policy lets go (see ``ModelStore.gc``), each model under its lock."""
        policy = retention.RetentionPolicy(keep_versions, keep_days)
        report = retention.GcReport(dry_run=dry_run)
        for model in [validate_name(name)] if name is not None else self.model_names():
            model_dir = self._model_dir(model)
            with durable.locked(model_dir / LOCK):
                self._gc_model(model, model_dir, policy, report)
        return report

    def import_version(self, name: str, version: int, files: Mapping[str, bytes]) -> bool:
        """Place another store's version under its own number (``nnserve store copy``); False if already here.

        The files are checked as a publish's would be before they become visible; a different version of that
        number already here is a ``StoreError`` and changes nothing. The directory's time is the manifest's
        ``created_at``, so retention ages a copied version as it did the original.
        """
        name, version = validate_name(name), validate_version(version)
        model_dir = self._ensure_model_dir(name)
        staged = artifacts.stage(model_dir, name, version, files)
        try:
            created = _epoch(json.loads(files[artifacts.MANIFEST]).get("created_at"))
            if created is not None:
                os.utime(staged, (created, created))
            durable.fsync_dir(staged)
            with durable.locked(model_dir / LOCK):
                if os.path.lexists(model_dir / str(version)):
                    if self.version_files(name, version) != dict(files):
                        raise StoreError(f"model {name!r} already has a different version {version}; nothing copied")
                    return False
                os.rename(staged, model_dir / str(version))
                durable.fsync_dir(model_dir)
            return True
        finally:
            if os.path.lexists(staged):
                durable.remove_entry(staged)

    # -- reading -----------------------------------------------------------------
    @tracing.traced("store.load")
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
            raise broken(name, version, artifacts.strip_path(exc, self.root / name / str(version))) from None
        return LoadedModel(name, version, estimator, manifest)

    def manifest(self, name: str, version: int) -> dict[str, Any]:
        """The verified manifest of one version."""
        return self._verify(validate_name(name), validate_version(version))

    def version_files(self, name: str, version: int) -> dict[str, bytes]:
        """A verified version's files, byte for byte (what ``import_version`` of another store takes)."""
        name, version = validate_name(name), validate_version(version)
        return artifacts.read_files(self._model_dir(name) / str(version), name, version)

    # -- datasets ----------------------------------------------------------------
    def save_dataset(self, name: str, dataset: Dataset) -> str:
        """Store ``dataset`` under its canonical sha256 (returned); an intact identical copy is kept as is."""
        name = validate_name(name)
        data = dataset_codec.canonical(dataset)  # an unfit dataset is refused before anything is created
        return datasets.save(self._ensure_model_dir(name), name, data)

    def load_dataset(self, name: str, sha256: str) -> Dataset:
        """The dataset stored under ``sha256``, verified against that hash."""
        name = validate_name(name)
        sha256 = validate_sha256(sha256)
        return datasets.load(self._model_dir(name), name, sha256)  # a symlinked model directory is no model here

    def dataset_digests(self, name: str) -> list[str]:
        """The sha256 of every dataset of the model, sorted."""
        return datasets.digests(self._model_dir(validate_name(name)))

    @staticmethod
    def dataset_sha256(dataset: Dataset) -> str:
        """The hash ``save_dataset`` would file ``dataset`` under, without writing anything."""
        return dataset_codec.sha256(dataset_codec.canonical(dataset))

    # -- maintenance -------------------------------------------------------------
    def ping(self) -> None:
        """Raise ``StoreUnavailableError`` when the store directory cannot be read."""
        try:
            os.listdir(self.root)
        except OSError as exc:
            raise StoreUnavailableError(f"the store {self.root} is not readable: {exc.strerror}") from None

    def clean_temporary(self, max_age: float = 3600.0) -> int:
        """Remove temporary entries older than ``max_age`` seconds (left by crashed writers); returns the count."""
        cutoff = time.time() - max_age
        with os.scandir(self.root) as entries:
            models = [
                Path(e.path) for e in entries if NAME_PATTERN.fullmatch(e.name) and e.is_dir(follow_symlinks=False)
            ]
        parents = (
            models + [m / datasets.FOLDER for m in models] + [m / datasets.FOLDER / datasets.CHUNKS for m in models]
        )
        return sum(durable.remove_temporaries(parent, older_than=cutoff) for parent in parents)

    # -- internals ---------------------------------------------------------------
    def _gc_model(self, name: str, model_dir: Path, policy: retention.RetentionPolicy, report: GcReport) -> None:
        created: dict[int, float | None] = {}
        for v in self.versions(name):
            try:
                created[v] = os.lstat(model_dir / str(v)).st_mtime  # its files' last write: when it was published
            except FileNotFoundError:
                continue
        try:
            active = self.active_version(name)
        except CorruptVersionError:
            active = None
        rollout = self._read_rollout(name)
        candidate = rollout.candidate if rollout is not None and rollout.running else None
        protected = {v for v in (active, self.previous_version(name), candidate) if v is not None}
        protected |= set(self.pinned(name))
        doomed = retention.select(created, protected=protected, policy=policy, now=time.time())
        if not doomed:
            return
        kept_refs = self._dataset_refs(name, [v for v in created if v not in doomed])
        doomed_refs = self._dataset_refs(name, doomed) - kept_refs
        report.versions.extend((name, v) for v in doomed)
        for v in doomed:
            report.bytes += _tree_size(model_dir / str(v))
            if not report.dry_run:
                _remove_crash_safe(model_dir, model_dir / str(v))
        gone, chunks, freed = datasets.remove(model_dir, doomed_refs, dry_run=report.dry_run)
        report.datasets.extend((name, digest) for digest in gone)
        report.chunks += chunks
        report.bytes += freed
        if not report.dry_run:
            durable.fsync_dir(model_dir)

    def _dataset_refs(self, name: str, versions: list[int]) -> set[str]:
        """The datasets the versions name (training rows, evaluation sets), read from their manifests (unreadable
        ones name none)."""
        refs: set[str] = set()
        for version in versions:
            try:
                manifest = json.loads(durable.read_regular(self.root / name / str(version) / artifacts.MANIFEST))
                refs |= dataset_codec.manifest_datasets(manifest)
            except (OSError, ValueError, AttributeError):
                continue
        return refs

    def _read_numbers(self, path: Path) -> list[int]:
        """Version numbers in a small text file, one a line; [] when absent or unreadable."""
        try:
            raw = durable.read_regular(path, limit=1 << 20).decode("ascii")
            return sorted({validate_version(line) for line in raw.split()})
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError, InvalidNameError):
            return []

    def _update_pins(self, name: str, change: Callable[[set[int]], set[int]]) -> None:
        model_dir = self._model_dir(name)
        with durable.locked(model_dir / LOCK):
            pins = sorted(change(set(self._read_numbers(model_dir / PINNED))))
            durable.write_atomic(model_dir / PINNED, "".join(f"{v}\n" for v in pins).encode())

    def _verify_exists(self, name: str, version: int) -> None:
        if version not in self.versions(name):
            raise NotFoundError(f"model {name!r} has no version {version}")

    def _model_dir(self, name: str) -> Path:
        path = self.root / validate_name(name)
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            raise NotFoundError(f"unknown model {name!r}") from None
        except OSError as exc:
            raise unavailable(name, exc) from None
        if not stat.S_ISDIR(mode):
            raise NotFoundError(f"unknown model {name!r}: its store entry is a symbolic link or a file")
        return path

    def _ensure_model_dir(self, name: str) -> Path:
        path = self.root / name
        try:
            created = durable.ensure_dir(path)
        except NotADirectoryError:
            raise StoreError(f"cannot write model {name!r}: its store entry is a symbolic link or a file") from None
        if created:
            durable.fsync_dir(self.root)
        return path

    def _verify(self, name: str, version: int) -> dict[str, Any]:
        """The manifest of a version that passes every check, else NotFoundError or CorruptVersionError."""
        return artifacts.verify(self._model_dir(name) / str(version), name, version)


def _remove_crash_safe(parent: Path, path: Path) -> None:
    """Delete ``path`` by renaming it to a temporary name first: readers see it whole or gone, never half."""
    doomed = parent / f"{durable.TMP_PREFIX}gc-{path.name}-{os.getpid()}-{time.monotonic_ns()}"
    os.rename(path, doomed)
    durable.fsync_dir(parent)
    with contextlib.suppress(OSError):  # what is left is a temporary entry clean_temporary removes later
        durable.remove_entry(doomed)


def _tree_size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        total += sum(os.lstat(os.path.join(dirpath, f)).st_size for f in files)
    return total


def _epoch(stamp: object) -> float | None:
    """Seconds since the epoch of a manifest's ``created_at`` (``_utc_now``'s format), None if it is not one."""
    try:
        return datetime.strptime(str(stamp), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
