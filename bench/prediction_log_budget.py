"""The prediction log's budget: web worker memory and the log on disk under 10,000-row predictions, all logged.

    .venv/bin/python bench/prediction_log_budget.py [--seconds 15] [--clients 4] [--max-log-mb 4] [--warmup 3]

``nnserve serve --workers 2`` (with its retraining worker) on a trained iris store, every prediction logged
(``NNSERVE_LOG_SAMPLE_RATE=1.0``), the log capped at ``--max-log-mb`` (``NNSERVE_LOG_MAX_BYTES``); then the
same server with logging off, the baseline of what the requests alone cost. ``--clients`` threads post 10,000
iris rows per request: ``--warmup`` s, 15 s of rest, then ``--seconds`` measured, then 15 s of rest. A sampler
reads each web worker's RSS (/proc) and the log's size on disk (database + WAL) every 0.1 s. Issue 22's
acceptance: each worker's peak under start + 200 MB, back within 20% of start 15 s after the load, the log
under its cap, the dropped rows counted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path

import requests
from common import (
    bench_env,
    children,
    free_port,
    rows,
    rss_mb,
    serve_argv,
    start,
    stop,
    train_store,
    wait_ready,
    write_result,
)

ROWS = 10_000
REST = 15.0  # seconds after the warm-up and after the load, before RSS is read


def log_bytes(store: Path) -> int:
    """The SQLite prediction log's size on disk: the database and its WAL."""
    return sum(p.stat().st_size for p in store.glob(".predictions.sqlite3*") if p.suffix != ".lock")


def run(args: argparse.Namespace, store: Path, rate: str, body: bytes) -> dict:
    """One server at sample rate ``rate``: per web worker RSS when ready, at start, at its peak and after; the
    log's peak and final size on disk, the metrics text, the statuses of the measured requests."""
    env = bench_env(NNSERVE_LOG_LEVEL="warning", NNSERVE_LOG_SAMPLE_RATE=rate,
                    NNSERVE_LOG_MAX_BYTES=str(args.max_log_mb << 20))  # fmt: skip
    port = free_port()
    log = store.parent / f"serve-{rate}.log"
    serve = start(serve_argv(port, store, 2), env, log)
    url = f"http://127.0.0.1:{port}"
    statuses: list[int] = []
    try:
        wait_ready(url, proc=serve, log=log)
        time.sleep(1)
        workers = [pid for pid, argv in children(serve.pid).items() if "service.training.supervisor" not in argv]
        found = {"ready": {pid: rss_mb(pid) or 0.0 for pid in workers}, "peak_disk": 0}

        def sample(seconds: float, peak: dict[int, float], done: threading.Event | None = None) -> None:
            ends = time.monotonic() + seconds
            while time.monotonic() < ends and not (done is not None and done.is_set()):
                for pid in workers:
                    peak[pid] = max(peak[pid], rss_mb(pid) or 0.0)
                found["peak_disk"] = max(found["peak_disk"], log_bytes(store))
                time.sleep(0.1)

        def load(seconds: float, peak: dict[int, float]) -> None:
            done = threading.Event()

            def client() -> None:
                with requests.Session() as session:
                    while not done.is_set():
                        answer = session.post(f"{url}/v1/models/iris/predict", data=body, timeout=120,
                                              headers={"Content-Type": "application/json"})  # fmt: skip
                        statuses.append(answer.status_code)

            threads = [threading.Thread(target=client) for _ in range(args.clients)]
            for thread in threads:
                thread.start()
            sample(seconds, peak)
            done.set()
            for thread in threads:
                thread.join()

        load(args.warmup, dict(found["ready"]))
        time.sleep(REST)
        found["start"] = {pid: rss_mb(pid) or 0.0 for pid in workers}
        statuses.clear()
        found["peak"] = dict(found["start"])
        load(args.seconds, found["peak"])
        sample(REST, found["peak"])
        found["after"] = {pid: rss_mb(pid) or 0.0 for pid in workers}
        found["metrics"] = requests.get(f"{url}/metrics", timeout=30).text
    finally:
        stop(serve)
    found["workers"], found["statuses"], found["final_disk"] = workers, statuses, log_bytes(store)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--max-log-mb", type=int, default=4)
    parser.add_argument("--warmup", type=float, default=3.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nnserve-bench-budget-"))
    train_store(work / "off", ["iris"], bench_env())
    shutil.copytree(work / "off", work / "logged")
    iris = rows("iris")
    body = json.dumps({"instances": [iris[i % len(iris)] for i in range(ROWS)]}).encode()
    try:
        results = {"logged": run(args, work / "logged", "1.0", body), "off": run(args, work / "off", "0", body)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    loadavg = os.getloadavg()[0]

    lines = [
        f"# Prediction log budget ({time.strftime('%Y-%m-%d %H:%M')}): {args.clients} clients x {args.seconds:g} s "
        f"of {ROWS:,}-row iris predictions, nnserve serve --workers 2",
        "",
        f"Every prediction logged (sample_rate 1.0), then logging off (0) as the baseline of what the requests alone "
        f"cost. Log capped at {args.max_log_mb} MB (NNSERVE_LOG_MAX_BYTES), other settings at their defaults; load "
        f"average (1 min) at the end {loadavg:.1f}. ready: a web worker's RSS before any request; start: after a "
        f"{args.warmup:g} s warm-up of the same load and {REST:g} s of rest; after: {REST:g} s after the load.",
        "",
        "| server | web worker | ready MB | start MB | peak MB | peak - start MB | after MB | after / start "
        "| after / ready |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for who, found in results.items():
        for i, pid in enumerate(found["workers"], 1):
            ready, begin, peak, after = (found[k][pid] for k in ("ready", "start", "peak", "after"))
            lines.append(
                f"| {who} | {i} | {ready:.0f} | {begin:.0f} | {peak:.0f} | {peak - begin:.0f} | {after:.0f} | "
                f"{after / begin:.2f}x | {after / ready:.2f}x |"
            )
    lines.append("")
    for who, found in results.items():
        metrics = found["metrics"]
        dropped: dict[str, float] = {}
        for reason, value in re.findall(
            r'^nnserve_prediction_log_dropped_total\{.*?reason="(\w+)".*?\} (\S+)$', metrics, re.M
        ):
            dropped[reason] = dropped.get(reason, 0.0) + float(value)
        logged = sum(float(v) for v in re.findall(r"^nnserve_prediction_log_rows_total\{.*\} (\S+)$", metrics, re.M))
        ok = found["statuses"].count(200)
        lines.append(
            f"- {who}: {ok} of {len(found['statuses'])} measured predictions answered 200; rows logged {logged:,.0f}; "
            "dropped "
            + (", ".join(f"{reason} {value:,.0f}" for reason, value in sorted(dropped.items())) or "none")
            + f"; the log on disk (database + WAL) peak {found['peak_disk'] / 2**20:.1f} MB, at the end "
            f"{found['final_disk'] / 2**20:.1f} MB (cap {args.max_log_mb} MB)"
        )
    write_result("prediction_log_budget", "\n".join(lines))


if __name__ == "__main__":
    main()
