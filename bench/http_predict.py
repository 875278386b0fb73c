"""HTTP benchmark: nnserve's predict endpoint against the floor app, same gunicorn settings, one run.

    .venv/bin/python bench/http_predict.py [--seconds 8] [--rounds 2]

Needs ``wrk`` (Debian package). Reports requests/s, p50 and p99 for one iris
row (throughput, 16 connections) and for one 10,000-row digits request
(latency, 1 connection), the ratios nnserve / floor, each nnserve worker's
resident memory with the catalog loaded, and the time from ``nnserve serve``
to a ready ``/readyz``. Contenders are interleaved, rounds repeated, medians kept.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import (
    bench_env,
    children,
    free_port,
    medians,
    rows,
    rss_mb,
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


def main() -> None:
    args = timed_rounds_args(__doc__, seconds=8)

    work = Path(tempfile.mkdtemp(prefix="nnserve-bench-"))
    store = work / "store"
    env = bench_env(NNSERVE_STORE=str(store), NNSERVE_LOG_LEVEL="warning")
    train_store(store, ["--all"], env)
    one = write_body(work / "one.json", {"instances": [rows("iris")[0]]})
    digits = rows("digits")
    big = write_body(work / "big.json", {"instances": [digits[i % len(digits)] for i in range(10_000)]})

    port_n, port_f = free_port(), free_port()
    serve = start(serve_argv(port_n, store, 2, ["--no-retrain-worker"]), env)
    floor_argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "service/server/gunicorn_conf.py",
        "--bind",
        f"127.0.0.1:{port_f}",
    ]
    floor = start([*floor_argv, "--workers", "2", "--pythonpath", "bench", "floor_app:app"], env)
    try:
        ready_s = wait_ready(f"http://127.0.0.1:{port_n}")
        time.sleep(1)
        wait_ready(f"http://127.0.0.1:{port_f}", path="/", status=None)
        rss = [mb for mb in map(rss_mb, children(serve.pid)) if mb is not None]
        urls = {
            "nnserve": f"http://127.0.0.1:{port_n}/v1/models/{{}}/predict",
            "floor": f"http://127.0.0.1:{port_f}/v1/models/{{}}/predict",
        }
        results: dict[tuple[str, str], list[dict[str, float]]] = {}
        for case, model, body, conns, threads in (("1 row", "iris", one, 16, 2), ("10,000 rows", "digits", big, 1, 1)):
            for url in urls.values():  # warm-up
                wrk(url.format(model), body, 2, conns, threads)
            for _ in range(args.rounds):
                for who, url in urls.items():
                    results.setdefault((case, who), []).append(
                        wrk(url.format(model), body, args.seconds, conns, threads)
                    )
    finally:
        stop(serve)
        stop(floor)
        shutil.rmtree(work, ignore_errors=True)

    med = {k: medians(v, ("rps", "p50", "p99", "non2xx")) for k, v in results.items()}
    lines = [
        f"# HTTP predict benchmark ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, gunicorn 2 workers)",
        "",
        "| case | server | req/s | p50 ms | p99 ms | non-2xx |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for (case, who), m in med.items():
        lines.append(f"| {case} | {who} | {m['rps']:.0f} | {m['p50']:.2f} | {m['p99']:.2f} | {m['non2xx']:.0f} |")
    one_ratio = med[("1 row", "nnserve")]["rps"] / med[("1 row", "floor")]["rps"]
    big_ratio = med[("10,000 rows", "nnserve")]["p50"] / med[("10,000 rows", "floor")]["p50"]
    lines += [
        "",
        f"- one-row throughput nnserve / floor: **{one_ratio:.2f}x** (target >= 0.85)",
        f"- 10,000-row latency (p50) nnserve / floor: **{big_ratio:.2f}x** (target <= 1.5)",
        f"- worker RSS with the catalog loaded: {', '.join(f'{r:.0f} MB' for r in rss)} (target <= 80 MB)",
        f"- `nnserve serve` to ready /readyz: {ready_s:.2f} s (target <= 2 s)",
    ]
    write_result("http_predict", "\n".join(lines))


if __name__ == "__main__":
    main()
