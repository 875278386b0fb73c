"""Prediction log benchmark: one-row predict throughput with every prediction logged against logging off, one run.

    .venv/bin/python bench/prediction_log.py [--seconds 4] [--rounds 10]

Needs ``wrk``. Two ``nnserve serve --workers 2`` on copies of one trained iris store, alike but for
``NNSERVE_LOG_SAMPLE_RATE`` (1.0 and 0); wrk posts one iris row over 16 connections to each in turn,
in rounds of two back-to-back runs (order alternating: ``common.interleaved``), so both runs of a round
share the machine's other load. Reports the median req/s, p50, p99 and CPU per request of both, the median
of the rounds' ratios logged / off (target >= 0.9) of req/s and of requests per CPU second of the servers
(which the machine's other load hardly moves), and, so the figure is honest, the rows the log holds and the
rows its buffer dropped.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import requests
from common import (
    bench_env,
    comparison_head,
    comparison_row,
    interleaved,
    round_ratios,
    rows,
    start_servers,
    stop,
    timed_rounds_args,
    train_store,
    write_body,
    write_result,
)


def main() -> None:
    args = timed_rounds_args(__doc__, seconds=4, rounds=10)
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="nnserve-bench-log-"))
    env = bench_env(NNSERVE_LOG_LEVEL="warning")
    train_store(work / "off", ["iris"], env)
    shutil.copytree(work / "off", work / "logged")
    body = write_body(work / "one.json", {"instances": [rows("iris")[0]]})
    servers, urls, pids = start_servers(
        {who: work / who for who in ("logged", "off")}, env, {"logged": "1.0", "off": "0"}
    )
    try:
        results = interleaved(urls, body, args.seconds, args.rounds, pids)
        time.sleep(1)  # the writers' last batches
        metrics = requests.get(urls["logged"].replace("/v1/models/iris/predict", "/metrics"), timeout=10).text
    finally:
        for proc in servers:
            stop(proc)
    load_after = os.getloadavg()[0]
    logged_rows = 0
    if (work / "logged" / ".predictions.sqlite3").exists():
        with sqlite3.connect(work / "logged" / ".predictions.sqlite3") as db:
            logged_rows = db.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]
    shutil.rmtree(work, ignore_errors=True)
    dropped = sum(float(v) for v in re.findall(r"^nnserve_prediction_log_dropped_total\{.*\} (\S+)$", metrics, re.M))
    sent = sum(r["requests"] for r in results["logged"])

    ratios = round_ratios(results, "logged", "off")
    per_cpu = round_ratios(results, "logged", "off", "cpu_ms")
    lines = comparison_head("Prediction log benchmark", args, (load_before, load_after))
    lines += [comparison_row("sample_rate 1.0", results["logged"]), comparison_row("sample_rate 0", results["off"])]
    lines += [
        "",
        f"- one-row throughput logged / off, median of the rounds' ratios: **{statistics.median(ratios):.2f}x** "
        f"(target >= 0.9); rounds: {', '.join(f'{r:.2f}' for r in ratios)}",
        f"- requests per CPU second of the servers, logged / off (hardly moved by the machine's other load): "
        f"**{statistics.median(per_cpu):.2f}x**; rounds: {', '.join(f'{r:.2f}' for r in per_cpu)}",
        f"- rows in the log: {logged_rows} of {sent} measured requests (plus warm-up); dropped by a full buffer: "
        f"{dropped:.0f}",
    ]
    write_result("prediction_log", "\n".join(lines))


if __name__ == "__main__":
    main()
