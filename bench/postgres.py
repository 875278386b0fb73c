"""PostgreSQL mode (issue 13): predict throughput against filesystem mode, activation reach, job queue; one run.

    .venv/bin/python bench/postgres.py [--seconds 4] [--rounds 7] [--activations 20] [--replicas 2]
                                       [--workers 3] [--jobs 400] [--job-workers 4]

Needs ``wrk`` and Debian's postgresql-15 (the server the tests start: initdb in a temp dir, a free port,
fsync off). Three measurements:

1. One-row iris predict throughput of ``nnserve serve --workers 2 --no-retrain-worker`` on a
   PostgreSQL store against the same command on a filesystem store, same model and gunicorn
   settings, both servers up throughout; wrk -t2 -c16, rounds interleaved (the order alternating),
   medians kept, and the median of each round's own ratio (robust to load that drifts between rounds).
2. Activation reach: ``--replicas`` ``nnserve serve`` replicas of ``--workers`` web workers each on
   one database. Before measuring, keep-alive connections are opened to each replica until every web
   worker holds one: which worker holds a connection is read from /proc (the socket's inode among the
   worker's file descriptors), so each worker gets exactly one probe connection, and gthread keeps a
   connection with the worker that accepted it. Then ``--activations`` activations alternate versions
   1 and 2 (``PostgresModelStore.activate`` in this process, the real API: one UPDATE and a NOTIFY in
   one transaction). Each is timed from ``activate`` returning (the commit is its last statement) to
   the arrival of the first answer naming the new version on the last worker's connection; every
   connection is polled by its own thread, a request each 5 ms. Measured with NOTIFY on and with
   NNSERVE_ACTIVATION_NOTIFY=off (the poll of NNSERVE_ACTIVATION_POLL, default 5 s, alone). Between
   activations a random 0.2-1 s pause, so activations fall anywhere in the poll cycle.
3. Job throughput: ``--jobs`` short jobs (spread over 16 models: the queue runs one job per model at
   a time) claimed by ``--job-workers`` processes through ``PostgresJobQueue`` (claim, one progress
   update, finish: a retrain's queue traffic without the training). Double claims are counted from the
   database (a job's ``attempts`` counts its claims) and from the ids each process claimed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import shutil
import statistics
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
from common import (
    bench_env,
    children,
    free_port,
    percentile,
    postgres_server,
    require_wrk,
    rows,
    serve_argv,
    socket_owner,
    start,
    stop,
    train_store,
    tree_cpu_seconds,
    wait_ready,
    write_body,
    write_result,
    wrk,
)

from service import config
from service.store.postgres import PostgresModelStore
from service.training.jobs import RetrainRequest
from service.training.pg_queue import PostgresJobQueue

PREDICT = "/v1/models/iris/predict"
JOB_MODELS = 16
POLL_PAUSE = 0.005  # seconds between two requests on one probe connection


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=4, help="one wrk run of the throughput comparison")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved throughput rounds")
    parser.add_argument("--activations", type=int, default=20, help="activations per mode (NOTIFY, poll only)")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--workers", type=int, default=3, help="web workers per replica")
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument("--job-workers", type=int, default=4)
    args = parser.parse_args()
    require_wrk()
    return args


def create_database(server_url: str, name: str) -> str:
    """A new database on the server of ``server_url``; returns its URL."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # a fixed name of this script, never input
    return server_url.rsplit("/", 1)[0] + f"/{name}"


# -- 1. predict throughput ------------------------------------------------------------------------


def throughput(work: Path, fs_store: Path, database_url: str, args: argparse.Namespace) -> dict[str, list[dict]]:
    body = write_body(work / "one.json", {"instances": [rows("iris")[0]]})
    extra = ["--no-retrain-worker"]
    ports = {"postgres": free_port(), "filesystem": free_port()}
    envs = {
        "postgres": bench_env(NNSERVE_DATABASE_URL=database_url, NNSERVE_LOG_LEVEL="warning"),
        "filesystem": bench_env(NNSERVE_LOG_LEVEL="warning"),
    }
    stores = {"postgres": work / "tp-cache", "filesystem": fs_store}
    procs = {who: start(serve_argv(ports[who], stores[who], 2, extra), envs[who]) for who in ports}
    runs: dict[str, list[dict]] = {who: [] for who in ports}
    try:
        for who, port in ports.items():
            wait_ready(f"http://127.0.0.1:{port}", proc=procs[who])
        urls = {who: f"http://127.0.0.1:{port}{PREDICT}" for who, port in ports.items()}
        for url in urls.values():  # warm-up
            wrk(url, body, 2, 16)
        for r in range(args.rounds):
            order = list(urls) if r % 2 == 0 else list(reversed(urls))
            for who in order:
                cpu = tree_cpu_seconds(procs[who].pid)
                run = wrk(urls[who], body, args.seconds, 16)
                run["cpu_ms"] = (tree_cpu_seconds(procs[who].pid) - cpu) * 1000 / max(run["requests"], 1)
                runs[who].append(run)
                print(
                    f"throughput round {r + 1}: {who} {run['rps']:.0f} req/s, {run['cpu_ms']:.3f} CPU ms/req",
                    flush=True,
                )
    finally:
        for proc in procs.values():
            stop(proc)
    return runs


