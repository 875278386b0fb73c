"""Retention: which versions a policy lets go, decided once for every store backend.

A version is kept when any rule keeps it: it is among the newest
``keep_versions`` (0: rule off), it is younger than ``keep_days`` (0: rule
off), it is active, it was active just before (the rollback target), or it is
pinned. With both rules off nothing is removed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from service import config

if TYPE_CHECKING:
    from service.store.protocol import ModelStore

SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class RetentionPolicy:
    """How many versions, and how many days of versions, each model keeps; 0 turns a rule off."""

    keep_versions: int = 0
    keep_days: float = 0.0

    def __post_init__(self) -> None:
        if self.keep_versions < 0 or self.keep_days < 0:
            raise ValueError("keep_versions and keep_days must be 0 (off) or positive")

    @property
    def enabled(self) -> bool:
        """True when at least one rule is on."""
        return self.keep_versions > 0 or self.keep_days > 0

    @classmethod
    def from_settings(cls) -> RetentionPolicy:
        """The policy of ``NNSERVE_KEEP_VERSIONS`` and ``NNSERVE_KEEP_DAYS``."""
        return cls(int(config.value("NNSERVE_KEEP_VERSIONS")), float(config.value("NNSERVE_KEEP_DAYS")))


@dataclass
class GcReport:
    """What a ``gc`` removed (or, with ``dry_run``, would remove)."""

    dry_run: bool
    versions: list[tuple[str, int]] = field(default_factory=list)  # (model, version)
    datasets: list[tuple[str, str]] = field(default_factory=list)  # (model, sha256)
    chunks: int = 0  # dataset chunks no remaining dataset uses
    bytes: int = 0  # bytes freed (a backend that cannot tell reports 0)


def select(
    versions: dict[int, float | None],
    *,
    protected: set[int],
    policy: RetentionPolicy,
    now: float,
) -> list[int]:
    """The versions ``policy`` removes, ascending.

    ``versions`` maps each version to its creation time (epoch seconds; None if
    unknown, which the age rule treats as young); ``protected`` are the active,
    previous and pinned versions.
    """
    if not policy.enabled:
        return []
    ordered = sorted(versions)
    keep = set(protected)
    if policy.keep_versions > 0:
        keep.update(ordered[-policy.keep_versions :])
    if policy.keep_days > 0:
        cutoff = now - policy.keep_days * SECONDS_PER_DAY
        keep.update(v for v, created in versions.items() if created is None or created >= cutoff)
    return [v for v in ordered if v not in keep]


def enforce(store: ModelStore, name: str, policy: RetentionPolicy | None = None) -> GcReport | None:
    """Apply ``policy`` (default: the settings') to model ``name``; None when no rule is on. For the worker."""
    policy = policy or RetentionPolicy.from_settings()
    if not policy.enabled:
        return None
    return store.gc(name, keep_versions=policy.keep_versions, keep_days=policy.keep_days)
