"""Fast 503s (issue 22): one-row predictions beside 32 clients whose calls need a PostgreSQL that is down.

    .venv/bin/python bench/outage_503.py [--seconds 6] [--rounds 3]

Needs ``wrk`` and Debian's postgresql-15. ``nnserve serve --workers 2 --no-retrain-worker`` on a
PostgreSQL store (iris). Each round, three phases of ``--seconds``, in this order:

1. quiet: one client sends one-row iris predictions back to back on a keep-alive connection, database up;
2. control: the same client beside wrk -c32 calling ``/healthz`` (no database) back to back, database up:
   what 32 busy clients cost the predictions whatever they call;
3. outage: the database stopped (``pg_ctl stop -m fast``), the same client beside wrk -c32 calling, in
   turn, ``GET /v1/jobs``, ``GET /v1/models/iris/monitoring``, ``GET /ui/jobs`` and ``GET /readyz``, which
   all need the database: they answer 503 (at once once the web worker's circuit breaker is open);
4. burst: the database still down, the same client beside bursts of 32 of those calls sent at once (32
   threads released together, every ``--burst-every`` seconds): the issue's "32 of them at once", which
   used to hold every web thread for 5 s.

Then the database is started again and the round ends when ``/readyz`` answers 200. Reported: the
predictions' p50 and p99 in each phase (medians over the rounds), the ratios outage / quiet (the issue's
target: p99 within 2x) and outage / control, and the outage calls' latency and statuses from wrk.

gunicorn's ``max_requests`` recycling is off here (``GUNICORN_CMD_ARGS``) so that no phase pays for a
worker's boot. (This benchmark found that a worker replaced during an outage could not boot; it now can.)
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psycopg
from common import (
    bench_env,
    free_port,
    parse_wrk,
    percentile,
    postgres_server,
    require_wrk,
    rows,
    serve_argv,
    start,
    stop,
    train_store,
    wait_ready,
    write_result,
    wrk_argv,
)

TOKEN = "bench-outage-token"
DATABASE_CALLS = ["/v1/jobs", "/v1/models/iris/monitoring", "/ui/jobs", "/readyz"]
LUA = """
local paths = {%s}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1], {["Authorization"] = "Bearer %s"})
end
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=6, help="length of each phase")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--burst-every", type=float, default=0.5, help="seconds between two bursts of 32 calls")
    return parser.parse_args()


