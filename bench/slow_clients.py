"""Slow clients: one-row prediction latency with 32 slow connections open against ``nnserve serve``, and without.

    .venv/bin/python bench/slow_clients.py [--seconds 8] [--rounds 2]

Half of the slow connections send a request line a byte a second, the other
half headers and then one byte of a 100,000-byte body every 5 s; each is
reopened when the server answers it 408. wrk drives one-row iris predictions
(16 connections) beside them. Needs ``wrk``. The two cases are interleaved,
rounds repeated, medians kept.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

from common import (
    bench_env,
    free_port,
    medians,
    rows,
    serve_argv,
    start,
    stop,
    timed_rounds_args,
    train_store,
    wait_ready,
    write_body,
    write_result,
    wrk,
)

SLOW = 32
BODY_HEAD = b"POST /v1/models/iris/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


def slow_client(port: int, index: int, stop_at: float) -> None:
    """One slow connection, reopened whenever the server closes it, until ``stop_at``."""
    while time.monotonic() < stop_at:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                if index % 2:
                    s.sendall(BODY_HEAD + b"Content-Length: 100000\r\n\r\n")
                    pieces, pause = [b"{"] * 100, 5.0
                else:
                    pieces, pause = [bytes([c]) for c in b"POST /v1/models/iris/predict HTTP/1.1\r\n"], 1.0
                for piece in pieces:
                    if time.monotonic() >= stop_at:
                        return
                    s.sendall(piece)
                    time.sleep(pause)
        except OSError:  # answered 408 and closed: open another
            time.sleep(0.1)


def main() -> None:
    args = timed_rounds_args(__doc__, seconds=8)
    work = Path(tempfile.mkdtemp(prefix="nnserve-bench-"))
    store = work / "store"
    env = bench_env(NNSERVE_STORE=str(store), NNSERVE_LOG_LEVEL="warning")
    train_store(store, ["iris"], env)
    one = write_body(work / "one.json", {"instances": [rows("iris")[0]]})
    port = free_port()
    serve = start(serve_argv(port, store, 2, ["--no-retrain-worker"]), env)
    url = f"http://127.0.0.1:{port}/v1/models/iris/predict"
    results: dict[str, list[dict[str, float]]] = {}
    try:
        wait_ready(f"http://127.0.0.1:{port}")
        wrk(url, one, 2, 16)  # warm-up
        for _ in range(args.rounds):
            results.setdefault("without slow clients", []).append(wrk(url, one, args.seconds, 16, timeout="5s"))
            stop_at = time.monotonic() + args.seconds + 3
            threads = [threading.Thread(target=slow_client, args=(port, i, stop_at), daemon=True) for i in range(SLOW)]
            for t in threads:
                t.start()
            time.sleep(1)  # every slow connection is open
            results.setdefault(f"{SLOW} slow clients connected", []).append(
                wrk(url, one, args.seconds, 16, timeout="5s")
            )
            for t in threads:
                t.join(timeout=15)
    finally:
        stop(serve)
        shutil.rmtree(work, ignore_errors=True)

    lines = [
        f"# Slow clients ({time.strftime('%Y-%m-%d %H:%M')}): nnserve serve --workers 2, wrk -t2 -c16, one iris row",
        "",
        f"{SLOW} slow connections: half send a request line a byte a second, half headers and then a body byte every"
        " 5 s (reopened after their 408). Median of the rounds.",
        "",
        "| case | req/s | p50 ms | p99 ms | non-2xx | socket errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    med = {case: medians(runs, ("rps", "p50", "p99", "non2xx", "sockerr")) for case, runs in results.items()}
    for case, m in med.items():
        lines.append(
            f"| {case} | {m['rps']:.0f} | {m['p50']:.2f} | {m['p99']:.2f} | {m['non2xx']:.0f} | {m['sockerr']:.0f} |"
        )
    slow_p99 = med[f"{SLOW} slow clients connected"]["p99"]
    lines += ["", f"- one-row p99 with {SLOW} slow clients: **{slow_p99:.1f} ms** (target < 1000 ms)"]
    write_result("slow_clients", "\n".join(lines))


if __name__ == "__main__":
    main()
