"""MLServer 1.7 against nnserve: the same catalog, the same worker count, interleaved in one run.

    .venv/bin/python bench/mlserver.py [--seconds 8] [--rounds 4]

MLServer 1.7.1 and its scikit-learn runtime run from their own venv, ``bench/.mlserver-venv``
(their dependencies conflict with nnserve's), which this script makes from PyPI on first use. MLServer
serves the catalog as scikit-learn pipelines (StandardScaler, then an MLPClassifier or MLPRegressor
with each spec's hidden layers, activation, batch size, learning rate and epochs, fitted on the
spec's training rows; Adam for every optimizer, no dropout: scikit-learn has none); nnserve serves
the catalog as ``nnserve train --all`` trains it. Both run 2 workers (MLServer's
``parallel_workers``, ``nnserve serve --workers 2`` with gRPC on), started once, checked with
tritonclient.grpc and tritonclient.http, then measured round after round, the order of the
servers rotating each round:

- one iris row, 16 concurrent callers: gRPC ``ModelInfer`` and HTTP v2 infer;
- 10,000 digits rows, one caller: gRPC ``ModelInfer`` latency.

One C client drives every case: h2load (bench/grpc_load.py), over HTTP/2 for gRPC and HTTP/1.1 for v2,
with the same request bytes and connections for both servers.

Every request asks for the class probabilities only (``probabilities`` / ``predict_proba``), so both
servers compute and send the same thing. Memory: PSS and RSS summed over each server's whole process
tree after the runs. Needs h2load (Debian's nghttp2-client).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from common import (
    ROOT,
    bench_env,
    free_port,
    medians,
    rows,
    serve_argv,
    start,
    stop,
    train_store,
    tree_cpu_seconds,
    tree_memory_mb,
    wait_ready,
    write_result,
)
from grpc_load import call_once, decode_reply, h2load, infer_request, load, require_h2load

VENV = ROOT / "bench" / ".mlserver-venv"
# uvloop 0.22 raises in asyncio.get_event_loop() where MLServer 1.7.1's inference workers call it at start
PACKAGES = ["mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop<0.22"]
CATALOG = ("iris", "wine", "breast_cancer", "digits", "diabetes")
WORKERS = 2
OUTPUT = {"nnserve": "probabilities", "MLServer": "predict_proba"}

# Run by the MLServer venv's Python: fits one scikit-learn pipeline per spec (JSON in argv[1]) and dumps it.
FIT = """
import csv, json, sys, warnings
import joblib, numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

warnings.simplefilter("ignore", ConvergenceWarning)
for m in json.loads(sys.argv[1]):
    with open(m["csv"], newline="") as f:
        _, *lines = list(csv.reader(f))
    X = np.array([[float(v) for v in line[:-1]] for line in lines])
    y = np.array([line[-1] for line in lines])
    classify = m["task"] == "classification"
    y = y if classify else y.astype(float)
    X_train, _, y_train, _ = train_test_split(
        X, y, test_size=m["test_size"], random_state=m["split_seed"], stratify=y if classify else None
    )
    kind = MLPClassifier if classify else MLPRegressor
    net = kind(hidden_layer_sizes=m["hidden"], activation=m["activation"], solver="adam", batch_size=m["batch"],
               learning_rate_init=m["lr"], max_iter=m["epochs"], early_stopping=m["early"], random_state=m["seed"])
    joblib.dump(make_pipeline(StandardScaler(), net).fit(X_train, y_train), m["out"])
