"""API key benchmark: one-row predict throughput with NNSERVE_AUTH=closed and a valid key against open-predict
without one, one run.

    .venv/bin/python bench/auth_keys.py [--seconds 4] [--rounds 10]

Needs ``wrk``. Two ``nnserve serve --workers 2`` on copies of one trained iris store, alike but for
``NNSERVE_AUTH`` (``closed``, every request carrying a `predict` key made by ``nnserve keys create``, and
``open-predict``, none); wrk posts one iris row over 16 connections to each in turn, in rounds of two
back-to-back runs (order alternating: ``common.interleaved``). Reports the median req/s, p50, p99 and CPU per
request of both, and the median of the rounds' ratios closed / open (target >= 0.97) of req/s and of requests
per CPU second of the servers. Every answer must be a 200: a refused key would make closed look fast.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import (
    ROOT,
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
    work = Path(tempfile.mkdtemp(prefix="nnserve-bench-keys-"))
    env = bench_env(NNSERVE_LOG_LEVEL="warning")
    train_store(work / "open", ["iris"], env)
    shutil.copytree(work / "open", work / "closed")
    made = subprocess.run(
        [sys.executable, "-m", "service.cli", "keys", "create", "bench", "--scope", "predict", "--json"],
        cwd=ROOT,
        env={**env, "NNSERVE_STORE": str(work / "closed")},
        capture_output=True,
        text=True,
        check=True,
    )
    key = json.loads(made.stdout)["key"]
    payload = {"instances": [rows("iris")[0]]}
    bodies = {
        "closed": write_body(work / "closed.json", payload, {"Authorization": f"Bearer {key}"}),
        "open": write_body(work / "open.json", payload),
    }
    servers, urls, pids = start_servers(
        {who: work / who for who in ("closed", "open")},
        env,
        {"closed": "0", "open": "0"},
        {"closed": {"NNSERVE_AUTH": "closed"}, "open": {"NNSERVE_AUTH": "open-predict"}},
    )
    try:
        results = interleaved(urls, bodies, args.seconds, args.rounds, pids)
    finally:
        for proc in servers:
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()[0]
    refused = sum(r["non2xx"] for runs in results.values() for r in runs)

    ratios = round_ratios(results, "closed", "open")
    per_cpu = round_ratios(results, "closed", "open", "cpu_ms")
    lines = comparison_head("API key benchmark", args, (load_before, load_after))
    lines += [
        comparison_row("NNSERVE_AUTH=closed, a predict key", results["closed"]),
        comparison_row("NNSERVE_AUTH=open-predict, no key", results["open"]),
    ]
    lines += [
        "",
        f"- one-row throughput closed with a key / open-predict, median of the rounds' ratios: "
        f"**{statistics.median(ratios):.2f}x** (target >= 0.97); rounds: {', '.join(f'{r:.2f}' for r in ratios)}",
        f"- requests per CPU second of the servers, closed / open (hardly moved by the machine's other load): "
        f"**{statistics.median(per_cpu):.2f}x**; rounds: {', '.join(f'{r:.2f}' for r in per_cpu)}",
        f"- non-2xx answers in all runs: {refused:.0f} (a refused key would be 401s)",
    ]
    write_result("auth_keys", "\n".join(lines))


if __name__ == "__main__":
    main()
