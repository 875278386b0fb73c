"""``ModelStore``: what every store backend keeps, and what the layers above may ask of it.

The embedded backend is the filesystem (``filesystem.py``). ``tests/contract``
runs one suite against every backend, so a new one is proven by passing it.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from service.store.dataset_codec import Dataset
from service.store.inference import LoadedModel

if TYPE_CHECKING:
    from nn.estimators import BaseMLP
    from service.store.retention import GcReport
    from service.store.rollouts import Rollout

__all__ = ["UNSET", "AnnouncesActivations", "CatalogLock", "ModelStore", "Unset", "VersionInfo"]


class Unset(enum.Enum):
    """The type of ``UNSET``: "no expectation", where None already means "no version"."""

    UNSET = "unset"


UNSET = Unset.UNSET


@dataclass(frozen=True)
class VersionInfo:
    """One published version as listed: whether it is active, and its manifest or why it is broken."""

    name: str
    version: int
    active: bool
    manifest: dict[str, Any] | None  # None when broken
    error: str | None  # why it is broken, None when ok

    @property
    def ok(self) -> bool:
        """True when the version passed verification."""
        return self.error is None


class ModelStore(Protocol):
    """Immutable, numbered, checksummed model versions; one active version per model; content-addressed datasets.

    Promises every backend keeps: versions are numbered 1, 2, 3 … per model and
    never change once published; a publish is all or nothing; ``load`` verifies
    every checksum and refuses a damaged artifact with ``CorruptVersionError``;
    names are validated before they touch a path or a query
    (``InvalidNameError``); an unknown model, version or dataset raises
    ``NotFoundError``; a store that cannot be reached raises
    ``StoreUnavailableError``.
    """

    def model_names(self) -> list[str]:
        """Every model with at least one version, sorted."""
        ...

    def versions(self, name: str) -> list[int]:
        """The model's published versions, ascending."""
        ...

    def version_info(self, name: str) -> list[VersionInfo]:
        """Every version with its manifest, or why it is broken, and which one is active."""
        ...

    def active_version(self, name: str) -> int | None:
        """The active version, None when none was activated."""
        ...

    def active_stamp(self, name: str) -> Hashable | None:
        """A cheap token that changes whenever the model's activation changes (for hot-reload pollers)."""
        ...

    def active_stamps(self) -> dict[str, Hashable | None]:
        """``active_stamp`` of every model, read at once (one query where the store is a database)."""
        ...

    def publish(self, name: str, estimator: BaseMLP, metadata: dict[str, Any] | None = None) -> int:
        """Save a fitted estimator as the model's next version; returns its number. Does not activate it."""
        ...

    def activate(self, name: str, version: int, expected: int | Unset | None = UNSET) -> int | None:
        """Make a verified version the active one; returns the version it replaced (None: none was).

        With ``expected``, only if ``expected`` is still the active version (None: none is), decided
        atomically with the switch; otherwise ``ActiveVersionChangedError`` and nothing changes.

        The replaced version is remembered as ``previous_version``; a running rollout ends as ``superseded``.
        """
        ...

    def rollout(self, name: str) -> Rollout | None:
        """The model's running rollout, or its last ended one; None if it never had one."""
        ...

    def start_rollout(self, name: str, rollout: Rollout) -> None:
        """Start ``rollout`` (after loading its candidate) while its baseline is the active version.

        ``ActiveVersionChangedError`` when another version is active, ``RolloutConflictError`` while another
        rollout runs. The change shows in ``active_stamp``, so every web worker routes by it.
        """
        ...

    def end_rollout(self, name: str, ended: Rollout) -> None:
        """End the running rollout (the one ``ended`` started as) with ``ended``'s state and reason.

        A ``promoted`` rollout activates its candidate in the same step, compare-and-swap on its baseline
        (``ActiveVersionChangedError``); ``RolloutConflictError`` when that rollout is not running.
        """
        ...

    def previous_version(self, name: str) -> int | None:
        """The version the last ``activate`` replaced (for rollback; retention never removes it), None if none."""
        ...

    def pin(self, name: str, version: int) -> None:
        """Keep ``version`` through every ``gc``; NotFoundError when it does not exist. Pinning twice is a no-op."""
        ...

    def unpin(self, name: str, version: int) -> None:
        """Let ``gc`` remove ``version`` again; unpinning a version that is not pinned is a no-op."""
        ...

    def pinned(self, name: str) -> list[int]:
        """The model's pinned versions, ascending."""
        ...

    def gc(
        self,
        name: str | None = None,
        *,
        keep_versions: int = 0,
        keep_days: float = 0.0,
        dry_run: bool = False,
    ) -> GcReport:
        """Remove the versions the retention policy lets go, and the datasets only they used.

        ``name`` None means every model. The choice is ``retention.select``'s
        (shared by every backend): with both rules off (0) nothing goes; the
        active, previous and pinned versions always stay. A dataset (and its
        chunks) goes only when a removed version referenced it and no remaining
        version does, so data uploaded for a job still queued is never touched.
        Removal is crash-safe: a reader sees a version whole or not at all.
        ``dry_run`` reports the same removals and changes nothing.
        """
        ...

    def load(self, name: str, version: int | None = None) -> LoadedModel:
        """A version (default: the active one), verified and rebuilt."""
        ...

    def manifest(self, name: str, version: int) -> dict[str, Any]:
        """A version's verified manifest."""
        ...

    def version_files(self, name: str, version: int) -> dict[str, bytes]:
        """A verified version's files (manifest included), byte for byte, as ``import_version`` takes them."""
        ...

    def import_version(self, name: str, version: int, files: Mapping[str, bytes]) -> bool:
        """Add a version another store published, under its own number; False when this store already has it.

        The files are checked as a loaded version's are (checksums, names, a rebuild) before anything is visible.
        A different version of that number already here raises ``StoreError`` and changes nothing.
        """
        ...

    def dataset_digests(self, name: str) -> list[str]:
        """The sha256 of every dataset of the model, sorted."""
        ...

    def save_dataset(self, name: str, dataset: Dataset) -> str:
        """Keep a model's training data; returns its sha256 (the same data is kept once).

        A dataset that extends one already stored (its first rows are that
        dataset, as an append retrain makes) costs only the rows it adds; its
        sha256 is still the hash of its whole canonical content.
        """
        ...

    def load_dataset(self, name: str, sha256: str) -> Dataset:
        """A dataset saved by ``save_dataset``, verified against its sha256."""
        ...

    def dataset_sha256(self, dataset: Dataset) -> str:
        """The sha256 ``save_dataset`` would file ``dataset`` under, without writing anything."""
        ...

    def ping(self) -> None:
        """Raise ``StoreUnavailableError`` when the store cannot be read (readiness)."""
        ...

    def clean_temporary(self, max_age: float = 3600.0) -> int:
        """Remove what crashed writers left behind, older than ``max_age`` seconds; returns the count."""
        ...


@runtime_checkable
class AnnouncesActivations(Protocol):
    """A store shared by many processes that tells them of activations (and key changes) as they happen, so a
    web worker listens instead of asking on the request path (PostgreSQL's NOTIFY)."""

    def activations(self, timeout: float) -> list[str]:
        """The models activated since the last call (``""``: anything may have changed), waiting up to
        ``timeout`` s for the first."""
        ...


@runtime_checkable
class CatalogLock(Protocol):
    """A store shared by replicas, whose first replica alone trains an empty store's catalog."""

    def catalog_lock(self) -> contextlib.AbstractContextManager[None]:
        """Held while one replica looks for models and trains the catalog; the others wait."""
        ...