"""


def mlserver_venv() -> Path:
    """``bench/.mlserver-venv``'s ``mlserver`` command; the venv made and ``PACKAGES`` installed first unless
    they are what it holds."""
    command, marker = VENV / "bin" / "mlserver", VENV / "installed.txt"
    if not command.exists() or not marker.exists() or marker.read_text() != " ".join(PACKAGES):
        subprocess.run(["python3", "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", *PACKAGES], check=True)
        marker.write_text(" ".join(PACKAGES))
    return command


def sklearn_repository(root: Path, http_port: int, grpc_port: int) -> None:
    """An MLServer model repository at ``root``: server settings and, per catalog model, a fitted pipeline."""
    specs = []
    for name in CATALOG:
        spec = tomllib.loads((ROOT / "models" / f"{name}.toml").read_text())
        net, training = spec["network"], spec["training"]
        (root / name).mkdir(parents=True)
        specs.append(
            {
                "csv": str(ROOT / "models" / spec["dataset"]),
                "task": spec["task"],
                "test_size": spec["test_size"],
                "split_seed": spec["split_seed"],
                "hidden": net["hidden_sizes"],
                "activation": {"sigmoid": "logistic"}.get(net["activation"], net["activation"]),
                "batch": training["batch_size"],
                "lr": training["learning_rate"],
                "epochs": training["epochs"],
                "early": bool(training.get("early_stopping", False)),
                "seed": training["seed"],
                "out": str(root / name / "model.joblib"),
            }
        )
        settings = {"name": name, "implementation": "mlserver_sklearn.SKLearnModel", "parameters": {"version": "1"}}
        (root / name / "model-settings.json").write_text(json.dumps(settings))
    subprocess.run([str(VENV / "bin" / "python"), "-c", FIT, json.dumps(specs)], check=True)
    server = {
        "debug": False,
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": grpc_port,
        "metrics_port": free_port(),
        "parallel_workers": WORKERS,
        "metrics_dir": str(root.parent / "mlserver-metrics"),  # else .metrics/ in the working directory
    }
    (root / "settings.json").write_text(json.dumps(server))


def check(who: str, http: str, grpc_target: str, row: np.ndarray) -> str:
    """tritonclient.http and tritonclient.grpc against a server: ready, iris's metadata, one row's probabilities.
    Returns what was checked; raises when an answer is wrong."""
    seen = []
    # JSON over HTTP: MLServer does not speak the binary tensor data extension tritonclient.http defaults to
    for module, url, binary in ((triton_http, http, {"binary_data": False}), (triton_grpc, grpc_target, {})):
        client = module.InferenceServerClient(url)
        assert client.is_server_ready() and client.is_model_ready("iris"), f"{who}: not ready over {module.__name__}"
        client.get_model_metadata("iris")
        tensor = module.InferInput("input", list(row.shape), "FP32")
        tensor.set_data_from_numpy(row, **binary)
        result = client.infer("iris", [tensor], outputs=[module.InferRequestedOutput(OUTPUT[who], **binary)])
        probabilities = result.as_numpy(OUTPUT[who])
        assert probabilities.shape == (1, 3) and abs(float(probabilities.sum()) - 1) < 1e-5, probabilities
        seen.append(module.__name__.split(".")[-1])
    return f"{who}: tritonclient {' and '.join(seen)}: ready, metadata, iris probabilities {probabilities.round(3)}"


def grpc_case(target: str, request: bytes, reply: bytes, seconds: int, callers: int, pid: int) -> dict[str, Any]:
    """One gRPC load run of ``callers`` connections, with the server tree's CPU ms per answered request."""
    cpu = tree_cpu_seconds(pid)
    run = load(target, request, reply, seconds, callers)
    run["cpu_ms"] = (tree_cpu_seconds(pid) - cpu) * 1000 / max(run["requests"], 1)
    return run


