"""``nnserve init``: a small working catalog (the iris spec and its CSV, shipped as package data)."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import click

from service.cli.options import UserError

EXAMPLE = ("iris.toml", "data/iris.csv")  # the catalog's own iris (tests/cli checks the copies match)


@click.command(short_help="Write a small working catalog (models/iris.toml and its CSV) into DIR.")
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
def init(directory: Path) -> None:
    """Write an example catalog into DIR (default: here): models/iris.toml and models/data/iris.csv.

    Then, in DIR: `nnserve train --all` trains it into ./store and `nnserve serve` serves it.
    Existing files are never overwritten.
    """
    models = directory / "models"
    targets = [models / name for name in EXAMPLE]
    present = [str(t) for t in targets if t.exists()]
    if present:
        raise UserError(f"{', '.join(present)} already exist(s); nothing was written")
    source = resources.files("service.cli") / "example"
    for name, target in zip(EXAMPLE, targets, strict=True):
        target.parent.mkdir(parents=True, exist_ok=True)
        with resources.as_file(source / name) as path:
            shutil.copyfile(path, target)
    click.echo(f"wrote {', '.join(map(str, targets))}")
    click.echo(f"next: cd {directory} && nnserve train --all && nnserve serve")
