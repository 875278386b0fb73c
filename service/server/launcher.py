"""``nnserve serve``: train the catalog into an empty store, then run gunicorn with the repo's config."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from service import config

CONFIG = Path(__file__).with_name("gunicorn_conf.py")


def gunicorn_argv(host: str, port: int, workers: int | None) -> list[str]:
    """The gunicorn command line for the app with the repo's config file."""
    argv = [sys.executable, "-m", "gunicorn", "-c", str(CONFIG), "--bind", f"{host}:{port}"]
    if workers:
        argv += ["--workers", str(workers)]
    return [*argv, "service.server.wsgi:app"]


def exec_gunicorn(
    host: str, port: int, workers: int | None, store: Path, retrain_worker: bool = True, grpc_port: int | None = None
) -> None:
    """Replace this process with gunicorn, so signals (SIGTERM) reach its master directly.

    With ``retrain_worker`` the gunicorn master starts the retraining worker
    and stops it on exit (hooks in the config file); ``grpc_port`` (None:
    NNSERVE_GRPC_PORT) is where each web worker serves gRPC. NNSERVE_MALLOC_ARENAS
    becomes MALLOC_ARENA_MAX for gunicorn and every process it starts.
    """
    os.environ["NNSERVE_STORE"] = str(store)
    os.environ["NNSERVE_RETRAIN_WORKER"] = "1" if retrain_worker else "0"
    arenas = config.value("NNSERVE_MALLOC_ARENAS")
    if arenas and "MALLOC_ARENA_MAX" not in os.environ:  # read by glibc when the new program starts
        os.environ["MALLOC_ARENA_MAX"] = str(arenas)
    if grpc_port is not None:
        os.environ["NNSERVE_GRPC_PORT"] = str(grpc_port)
    argv = gunicorn_argv(host, port, workers)
    os.execv(argv[0], argv)
