"""Copying one store into another (``nnserve store copy``): every version, dataset, activation, pin and
running rollout.

Versions keep their numbers and their bytes (so their checksums), datasets their sha256. What is already
in the target and identical is left alone, so an interrupted copy is finished by running it again; a
different version under the same number stops the copy before anything of that model's activation changes.
The copy is verified by reading everything back from the target. What it does not copy is named in its
report (``NOT_COPIED``, and the records of rollouts that already ended), never dropped silently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from service import config
from service.store.audit import AuditEntry, AuditLog
from service.store.exceptions import StoreError
from service.store.keys import KeyStore
from service.store.monitoring import FEEDBACK_SECRET, PredictionLog
from service.store.protocol import ModelStore

# What a store holds beside its models that ``copy_store`` leaves behind: history, not what serves.
PREDICTION_LOG, JOB_HISTORY, AUDIT_LOG = "the prediction log and its labels", "the job history", "the audit log"
NOT_COPIED = (PREDICTION_LOG, JOB_HISTORY, AUDIT_LOG)
CHUNK_ROWS = int(config.value("NNSERVE_COPY_CHUNK_ROWS", {}))  # the settings' default


@dataclass
class CopyReport:
    """What ``copy_store`` did, per model."""

    models: list[str] = field(default_factory=list)
    versions_copied: int = 0
    versions_present: int = 0  # already in the target, byte for byte
    datasets: int = 0
    activated: list[tuple[str, int]] = field(default_factory=list)
    rollouts: list[str] = field(default_factory=list)  # models whose running rollout was copied
    not_copied: list[str] = field(default_factory=lambda: list(NOT_COPIED))
    keys: int = 0  # API keys added to the target
    audit_entries: int | None = None  # audit entries added (None: the audit log was not copied)
    predictions: int | None = None  # prediction log rows added (None: the log was not copied)


@dataclass(frozen=True)
class Beside:
    """What a store keeps beside its models that ``copy_beside`` copies: its keys and its history."""

    keys: KeyStore
    audit: AuditLog
    predictions: PredictionLog


def copy_store(source: ModelStore, target: ModelStore, progress: Callable[[str], None] = lambda _: None) -> CopyReport:
    """Copy every model of ``source`` into ``target``, then verify the target against the source.

    The target's activation of a model is set to the source's (its previous version first, so rollback
    targets match) only where it differs: copy into a store that replicas already serve and they switch
    to the source's versions. A running rollout is started in the target as it is (same start, fraction and
    limits), so it runs on there; another one the target runs already stops the copy (``RolloutConflictError``).
    Raises ``StoreError`` (a ``CorruptVersionError`` for a damaged source version) and stops at the first
    problem.
    """
    report = CopyReport()
    for name in source.model_names():
        report.models.append(name)
        for version in source.versions(name):
            if target.import_version(name, version, source.version_files(name, version)):
                report.versions_copied += 1
            else:
                report.versions_present += 1
        # Shortest first: a dataset that extends one already copied costs only the rows it adds.
        for data in sorted(
            (source.load_dataset(name, d) for d in source.dataset_digests(name)), key=lambda d: len(d.X)
        ):
            target.save_dataset(name, data)
            report.datasets += 1
        active, previous = source.active_version(name), source.previous_version(name)
        if active is not None and target.active_version(name) != active:
            if previous is not None and previous != active:
                target.activate(name, previous)
            target.activate(name, active)
            report.activated.append((name, active))
        for version in source.pinned(name):
            target.pin(name, version)
        rollout = source.rollout(name)
        if rollout is not None and rollout.running:  # it runs on in the target (its baseline is active there now)
            if target.rollout(name) != rollout:
                target.start_rollout(name, rollout)
            report.rollouts.append(name)
        elif rollout is not None:
            report.not_copied.append(f"the record of {name}'s ended {rollout.mode} of version {rollout.candidate}")
        progress(f"{name}: {len(source.versions(name))} versions, active {active}")
    verify_copy(source, target)
    return report


def verify_copy(source: ModelStore, target: ModelStore) -> None:
    """Raise ``StoreError`` unless ``target`` holds every version (byte for byte), dataset, activation, pin and
    running rollout of ``source``; every read is verified against its checksums on the way."""
    for name in source.model_names():
        for version in source.versions(name):
            if target.version_files(name, version) != source.version_files(name, version):
                raise StoreError(f"copy check failed: model {name!r} version {version} differs in the target")
        missing = set(source.dataset_digests(name)) - set(target.dataset_digests(name))
        if missing:
            raise StoreError(f"copy check failed: model {name!r} lacks datasets {sorted(missing)} in the target")
        for digest in source.dataset_digests(name):
            target.load_dataset(name, digest)  # verified against its sha256
        if target.active_version(name) != source.active_version(name):
            raise StoreError(f"copy check failed: model {name!r} has another active version in the target")
        if not set(source.pinned(name)) <= set(target.pinned(name)):
            raise StoreError(f"copy check failed: model {name!r} lacks pins in the target")
        rollout = source.rollout(name)
        if rollout is not None and rollout.running and target.rollout(name) != rollout:
            raise StoreError(f"copy check failed: model {name!r} lacks its running {rollout.mode} in the target")


def copy_beside(source: Beside, target: Beside, report: CopyReport, with_history: bool) -> None:
    """After ``copy_store``: the API keys always (the target serves the same clients), and with ``with_history``
    the prediction log (with the feedback tokens' secret) and the audit log; what was copied moves from
    ``report.not_copied`` to its counts."""
    report.keys = copy_keys(source.keys, target.keys)
    if with_history:
        report.predictions = copy_predictions(source.predictions, target.predictions)
        report.not_copied.remove(PREDICTION_LOG)
        if source.predictions.export(0, 1):  # a log with rows has a secret (a rerun checks it again)
            secret = source.predictions.secret(FEEDBACK_SECRET)
            kept = target.predictions.import_secret(FEEDBACK_SECRET, secret)
            if not kept and target.predictions.secret(FEEDBACK_SECRET) != secret:
                report.not_copied.append("the feedback tokens' secret (the target has its own)")
        report.audit_entries = copy_audit(source.audit, target.audit)
        report.not_copied.remove(AUDIT_LOG)


def copy_keys(source: KeyStore, target: KeyStore) -> int:
    """Add the API keys the target lacks (by id), revoked ones too, so it serves the source's clients: only
    SHA-256 digests of the secrets are stored, so copying them reveals no key. Returns how many were added."""
    return target.import_records(source.records())


def copy_audit(source: AuditLog, target: AuditLog, chunk_rows: int = CHUNK_ROWS) -> int:
    """Add every entry of the source's audit log that the target lacks (by ``seq``), ``chunk_rows`` at a time,
    keeping numbers and times. Returns how many were added; raises ``StoreError`` if the target holds another
    entry under a source entry's number (its own history: copy into a new store instead)."""
    added, after = 0, 0
    while chunk := source.export(after, chunk_rows):
        added += target.import_entries(chunk)
        there = _audit_between(target, after, chunk[-1].seq, chunk_rows)
        taken = [e.seq for e in chunk if there.get(e.seq) != e]
        if taken:
            raise StoreError(f"copy check failed: the target's audit log has other entries numbered {taken[:5]}")
        after = chunk[-1].seq
    return added


def copy_predictions(source: PredictionLog, target: PredictionLog, chunk_rows: int = CHUNK_ROWS) -> int:
    """Add every row of the source's prediction log that the target lacks, ``chunk_rows`` at a time and in the
    source's order, keeping times and labels with their provenance. Returns how many were added."""
    added, after = 0, 0
    while chunk := source.export(after, chunk_rows):
        added += target.import_rows([row for _, row in chunk])
        after = chunk[-1][0]
    return added


def _audit_between(log: AuditLog, after: int, last: int, chunk_rows: int) -> dict[int, AuditEntry]:
    """``log``'s entries numbered above ``after`` up to ``last``, by number."""
    found: dict[int, AuditEntry] = {}
    while rows := log.export(after, chunk_rows):
        found.update((e.seq, e) for e in rows if e.seq <= last)
        if rows[-1].seq >= last:
            break
        after = rows[-1].seq
    return found
