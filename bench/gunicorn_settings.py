"""gunicorn worker class / workers / threads for nnserve, measured with wrk on loopback, in one bounded run.

    .venv/bin/python bench/gunicorn_settings.py [--seconds 5] [--rounds 2]

Starts one gunicorn per contender (all with ``service/gunicorn_conf.py``,
the class/workers/threads overridden on the command line) on a store with
the iris model, then, contenders interleaved and rounds repeated (medians kept):

- ``1 row c16`` / ``1 row c64``: one-row iris predicts, wrk -t2 at 16 and 64 connections;
- ``slow clients``: the same wrk -c16 load while 4 other clients upload
  their request bodies slowly (10 bytes every 0.25 s, 5 s a request, what a
  buffering proxy would absorb before the app sees the request);
- ``recycling``: wrk -c64 for 3x the run length with ``--max-requests 300
  --max-requests-jitter 100`` (dozens of worker restarts): non-2xx and socket
  errors must stay 0.

Prints a table and writes ``bench/results/gunicorn_settings.md``. Needs ``wrk``.
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
LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.body = f:read("*a")
f:close()
"""
# name -> (worker class, workers, threads)
CONTENDERS = {
    "sync w2": ("sync", 2, 1),
    "sync w4": ("sync", 4, 1),
    "gthread w2 t2": ("gthread", 2, 2),
    "gthread w2 t4": ("gthread", 2, 4),
    "gthread w3 t2": ("gthread", 3, 2),
}
RECYCLED = ("sync w2", "gthread w2 t2", "gthread w2 t4")
IRIS_ROW = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
MAX_REQUESTS = ["--max-requests", "300", "--max-requests-jitter", "100"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            if requests.get(url + "/readyz", timeout=1).status_code == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{url} not ready after {timeout} s")


def start(kind: str, workers: int, threads: int, env: dict[str, str], extra: list[str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    argv = [sys.executable, "-m", "gunicorn", "-c", "service/gunicorn_conf.py", "--bind", f"127.0.0.1:{port}"]
    argv += ["--workers", str(workers), "--worker-class", kind, "--threads", str(threads), *extra, "service.wsgi:app"]
    log = open(env["BENCH_LOG_DIR"] + f"/gunicorn-{port}.log", "wb")  # noqa: SIM115 (closed with the process)
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    proc.log = log
    return proc, f"http://127.0.0.1:{port}"


def stop(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    proc.log.close()


def wrk(url: str, body: Path, seconds: int, connections: int) -> dict[str, float]:
    """One wrk run (2 threads, 2 s timeout): req/s, p50/p99 ms, non-2xx, socket errors."""
    lua = body.with_suffix(".lua")
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "2s", "--latency", "-s", str(lua), url],
        capture_output=True,
        text=True,
        env={**os.environ, "BENCH_BODY": str(body)},
        check=True,
    ).stdout

    def ms(label: str) -> float:
        found = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not found:
            return float("nan")
        value, unit = found.groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": ms("50%"),
        "p99": ms("99%"),
        "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
        "sockerr": float(sum(int(g) for g in sock.groups())) if sock else 0.0,
    }


class SlowClients:
    """``n`` clients uploading a one-row predict slowly (10 bytes every 0.25 s: 5 s a request), again and again."""

    def __init__(self, url: str, n: int = 4) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.addr = (host, int(port))
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.upload, daemon=True) for _ in range(n)]

    def upload(self) -> None:
        body = json.dumps(IRIS_ROW).ljust(200).encode()
        head = (
            "POST /v1/models/iris/predict HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        while not self.stopping.is_set():
            with contextlib.suppress(OSError), socket.create_connection(self.addr, timeout=30) as s:
                s.sendall(head)
                for i in range(0, len(body), 10):
                    if self.stopping.wait(0.25):
                        return
                    s.sendall(body[i : i + 10])
                s.recv(65536)

    def __enter__(self) -> SlowClients:
        for t in self.threads:
            t.start()
        time.sleep(0.5)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(35)


def restarts(log: Path) -> int:
    return log.read_text(errors="replace").count("Autorestarting worker")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")

    work = Path(tempfile.mkdtemp(prefix="nnserve-gsettings-"))
    store = work / "store"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("NNSERVE_")},
        "NNSERVE_STORE": str(store),
        "NNSERVE_ACCESS_LOG": "/dev/null",
        "NNSERVE_LOG_LEVEL": "info",
        "BENCH_LOG_DIR": str(work),
    }
    subprocess.run(
        [sys.executable, "-m", "service.cli", "train", "iris", "--store", str(store)],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    with open(ROOT / "models" / "data" / "iris.csv") as f:
        row = [float(v) for v in list(csv.reader(f))[1][:-1]]
    body = work / "one.json"
    body.write_text(json.dumps({"instances": [row]}))
    body.with_suffix(".lua").write_text(LUA)

    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    servers: dict[str, tuple[subprocess.Popen, str]] = {}
    recycled: dict[str, tuple[subprocess.Popen, str]] = {}
    try:
        for name, (kind, n, t) in CONTENDERS.items():
            servers[name] = start(kind, n, t, env, [])
        for name in RECYCLED:
            kind, n, t = CONTENDERS[name]
            recycled[name] = start(kind, n, t, env, MAX_REQUESTS)
        for _, url in [*servers.values(), *recycled.values()]:
            wait_ready(url)
        predict = "{}/v1/models/iris/predict"
        for _, url in servers.values():  # warm-up
            wrk(predict.format(url), body, 1, 16)
        for _ in range(args.rounds):
            for conns in (16, 64):
                for name, (_, url) in servers.items():
                    results.setdefault((name, f"1 row c{conns}"), []).append(
                        wrk(predict.format(url), body, args.seconds, conns)
                    )
            for name, (_, url) in servers.items():
                with SlowClients(url):
                    measured = wrk(predict.format(url), body, args.seconds, 16)
                results.setdefault((name, "slow clients"), []).append(measured)
                wait_ready(url, timeout=90)  # a sync worker blocked on an idle socket may be killed by the master
        for name, (proc, url) in recycled.items():
            measured = wrk(predict.format(url), body, 3 * args.seconds, 64)
            measured["restarts"] = restarts(Path(proc.log.name))
            results[(name, "recycling")] = [measured]
    finally:
        for proc, _ in [*servers.values(), *recycled.values()]:
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)

    lines = [
        f"# gunicorn settings ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, wrk -t2 on loopback,"
        f" {args.seconds} s runs, median of {args.rounds} rounds, contenders interleaved)",
        "",
        "| contender | case | req/s | p50 ms | p99 ms | non-2xx | socket errors |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for (name, case), runs in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        m = {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50", "p99", "non2xx", "sockerr")}
        label = case if case != "recycling" else f"recycling ({runs[0]['restarts']:.0f} worker restarts)"
        lines.append(
            f"| {name} | {label} | {m['rps']:.0f} | {m['p50']:.2f} | {m['p99']:.2f} | {m['non2xx']:.0f} |"
            f" {m['sockerr']:.0f} |"
        )
    lines += [
        "",
        "slow clients: wrk -c16 while 4 clients upload a one-row body at 10 bytes / 0.25 s;"
        " wrk's timeout is 2 s, so socket errors there are timeouts.",
        f"recycling: wrk -c64 for {3 * args.seconds} s with {' '.join(MAX_REQUESTS)}.",
    ]
    report = "\n".join(lines)
    print(report)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "gunicorn_settings.md").write_text(report + "\n")


if __name__ == "__main__":
    main()
