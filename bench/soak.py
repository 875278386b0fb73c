"""Soak: 60 s of mixed v1/v2 traffic at 64 connections on ``nnserve serve --workers 2`` while retrains run.

    .venv/bin/python bench/soak.py [--seconds 60] [--connections 64]

Starts ``nnserve serve`` (gunicorn, 2 web workers, and the retraining worker
it runs beside them) on a freshly trained iris + digits store, then runs wrk
(-t2, 5 s timeout) with a Lua script rotating three valid requests: v1
predict of one iris row, v1 predict of 10 digits rows, v2 infer (JSON) of one
iris row. Retrain jobs (iris and digits, promote always, so new versions go
live under load) are enqueued through the admin API during the run. Web
worker RSS is sampled every second.

Reports non-2xx (target 0), socket errors (target 0), req/s, p50/p99, the
retrain jobs' outcomes, and RSS growth of the web workers between the mean of
the first and of the last 10 s (target < 10%). Writes ``bench/results/soak.md``.
Needs ``wrk``. Not a test: bounded, run by ``make bench``.
"""

from __future__ import annotations

import argparse
import contextlib
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
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-soak-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
LUA = """
local paths = {"/v1/models/iris/predict", "/v1/models/digits/predict", "/v2/models/iris/infer"}
local files = {"SOAK_IRIS", "SOAK_DIGITS", "SOAK_V2"}
local requests = {}
local i = 0

init = function(args)
  for k = 1, #paths do
    local f = assert(io.open(os.getenv(files[k]), "rb"))
    local body = f:read("*a")
    f:close()
    requests[k] = wrk.format("POST", paths[k], {["Content-Type"] = "application/json"}, body)
  end
end

request = function()
  i = i + 1
  return requests[(i % #requests) + 1]
end
"""
# (seconds into the run, model, hyperparameters)
RETRAINS = [(5, "iris", {"epochs": 200}), (15, "digits", {"epochs": 40}), (30, "iris", {"epochs": 200})]
RETRAINS += [(40, "digits", {"epochs": 40})]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rows(name: str) -> list[list[float]]:
    with open(ROOT / "models" / "data" / f"{name}.csv") as f:
        return [[float(v) for v in r[:-1]] for r in list(csv.reader(f))[1:]]


def children(pid: int) -> dict[int, str]:
    out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return {int(line.split(None, 1)[0]): line.split(None, 1)[1] for line in out.strip().splitlines()}


