"""``nnserve export``: a stored version in a format other runtimes load."""

from __future__ import annotations

from pathlib import Path

import click

import nn
from service.cli.options import UserError, existing_store, naming_store, store_option


@click.command(short_help="Export a model version as ONNX, for onnxruntime, Triton and others.")
@click.argument("name")
@click.option("--version", "version", type=click.IntRange(min=1), help="Export this version instead of the active one.")
@click.option("--format", "fmt", type=click.Choice(["onnx"]), default="onnx", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="File to write.")
@store_option
def export(name: str, version: int | None, fmt: str, output: Path, store_root: Path) -> None:
    """Write model NAME (its active version, or --version) as one ONNX graph.

    The graph takes raw feature rows (float32 for float32 models) and does
    what nnserve does: standardisation, every layer, softmax or sigmoid, and
    class labels. Needs the onnx package: pip install 'nnserve[onnx]'.

    \b
    Examples:
      nnserve export iris -o iris.onnx
      nnserve export diabetes --version 2 --format onnx -o diabetes.onnx
    """
    with naming_store(store_root):
        loaded = existing_store(store_root).load(name, version)
    try:
        graph = nn.to_onnx(loaded.estimator)
    except ModuleNotFoundError:
        raise UserError("ONNX export needs the onnx package: pip install 'nnserve[onnx]'") from None
    try:
        output.write_bytes(graph.SerializeToString())
    except OSError as exc:
        raise UserError(f"{output}: cannot write: {exc.strerror}") from None
    click.echo(f"{name}: version {loaded.version} written to {output} ({fmt})")
