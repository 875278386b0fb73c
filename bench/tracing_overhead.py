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

On a shared machine the servers' throughput moves with everyone else's load, so the same comparison is also made
by CPU time alone: one process per round and setting answers ``IN_PROCESS_REQUESTS`` one-row predictions through
Flask's test client (no sockets, no gunicorn) and reports its CPU seconds (``time.process_time``) per request,
tracing off with the packages installed and with them absent, interleaved.
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
IN_PROCESS_REQUESTS = 3000
# One process's CPU microseconds per one-row predict through the test client, after a warm-up.
IN_PROCESS = """
import sys, time
from service import create_app
client = create_app({"NNSERVE_STORE": sys.argv[1], "TESTING": True}).test_client()
body = {"instances": [[5.9, 3.0, 5.1, 1.8]]}
for _ in range(300):
    assert client.post("/v1/models/iris/predict", json=body).status_code == 200
started = time.process_time()
for _ in range(int(sys.argv[2])):
    client.post("/v1/models/iris/predict", json=body)
print((time.process_time() - started) / int(sys.argv[2]) * 1e6)
"""


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
    env = {k: v for k, v in bench_env(NNSERVE_LOG_LEVEL="warning", NNSERVE_GRPC_PORT="0").items() if k[:5] != "OTEL_"}
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
        cpu_us: dict[str, list[float]] = {"off": [], "absent": []}
        for round_ in range(args.rounds // 2):
            for who in ("off", "absent") if round_ % 2 == 0 else ("absent", "off"):
                argv = [sys.executable, "-c", IN_PROCESS, str(work / "off"), str(IN_PROCESS_REQUESTS)]
                run_env = {**env, **(absent if who == "absent" else {})}
                done = subprocess.run(argv, cwd=ROOT, env=run_env, capture_output=True, text=True, check=True)
                cpu_us[who].append(float(done.stdout.strip().splitlines()[-1]))
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
    in_process = [absent / off for off, absent in zip(cpu_us["off"], cpu_us["absent"], strict=True)]
    lines = comparison_head("Tracing benchmark", args, (load_before, load_after))
    lines += [
        comparison_row("otel extra installed, tracing off (no OTEL_* variable)", results["off"]),
        comparison_row("OpenTelemetry packages absent (bench/without_otel)", results["absent"]),
        comparison_row("tracing on: a server span and its stages per request, OTLP/HTTP to a receiver", results["on"]),
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
        f"- CPU per request in one process (Flask's test client, {IN_PROCESS_REQUESTS} one-row predictions, "
        f"{len(cpu_us['off'])} rounds): tracing off {statistics.median(cpu_us['off']):.0f} us, packages absent "
        f"{statistics.median(cpu_us['absent']):.0f} us; requests per CPU second off / absent, median of the rounds' "
        f"ratios: **{statistics.median(in_process):.2f}x**; rounds: {', '.join(f'{r:.2f}' for r in in_process)}",
        "",
        "With tracing off the request path is the same whether the packages are installed or not: each span call "
        "reads one global and returns a shared no-op (service/tracing.py); the packages are not even imported "
        "until the OTEL_* variables ask for traces.",
    ]
    write_result("tracing_overhead", "\n".join(lines))


if __name__ == "__main__":
    main()
