"""``nnserve explain``: why a version predicted what it did for the rows of a CSV file, from the store."""

from __future__ import annotations

from pathlib import Path

import click

from service import config
from service.cli import console
from service.cli.options import UserError, existing_store, explain_options, naming_store, store_option
from service.server.dataplane import Call, DataPlane, InputError
from service.store import class_named, explanation_answer
from service.training.csvdata import read_csv_features


@click.command(short_help="Explain a model's predictions for the rows of a CSV file.")
@click.argument("name")
@click.argument("file", metavar="FILE.csv", type=click.Path(path_type=Path))
@click.option("--version", "version", type=click.IntRange(min=1), help="Use this version instead of the active one.")
@explain_options
@store_option
def explain_command(
    name: str,
    file: Path,
    version: int | None,
    method: str,
    target: str | None,
    steps: int | None,
    baseline: str | list[float],
    top: int,
    store_root: Path,
) -> None:
    """Explain model NAME's prediction for every row of FILE.csv: each feature's attribution to the
    predicted class's probability (or --target's), or to a regressor's output, from a baseline.

    FILE.csv is read as `nnserve predict` reads it. Integrated gradients (the default) attribute the
    difference between the output at the row and at the baseline; their sum misses it by the printed
    completeness gap.

    \b
    Examples:
      nnserve explain iris flowers.csv
      nnserve explain digits digits.csv --target 3 --baseline zeros --top 5
    """
    most = config.from_environ()["NNSERVE_EXPLAIN_MAX_STEPS"]  # the server's budget holds here too
    plane, call = DataPlane.offline(existing_store(store_root), store_root, explain_max_steps=most), Call("cli")
    with naming_store(store_root):
        loaded = plane.model(name, version, call)
    manifest = loaded.manifest
    X = read_csv_features(file, manifest.get("feature_names"), int(manifest["n_features"]))
    try:
        explained = plane.explain(
            loaded,
            X,
            method=method,
            target=class_named(loaded, target),
            steps=steps,
            baseline=baseline,
            field=str(file),
        )
    except InputError as exc:  # the rows' rules name the file; the others an option
        raise UserError(
            f"{file}: {exc.message}" if exc.field == str(file) else f"--{exc.field}: {exc.message}"
        ) from None
    click.echo(console.explanation_tables(explanation_answer(loaded, explained, baseline), top))


explain_command.name = "explain"
