"""``nnserve gc``, ``pin`` and ``unpin``: retention of old versions and the versions it must keep."""

from __future__ import annotations

from pathlib import Path

import click

from service.cli.options import UserError, existing_store, naming_store, store_option
from service.store.retention import RetentionPolicy


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
    with naming_store(store_root):
        report = store.gc(name, keep_versions=policy.keep_versions, keep_days=policy.keep_days, dry_run=dry_run)
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
