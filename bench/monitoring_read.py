"""Monitoring reads under load: 8 clients on ``/monitoring?window=`` its maximum, on a 100,000-row log, beside
one-row predictions, against the same predictions alone in the same run.

    .venv/bin/python bench/monitoring_read.py [--seconds 30] [--rows 100000] [--clients 8] [--connections 4]

Needs ``wrk``. One ``nnserve serve --workers 2`` (with its retraining worker) on a trained iris store whose
prediction log holds ``--rows`` rows of version 1 (a third labelled), written before the server starts. Once
the worker's first pass has written the snapshot of the largest window (``NNSERVE_MONITOR_MAX_WINDOW`` =
``--rows``), wrk posts one iris row over ``--connections`` for ``--seconds`` alone (quiet), then again while
``--clients`` threads call ``GET /v1/models/iris/monitoring?window=<rows>`` back to back, and, as a control,
while they call ``GET /v1/models/iris`` (a read of the store of about the same size) instead: what any cheap
call costs at that rate, on this machine, now. Reports p50/p99 of the predictions in each phase and the server
CPU per call, from /proc: the web workers' CPU in the phase over its calls (an upper bound: the predictions'
CPU is in it too), and that minus the predictions' CPU at the quiet phase's cost per prediction. The
retraining worker's CPU (its passes, which compute the snapshots) is shown apart.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests
from common import (
    bench_env,
    children,
    free_port,
    percentile,
    require_wrk,
    rows,
    serve_argv,
    start,
    stop,
    train_store,
    tree_cpu_seconds,
    wait_ready,
    write_body,
    write_result,
    wrk,
)

from service.store.monitoring import Label, LoggedPrediction, SqlitePredictionLog

CHUNK = 10_000


def fill_log(store: Path, count: int) -> None:
    """``count`` logged iris rows of version 1 (outputs and probabilities as a classifier logs them), a third
    of them labelled."""
    X = np.array(rows("iris"))
    rng = np.random.default_rng(22)
    classes = ["setosa", "versicolor", "virginica"]
    log = SqlitePredictionLog(store)
    now = time.time() - count * 0.001
    for start_at in range(0, count, CHUNK):
        picked = X[rng.integers(0, len(X), CHUNK)] + rng.normal(0, 0.1, (CHUNK, X.shape[1]))
        batch = [
            LoggedPrediction(
                "iris", f"b{start_at + i}", 0, 1, now + (start_at + i) * 0.001, x.round(3).tolist(),
                classes[(start_at + i) % 3], [0.8, 0.1, 0.1],
            )
            for i, x in enumerate(picked[: count - start_at])
        ]  # fmt: skip
        log.append(batch)
        labels = [Label(p.request_id, classes[int(rng.integers(0, 3))]) for p in batch[::3]]
        log.label("iris", labels, source="key", key="bench")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` (0 for one that is gone)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def retraining_worker(master: int) -> list[int]:
    """The retraining worker's supervisor (a child of the gunicorn ``master``) and the worker it runs."""
    supervisor = [pid for pid, args in children(master).items() if "service.training.supervisor" in args]
    return supervisor + [pid for parent in supervisor for pid in children(parent)]


def web_cpu_seconds(master: int, supervisor: int) -> float:
    """CPU seconds of the gunicorn ``master`` and its web workers, those it replaced (every ~20,000 requests)
    included: its process tree without the retraining worker's ``supervisor``."""
    return tree_cpu_seconds(master) - cpu_seconds([supervisor])