def http_case(url: str, body: bytes, seconds: int, pid: int) -> dict[str, Any]:
    """One HTTP/1.1 load run (16 connections) of a JSON ``body``, with the server tree's CPU ms per request."""
    cpu = tree_cpu_seconds(pid)
    run = h2load(url, body, seconds, 16, {"content-type": "application/json"}, h1=True)
    run["cpu_ms"] = (tree_cpu_seconds(pid) - cpu) * 1000 / max(run["requests"], 1)
    run["failed"] = run["non2xx"]
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    require_h2load()
    mlserver = mlserver_venv()

    work = Path(tempfile.mkdtemp(prefix="nnserve-bench-mlserver-"))
    store, repo = work / "store", work / "mlserver"
    ports = {who: (free_port(), free_port()) for who in OUTPUT}
    env = bench_env(NNSERVE_STORE=str(store), NNSERVE_LOG_LEVEL="warning")
    train_store(store, ["--all"], env)
    sklearn_repository(repo, *ports["MLServer"])
    one = np.asarray(rows("iris")[:1], dtype=np.float32)
    digits = rows("digits")
    big = np.asarray([digits[i % len(digits)] for i in range(10_000)], dtype=np.float32)

    ml_env = {k: v for k, v in os.environ.items() if not k.startswith(("NNSERVE_", "VIRTUAL_ENV"))}
    servers = {
        "nnserve": start(
            serve_argv(ports["nnserve"][0], store, WORKERS, grpc_port=ports["nnserve"][1]), env, work / "nnserve.log"
        ),
        "MLServer": start([str(mlserver), "start", str(repo)], ml_env, work / "mlserver.log"),
    }
    load_avg = [os.getloadavg()[0]]
    try:
        wait_ready(f"http://127.0.0.1:{ports['nnserve'][0]}", 120, proc=servers["nnserve"], log=work / "nnserve.log")
        for name in CATALOG:
            path = f"/v2/models/{name}/ready"
            wait_ready(
                f"http://127.0.0.1:{ports['MLServer'][0]}",
                120,
                path,
                proc=servers["MLServer"],
                log=work / "mlserver.log",
            )
        pids = {who: proc.pid for who, proc in servers.items()}
        idle = {who: tree_memory_mb(pid) for who, pid in pids.items()}  # ready, before any call
        http = {who: f"127.0.0.1:{p[0]}" for who, p in ports.items()}
        grpc = {who: f"127.0.0.1:{p[1]}" for who, p in ports.items()}
        checks = [check(who, http[who], grpc[who], one) for who in OUTPUT]
        small = {who: infer_request("iris", one, "input", [OUTPUT[who]]) for who in OUTPUT}
        large = {who: infer_request("digits", big, "input", [OUTPUT[who]]) for who in OUTPUT}
        # the load's own requests are understood (one row's and 10,000 rows' probabilities), and their
        # replies are the sizes the load counts answers by
        replies = {
            (who, n): call_once(grpc[who], request[who])
            for n, request in (("one", small), ("big", large))
            for who in OUTPUT
        }
        for who in OUTPUT:
            for n, shape in (("one", (1, 3)), ("big", (10_000, 10))):
                answer = decode_reply(replies[(who, n)])[OUTPUT[who]]
                assert answer.shape == shape, (who, n, answer.shape)
        bodies = {
            who: json.dumps(
                {
                    "inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": one[0].tolist()}],
                    "outputs": [{"name": OUTPUT[who]}],
                }
            ).encode()
            for who in OUTPUT
        }
        cases = {
            "1 row, gRPC": lambda who, s: grpc_case(grpc[who], small[who], replies[(who, "one")], s, 16, pids[who]),
            "1 row, HTTP v2": lambda who, s: http_case(
                f"http://{http[who]}/v2/models/iris/infer", bodies[who], s, pids[who]
            ),
            "10,000 rows, gRPC": lambda who, s: grpc_case(
                grpc[who], large[who], replies[(who, "big")], s, 1, pids[who]
            ),
        }
        names = list(OUTPUT)
        for case in cases.values():  # warm-up
            for who in names:
                case(who, 2)
        results: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for round_ in range(args.rounds):
            order = names[round_ % 2 :] + names[: round_ % 2]
            for case, run in cases.items():
                for who in order:
                    results.setdefault((case, who), []).append(run(who, args.seconds))
        memory = {who: tree_memory_mb(pid) for who, pid in pids.items()}
        load_avg.append(os.getloadavg()[0])
    finally:
        for proc in servers.values():
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)
    write_result(
        "mlserver", report(args, results, {"ready, before any call": idle, "after the runs": memory}, checks, load_avg)
    )


