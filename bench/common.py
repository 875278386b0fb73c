"""What the HTTP benchmarks share: ports, server processes, readiness, wrk, RSS, stores, results,
percentiles, a throw-away PostgreSQL server, and which worker process holds a connection.

The scripts run as ``.venv/bin/python bench/<script>.py``, so ``bench/`` is on
``sys.path`` and they import this module as ``common``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
# wrk script posting the file named by $BENCH_BODY as JSON, again and again
LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.body = f:read("*a")
f:close()
"""


def require_wrk() -> None:
    """Exit with a hint when ``wrk`` is not on PATH."""
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")


def timed_rounds_args(doc: str, seconds: int, rounds: int = 2) -> argparse.Namespace:
    """``--seconds`` (one measured run) and ``--rounds`` (interleaved repeats) of a wrk benchmark; needs wrk."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=seconds)
    parser.add_argument("--rounds", type=int, default=rounds)
    args = parser.parse_args()
    require_wrk()
    return args


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_env(**extra: str) -> dict[str, str]:
    """This process's environment without any ``NNSERVE_*`` variable, access log off, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NNSERVE_")}
    env["NNSERVE_ACCESS_LOG"] = "/dev/null"
    env.update(extra)
    return env


def train_store(store: Path, models: Iterable[str], env: dict[str, str]) -> None:
    """``nnserve train <models> --store <store>`` (``models`` may be ``["--all"]``)."""
    subprocess.run(
        [sys.executable, "-m", "service.cli", "train", *models, "--store", str(store)],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def serve_argv(
    port: int, store: Path, workers: int = 2, extra: Iterable[str] = (), grpc_port: int | None = None
) -> list[str]:
    """The ``nnserve serve`` command line on ``port`` with ``workers`` web workers, gRPC on as shipped but on
    ``grpc_port`` or a free port of its own: on the default 8081, servers of concurrent runs would share one
    port (SO_REUSEPORT) and answer each other's calls."""
    argv = [sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--workers", str(workers)]
    grpc = ["--grpc-port", str(free_port() if grpc_port is None else grpc_port)]
    return [*argv, *grpc, "--store", str(store), *extra]


def start(argv: list[str], env: dict[str, str], log: Path | None = None) -> subprocess.Popen:
    """``argv`` from the repository root in a process group of its own; stdout and stderr to ``log`` or discarded."""
    with open(log, "wb") if log is not None else contextlib.nullcontext(subprocess.DEVNULL) as out:
        return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM the process group; SIGKILL it when it is still there after ``timeout`` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def wait_ready(
    url: str,
    timeout: float = 60.0,
    path: str = "/readyz",
    status: int | None = 200,
    proc: subprocess.Popen | None = None,
    log: Path | None = None,
) -> float:
    """Seconds until ``url + path`` answers ``status`` (any status when None).

    Raises when ``timeout`` passes first or ``proc`` exits (with the end of ``log`` when given).
    """
    start_time = time.perf_counter()
    while time.perf_counter() - start_time < timeout:
        with contextlib.suppress(requests.RequestException):
            if requests.get(url + path, timeout=1).status_code in ((status,) if status else range(100, 600)):
                return time.perf_counter() - start_time
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.01)
    tail = "\n" + log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""
    raise RuntimeError(f"{url} never became ready ({timeout} s){tail}")


def wrk_argv(url: str, script: Path, seconds: int, connections: int, threads: int = 2, timeout: str = "") -> list[str]:
    """The wrk command line (``--latency``, and ``--timeout`` when given)."""
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s"]
    argv += ["--timeout", timeout] if timeout else []
    return [*argv, "--latency", "-s", str(script), url]


def parse_wrk(out: str) -> dict:
    """wrk's ``--latency`` output as requests, rps, p50/p99 (ms, NaN if absent), non2xx, sockerr (summed)
    and socket_errors (wrk's own line, "" without errors)."""

    def ms(label: str) -> float:
        found = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not found:
            return float("nan")
        value, unit = found.groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (connect (\d+), read (\d+), write (\d+), timeout (\d+))", out)
    return {
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": ms("50%"),
        "p99": ms("99%"),
        "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
        "sockerr": float(sum(int(g) for g in sock.groups()[1:])) if sock else 0.0,
        "socket_errors": sock.group(1) if sock else "",
    }


def wrk(url: str, body: Path, seconds: int, connections: int, threads: int = 2, timeout: str = "") -> dict:
    """One wrk run posting ``body`` (made by ``write_body``) to ``url``, parsed by ``parse_wrk``."""
    out = subprocess.run(
        wrk_argv(url, body.with_suffix(".lua"), seconds, connections, threads, timeout),
        capture_output=True,
        text=True,
        env={**os.environ, "BENCH_BODY": str(body)},
        check=True,
    ).stdout
    return parse_wrk(out)


def start_servers(
    stores: dict[str, Path],
    env: dict[str, str],
    sample_rates: dict[str, str],
    extra: dict[str, dict[str, str]] | None = None,
) -> tuple[list[subprocess.Popen], dict[str, str], dict[str, int]]:
    """``nnserve serve --workers 2 --no-retrain-worker`` on each store, ``NNSERVE_LOG_SAMPLE_RATE`` as given
    (and each server's ``extra`` settings), each ready: (the processes, {name: predict URL of iris}, {name:
    gunicorn master pid}). On a failure the ones already started are stopped."""
    servers: list[subprocess.Popen] = []
    urls, pids = {}, {}
    try:
        for who, store in stores.items():
            port = free_port()
            proc_env = {**env, "NNSERVE_LOG_SAMPLE_RATE": sample_rates[who], **(extra or {}).get(who, {})}
            servers.append(start(serve_argv(port, store, 2, ["--no-retrain-worker"]), proc_env))
            wait_ready(f"http://127.0.0.1:{port}", proc=servers[-1])
            urls[who], pids[who] = f"http://127.0.0.1:{port}/v1/models/iris/predict", servers[-1].pid
    except BaseException:
        for proc in servers:
            stop(proc)
        raise
    return servers, urls, pids


def comparison_head(title: str, args: argparse.Namespace, load: tuple[float, float]) -> list[str]:
    """The first lines of an interleaved comparison's report, down to its table's header."""
    return [
        f"# {title} ({time.strftime('%Y-%m-%d %H:%M')}, one iris row, 16 connections, gunicorn 2 workers, "
        f"{args.rounds} rounds of {args.seconds} s)",
        "",
        f"Load average (1 min) when the run started and ended: {load[0]:.1f} and {load[1]:.1f} (the benchmark's "
        "own share is about 2; the rest is other work on the machine).",
        "",
        "| server | req/s | p50 ms | p99 ms | non-2xx | CPU ms/request |",
        "|---|---:|---:|---:|---:|---:|",
    ]


def comparison_row(label: str, runs: list[dict]) -> str:
    """One server's table row: the medians of its runs."""
    m = medians(runs, ("rps", "p50", "p99", "non2xx", "cpu_ms"))
    return f"| {label} | {m['rps']:.0f} | {m['p50']:.2f} | {m['p99']:.2f} | {m['non2xx']:.0f} | {m['cpu_ms']:.3f} |"


def interleaved(
    urls: dict[str, str],
    body: Path | dict[str, Path],
    seconds: int,
    rounds: int,
    pids: dict[str, int],
    connections: int = 16,
) -> dict:
    """wrk on each server in turn, ``rounds`` times (the order rotating each round, so no server always runs
    first), after a 2 s warm-up of each: {name: [one wrk result per round]}, each with ``cpu_ms``, the CPU
    time the server's process tree (gunicorn master ``pids[name]``) spent per request. The runs of one round
    are back to back and share the machine's other load, so per-round ratios are the honest comparison.
    ``body`` is one for every server or one per server (a server that wants a key gets a script sending it)."""
    bodies = body if isinstance(body, dict) else dict.fromkeys(urls, body)
    for who, url in urls.items():
        wrk(url, bodies[who], 2, connections)
    results: dict[str, list[dict]] = {who: [] for who in urls}
    names = list(urls)
    for round_ in range(rounds):
        shift = round_ % len(names)
        for who in names[shift:] + names[:shift]:
            cpu = tree_cpu_seconds(pids[who])
            run = wrk(urls[who], bodies[who], seconds, connections)
            run["cpu_ms"] = (tree_cpu_seconds(pids[who]) - cpu) * 1000 / max(run["requests"], 1)
            results[who].append(run)
    return results


def round_ratios(results: dict, a: str, b: str, key: str = "rps") -> list[float]:
    """Per round, ``key`` (req/s) of ``a`` over that of ``b``; for ``cpu_ms``, b's over a's (requests per CPU
    second), so above 1 is always ``a`` doing better."""
    pairs = zip(results[a], results[b], strict=True)
    return [x[key] / y[key] if key == "rps" else y[key] / x[key] for x, y in pairs]


def medians(runs: list[dict], keys: Iterable[str]) -> dict[str, float]:
    """The median of each of ``keys`` over ``runs``."""
    return {k: statistics.median(r[k] for r in runs) for k in keys}


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, linearly interpolated between the closest ranks.

    With n samples, every q above 100 * (n - 2) / (n - 1) falls between the two largest: with 20
    samples, the p99 is 0.81 of the way from the second largest to the largest.
    """
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def rows(name: str) -> list[list[float]]:
    """The feature rows of ``models/data/<name>.csv`` (target column dropped)."""
    with open(ROOT / "models" / "data" / f"{name}.csv") as f:
        return [[float(v) for v in r[:-1]] for r in list(csv.reader(f))[1:]]


def write_body(path: Path, payload: object, headers: dict[str, str] | None = None) -> Path:
    """``payload`` as JSON at ``path``, with the wrk script posting it beside it (``.lua``), with ``headers``."""
    path.write_text(json.dumps(payload))
    extra = "".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}\n" for k, v in (headers or {}).items())
    path.with_suffix(".lua").write_text(LUA + extra)
    return path


def children(pid: int) -> dict[int, str]:
    """{pid: command line} of the direct children of ``pid``."""
    out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return {int(line.split(None, 1)[0]): line.split(None, 1)[1] for line in out.strip().splitlines()}


def rss_mb(pid: int) -> float | None:
    """Resident memory of ``pid`` in MB; None when it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (children, their children, ...), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        found.append(todo.pop())
        todo.extend(parents.get(found[-1], []))
    return found


def tree_memory_mb(pid: int) -> dict[str, float]:
    """Memory of ``pid``'s whole process tree in MB: ``pss`` (proportional set size: a page shared by n
    processes counts 1/n in each, so the sum is what the tree costs the machine) and ``rss`` (resident, shared
    pages counted in every process that maps them), summed from /proc/<pid>/smaps_rollup; ``processes``."""
    total = {"pss": 0.0, "rss": 0.0, "processes": 0.0}
    for p in descendants(pid):
        with contextlib.suppress(OSError):
            rollup = Path(f"/proc/{p}/smaps_rollup").read_text()
            total["pss"] += int(re.search(r"^Pss:\s+(\d+) kB", rollup, re.M).group(1)) / 1024
            total["rss"] += int(re.search(r"^Rss:\s+(\d+) kB", rollup, re.M).group(1)) / 1024
            total["processes"] += 1
    return total


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of ``pid``, its reaped children and its live direct children (0 when gone).

    For a gunicorn master: itself, its workers, and the workers it replaced. Unlike requests per
    second, CPU per request hardly moves when other processes load the machine.
    """
    tick = os.sysconf("SC_CLK_TCK")

    def stat(p: int, reaped: bool) -> float:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        # after the ")" field 3 (state) is index 0: utime, stime, cutime, cstime are fields 14-17
        return sum(int(v) for v in fields[11 : 15 if reaped else 13]) / tick

    return stat(pid, True) + sum(stat(child, False) for child in children(pid))


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what ``platform`` knows."""
    with contextlib.suppress(OSError):
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        if found:
            return found.group(1).strip()
    return platform.processor() or platform.machine() or "unknown"


def write_result(name: str, report: str) -> None:
    """Print ``report`` and write it as ``bench/results/<name>.md``."""
    print(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.md").write_text(report.rstrip("\n") + "\n")


@contextlib.contextmanager
def postgres_server() -> Iterator[Any]:
    """A throw-away PostgreSQL 15 server in a temp dir (initdb, a free port, fsync off), removed on exit.

    The tests' own starter, ``tests/postgres/server.py`` (``PostgresServer``: ``.url`` names its
    ``nnserve`` database), loaded from its file: a bench script named ``postgres.py`` would shadow
    the tests' ``postgres`` package. Exits with a hint when no PostgreSQL is installed.
    """
    path = ROOT / "tests" / "postgres" / "server.py"
    if str(ROOT / "tests") not in sys.path:
        sys.path.append(str(ROOT / "tests"))  # its ``helpers``; appended, so bench/ still comes first
    spec = importlib.util.spec_from_file_location("nnserve_bench_pg_server", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    try:
        found = module.binaries()  # the tests' choice: $NNSERVE_TEST_PG, else the system's, else the wheel's
    except module.NotInstalledError as exc:
        sys.exit(str(exc))
    base = Path(tempfile.mkdtemp(prefix="nnserve-bench-pg-"))
    base.chmod(0o755)  # as root the cluster runs as the postgres user, which must reach its directory
    server = module.PostgresServer(base / "cluster", binaries=found)
    try:
        server.init()
        yield server
    finally:
        server.destroy()
        shutil.rmtree(base, ignore_errors=True)


def socket_owner(server_port: int, client_port: int, pids: Iterable[int]) -> int | None:
    """Which of ``pids`` holds the server end of the TCP connection 127.0.0.1:client_port -> 127.0.0.1:server_port.

    Looks the connection up in /proc/net/tcp (its socket inode), then the inode among the processes'
    file descriptors; None when the connection or its owner is not found (Linux only).
    """
    local, remote = f"0100007F:{server_port:04X}", f"0100007F:{client_port:04X}"
    inode = next(
        (
            f[9]
            for f in (line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:])
            if f[1] == local and f[2] == remote
        ),
        None,
    )
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                        return pid
    return None
