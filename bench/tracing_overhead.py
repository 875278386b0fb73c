"""Tracing benchmark: one-row predict throughput with the ``otel`` extra installed and tracing off, against the same
server with the OpenTelemetry packages absent, one run; and, for information, with tracing on.

    .venv/bin/python bench/tracing_overhead.py [--seconds 3] [--rounds 20]

Needs ``wrk`` and the ``otel`` extra. Three ``nnserve serve --workers 2`` on copies of one trained iris store:
``off``, no ``OTEL_*`` variable (the packages importable); ``absent``, the same with
``PYTHONPATH=bench/without_otel``, whose sitecustomize makes every OpenTelemetry import fail, as where the extra is
not installed (checked before the run); ``on``, ``OTEL_EXPORTER_OTLP_ENDPOINT`` naming a receiver in this process
that answers every export with 200 and keeps nothing (a span per request and its export cost the servers' CPU;
the receiver's own CPU is this process's). wrk posts one iris row over 16 connections to each in turn, in rounds
(the order rotating: ``common.interleaved``). Reports the median req/s, p50, p99 and CPU per request of each and
the median of the rounds' ratios off / absent (target >= 0.99) and on / off, of req/s and of requests per CPU
second of the servers.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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

WITHOUT_OTEL = ROOT / "bench" / "without_otel"


class Discard(BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint that accepts every export and keeps nothing (an empty protobuf answer is valid)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


def otel_importable(env: dict[str, str]) -> bool:
    check = [sys.executable, "-c", "import opentelemetry.sdk.trace"]
    return subprocess.run(check, cwd=ROOT, env=env, capture_output=True).returncode == 0


def main() -> None:
    args = timed_rounds_args(__doc__, seconds=3, rounds=20)
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="nnserve-bench-tracing-"))
    env = {k: v for k, v in bench_env(NNSERVE_LOG_LEVEL="warning").items() if not k.startswith("OTEL_")}
    absent = {"PYTHONPATH": os.pathsep.join(p for p in (str(WITHOUT_OTEL), env.get("PYTHONPATH")) if p)}
    if not otel_importable(env) or otel_importable({**env, **absent}):
        sys.exit("needs the otel extra installed (pip install -e '.[otel]'), and bench/without_otel to hide it")
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Discard)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    on = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.server_address[1]}"}
    train_store(work / "off", ["iris"], env)
    for who in ("absent", "on"):
        shutil.copytree(work / "off", work / who)
    body = write_body(work / "row.json", {"instances": [rows("iris")[0]]})
    servers, urls, pids = start_servers(
        {who: work / who for who in ("off", "absent", "on")},
        env,
        {"off": "0", "absent": "0", "on": "0"},
        {"off": {}, "absent": absent, "on": on},
    )
    try:
        results = interleaved(urls, body, args.seconds, args.rounds, pids)
    finally:
        for proc in servers:
            stop(proc)
        receiver.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()[0]
    failed = sum(r["non2xx"] + r["sockerr"] for runs in results.values() for r in runs)

    ratios = round_ratios(results, "off", "absent")
    per_cpu = round_ratios(results, "off", "absent", "cpu_ms")
    on_ratios = round_ratios(results, "on", "off")
    on_cpu = round_ratios(results, "on", "off", "cpu_ms")
    lines = comparison_head("Tracing benchmark", args, (load_before, load_after))
    lines += [
        comparison_row("otel extra installed, tracing off (no OTEL_* variable)", results["off"]),
        comparison_row("OpenTelemetry packages absent (bench/without_otel)", results["absent"]),
        comparison_row("tracing on: a server span per request, OTLP/HTTP to a local receiver", results["on"]),
    ]
    lines += [
        "",
        f"- one-row throughput, tracing off / packages absent, median of the rounds' ratios: "
        f"**{statistics.median(ratios):.2f}x** (target >= 0.99); rounds: {', '.join(f'{r:.2f}' for r in ratios)}",
        f"- requests per CPU second of the servers, off / absent: **{statistics.median(per_cpu):.2f}x**; "
        f"rounds: {', '.join(f'{r:.2f}' for r in per_cpu)}",
        f"- tracing on / off (for information; the receiver runs in the benchmark's process): throughput "
        f"**{statistics.median(on_ratios):.2f}x**, requests per CPU second **{statistics.median(on_cpu):.2f}x**",
        f"- non-2xx answers and socket errors in all runs: {failed:.0f}",
        "",
        "With tracing off the request path is the same whether the packages are installed or not: each span call "
        "reads one global and returns a shared no-op (service/tracing.py); the packages are not even imported "
        "until the OTEL_* variables ask for traces.",
    ]
    write_result("tracing_overhead", "\n".join(lines))


if __name__ == "__main__":
    main()
