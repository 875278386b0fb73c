"""HTTP benchmark: nnserve's predict endpoint against the floor app, same gunicorn settings, one run.

    .venv/bin/python bench/http_predict.py [--seconds 8] [--rounds 2]

Needs ``wrk`` (Debian package). Reports requests/s, p50 and p99 for one iris
row (throughput, 16 connections) and for one 10,000-row digits request
(latency, 1 connection), the ratios nnserve / floor, each nnserve worker's
resident memory with the catalog loaded, and the time from ``nnserve serve``
to a ready ``/readyz``. Contenders are interleaved, rounds repeated, medians kept.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.body = f:read("*a")
f:close()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, timeout: float = 60.0, path: str = "/readyz", status: int | None = 200) -> float:
    """Seconds until ``url + path`` answers ``status`` (any status when None)."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        try:
            if requests.get(url + path, timeout=1).status_code in ((status,) if status else range(100, 600)):
                return time.perf_counter() - start
        except requests.ConnectionError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"{url} not ready after {timeout} s")


def start(argv: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


def worker_rss_mb(master_pid: int) -> list[float]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(master_pid)], capture_output=True, text=True).stdout
    sizes = []
    for pid in out.split():
        status = Path(f"/proc/{pid}/status").read_text()
        sizes.append(int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024)
    return sizes


def wrk(url: str, body: Path, seconds: int, connections: int, threads: int) -> dict[str, float]:
    env = {**os.environ, "BENCH_BODY": str(body)}
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(body.with_suffix(".lua")),
            url,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout

    def ms(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": ms("50%"),
        "p99": ms("99%"),
        "errors": float(non2xx.group(1)) if non2xx else 0.0,
    }


def rows(name: str) -> list[list[float]]:
    with open(ROOT / "models" / "data" / f"{name}.csv") as f:
        return [[float(v) for v in r[:-1]] for r in list(csv.reader(f))[1:]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")

    work = Path(tempfile.mkdtemp(prefix="nnserve-bench-"))
    store = work / "store"
    env = {**os.environ, "NNSERVE_STORE": str(store), "NNSERVE_ACCESS_LOG": "/dev/null", "NNSERVE_LOG_LEVEL": "warning"}
    subprocess.run(
        [sys.executable, "-m", "service.cli", "train", "--all", "--store", str(store)],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    one = work / "one.json"
    one.write_text(json.dumps({"instances": [rows("iris")[0]]}))
    digits = rows("digits")
    big = work / "big.json"
    big.write_text(json.dumps({"instances": [digits[i % len(digits)] for i in range(10_000)]}))
    for body in (one, big):
        body.with_suffix(".lua").write_text(LUA)

    port_n, port_f = free_port(), free_port()
    serve = start(
        [
            sys.executable,
            "-m",
            "service.cli",
            "serve",
            "--port",
            str(port_n),
            "--workers",
            "2",
            "--store",
            str(store),
            "--no-retrain-worker",
        ],
        env,
    )
    floor = start(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "service/gunicorn_conf.py",
            "--bind",
            f"127.0.0.1:{port_f}",
            "--workers",
            "2",
            "--pythonpath",
            "bench",
            "floor_app:app",
        ],
        env,
    )
    try:
        ready_s = wait_ready(f"http://127.0.0.1:{port_n}")
        time.sleep(1)
        wait_ready(f"http://127.0.0.1:{port_f}", path="/", status=None)
        rss = worker_rss_mb(serve.pid)
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

    med = {
        k: {m: statistics.median(r[m] for r in v) for m in ("rps", "p50", "p99", "errors")} for k, v in results.items()
    }
    lines = [
        f"# HTTP predict benchmark ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, gunicorn 2 workers)",
        "",
        "| case | server | req/s | p50 ms | p99 ms | non-2xx |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for (case, who), m in med.items():
        lines.append(f"| {case} | {who} | {m['rps']:.0f} | {m['p50']:.2f} | {m['p99']:.2f} | {m['errors']:.0f} |")
    one_ratio = med[("1 row", "nnserve")]["rps"] / med[("1 row", "floor")]["rps"]
    big_ratio = med[("10,000 rows", "nnserve")]["p50"] / med[("10,000 rows", "floor")]["p50"]
    lines += [
        "",
        f"- one-row throughput nnserve / floor: **{one_ratio:.2f}x** (target >= 0.7)",
        f"- 10,000-row latency (p50) nnserve / floor: **{big_ratio:.2f}x** (target <= 1.5)",
        f"- worker RSS with the catalog loaded: {', '.join(f'{r:.0f} MB' for r in rss)} (target <= 80 MB)",
        f"- `nnserve serve` to ready /readyz: {ready_s:.2f} s (target <= 2 s)",
    ]
    report = "\n".join(lines)
    print(report)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "http_predict.md").write_text(report + "\n")


if __name__ == "__main__":
    main()
