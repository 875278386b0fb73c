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
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from common import (
    bench_env,
    children,
    free_port,
    parse_wrk,
    require_wrk,
    rows,
    rss_mb,
    serve_argv,
    start,
    stop,
    train_store,
    wait_ready,
    write_result,
    wrk_argv,
)

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
    require_wrk()

    work = Path(tempfile.mkdtemp(prefix="nnserve-soak-"))
    store = work / "store"
    env = bench_env(NNSERVE_ADMIN_TOKEN=TOKEN, NNSERVE_LOG_LEVEL="info")
    if args.max_requests is not None:
        env["GUNICORN_CMD_ARGS"] = f"--max-requests {args.max_requests}"
    train_store(store, ["iris", "digits"], env)
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
    serve = start(serve_argv(port, store, 2), env, log=work / "serve.log")
    jobs: list[dict] = []
    try:
        wait_ready(url, proc=serve, log=work / "serve.log")
        for body_key in bodies:  # every request of the mix is valid
            path = {"SOAK_IRIS": "/v1/models/iris/predict", "SOAK_DIGITS": "/v1/models/digits/predict"}
            r = requests.post(url + path.get(body_key, "/v2/models/iris/infer"), json=bodies[body_key], timeout=10)
            assert r.status_code == 200, (body_key, r.status_code, r.text)
        sampler = RssSampler(serve.pid)
        sampler.start()
        started = time.monotonic()
        wrk = subprocess.Popen(
            wrk_argv(url, lua, args.seconds, args.connections, timeout="5s"),
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
        stop(serve)
        restarts = (work / "serve.log").read_text(errors="replace").count("Autorestarting worker")
        shutil.rmtree(work, ignore_errors=True)

    measured = parse_wrk(out)
    non2xx_n, sock_n = int(measured["non2xx"]), int(measured["sockerr"])

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
        f"| {measured['requests']} | {measured['rps']:.0f} | {measured['p50']:.2f} | {measured['p99']:.2f}"
        f" | {non2xx_n} | {sock_n} |",
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
    write_result("soak", "\n".join(lines))
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
