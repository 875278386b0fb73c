"""``nnserve serve`` and ``nnserve worker``: the long-running processes."""

from __future__ import annotations

import contextlib
from pathlib import Path

import click

from service import config
from service.cli.model_commands import train
from service.cli.options import UserError, models_dir_option, store_at, store_option
from service.server.launcher import exec_gunicorn
from service.store import CatalogLock
from service.training.supervisor import supervise
from service.training.worker import main as run_worker


@click.command(short_help="Serve the HTTP and gRPC APIs with gunicorn, and the retraining worker beside it.")
@click.option(
    "--host", envvar="NNSERVE_HOST", help="Address to bind (0.0.0.0 in a container) [default: from NNSERVE_BIND]."
)
@click.option(
    "--port", type=click.IntRange(1, 65535), envvar="NNSERVE_PORT", help="Port to bind [default: from NNSERVE_BIND]."
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    envvar="NNSERVE_WORKERS",
    help="gunicorn web workers [default: one per core].",
)
@click.option(
    "--grpc-port",
    type=click.IntRange(0, 65535),
    envvar="NNSERVE_GRPC_PORT",
    help="Port of the Open Inference Protocol over gRPC, on --host; 0 turns it off [default: 8081].",
)
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
    host: str | None,
    port: int | None,
    workers: int | None,
    grpc_port: int | None,
    retrain_worker: bool,
    models_dir: Path,
    store_root: Path,
) -> None:
    """Serve predictions, model management and retraining over HTTP, and predictions over gRPC.

    An empty store is first filled by training the catalog (--models-dir); with no catalog either, it
    serves no model until one is trained (`nnserve train SPEC.toml`).
    gunicorn then runs with the repo's config (service/server/gunicorn_conf.py); the
    retraining worker starts and stops with it. SIGTERM stops both gracefully.

    \b
    Examples:
      nnserve serve                          http://127.0.0.1:8000 (NNSERVE_BIND)
      nnserve serve --host 0.0.0.0 --workers 2
      nnserve serve --grpc-port 0            no gRPC (default: port 8081, docs/grpc.md)

    The address is NNSERVE_BIND (host:port, default 127.0.0.1:8000); --host and
    --port (or NNSERVE_HOST, NNSERVE_PORT) replace its parts.
    """
    bind_host, _, bind_port = str(config.value("NNSERVE_BIND")).rpartition(":")
    if not bind_host or not bind_port.isdigit():
        raise UserError(f"NNSERVE_BIND must be host:port, got {config.value('NNSERVE_BIND')!r}")
    host, port = host or bind_host, port or int(bind_port)
    store = store_at(store_root)
    # Replicas sharing one database take turns here (the PostgreSQL store's advisory lock), so only the
    # first trains an empty database's catalog; a filesystem store belongs to one server and has no lock.
    catalog_lock = store.catalog_lock if isinstance(store, CatalogLock) else contextlib.nullcontext
    with catalog_lock():
        if not store.model_names() and not any(models_dir.glob("*.toml")):
            click.echo(
                f"the store at {store_root} is empty and {models_dir} holds no model spec: serving no model yet "
                "(the dashboard and /healthz, /readyz answer). Add one: write SPEC.toml beside its CSV "
                "(models/README.md of nnserve says how), then `nnserve train SPEC.toml`; the server picks it up."
            )
        elif not store.model_names():
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
    exec_gunicorn(host, port, workers, store_root.absolute(), retrain_worker, grpc_port)


@click.command(short_help="Run the retraining worker alone (for a separate container).")
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0.05),
    default=0.5,
    show_default=True,
    help="Seconds between looks at an empty queue.",
)
@click.option("--once", is_flag=True, help="Run the queued jobs, then exit.")
@click.option(
    "--supervised",
    is_flag=True,
    help="Run it in a child process, restarted with backoff when it dies (serve uses this).",
)
@store_option
def worker(poll_interval: float, once: bool, supervised: bool, store_root: Path) -> None:
    """Claim retraining jobs from the store's queue and run them one at a time.

    Jobs left running by a worker that died are marked failed at start. On
    SIGTERM the running job stops at its next epoch and is requeued.
    """
    if supervised:
        supervise(store_root, poll_interval)
    else:
        run_worker(store_root, poll_interval, once)
