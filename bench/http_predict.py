"""HTTP benchmark: nnserve's predict endpoint against the floor app, same gunicorn settings, one run.

    .venv/bin/python bench/http_predict.py [--seconds 5] [--rounds 10]

Needs ``wrk`` (Debian package). Reports requests/s, p50 and p99 for one iris
row (throughput, 16 connections) and for one 10,000-row digits request
(latency, 1 connection), the ratios nnserve / floor (the median of the rounds'
ratios, and by requests per CPU second of each server's process tree, which the
machine's other load moves less), each nnserve worker's resident memory with the
catalog loaded, the time from ``nnserve serve`` to a ready ``/readyz``, and the Python calls each app makes per
one-row prediction and the time each app's own code takes for one (``calls_per_request.py``, in-process: the
figures the machine's load moves least).
Contenders are interleaved, the order rotating each round; ten short rounds, not two long ones: on a shared
machine one round's ratio ranges from about 0.4x to 2x, and only the median of many is a figure.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import (
    bench_env,
    children,
    free_port,
    interleaved,
    medians,
    round_ratios,
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
    args = timed_rounds_args(__doc__, seconds=5, rounds=10)

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
    # the floor is a bare Flask app: gunicorn_conf.py's gRPC server is nnserve's, so it is off there
    floor_env = {**env, "NNSERVE_GRPC_PORT": "0"}
    floor = start([*floor_argv, "--workers", "2", "--pythonpath", "bench", "floor_app:app"], floor_env)
    try:
        ready_s = wait_ready(f"http://127.0.0.1:{port_n}")
        time.sleep(1)
        wait_ready(f"http://127.0.0.1:{port_f}", path="/", status=None)
        rss = [mb for mb in map(rss_mb, children(serve.pid)) if mb is not None]
        urls = {
            "nnserve": f"http://127.0.0.1:{port_n}/v1/models/{{}}/predict",
            "floor": f"http://127.0.0.1:{port_f}/v1/models/{{}}/predict",
        }
        load = [os.getloadavg()[0]]
        pids = {"nnserve": serve.pid, "floor": floor.pid}
        one_row = interleaved(
            {who: url.format("iris") for who, url in urls.items()}, one, args.seconds, args.rounds, pids
        )
        results: dict[tuple[str, str], list[dict[str, float]]] = {("1 row", w): runs for w, runs in one_row.items()}
        for url in urls.values():  # warm-up
            wrk(url.format("digits"), big, 2, 1, 1)
        for round_ in range(args.rounds):
            for who in list(urls)[round_ % 2 :] + list(urls)[: round_ % 2]:
                results.setdefault(("10,000 rows", who), []).append(
                    wrk(urls[who].format("digits"), big, args.seconds, 1, 1)
                )
        load.append(os.getloadavg()[0])
        calls = {who: calls_per_request(who, env) for who in ("nnserve", "floor")}  # after the timed rounds
        in_process = in_process_microseconds(env)
    finally:
        stop(serve)
        stop(floor)
        shutil.rmtree(work, ignore_errors=True)

    med = {k: medians(v, ("rps", "p50", "p99", "non2xx")) for k, v in results.items()}
    lines = [
        f"# HTTP predict benchmark ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, gunicorn 2 workers, "
        f"{args.rounds} interleaved rounds of {args.seconds} s)",
        "",
        f"Load average (1 min) when the run started and ended: {load[0]:.1f} and {load[1]:.1f} (the benchmark's "
        "own share is about 2; the rest is other work on the machine).",
        "",
        "| case | server | req/s | p50 ms | p99 ms | non-2xx |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for (case, who), m in med.items():
        lines.append(f"| {case} | {who} | {m['rps']:.0f} | {m['p50']:.2f} | {m['p99']:.2f} | {m['non2xx']:.0f} |")
    per_round = round_ratios(one_row, "nnserve", "floor")
    per_cpu = statistics.median(round_ratios(one_row, "nnserve", "floor", "cpu_ms"))
    big_ratio = med[("10,000 rows", "nnserve")]["p50"] / med[("10,000 rows", "floor")]["p50"]
    lines += [
        "",
        f"- one-row throughput nnserve / floor: **{statistics.median(per_round):.2f}x** (target >= 0.85; rounds: "
        f"{', '.join(f'{r:.2f}' for r in per_round)}); by requests per CPU second: {per_cpu:.2f}x",
        f"- Python calls per one-row prediction (cProfile, one app in-process, `bench/calls_per_request.py`): "
        f"nnserve {calls['nnserve']}, floor {calls['floor']}",
        f"- in-process time per one-row prediction (both apps in one process, interleaved; no gunicorn, no "
        f"sockets): nnserve {in_process['nnserve']:.0f} µs, floor {in_process['floor']:.0f} µs; floor / nnserve "
        f"**{in_process['floor'] / in_process['nnserve']:.2f}x**",
        f"- 10,000-row latency (p50) nnserve / floor: **{big_ratio:.2f}x** (target <= 1.5)",
        f"- worker RSS with the catalog loaded: {', '.join(f'{r:.0f} MB' for r in rss)} (target <= 80 MB)",
        f"- `nnserve serve` to ready /readyz: {ready_s:.2f} s (target <= 2 s)",
    ]
    write_result("http_predict", "\n".join(lines))


def calls_per_request(who: str, env: dict[str, str]) -> int:
    """``bench/calls_per_request.py``'s count for ``who`` (``nnserve`` or ``floor``) on the benchmark's store."""
    return int(_calls_per_request_script(who, env).split()[-1])


def in_process_microseconds(env: dict[str, str]) -> dict[str, float]:
    """``bench/calls_per_request.py time``: {app: median µs per one-row prediction} on the benchmark's store."""
    words = _calls_per_request_script("time", env).split()
    return {name: float(us) for name, us in zip(words[::2], words[1::2], strict=True)}


def _calls_per_request_script(mode: str, env: dict[str, str]) -> str:
    argv = [sys.executable, str(Path(__file__).with_name("calls_per_request.py")), mode]
    return subprocess.run(argv, env=env, check=True, capture_output=True, text=True).stdout


if __name__ == "__main__":
    main()
