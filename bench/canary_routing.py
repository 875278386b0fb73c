"""Canary routing benchmark: one-row predict throughput while a canary runs, against no rollout, one run.

    .venv/bin/python bench/canary_routing.py [--seconds 4] [--rounds 10]

Needs ``wrk``. Three ``nnserve serve --workers 2`` on copies of one iris store with two versions:

- ``canary``: a canary of version 1 against the active version 2 at fraction 0.1 (every request routed by
  its request id; a rollout logs every prediction, its evidence);
- ``logged``: no rollout, ``NNSERVE_LOG_SAMPLE_RATE=1.0`` (the same logging: the ratio canary / logged is
  the routing's own cost, target >= 0.95);
- ``off``: no rollout, no logging (canary / off is what running a canary costs in all).

wrk posts one iris row over 16 connections to each in turn, in rounds (``common.interleaved``). Reports the
median req/s, p50, p99 and CPU per request, the medians of the rounds' ratios (of req/s, and of requests
per CPU second, which the machine's other load hardly moves), and the share of requests the candidate
answered (from the ``X-Model-Version`` of 1000 requests).
"""

from __future__ import annotations

import os
import shutil
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

from service.store import FileModelStore, Rollout

FRACTION = 0.1


def main() -> None:
    args = timed_rounds_args(__doc__, seconds=4, rounds=10)
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="nnserve-bench-canary-"))
    env = bench_env(NNSERVE_LOG_LEVEL="warning")
    train_store(work / "off", ["iris"], env)
    train_store(work / "off", ["iris"], env)  # version 2, active
    for who in ("logged", "canary"):
        shutil.copytree(work / "off", work / who)
    canary = Rollout("canary", 1, 2, FRACTION, 10**6, 86_400.0, time.time())  # never judged: no worker runs
    FileModelStore(work / "canary").start_rollout("iris", canary)
    body = write_body(work / "one.json", {"instances": [rows("iris")[0]]})
    rates = {"canary": "0", "logged": "1.0", "off": "0"}
    servers, urls, pids = start_servers({who: work / who for who in rates}, env, rates)
    try:
        with requests.Session() as session:
            one = {"instances": [rows("iris")[0]]}
            replies = [session.post(urls["canary"], json=one, timeout=10) for _ in range(1000)]
        answered = [r.headers["X-Model-Version"] for r in replies]
        results = interleaved(urls, body, args.seconds, args.rounds, pids)
    finally:
        for proc in servers:
            stop(proc)
    load_after = os.getloadavg()[0]
    shutil.rmtree(work, ignore_errors=True)

    routing = round_ratios(results, "canary", "logged")
    overall = round_ratios(results, "canary", "off")
    per_cpu = round_ratios(results, "canary", "logged", "cpu_ms")
    lines = comparison_head("Canary routing benchmark", args, (load_before, load_after))
    labels = {"canary": f"canary at {FRACTION:g}", "logged": "no rollout, sample_rate 1.0", "off": "no rollout, off"}
    lines += [comparison_row(labels[who], results[who]) for who in labels]
    lines += [
        "",
        f"- canary / no rollout with the same logging, median of the rounds' ratios: "
        f"**{statistics.median(routing):.2f}x** (target >= 0.95); rounds: {', '.join(f'{r:.2f}' for r in routing)}",
        f"- requests per CPU second of the servers, canary / same logging: **{statistics.median(per_cpu):.2f}x**; "
        f"rounds: {', '.join(f'{r:.2f}' for r in per_cpu)}",
        f"- canary / no rollout and no logging (all a canary costs): **{statistics.median(overall):.2f}x**; "
        f"rounds: {', '.join(f'{r:.2f}' for r in overall)}",
        f"- the candidate answered {answered.count('1') / len(answered):.1%} of 1000 requests (fraction {FRACTION:g})",
    ]
    write_result("canary_routing", "\n".join(lines))


if __name__ == "__main__":
    main()
