"""The retraining worker's supervisor: ``nnserve serve`` keeps it beside gunicorn, and it keeps the worker running.

It imports the standard library, ``service.logs`` and ``service.config`` only (not numpy, the store or the
CLI): the process costs about a third of the worker's memory. ``python -m service.training.supervisor`` is what the
gunicorn master starts; ``nnserve worker --supervised`` calls ``supervise`` too.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time

from service import config, logs

log = logging.getLogger(__name__)

RESTART_BACKOFF = (1.0, 30.0)  # seconds before the first restart, and the most the wait doubles up to


def supervise(store_root: str | os.PathLike[str], poll_interval: float = 0.5) -> None:
    """Run the worker in a child process and start a new one, with backoff, whenever it dies.

    SIGTERM/SIGINT are passed on to the worker (its job is requeued at the next
    epoch) and end the supervision. A worker that ran a minute before dying
    resets the backoff: a fresh failure, not a crash loop.
    """
    logs.configure(os.environ.get("NNSERVE_LOG_LEVEL") or "info")
    stopping = threading.Event()
    child: subprocess.Popen[bytes] | None = None

    def stop(signum: int, _frame: object) -> None:
        stopping.set()
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    argv = [sys.executable, "-m", "service.cli", "worker", "--store", str(store_root)]
    argv += ["--poll-interval", str(poll_interval)]
    delay = RESTART_BACKOFF[0]
    while not stopping.is_set():
        started = time.monotonic()
        child = subprocess.Popen(argv)
        log.info("retraining worker started (pid %s)", child.pid)
        code = child.wait()
        if stopping.is_set():
            break
        if time.monotonic() - started > 60:
            delay = RESTART_BACKOFF[0]
        log.error("retraining worker (pid %s) exited with status %s; restarting it in %.0f s", child.pid, code, delay)
        stopping.wait(delay)
        delay = min(delay * 2, RESTART_BACKOFF[1])
    if child is not None:
        child.wait()


def main(argv: list[str] | None = None) -> None:
    """``python -m service.training.supervisor [--store DIR] [--poll-interval S]``; the store defaults to
    NNSERVE_STORE, as ``nnserve worker``'s does."""
    parser = argparse.ArgumentParser(prog="python -m service.training.supervisor", description=__doc__)
    parser.add_argument("--store", default=config.value("NNSERVE_STORE"))
    parser.add_argument("--poll-interval", type=float, default=0.5)
    args = parser.parse_args(argv)
    supervise(args.store, args.poll_interval)


if __name__ == "__main__":
    main()