def predictions(port: int, seconds: float, body: bytes) -> list[float]:
    """Latencies (ms) of one-row predictions sent back to back for ``seconds`` on one keep-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies = []
    end = time.perf_counter() + seconds
    try:
        while time.perf_counter() < end:
            began = time.perf_counter()
            conn.request("POST", "/v1/models/iris/predict", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"a prediction answered {response.status}")
            latencies.append((time.perf_counter() - began) * 1000)
    finally:
        conn.close()
    return latencies


def beside_wrk(port: int, script: Path, seconds: int, body: bytes) -> tuple[list[float], dict]:
    """Predictions while wrk -c32 runs ``script``: (prediction latencies, wrk's parsed output)."""
    argv = wrk_argv(f"http://127.0.0.1:{port}", script, seconds, 32, timeout="10s")
    load = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(0.5)  # wrk's 32 connections are open and busy
        latencies = predictions(port, seconds - 1.0, body)
        out, _ = load.communicate(timeout=seconds + 30)
    finally:
        if load.poll() is None:
            load.kill()
    return latencies, parse_wrk(out)


def beside_bursts(port: int, seconds: int, every: float, body: bytes) -> tuple[list[float], dict]:
    """Predictions while bursts of 32 database calls go out at once every ``every`` s: (latencies, burst stats)."""
    statuses: list[int] = []
    took: list[float] = []
    done = threading.Event()

    def call(path: str, barrier: threading.Barrier) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            barrier.wait()
            began = time.perf_counter()
            conn.request("GET", path, headers={"Authorization": f"Bearer {TOKEN}"})
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
            took.append((time.perf_counter() - began) * 1000)
        finally:
            conn.close()

    def bursts() -> None:
        while not done.is_set():
            barrier = threading.Barrier(32)
            threads = [
                threading.Thread(target=call, args=(DATABASE_CALLS[i % len(DATABASE_CALLS)], barrier))
                for i in range(32)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            done.wait(every)

    sender = threading.Thread(target=bursts)
    sender.start()
    try:
        latencies = predictions(port, seconds - 1.0, body)
    finally:
        done.set()
        sender.join()
    stats = {
        "requests": len(statuses),
        "rps": len(statuses) / seconds,
        "p50": percentile(took, 50),
        "p99": percentile(took, 99),
        "non2xx": sum(s != 200 for s in statuses),
    }
    return latencies, stats


def summary(latencies: list[float]) -> dict[str, float]:
    return {"n": len(latencies), "p50": percentile(latencies, 50), "p99": percentile(latencies, 99)}


def main() -> None:
    args = parse_args()
    require_wrk()
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="nnserve-bench-outage-"))
    body = json.dumps({"instances": [rows("iris")[0]]}).encode()
    healthz = work / "healthz.lua"
    healthz.write_text(LUA % ('"/healthz"', TOKEN))
    outage_script = work / "outage.lua"
    outage_script.write_text(LUA % (", ".join(f'"{p}"' for p in DATABASE_CALLS), TOKEN))
    phases: dict[str, list[dict]] = {"quiet": [], "control": [], "outage": [], "burst": []}
    loads: dict[str, list[dict]] = {"control": [], "outage": [], "burst": []}
    try:
        with postgres_server() as pg:
            url = pg.url.rsplit("/", 1)[0] + "/outage"
            with psycopg.connect(pg.url, autocommit=True) as conn:
                conn.execute('CREATE DATABASE "outage"')  # a fixed name of this script
            # warnings and errors only in the server's log: no access line per request
            env = bench_env(NNSERVE_DATABASE_URL=url, NNSERVE_ADMIN_TOKEN=TOKEN, NNSERVE_LOG_LEVEL="warning")
            env["GUNICORN_CMD_ARGS"] = "--max-requests 0"  # no worker recycled mid-outage (see the docstring)
            train_store(work / "train-cache", ["iris"], env)
            port = free_port()
            log = work / "serve.log"
            server = start(serve_argv(port, work / "cache", extra=["--no-retrain-worker"]), env, log)
            try:
                wait_ready(f"http://127.0.0.1:{port}", 120, proc=server, log=log)
                predictions(port, 2.0, body)  # warm-up
                for _ in range(args.rounds):
                    phases["quiet"].append(summary(predictions(port, args.seconds - 1.0, body)))
                    latencies, out = beside_wrk(port, healthz, args.seconds, body)
                    phases["control"].append(summary(latencies))
                    loads["control"].append(out)
                    pg.stop()
                    try:
                        latencies, out = beside_wrk(port, outage_script, args.seconds, body)
                        phases["outage"].append(summary(latencies))
                        loads["outage"].append(out)
                        latencies, out = beside_bursts(port, args.seconds, args.burst_every, body)
                        phases["burst"].append(summary(latencies))
                        loads["burst"].append(out)
                    finally:
                        pg.start()
                    wait_ready(f"http://127.0.0.1:{port}", 60, proc=server, log=log)
            finally:
                stop(server)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()[0]

    med = {p: {k: statistics.median(r[k] for r in runs) for k in ("n", "p50", "p99")} for p, runs in phases.items()}
    wrk_med = {
        p: {k: statistics.median(r[k] for r in runs) for k in ("requests", "rps", "p50", "p99", "non2xx")}
        for p, runs in loads.items()
    }
    lines = [
        f"# Fast 503s ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores): one-row predictions beside "
        "32 clients calling a PostgreSQL that is down, nnserve serve --workers 2",
        "",
        f"Load average (1 min) when the run started and ended: {load_before:.1f} and {load_after:.1f}. "
        f"{args.rounds} rounds of four {args.seconds} s phases (quiet, control, outage, burst), "
        "medians over the rounds. "
        "Predictions: one client, back to back, one keep-alive connection. Control: wrk -c32 on `/healthz`, "
        f"database up. Outage: database stopped, wrk -c32 on {', '.join(f'`{p}`' for p in DATABASE_CALLS)} in turn. "
        f"Burst: database stopped, 32 of those calls sent at once every {args.burst_every:g} s.",
        "",
        "| phase | predictions | p50 ms | p99 ms | p99 of each round |",
        "|---|---:|---:|---:|---|",
    ]
    for phase, m in med.items():
        each = ", ".join(f"{r['p99']:.1f}" for r in phases[phase])
        lines.append(f"| {phase} | {m['n']:.0f} | {m['p50']:.2f} | {m['p99']:.2f} | {each} |")
    lines += [
        "",
        "| the 32 clients | requests | req/s | p50 ms | p99 ms | non-2xx |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for phase, m in wrk_med.items():
        lines.append(
            f"| {phase} | {m['requests']:.0f} | {m['rps']:.0f} | {m['p50']:.2f} | {m['p99']:.2f} | {m['non2xx']:.0f} |"
        )
    ratio = med["outage"]["p99"] / med["quiet"]["p99"]
    lines += [
        "",
        f"- predictions' p99, burst of 32 at once / quiet: **{med['burst']['p99'] / med['quiet']['p99']:.2f}x** "
        "(target <= 2x)",
        f"- predictions' p99, outage (32 clients back to back) / quiet: {ratio:.2f}x",
        f"- predictions' p99, outage / control (32 clients on `/healthz`): "
        f"{med['outage']['p99'] / med['control']['p99']:.2f}x",
        f"- the outage calls' p99: {wrk_med['outage']['p99']:.2f} ms; every one answered 503 when non-2xx = requests "
        f"({wrk_med['outage']['non2xx']:.0f} of {wrk_med['outage']['requests']:.0f})",
    ]
    write_result("outage_503", "\n".join(lines))


if __name__ == "__main__":
    main()
