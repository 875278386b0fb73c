"""gunicorn worker class / workers / threads for nnserve, measured with wrk on loopback, in one bounded run.

    .venv/bin/python bench/gunicorn_settings.py [--seconds 5] [--rounds 2]

Starts one gunicorn per contender (all with ``service/server/gunicorn_conf.py``,
the class/workers/threads overridden on the command line) on a store with
the iris model, then, contenders interleaved and rounds repeated (medians kept):

- ``1 row c16`` / ``1 row c64``: one-row iris predicts, wrk -t2 at 16 and 64 connections;
- ``slow clients``: the same wrk -c16 load while 4 other clients upload
  their request bodies slowly (10 bytes every 0.25 s, 5 s a request, what a
  buffering proxy would absorb before the app sees the request);
- ``recycling``: wrk -c64 for 3x the run length with ``--max-requests 300
  --max-requests-jitter 100`` (dozens of worker restarts): non-2xx and socket
  errors must stay 0.

Prints a table and writes ``bench/results/gunicorn_settings.md``. Needs ``wrk``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import (
    bench_env,
    free_port,
    medians,
    rows,
    timed_rounds_args,
    train_store,
    wait_ready,
    write_body,
    write_result,
)
from common import start as start_process
from common import stop as stop_process
from common import wrk as run_wrk

# name -> (worker class, workers, threads)
CONTENDERS = {
    "sync w2": ("sync", 2, 1),
    "sync w4": ("sync", 4, 1),
    "gthread w2 t2": ("gthread", 2, 2),
    "gthread w2 t4": ("gthread", 2, 4),
    "gthread w3 t2": ("gthread", 3, 2),
}
RECYCLED = ("sync w2", "gthread w2 t2", "gthread w2 t4")
IRIS_ROW = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
MAX_REQUESTS = ["--max-requests", "300", "--max-requests-jitter", "100"]


WHY = """\
Why these settings (service/server/gunicorn_conf.py):

- worker_class gthread, not sync: a sync worker is held by one slow client for as long as it takes
  to send its request (4 clients uploading 200 bytes at 10 B / 0.25 s stopped 2 and 4 sync workers
  dead: 3-4 req/s, every other connection timed out), so sync needs a buffering proxy (nginx) in
  front. A gthread worker loses one thread to a slow client, and its keep-alive connections wait in
  the poller, not in a thread; throughput is also higher (sync closes every connection).
- workers = cores (2): a 3rd worker gains nothing measurable on 2 cores and costs ~56 MB of RSS.
- threads 4: same throughput as 2 (GIL; numpy work is short), but 8 threads on 2 workers keep
  serving at full rate with 4 slow uploaders where 4 threads were all taken (141 req/s, timeouts).
  Against many hostile slow clients (more than workers x threads), put a proxy in front anyway.
- max_requests 20000 +- 2000 jitter: recycling is a guard, not a need: the 60 s soak (64 connections,
  mixed v1/v2, 4 retrains promoted under load) grew worker RSS +0.7% with recycling off. Recycling
  fails nothing: at 300 +- 100 (dozens of restarts in 15 s at c64) non-2xx 0, socket errors 0
  (gthread w2 t2 / t4, sync w2); each restart reloads the models, so p99 rose to 0.5-0.9 s there,
  hence a high threshold (a worker recycles about every 30 s at full load). The soak with these
  settings: 94,544 requests in 60 s (1574 req/s), p99 118 ms, non-2xx 0, socket errors 0, RSS -0.9%.
- timeout 30: far above the slowest valid request (10,000 digits rows, well under 1 s).
  graceful_timeout 20: SIGTERM under load (tests/e2e/test_lifecycle.py) lets every in-flight
  request finish and exits in a few seconds; 20 s also covers a retrain reaching its next epoch.
