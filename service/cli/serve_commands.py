"""``nnserve serve`` and ``nnserve worker``: the long-running processes."""

from __future__ import annotations

from pathlib import Path

import click

from service.cli.model_commands import train
from service.cli.options import models_dir_option, store_option
from service.server.launcher import exec_gunicorn
from service.store import open_store
from service.training.worker import main as run_worker


@click.command(short_help="Serve the HTTP API with gunicorn, and the retraining worker beside it.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (0.0.0.0 in a container).")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), help="gunicorn web workers [default: one per core].")
@click.option(
    "--retrain-worker/--no-retrain-worker",
    default=True,
    show_default=True,
    help="Run the retraining worker process beside gunicorn (off when it runs in its own container).",
)
@models_dir_option
@store_option
@click.pass_context
def serve(
    ctx: click.Context,
    host: str,
    port: int,
    workers: int | None,
    retrain_worker: bool,
    models_dir: Path,
    store_root: Path,
) -> None:
    """Serve predictions, model management and retraining over HTTP.

    An empty store is first filled by training the catalog (--models-dir).
    gunicorn then runs with the repo's config (service/server/gunicorn_conf.py); the
    retraining worker starts and stops with it. SIGTERM stops both gracefully.

    \b
    Examples:
      nnserve serve                          http://127.0.0.1:8000
      nnserve serve --host 0.0.0.0 --workers 2
    """
    if not open_store(store_root).model_names():
        click.echo(f"the store at {store_root} is empty: training the catalog in {models_dir}")
        ctx.invoke(
            train,
            specs=(),
            train_all=True,
            models_dir=models_dir,
            store_root=store_root,
            epochs=None,
            seed=None,
            activate=True,
        )
    exec_gunicorn(host, port, workers, store_root.absolute(), retrain_worker)


@click.command(short_help="Run the retraining worker alone (for a separate container).")
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0.05),
    default=0.5,
    show_default=True,
    help="Seconds between looks at an empty queue.",
)
@click.option("--once", is_flag=True, help="Run the queued jobs, then exit.")
@store_option
def worker(poll_interval: float, once: bool, store_root: Path) -> None:
    """Claim retraining jobs from the store's queue and run them one at a time.

    Jobs left running by a worker that died are marked failed at start. On
    SIGTERM the running job stops at its next epoch and is requeued.
    """
    run_worker(store_root, poll_interval, once)
