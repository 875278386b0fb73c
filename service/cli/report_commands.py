"""``nnserve report``: a version's curves, confusion matrix and lineage as one offline HTML file."""

from __future__ import annotations

from pathlib import Path

import click

from service.cli.options import existing_store, naming_store, store_option
from service.server.ui.report import render_report


@click.command(short_help="Write one version's evaluation as a self-contained HTML file.")
@click.argument("name")
@click.option(
    "--version", "version", type=click.IntRange(min=1), default=None, help="Version (default: the active one)."
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    required=True,
    help="HTML file to write.",
)
@store_option
def report(name: str, version: int | None, output: Path, store_root: Path) -> None:
    """Write the report of model NAME (its active version unless --version) to a single HTML file:
    loss curves, held-out confusion matrix or residuals, per-class scores and lineage. It loads no
    URL and runs no script, so it can be mailed or archived as is.

    \b
    Examples:
      nnserve report iris -o iris.html
      nnserve report iris --version 2 -o iris-v2.html
    """
    store = existing_store(store_root)
    with naming_store(store_root):
        html = render_report(store, name, version)
    output.write_text(html, encoding="utf-8")
    click.echo(f"{name}: report written to {output}")