- keepalive 5: idle keep-alive connections sit in the gthread poller, closed after 5 s.
"""


def start(kind: str, workers: int, threads: int, env: dict[str, str], extra: list[str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    argv = [sys.executable, "-m", "gunicorn", "-c", "service/server/gunicorn_conf.py", "--bind", f"127.0.0.1:{port}"]
    argv += [
        "--workers",
        str(workers),
        "--worker-class",
        kind,
        "--threads",
        str(threads),
        *extra,
        "service.server.wsgi:app",
    ]
    log = Path(env["BENCH_LOG_DIR"]) / f"gunicorn-{port}.log"
    proc = start_process(argv, env, log=log)
    proc.log_path = log  # read for the count of worker restarts
    return proc, f"http://127.0.0.1:{port}"


def wrk(url: str, body: Path, seconds: int, connections: int) -> dict[str, float]:
    """One wrk run (2 threads, 2 s timeout): req/s, p50/p99 ms, non-2xx, socket errors."""
    return run_wrk(url, body, seconds, connections, timeout="2s")


class SlowClients:
    """``n`` clients uploading a one-row predict slowly (10 bytes every 0.25 s: 5 s a request), again and again."""

    def __init__(self, url: str, n: int = 4) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.addr = (host, int(port))
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.upload, daemon=True) for _ in range(n)]

    def upload(self) -> None:
        body = json.dumps(IRIS_ROW).ljust(200).encode()
        head = (
            "POST /v1/models/iris/predict HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        while not self.stopping.is_set():
            with contextlib.suppress(OSError), socket.create_connection(self.addr, timeout=30) as s:
                s.sendall(head)
                for i in range(0, len(body), 10):
                    if self.stopping.wait(0.25):
                        return
                    s.sendall(body[i : i + 10])
                s.recv(65536)

    def __enter__(self) -> SlowClients:
        for t in self.threads:
            t.start()
        time.sleep(0.5)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(35)


def restarts(log: Path) -> int:
    return log.read_text(errors="replace").count("Autorestarting worker")


def main() -> None:
    args = timed_rounds_args(__doc__, seconds=5)

    work = Path(tempfile.mkdtemp(prefix="nnserve-gsettings-"))
    store = work / "store"
    env = bench_env(NNSERVE_STORE=str(store), NNSERVE_LOG_LEVEL="info", BENCH_LOG_DIR=str(work))
    train_store(store, ["iris"], env)
    body = write_body(work / "one.json", {"instances": [rows("iris")[0]]})

    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    servers: dict[str, tuple[subprocess.Popen, str]] = {}
    recycled: dict[str, tuple[subprocess.Popen, str]] = {}
    try:
        for name, (kind, n, t) in CONTENDERS.items():
            servers[name] = start(kind, n, t, env, [])
        for name in RECYCLED:
            kind, n, t = CONTENDERS[name]
            recycled[name] = start(kind, n, t, env, MAX_REQUESTS)
        for _, url in [*servers.values(), *recycled.values()]:
            wait_ready(url)
        predict = "{}/v1/models/iris/predict"
        for _, url in servers.values():  # warm-up
            wrk(predict.format(url), body, 1, 16)
        for _ in range(args.rounds):
            for conns in (16, 64):
                for name, (_, url) in servers.items():
                    results.setdefault((name, f"1 row c{conns}"), []).append(
                        wrk(predict.format(url), body, args.seconds, conns)
                    )
            for name, (_, url) in servers.items():
                with SlowClients(url):
                    measured = wrk(predict.format(url), body, args.seconds, 16)
                results.setdefault((name, "slow clients"), []).append(measured)
                wait_ready(url, timeout=90)  # a sync worker blocked on an idle socket may be killed by the master
        for name, (proc, url) in recycled.items():
            measured = wrk(predict.format(url), body, 3 * args.seconds, 64)
            measured["restarts"] = restarts(proc.log_path)
            results[(name, "recycling")] = [measured]
    finally:
        for proc, _ in [*servers.values(), *recycled.values()]:
            stop_process(proc)
        shutil.rmtree(work, ignore_errors=True)

    lines = [
        f"# gunicorn settings ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, wrk -t2 on loopback,"
        f" {args.seconds} s runs, median of {args.rounds} rounds, contenders interleaved)",
        "",
        "| contender | case | req/s | p50 ms | p99 ms | non-2xx | socket errors |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for (name, case), runs in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        m = medians(runs, ("rps", "p50", "p99", "non2xx", "sockerr"))
        label = case if case != "recycling" else f"recycling ({runs[0]['restarts']:.0f} worker restarts)"
        lines.append(
            f"| {name} | {label} | {m['rps']:.0f} | {m['p50']:.2f} | {m['p99']:.2f} | {m['non2xx']:.0f} |"
            f" {m['sockerr']:.0f} |"
        )
    lines += [
        "",
        "slow clients: wrk -c16 while 4 clients upload a one-row body at 10 bytes / 0.25 s;"
        " wrk's timeout is 2 s, so socket errors there are timeouts.",
        f"recycling: wrk -c64 for {3 * args.seconds} s with {' '.join(MAX_REQUESTS)}.",
        "",
        WHY,
    ]
    write_result("gunicorn_settings", "\n".join(lines))


if __name__ == "__main__":
    main()
