"""Prediction latency under a steady load, with and without a digits retrain running, in one run.

    .venv/bin/python bench/retrain_p99.py [--seconds 10] [--rounds 2]

Starts ``nnserve serve --workers 2`` (gunicorn, 2 web workers, plus the
retraining worker it runs beside them) on a freshly trained store, then
alternates wrk runs (-t2 -c8, one iris row per POST) without and with a
long digits retrain running (started right before the wrk run, cancelled
after it). Prints and writes ``bench/results/retrain_p99.md``: median p50/p99
of each side and the ratio p99(during) / p99(without); target <= 2x.
Needs ``wrk`` (Debian package).
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
TOKEN = "bench-retrain-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.body = f:read("*a")
f:close()
"""
LONG = {"epochs": 100000, "patience": 100000}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} not ready after {timeout} s")


def wrk(url: str, body: Path, seconds: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t2", "-c8", f"-d{seconds}s", "--latency", "-s", str(body.with_suffix(".lua")), url],
        capture_output=True,
        text=True,
        env={**os.environ, "BENCH_BODY": str(body)},
        check=True,
    ).stdout

    def ms(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": ms("50%"),
        "p99": ms("99%"),
        "errors": float(non2xx.group(1)) if non2xx else 0.0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
    }


def job(url: str, job_id: str) -> dict:
    r = requests.get(f"{url}/v1/jobs/{job_id}", timeout=10)
    r.raise_for_status()
    return r.json()


def start_retrain(url: str) -> str:
    """Queue a long digits retrain and return once the worker is training it."""
    r = requests.post(
        f"{url}/v1/models/digits/retrain", json={"hyperparameters": LONG, "promote": "never"}, headers=ADMIN, timeout=10
    )
    r.raise_for_status()
    job_id = r.json()["id"]
    deadline = time.monotonic() + 60
    while (job(url, job_id)["progress"] or {}).get("epoch", 0) < 1:
        if time.monotonic() > deadline:
            raise RuntimeError(f"retrain {job_id} never started: {job(url, job_id)}")
        time.sleep(0.05)
    return job_id


def cancel_retrain(url: str, job_id: str) -> dict:
    """Cancel the job; returns it once final. Raises if it was no longer running (the run did not measure a retrain)."""
    before = job(url, job_id)
    if before["status"] != "running":
        raise RuntimeError(f"retrain {job_id} stopped during the measurement: {before}")
    requests.delete(f"{url}/v1/jobs/{job_id}", headers=ADMIN, timeout=10).raise_for_status()
    deadline = time.monotonic() + 30
    while (after := job(url, job_id))["status"] == "running":
        if time.monotonic() > deadline:
            raise RuntimeError(f"retrain {job_id} ignored its cancel")
        time.sleep(0.05)
    after["epochs_during_run"] = before["progress"]["epoch"]
    return after


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")

    work = Path(tempfile.mkdtemp(prefix="nnserve-bench-retrain-"))
    store = work / "store"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("NNSERVE_")},
        "NNSERVE_STORE": str(store),
        "NNSERVE_ADMIN_TOKEN": TOKEN,
        "NNSERVE_ACCESS_LOG": "/dev/null",
        "NNSERVE_LOG_LEVEL": "warning",
    }
    subprocess.run(
        [sys.executable, "-m", "service.cli", "train", "iris", "digits", "--store", str(store)],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    with open(ROOT / "models" / "data" / "iris.csv") as f:
        first = [float(v) for v in list(csv.reader(f))[1][:-1]]
    body = work / "one.json"
    body.write_text(json.dumps({"instances": [first]}))
    body.with_suffix(".lua").write_text(LUA)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    serve = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--workers", "2", "--store", str(store)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(work / "serve.log").open("wb"),
        start_new_session=True,
    )
    results: dict[str, list[dict[str, float]]] = {"without retrain": [], "during retrain": []}
    jobs = []
    try:
        wait_ready(base)
        url = f"{base}/v1/models/iris/predict"
        wrk(url, body, 2)  # warm-up
        for _ in range(args.rounds):
            results["without retrain"].append(wrk(url, body, args.seconds))
            job_id = start_retrain(base)
            results["during retrain"].append(wrk(url, body, args.seconds))
            jobs.append(cancel_retrain(base, job_id))
        versions = requests.get(f"{base}/v1/models/digits", timeout=10).json()["versions"]
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)

    med = {
        case: {m: statistics.median(r[m] for r in runs) for m in ("rps", "p50", "p99", "errors")}
        for case, runs in results.items()
    }
    ratio = med["during retrain"]["p99"] / med["without retrain"]["p99"]
    lines = [
        f"# Prediction latency with and without a retrain ({time.strftime('%Y-%m-%d %H:%M')}, "
        f"{os.cpu_count()} cores, gunicorn 2 workers + retraining worker)",
        "",
        f"wrk -t2 -c8 -d{args.seconds}s, one iris row per POST; median of {args.rounds} interleaved rounds. "
        "The retrain is digits with epochs=100000, patience=100000 (started before, cancelled after each run).",
        "",
        "| case | req/s | p50 ms | p99 ms | non-2xx |",
        "|---|---:|---:|---:|---:|",
    ]
    for case, m in med.items():
        lines.append(f"| {case} | {m['rps']:.0f} | {m['p50']:.2f} | {m['p99']:.2f} | {m['errors']:.0f} |")
    lines += [
        "",
        f"p99(during) / p99(without) = **{ratio:.2f}x** (target <= 2x: {'met' if ratio <= 2 else 'NOT met'})",
        "",
        "Epochs the retrain ran during each measured run: "
        + ", ".join(str(j["epochs_during_run"]) for j in jobs)
        + f"; final job states: {', '.join(j['status'] for j in jobs)}; digits versions after the run: "
        + f"{[v['version'] for v in versions]} (cancelled jobs publish nothing).",
        "",
        "Per run: "
        + "; ".join(
            f"{case} p99 " + ", ".join(f"{r['p99']:.2f}" for r in runs) + " ms" for case, runs in results.items()
        ),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    out = ROOT / "bench" / "results" / "retrain_p99.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(text)


if __name__ == "__main__":
    main()
