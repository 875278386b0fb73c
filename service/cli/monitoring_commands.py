"""``nnserve monitoring``: the prediction log's retention (here, where the store is)."""

from __future__ import annotations

from pathlib import Path

import click

from service import config
from service.cli.options import UserError, store_exists, store_option
from service.store.monitoring import open_prediction_log


@click.group()
def monitoring() -> None:
    """The prediction log: its retention.

    \b
    Examples:
      nnserve monitoring prune                      keep NNSERVE_LOG_KEEP_ROWS rows and NNSERVE_LOG_KEEP_DAYS days
      nnserve monitoring prune --keep-rows 1000
    """


@monitoring.command(short_help="Remove old rows of the prediction log.")
@click.option(
    "--keep-rows", type=click.IntRange(min=1), help="Keep the newest N rows per model (default NNSERVE_LOG_KEEP_ROWS)."
)
@click.option(
    "--keep-days", type=click.FloatRange(min=0), help="Remove rows older than D days (default NNSERVE_LOG_KEEP_DAYS)."
)
@store_option
def prune(keep_rows: int | None, keep_days: float | None, store_root: Path) -> None:
    """Remove the prediction log's rows beyond the newest N of each model and those older than D days.

    The retraining worker applies the same rule (from the settings) at each of its policy passes.
    """
    if not store_exists(store_root):
        raise UserError(f"{store_root}: no such store")
    settings = config.from_environ()
    rows = keep_rows if keep_rows is not None else int(settings["NNSERVE_LOG_KEEP_ROWS"])
    days = keep_days if keep_days is not None else float(settings["NNSERVE_LOG_KEEP_DAYS"])
    removed = open_prediction_log(store_root, settings["NNSERVE_DATABASE_URL"]).prune(rows, days)
    for name, count in sorted(removed.items()):
        click.echo(f"{name}: {count} rows removed")
    click.echo(f"kept at most {rows} rows per model, none older than {days:g} days; {sum(removed.values())} removed")