def hammer(url: str, stop_at: float, calls: list[float], failures: list[str]) -> None:
    """Call ``url`` back to back until ``stop_at``; each call's seconds into ``calls``, each answer that is not a
    200 (or, from the monitoring endpoint, has no figures) into ``failures``."""
    with requests.Session() as session:
        while time.monotonic() < stop_at:
            began = time.perf_counter()
            answer = session.get(url, timeout=60)
            calls.append(time.perf_counter() - began)
            if answer.status_code != 200 or answer.json().get("computed_at", 0) is None:
                failures.append(f"{answer.status_code} {answer.text[:200]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument(
        "--connections", type=int, default=4, help="wrk connections posting one-row predictions (1: one client)"
    )
    args = parser.parse_args()
    require_wrk()
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="nnserve-bench-monitoring-"))
    store = work / "store"
    env = bench_env(
        NNSERVE_STORE=str(store), NNSERVE_LOG_LEVEL="warning", NNSERVE_MONITOR_MAX_WINDOW=str(args.rows)
    )  # the default NNSERVE_POLICY_INTERVAL (30 s): a pass or two of the worker fall in the run
    train_store(store, ["iris"], env)
    fill_log(store, args.rows)
    one = write_body(work / "one.json", {"instances": [rows("iris")[0]]})
    port = free_port()
    serve = start(serve_argv(port, store, 2), env, work / "serve.log")
    base = f"http://127.0.0.1:{port}"
    monitoring_url = f"{base}/v1/models/iris/monitoring?window={args.rows}"
    try:
        wait_ready(base, proc=serve, log=work / "serve.log")
        began = time.monotonic()
        while requests.get(monitoring_url, timeout=60).json()["computed_at"] is None:
            if time.monotonic() - began > 300:
                raise RuntimeError("the retraining worker wrote no snapshot in 300 s")
            time.sleep(0.5)
        first_pass = time.monotonic() - began
        retrain = retraining_worker(serve.pid)
        wrk(f"{base}/v1/models/iris/predict", one, 2, args.connections, min(2, args.connections))  # warm-up
        phases = {}
        targets = {"quiet": None, "control": f"{base}/v1/models/iris", "monitoring": monitoring_url}
        for phase, target in targets.items():
            calls: list[float] = []
            failures: list[str] = []
            threads = []
            cpu_web, cpu_retrain = web_cpu_seconds(serve.pid, retrain[0]), cpu_seconds(retrain)
            if target is not None:
                stop_at = time.monotonic() + args.seconds
                threads = [
                    threading.Thread(target=hammer, args=(target, stop_at, calls, failures))
                    for _ in range(args.clients)
                ]
                for t in threads:
                    t.start()
            run = wrk(
                f"{base}/v1/models/iris/predict",
                one,
                args.seconds,
                args.connections,
                min(2, args.connections),
                timeout="10s",
            )
            for t in threads:
                t.join()
            run["cpu_web"] = web_cpu_seconds(serve.pid, retrain[0]) - cpu_web
            run["cpu_retrain"] = cpu_seconds(retrain) - cpu_retrain
            run["calls"], run["failures"] = calls, failures
            phases[phase] = run
    finally:
        stop(serve)
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()[0]

    quiet, control, loaded = phases["quiet"], phases["control"], phases["monitoring"]
    calls = loaded["calls"]
    per_predict = quiet["cpu_web"] / max(quiet["requests"], 1)

    def per_call(run: dict) -> tuple[float, float]:
        """ms of web CPU per call of ``run``: all of it, and without the predictions' share."""
        count = max(len(run["calls"]), 1)
        return run["cpu_web"] / count * 1000, (run["cpu_web"] - per_predict * run["requests"]) / count * 1000

    bound, estimate = per_call(loaded)
    lines = [
        f"# Monitoring reads under load ({time.strftime('%Y-%m-%d %H:%M')}): nnserve serve --workers 2 with its "
        f"retraining worker, a {args.rows}-row prediction log",
        "",
        f"{args.clients} clients call `GET /v1/models/iris/monitoring?window={args.rows}` (the largest window, "
        f"`NNSERVE_MONITOR_MAX_WINDOW`) back to back for {args.seconds} s while wrk posts one iris row over "
        f"{args.connections} connections; the quiet phase is the same wrk run alone, and the control phase the same "
        "clients on `GET /v1/models/iris` instead, one after the other on the same server. "
        f"The retraining worker's first pass wrote the snapshots {first_pass:.1f} s after the server was ready. "
        f"Load average (1 min) at the start and end: {load_before:.1f} and {load_after:.1f}.",
        "",
        "| phase | clients call | predict req/s | predict p50 ms | predict p99 ms | non-2xx | calls "
        "| web CPU s | web CPU ms/call | retraining worker CPU s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for phase, run in phases.items():
        target = targets[phase]
        shown = "-" if target is None else "`" + target.removeprefix(base) + "`"
        cost = "-" if target is None else f"{per_call(run)[0]:.2f}"
        lines.append(
            f"| {phase} | {shown} | {run['rps']:.0f} | {run['p50']:.2f} | {run['p99']:.2f} | {run['non2xx']:.0f} "
            f"| {len(run['calls'])} | {run['cpu_web']:.2f} | {cost} | {run['cpu_retrain']:.2f} |"
        )
    lines += [
        "",
        f"- one-row predict p99: **{loaded['p99']:.1f} ms** under the monitoring load, {quiet['p99']:.1f} ms quiet "
        f"(ratio {loaded['p99'] / quiet['p99']:.2f}; target <= 100 ms), {control['p99']:.1f} ms under the control "
        "load",
        f"- server CPU per monitoring call: **<= {bound:.2f} ms** (all the web workers' CPU in the loaded phase over "
        f"its calls), {estimate:.2f} ms without the predictions' share at the quiet phase's "
        f"{per_predict * 1000:.2f} ms each (target <= 50 ms)",
        f"- monitoring call latency: p50 {percentile(calls, 50) * 1000:.1f} ms, "
        f"p99 {percentile(calls, 99) * 1000:.1f} ms (client side, {args.clients} clients); "
        f"calls without figures or not 200: {len(loaded['failures'])}",
    ]
    write_result("monitoring_read", "\n".join(lines))


if __name__ == "__main__":
    main()
