"""``nnserve``: train catalog models into the store, list them, roll versions, predict offline.

Each command lives in the module of its concern (``cli_models``: train, models,
activate, predict; ``cli_serve``: serve, worker) and what they share in
``cli_options``; this module is the ``nnserve`` group and its error handling.
Errors a user can fix (a bad spec, an unknown model, a bad CSV, a corrupt
version) end with exit code 1 and one line on stderr; click's usage errors end
with 2. A new command is a ``@click.command()`` added to ``main`` below, and
gets the same error handling.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

import nn
from service.cli.audit_commands import audit
from service.cli.db_commands import db
from service.cli.explain_commands import explain_command
from service.cli.export_commands import export
from service.cli.init_commands import init
from service.cli.keys_commands import keys
from service.cli.model_commands import activate, models, predict, train
from service.cli.monitoring_commands import feedback, monitoring
from service.cli.options import UserError
from service.cli.remote_commands import openapi, remote
from service.cli.report_commands import report
from service.cli.serve_commands import serve, worker
from service.cli.store_commands import gc, pin, store, unpin
from service.config import ConfigError
from service.store import StoreError
from service.training.catalog import SpecError
from service.training.csvdata import CSVError

# Errors that mean "fix your input or your files", not "nnserve has a bug".
USER_ERRORS = (SpecError, CSVError, StoreError, nn.ArtifactError, OSError, ConfigError)


class NnserveGroup(click.Group):
    """Turns the user errors of any subcommand into a one-line message and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:  # `nnserve predict ... | head`: the reader left; stop quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(1)
        except USER_ERRORS as exc:
            raise UserError(exc) from None


@click.group(cls=NnserveGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="nnserve", prog_name="nnserve")
def main() -> None:
    """Train small neural networks from CSV files and keep them as versioned models.

    \b
    Models are described by TOML specs in models/ (see models/README.md) and
    published into a store directory (--store, else NNSERVE_STORE, else ./store)
    as immutable, checksummed versions; one version per model is active.

    \b
    Examples:
      nnserve train models/iris.toml        train, evaluate, publish, activate
      nnserve train --all                   the whole catalog in models/
      nnserve models                        what the store holds
      nnserve predict iris flowers.csv      predictions of the active iris model
      nnserve activate iris 1               roll iris back to version 1
      nnserve report iris -o iris.html      curves and evaluation as one HTML file
      nnserve export iris -o iris.onnx      the active iris model as an ONNX graph
      nnserve gc --keep-versions 5 --dry-run  what retention would remove
      nnserve store copy --from ./store --to postgresql://...  move a store to PostgreSQL
      nnserve remote models                 the models a running server (NNSERVE_URL) serves
      nnserve monitoring iris               live metrics and drift of iris on a running server
      nnserve feedback iris labels.csv      ground truth (request_id,target) for logged predictions
      nnserve keys create app --scope predict  an API key (printed once)
    """


for command in (
    train,
    models,
    activate,
    predict,
    export,
    report,
    serve,
    worker,
    gc,
    pin,
    unpin,
    store,
    remote,
    openapi,
    db,
    monitoring,
    feedback,
    keys,
    audit,
    init,
    explain_command,
):
    main.add_command(command)