# -- 2. activation reach --------------------------------------------------------------------------


class Probe:
    """One keep-alive connection to a replica, held by a known web worker (``pid``)."""

    def __init__(self, port: int, body: bytes) -> None:
        self.port, self.body = port, body
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.pid: int | None = None

    def version(self) -> int:
        self.conn.request("POST", PREDICT, self.body, {"Content-Type": "application/json"})
        response = self.conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"predict answered {response.status}: {data[:200]!r}")
        return int(json.loads(data)["version"])

    def owner(self, pids: list[int]) -> int | None:
        assert self.conn.sock is not None
        return socket_owner(self.port, self.conn.sock.getsockname()[1], pids)

    def close(self) -> None:
        self.conn.close()


def pin_probes(port: int, pids: list[int], body: bytes, attempts: int = 400) -> list[Probe]:
    """One probe connection per web worker in ``pids``: connections are opened until each worker holds one."""
    pinned: dict[int, Probe] = {}
    spare: list[Probe] = []
    for _ in range(attempts):
        probe = Probe(port, body)
        probe.version()
        probe.pid = probe.owner(pids)
        if probe.pid is None or probe.pid in pinned:
            spare.append(probe)  # kept open until the end, so the next connection goes elsewhere more often
        else:
            pinned[probe.pid] = probe
        if len(pinned) == len(pids):
            break
    for probe in spare:
        probe.close()
    if len(pinned) != len(pids):
        raise RuntimeError(f"port {port}: {len(pinned)} of {len(pids)} workers got a probe in {attempts} connections")
    return list(pinned.values())


