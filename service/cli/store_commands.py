"""``nnserve gc``, ``pin``, ``unpin``: retention and the versions it must keep; ``store copy`` between backends."""

from __future__ import annotations

import tempfile
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import click

from service import config
from service.cli.options import UserError, audited, existing_store, naming_store, store_option
from service.store import FileModelStore, ModelStore, configured_audit_log, open_key_store, open_store
from service.store.copy import CHUNK_ROWS, JOB_HISTORY, Beside, copy_beside, copy_store
from service.store.monitoring import open_prediction_log
from service.store.retention import RetentionPolicy
from service.training.jobs import JobQueue, copy_jobs, open_queue


@click.command(short_help="Remove old versions by a retention policy (and the data only they used).")
@click.argument("name", required=False)
@click.option(
    "--keep-versions",
    type=click.IntRange(min=0),
    help="Keep the newest N versions of each model (default NNSERVE_KEEP_VERSIONS; 0: rule off).",
)
@click.option(
    "--keep-days",
    type=click.FloatRange(min=0),
    help="Keep versions younger than D days (default NNSERVE_KEEP_DAYS; 0: rule off).",
)
@click.option("--dry-run", is_flag=True, help="Print what would be removed; change nothing.")
@store_option
def gc(name: str | None, keep_versions: int | None, keep_days: float | None, dry_run: bool, store_root: Path) -> None:
    """Remove the versions of model NAME (or of every model) the policy lets go.

    A version is kept when either rule keeps it; the active version, the one
    active before it and pinned versions are always kept. Training data no
    remaining version uses goes with them. With both rules off nothing is removed.

    \b
    Examples:
      nnserve gc --keep-versions 5 --dry-run
      nnserve gc iris --keep-days 30
    """
    settings = RetentionPolicy.from_settings()
    policy = RetentionPolicy(
        settings.keep_versions if keep_versions is None else keep_versions,
        settings.keep_days if keep_days is None else keep_days,
    )
    if not policy.enabled:
        raise UserError("no retention rule is on: give --keep-versions or --keep-days (or set NNSERVE_KEEP_*)")
    store = existing_store(store_root)
    recording: AbstractContextManager[dict[str, str]] = nullcontext({}) if dry_run else audited(store_root, "gc", name)
    with recording as noted, naming_store(store_root):
        report = store.gc(name, keep_versions=policy.keep_versions, keep_days=policy.keep_days, dry_run=dry_run)
        noted["detail"] = f"{len(report.versions)} versions, {len(report.datasets)} datasets, {report.bytes} bytes"
    verb = "would remove" if dry_run else "removed"
    for model, version in report.versions:
        click.echo(f"{verb} {model} version {version}")
    for model, digest in report.datasets:
        click.echo(f"{verb} {model} dataset {digest}")
    click.echo(
        f"{verb} {len(report.versions)} versions, {len(report.datasets)} datasets, {report.bytes} bytes"
        + (" (dry run: nothing changed)" if dry_run else "")
    )


@click.command(short_help="Keep a version through every gc.")
@click.argument("name")
@click.argument("version", type=click.IntRange(min=1))
@store_option
def pin(name: str, version: int, store_root: Path) -> None:
    """Pin VERSION of model NAME: gc never removes it (until unpinned)."""
    store = existing_store(store_root)
    with naming_store(store_root):
        store.pin(name, version)
    click.echo(f"{name}: version {version} is pinned")


@click.command(short_help="Let gc remove a pinned version again.")
@click.argument("name")
@click.argument("version", type=click.IntRange(min=1))
@store_option
def unpin(name: str, version: int, store_root: Path) -> None:
    """Unpin VERSION of model NAME."""
    store = existing_store(store_root)
    with naming_store(store_root):
        store.unpin(name, version)
    click.echo(f"{name}: version {version} is not pinned")


@click.group(short_help="Whole-store operations: copy between a directory and PostgreSQL.")
def store() -> None:
    """Operations on a whole store."""


@store.command("copy", short_help="Copy versions, datasets, activations, pins, rollouts and keys to another store.")
@click.option(
    "--from", "source", required=True, metavar="DIR|URL", help="The store to read: a directory or a postgresql:// URL."
)
@click.option(
    "--to", "target", required=True, metavar="DIR|URL", help="The store to fill: a directory or a postgresql:// URL."
)
@click.option(
    "--with-history", is_flag=True, help="Copy the prediction log (labels too), finished jobs and the audit log."
)
def copy(source: str, target: str, with_history: bool) -> None:
    """Copy the store at --from into the store at --to, then check the copy by reading it back.

    Versions keep their numbers and bytes, datasets their sha256; the active and previous versions, the
    pins, a running rollout and the API keys (as digests, revoked ones too) follow. --with-history adds the
    prediction log (times, labels and their provenance kept), the finished jobs and the audit log. What is
    not copied (queued or running jobs; without --with-history the history) is named on the last line.
    What the target already holds is left alone, so a copy that was interrupted is finished by running it
    again; a different version (or audit entry) under the same number stops it.

    \b
    Examples:
      nnserve store copy --from ./store --to postgresql://nnserve@db/nnserve
      nnserve store copy --from postgresql://nnserve@db/nnserve --to ./backup
    """
    if source == target:
        raise UserError("--from and --to name the same store")
    jobs = 0
    with tempfile.TemporaryDirectory(prefix="nnserve-copy-") as cache:  # a database endpoint's download cache
        src = _endpoint(source, Path(cache) / "from", must_exist=True)
        dst = _endpoint(target, Path(cache) / "to", must_exist=False)
        report = copy_store(src, dst, progress=click.echo)
        copy_beside(_beside(source, Path(cache) / "from"), _beside(target, Path(cache) / "to"), report, with_history)
        if with_history:  # here, not in copy_beside: the store layer does not know the job queue
            jobs, unfinished = copy_jobs(
                _queue(source, Path(cache) / "from"), _queue(target, Path(cache) / "to"), CHUNK_ROWS
            )
            report.not_copied.remove(JOB_HISTORY)
            if unfinished:
                report.not_copied.append(f"{unfinished} queued or running jobs (they would run again)")
    rollouts = f", running rollouts of {', '.join(report.rollouts)}" if report.rollouts else ""
    history = (
        f", {report.predictions} logged rows, {jobs} jobs, {report.audit_entries} audit entries" if with_history else ""
    )
    click.echo(
        f"copied {report.versions_copied} versions ({report.versions_present} were already there), "
        f"{report.datasets} datasets of {len(report.models)} models{rollouts}, {report.keys} API keys{history}; "
        "the copy checks out"
    )
    click.echo(f"not copied: {'; '.join(report.not_copied) or 'nothing'}")


def _endpoint(where: str, cache: Path, must_exist: bool) -> ModelStore:
    if "://" in where:
        return open_store(cache, where)
    if must_exist and not Path(where).is_dir():
        raise UserError(f"no model store at {where}")
    return FileModelStore(where)


def _queue(where: str, cache: Path) -> JobQueue:
    return open_queue(cache, where) if "://" in where else open_queue(where)


def _beside(where: str, cache: Path) -> Beside:
    root, url = (cache, where) if "://" in where else (Path(where), None)
    root.mkdir(parents=True, exist_ok=True)  # the SQLite logs' directory, for a source with no models
    settings = config.from_environ()
    return Beside(
        open_key_store(root, url),
        configured_audit_log(root, {**settings, "NNSERVE_DATABASE_URL": url}),
        open_prediction_log(root, url, int(settings["NNSERVE_LOG_MAX_BYTES"])),
    )