def rss_mb(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024


class RssSampler(threading.Thread):
    """Every second: (seconds since start, {web worker pid: RSS MB}); the retraining worker is left out."""

    def __init__(self, master: int) -> None:
        super().__init__(daemon=True)
        self.master, self.stop, self.samples = master, threading.Event(), []

    def run(self) -> None:
        start = time.monotonic()
        while not self.stop.wait(1.0 - (time.monotonic() - start) % 1.0):
            web = {p: rss_mb(p) for p, args in children(self.master).items() if "service.cli worker" not in args}
            self.samples.append((time.monotonic() - start, {p: r for p, r in web.items() if r is not None}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--max-requests",
        type=int,
        help="override gunicorn's max_requests (0: no recycling, to see a leak recycling would hide)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")

    work = Path(tempfile.mkdtemp(prefix="nnserve-soak-"))
    store = work / "store"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NNSERVE_")}
    env.update(NNSERVE_ADMIN_TOKEN=TOKEN, NNSERVE_ACCESS_LOG="/dev/null", NNSERVE_LOG_LEVEL="info")
    if args.max_requests is not None:
        env["GUNICORN_CMD_ARGS"] = f"--max-requests {args.max_requests}"
    subprocess.run(
        [sys.executable, "-m", "service.cli", "train", "iris", "digits", "--store", str(store)],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    iris, digits = rows("iris")[0], rows("digits")
    bodies = {
        "SOAK_IRIS": {"instances": [iris]},
        "SOAK_DIGITS": {"instances": digits[:10]},
        "SOAK_V2": {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": iris}]},
    }
    for key, body in bodies.items():
        (work / f"{key}.json").write_text(json.dumps(body))
        env[key] = str(work / f"{key}.json")
    lua = work / "mix.lua"
    lua.write_text(LUA)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(work / "serve.log", "wb")  # noqa: SIM115 (closed below)
    serve = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--workers", "2", "--store", str(store)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    jobs: list[dict] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(requests.RequestException):
                if requests.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline or serve.poll() is not None:
                raise RuntimeError("nnserve serve never became ready:\n" + (work / "serve.log").read_text()[-3000:])
            time.sleep(0.1)
        for body_key in bodies:  # every request of the mix is valid
            path = {"SOAK_IRIS": "/v1/models/iris/predict", "SOAK_DIGITS": "/v1/models/digits/predict"}
            r = requests.post(url + path.get(body_key, "/v2/models/iris/infer"), json=bodies[body_key], timeout=10)
            assert r.status_code == 200, (body_key, r.status_code, r.text)
        sampler = RssSampler(serve.pid)
        sampler.start()
        started = time.monotonic()
        wrk = subprocess.Popen(
            [
                "wrk",
                "-t2",
                f"-c{args.connections}",
                f"-d{args.seconds}s",
                "--timeout",
                "5s",
                "--latency",
                "-s",
                str(lua),
                url,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        ids = []
        for at, model, hyper in RETRAINS:
            if at >= args.seconds - 5:
                continue
            time.sleep(max(0.0, started + at - time.monotonic()))
            r = requests.post(
                f"{url}/v1/models/{model}/retrain",
                json={"promote": "always", "hyperparameters": hyper},
                headers=ADMIN,
                timeout=10,
            )
            assert r.status_code == 202, r.text
            ids.append(r.json()["id"])
        out, _ = wrk.communicate(timeout=args.seconds + 60)
        sampler.stop.set()
        sampler.join(5)
        for job_id in ids:
            deadline = time.monotonic() + 120
            while True:
                job = requests.get(f"{url}/v1/jobs/{job_id}", timeout=10).json()
                if job["status"] in ("succeeded", "failed", "cancelled") or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            jobs.append(job)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(serve.pid, signal.SIGTERM)
        try:
            serve.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait()
        log.close()
        restarts = (work / "serve.log").read_text(errors="replace").count("Autorestarting worker")
        shutil.rmtree(work, ignore_errors=True)

    def ms(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    non2xx_n = int(non2xx.group(1)) if non2xx else 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    sock_n = sum(int(g) for g in sock.groups()) if sock else 0
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    samples = sampler.samples
    first = [sum(s.values()) / max(len(s), 1) for t, s in samples if t <= 10]
    last = [sum(s.values()) / max(len(s), 1) for t, s in samples if t > samples[-1][0] - 10]
    first_sum = [sum(s.values()) for t, s in samples if t <= 10]
    last_sum = [sum(s.values()) for t, s in samples if t > samples[-1][0] - 10]
    growth = statistics.mean(last) / statistics.mean(first) - 1
    pids = {p for _, s in samples for p in s}
    job_lines = [
        f"  - {j['model']}: {j['status']}"
        + (f", version {j['result']['version']} promoted" if j["status"] == "succeeded" else f" ({j.get('error')})")
        for j in jobs
    ]
    ok = non2xx_n == 0 and sock_n == 0 and growth < 0.10 and all(j["status"] == "succeeded" for j in jobs)
    lines = [
        f"# Soak ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores): {args.seconds} s, wrk -t2"
        f" -c{args.connections}, nnserve serve --workers 2 (gunicorn_conf.py settings"
        + (f", max_requests {args.max_requests}" if args.max_requests is not None else "")
        + ") + retraining worker",
        "",
        "Mixed traffic, rotated per request: v1 predict iris (1 row), v1 predict digits (10 rows), v2 infer iris"
        " (JSON, 1 row).",
        "",
        "| requests | req/s | p50 ms | p99 ms | non-2xx | socket errors |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {total} | {rps:.0f} | {ms('50%'):.2f} | {ms('99%'):.2f} | {non2xx_n} | {sock_n} |",
        "",
        f"- web worker RSS, mean per worker: first 10 s {statistics.mean(first):.1f} MB, last 10 s"
        f" {statistics.mean(last):.1f} MB: growth **{growth * 100:+.1f}%** (target < 10%)",
        f"- web workers' RSS summed: {statistics.mean(first_sum):.1f} MB -> {statistics.mean(last_sum):.1f} MB;"
        f" {len(pids)} distinct web worker pids seen, {restarts} max_requests recycling restart(s)",
        f"- retrain jobs enqueued during the run ({len(jobs)}):",
        *job_lines,
        f"- verdict: **{'PASS' if ok else 'FAIL'}** (zero non-2xx, zero socket errors, RSS growth < 10%,"
        " every retrain succeeded)",
    ]
    report = "\n".join(lines)
    print(report)
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / "soak.md").write_text(report + "\n")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