def report(
    args: argparse.Namespace,
    results: dict[tuple[str, str], list[dict[str, Any]]],
    memory: dict[str, dict[str, dict[str, float]]],
    checks: list[str],
    load_avg: list[float],
) -> str:
    """The result file: the runs' medians per case and server, the ratios per round, memory ready and after."""

    def per_round(case: str, a: str, b: str, key: str = "rps", case_b: str | None = None) -> list[float]:
        pairs = zip(results[(case, a)], results[(case_b or case, b)], strict=True)
        return [x[key] / y[key] for x, y in pairs]

    def ratio_line(label: str, values: list[float], target: str, per_cpu: list[float] | None = None) -> str:
        each = ", ".join(f"{v:.2f}" for v in values)
        cpu = f"; by requests per server CPU second: {statistics.median(per_cpu):.2f}x" if per_cpu else ""
        return f"- {label}: **{statistics.median(values):.2f}x** (per round: {each}; target {target}){cpu}"

    def cpu_ratio(case: str, a: str, b: str, case_b: str | None = None) -> list[float]:
        return [1 / r for r in per_round(case, a, b, "cpu_ms", case_b)]

    def memory_line(when: str) -> str:
        n, m = memory[when]["nnserve"], memory[when]["MLServer"]
        return (
            f"- process-tree memory nnserve / MLServer, {when}: **{n['pss'] / m['pss']:.2f}x** PSS ({n['pss']:.0f} MB "
            f"in {n['processes']:.0f} processes / {m['pss']:.0f} MB in {m['processes']:.0f}), "
            f"{n['rss'] / m['rss']:.2f}x RSS ({n['rss']:.0f} / {m['rss']:.0f} MB) (target <= 0.4)"
        )

    lines = [
        f"# nnserve against MLServer 1.7.1 ({time.strftime('%Y-%m-%d %H:%M')}, {WORKERS} workers each, "
        f"{args.rounds} interleaved rounds of {args.seconds} s)",
        "",
        f"Load average (1 min) when the run started and ended: {load_avg[0]:.1f} and {load_avg[1]:.1f}, on "
        f"{os.cpu_count()} cores (the benchmark's own share is about 2; the rest is other work on the machine).",
        "MLServer 1.7.1 + mlserver-sklearn 1.7.1 (scikit-learn StandardScaler + MLP pipelines, same layers and "
        "training rows); nnserve `serve --workers 2` with gRPC on. Load: h2load (bench/grpc_load.py), one C client "
        "for every case, the same request bytes for both servers: 16 connections with one request in flight each "
        "for one row (HTTP/2 for gRPC, HTTP/1.1 keep-alive for v2), one connection for 10,000 rows. Every request "
        "asks for the probabilities only.",
        "",
        *[f"- {c}" for c in checks],
        "",
        "| case | server | req/s | p50 ms | p99 ms | failed | server CPU ms/request |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for (case, who), runs in results.items():
        m = medians(runs, ("rps", "p50", "p99", "failed", "cpu_ms"))
        cells = f"{m['rps']:.0f} | {m['p50']:.2f} | {m['p99']:.2f} | {m['failed']:.0f} | {m['cpu_ms']:.3f}"
        lines.append(f"| {case} | {who} | {cells} |")
    grpc, http_v2, big = "1 row, gRPC", "1 row, HTTP v2", "10,000 rows, gRPC"
    lines += [
        "",
        ratio_line(
            "one-row gRPC throughput nnserve / MLServer",
            per_round(grpc, "nnserve", "MLServer"),
            ">= 2",
            cpu_ratio(grpc, "nnserve", "MLServer"),
        ),
        ratio_line(
            "one-row throughput nnserve gRPC / nnserve HTTP v2",
            per_round(grpc, "nnserve", "nnserve", case_b=http_v2),
            ">= 1.2",
            cpu_ratio(grpc, "nnserve", "nnserve", case_b=http_v2),
        ),
        ratio_line(
            "10,000-row p50 over gRPC nnserve / MLServer", per_round(big, "nnserve", "MLServer", "p50"), "<= 0.5"
        ),
        ratio_line(
            "one-row HTTP v2 throughput nnserve / MLServer",
            per_round(http_v2, "nnserve", "MLServer"),
            "none",
            cpu_ratio(http_v2, "nnserve", "MLServer"),
        ),
        memory_line("ready, before any call"),
        memory_line("after the runs"),
        "",
        "The client's own CPU competes with the servers' on 2 cores, alike for every case; requests per server "
        "CPU second is the comparison that does not depend on it. nnserve's tree includes its retraining worker "
        "(a supervisor and the worker process), which MLServer does not have.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