def reach(probes: list[Probe], target: int, timeout: float) -> tuple[list[float | None], int]:
    """Poll every probe (a thread each) until each has answered ``target``; the perf_counter of each first
    such answer (None past ``timeout``), and how many answers went back to another version after it."""
    first: list[float | None] = [None] * len(probes)
    flips = [0]
    done = threading.Event()
    deadline = time.perf_counter() + timeout

    def poll(i: int, probe: Probe) -> None:
        while not done.is_set() and time.perf_counter() < deadline:
            version = probe.version()
            now = time.perf_counter()
            if version == target and first[i] is None:
                first[i] = now
                if all(t is not None for t in first):
                    done.set()
            elif version != target and first[i] is not None:
                flips[0] += 1
            time.sleep(POLL_PAUSE)

    threads = [threading.Thread(target=poll, args=(i, p)) for i, p in enumerate(probes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return first, flips[0]


def activation_mode(
    work: Path, database_url: str, notify: str, args: argparse.Namespace, store: PostgresModelStore
) -> dict:
    body = json.dumps({"instances": [rows("iris")[0]]}).encode()
    env = bench_env(NNSERVE_DATABASE_URL=database_url, NNSERVE_LOG_LEVEL="warning", NNSERVE_ACTIVATION_NOTIFY=notify)
    replicas = []
    try:
        for i in range(args.replicas):
            port = free_port()
            log = work / f"replica-{notify}-{i}.log"
            cache = work / f"replica-{i}-cache"  # a node's cache, kept between the two modes
            proc = start(serve_argv(port, cache, args.workers, ["--no-retrain-worker"]), env, log)
            replicas.append((port, proc, log))
        probes: list[Probe] = []
        for port, proc, log in replicas:
            wait_ready(f"http://127.0.0.1:{port}", proc=proc, log=log)
            deadline = time.monotonic() + 30
            while len(pids := [p for p, cmd in children(proc.pid).items() if "gunicorn" in cmd]) < args.workers:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"replica on {port}: {len(pids)} of {args.workers} workers up")
                time.sleep(0.1)
            probes += pin_probes(port, pids, body)
        current = store.active_version("iris")
        seconds: list[float] = []
        firsts: list[float] = []
        flips, restarts = 0, 0
        for n in range(args.activations):
            target = 1 if current == 2 else 2
            time.sleep(random.uniform(0.2, 1.0))
            for probe in probes:  # every worker still serves the old version, on the same connection
                if probe.version() != current:
                    raise RuntimeError(f"worker {probe.pid} does not serve version {current} before activation {n}")
            store.activate("iris", target)
            committed = time.perf_counter()
            first, flipped = reach(probes, target, timeout=30.0)
            if any(t is None for t in first):
                raise RuntimeError(f"activation {n} of version {target}: not every worker served it within 30 s")
            seconds.append(max(t for t in first if t is not None) - committed)
            firsts.append(min(t for t in first if t is not None) - committed)
            flips += flipped
            current = target
            print(f"{notify}: activation {n + 1} (version {target}): {seconds[-1] * 1000:.0f} ms", flush=True)
        for port, proc, _ in replicas:  # the probes proved nothing if a worker was replaced meanwhile
            pids = [p for p, cmd in children(proc.pid).items() if "gunicorn" in cmd]
            restarts += len({p.pid for p in probes if p.port == port} - set(pids))
        for probe in probes:
            probe.close()
        return {"seconds": seconds, "firsts": firsts, "flips": flips, "restarts": restarts, "workers": len(probes)}
    finally:
        for _, proc, _ in replicas:
            stop(proc)


# -- 3. job throughput ----------------------------------------------------------------------------


def job_worker(database_url: str, identity: str, go: Any, out: Any) -> None:
    """Claim, report progress once and finish jobs until the queue has none queued; put (ids, last finish)."""
    queue = PostgresJobQueue(database_url, migrate=False)
    claimed: list[str] = []
    go.wait()
    last = time.time()
    while True:
        job = queue.claim(identity)
        if job is None:
            if queue.counts().get("queued", 0) == 0:
                break
            time.sleep(0.001)  # the queued ones belong to models running elsewhere
            continue
        claimed.append(job.id)
        queue.update(job.id, {"epoch": 1, "loss": 0.0})
        queue.finish(job.id, "succeeded")
        last = time.time()
    queue.close()
    out.put((identity, claimed, last))


def job_throughput(database_url: str, args: argparse.Namespace) -> dict:
    queue = PostgresJobQueue(database_url)  # applies the schema
    for i in range(args.jobs):
        queue.enqueue(f"model{i % JOB_MODELS}", RetrainRequest())
    ctx = multiprocessing.get_context("spawn")
    go, out = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=job_worker, args=(database_url, f"bench-worker-{i}", go, out))
        for i in range(args.job_workers)
    ]
    for p in procs:
        p.start()
    time.sleep(3)  # the processes import nnserve and open their pools before the start
    started = time.time()
    go.set()
    results = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join()
    ended = max(last for _, _, last in results)
    claims = Counter(job_id for _, ids, _ in results for job_id in ids)
    by_worker = {job_id: identity for identity, ids, _ in results for job_id in ids}
    with psycopg.connect(database_url) as conn:
        rows_ = conn.execute("SELECT id, status, attempts, worker FROM jobs").fetchall()
    queue.close()
    return {
        "seconds": ended - started,
        "jobs": len(rows_),
        "succeeded": sum(1 for _, status, _, _ in rows_ if status == "succeeded"),
        "db_double": sum(1 for _, _, attempts, _ in rows_ if attempts != 1),
        "db_attempts": sum(attempts for _, _, attempts, _ in rows_),
        "claimed_twice": sum(1 for n in claims.values() if n > 1),
        "claims": sum(claims.values()),
        "wrong_worker": sum(1 for job_id, _, _, worker in rows_ if by_worker.get(job_id) != worker),
        "per_worker": sorted(len(ids) for _, ids, _ in results),
    }


# -- the run --------------------------------------------------------------------------------------


def ms(seconds: list[float], q: float) -> str:
    return f"{percentile(seconds, q) * 1000:.0f}"


