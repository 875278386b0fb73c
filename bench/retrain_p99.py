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

import os
import shutil
import tempfile
import time
from pathlib import Path

import requests
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
)
from common import wrk as run_wrk

TOKEN = "bench-retrain-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
LONG = {"epochs": 100000, "patience": 100000}


def wrk(url: str, body: Path, seconds: int) -> dict:
    """wrk -t2 -c8 posting ``body``."""
    return run_wrk(url, body, seconds, 8)


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
    args = timed_rounds_args(__doc__, seconds=10)

    work = Path(tempfile.mkdtemp(prefix="nnserve-bench-retrain-"))
    store = work / "store"
    env = bench_env(NNSERVE_STORE=str(store), NNSERVE_ADMIN_TOKEN=TOKEN, NNSERVE_LOG_LEVEL="warning")
    train_store(store, ["iris", "digits"], env)
    body = write_body(work / "one.json", {"instances": [rows("iris")[0]]})

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    serve = start(serve_argv(port, store, 2), env, log=work / "serve.log")
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
        stop(serve, timeout=60)
        shutil.rmtree(work, ignore_errors=True)

    med = {case: medians(runs, ("rps", "p50", "p99", "non2xx")) for case, runs in results.items()}
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
        lines.append(f"| {case} | {m['rps']:.0f} | {m['p50']:.2f} | {m['p99']:.2f} | {m['non2xx']:.0f} |")
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
    write_result("retrain_p99", "\n".join(lines))


if __name__ == "__main__":
    main()