def main() -> None:
    args = parse_args()
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="nnserve-bench-pg-"))
    try:
        with postgres_server() as pg:
            predict_url = create_database(pg.url, "predict")
            activate_url = create_database(pg.url, "activate")
            jobs_url = create_database(pg.url, "jobs")
            fs_store = work / "fs-store"
            train_store(fs_store, ["iris"], bench_env())
            train_store(work / "train-cache", ["iris"], bench_env(NNSERVE_DATABASE_URL=predict_url))
            for _ in range(2):  # versions 1 and 2 of iris; 2 active
                train_store(work / "train-cache", ["iris"], bench_env(NNSERVE_DATABASE_URL=activate_url))

            runs = throughput(work, fs_store, predict_url, args)
            store = PostgresModelStore(work / "bench-cache", activate_url, migrate=False)
            modes = {notify: activation_mode(work, activate_url, notify, args, store) for notify in ("on", "off")}
            store.close()
            jobs = job_throughput(jobs_url, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    load_after = os.getloadavg()[0]
    keys = ("rps", "p50", "p99", "non2xx", "cpu_ms")
    med = {who: {k: statistics.median(r[k] for r in v) for k in keys} for who, v in runs.items()}
    ratio = med["postgres"]["rps"] / med["filesystem"]["rps"]
    cpu_ratio = med["postgres"]["cpu_ms"] / med["filesystem"]["cpu_ms"]
    paired = [pg["rps"] / fs["rps"] for pg, fs in zip(runs["postgres"], runs["filesystem"], strict=True)]
    poll = config.DEFAULTS["NNSERVE_ACTIVATION_POLL"]  # bench_env drops every NNSERVE_* of this shell
    lines = [
        f"# PostgreSQL mode ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, PostgreSQL 15 on this machine)",
        "",
        f"Load average (1 min) when the run started and ended: {load_before:.1f} and {load_after:.1f} "
        "(anything above the benchmark's own share is other work on the machine).",
        "",
        f"One-row iris predict, `nnserve serve --workers 2 --no-retrain-worker` on each store, wrk -t2 -c16 "
        f"-d{args.seconds}s, {args.rounds} interleaved rounds (order alternating), medians:",
        "",
        "| store | req/s | p50 ms | p99 ms | non-2xx | server CPU ms / request | req/s of each round |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for who in ("postgres", "filesystem"):
        m = med[who]
        each = ", ".join(f"{r['rps']:.0f}" for r in runs[who])
        lines.append(
            f"| {who} | {m['rps']:.0f} | {m['p50']:.2f} | {m['p99']:.2f} | {m['non2xx']:.0f} "
            f"| {m['cpu_ms']:.3f} | {each} |"
        )
    lines += [
        "",
        f"Activation to served by every web worker: {args.replicas} replicas x {args.workers} workers on one "
        f"database, {args.activations} activations alternating versions 1 and 2; from `activate` returning "
        "(commit) to the first answer with the new version on a probe connection held by each worker "
        f"(found from /proc), each polled every {POLL_PAUSE * 1000:.0f} ms. With {args.activations} samples the "
        "p99 lies between the two largest. First worker: the same time to the first worker serving the new "
        "version; old version again: answers naming the old version after a worker's first new one.",
        "",
        "| mode | workers probed | p50 ms | p99 ms | min ms | max ms | first worker p50 ms | old version again |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    labels = {"on": "LISTEN/NOTIFY", "off": f"poll only (NNSERVE_ACTIVATION_NOTIFY=off, every {poll:g} s)"}
    for notify, m in modes.items():
        s = m["seconds"]
        lines.append(
            f"| {labels[notify]} | {m['workers']} | {ms(s, 50)} | {ms(s, 99)} | {min(s) * 1000:.0f} | "
            f"{max(s) * 1000:.0f} | {ms(m['firsts'], 50)} | {m['flips']} |"
        )
    lines += [
        "",
        f"Job queue: {jobs['jobs']} short jobs over {JOB_MODELS} models, {args.job_workers} processes "
        "(`PostgresJobQueue`: claim, one progress update, finish), from the start signal to the last finish:",
        "",
        "| jobs/s | seconds | succeeded | claims (processes) | claims (database attempts) | jobs per process |",
        "|---:|---:|---:|---:|---:|---|",
        f"| {jobs['jobs'] / jobs['seconds']:.0f} | {jobs['seconds']:.2f} | {jobs['succeeded']} | {jobs['claims']} | "
        f"{jobs['db_attempts']} | {', '.join(map(str, jobs['per_worker']))} |",
        "",
        f"- one-row throughput postgres / filesystem: **{ratio:.2f}x** (target >= 0.95); the median of the rounds' "
        f"own ratios: {statistics.median(paired):.2f}x (each round: {', '.join(f'{r:.2f}' for r in paired)})",
        f"- server CPU per request postgres / filesystem: **{cpu_ratio:.2f}x** "
        "(the gunicorn master and its workers, from /proc; less sensitive than req/s to other load on the machine)",
        f"- activation reach p99 with NOTIFY: **{ms(modes['on']['seconds'], 99)} ms** (target <= 250 ms); "
        f"poll only: {ms(modes['off']['seconds'], 99)} ms",
        f"- job throughput: **{jobs['jobs'] / jobs['seconds']:.0f} jobs/s** with {args.job_workers} processes",
        f"- double claims: **{jobs['db_double']}** jobs claimed more than once in the database, "
        f"{jobs['claimed_twice']} ids claimed twice by the processes, {jobs['wrong_worker']} jobs whose recorded "
        "worker is not their claimer (target 0)",
        f"- web workers replaced during the activation runs (probes then prove nothing): "
        f"{sum(m['restarts'] for m in modes.values())}",
    ]
    write_result("postgres", "\n".join(lines))


if __name__ == "__main__":
    main()
