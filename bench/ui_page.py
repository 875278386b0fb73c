"""Dashboard model page at scale: one model with 200 versions and 500 jobs, rendered server-side.

Builds the store with a tiny classifier (published 200 times, each with its full evaluation) and 500
jobs in the queue, then times ``GET /ui/models/<name>`` and ``GET /ui/jobs`` through the Flask test
client (the rendering cost, no network). Budget: median <= 150 ms and <= 300 KB per page.

    .venv/bin/python bench/ui_page.py [--repeats 21]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from common import write_result

from service.server.app import create_app
from service.store import Dataset, open_store
from service.training import fitting
from service.training.jobs import JobResult, RetrainRequest, open_queue

VERSIONS, JOBS = 200, 500
BUDGET_MS, BUDGET_KB = 150.0, 300.0


def build(root: Path) -> None:
    rng = np.random.RandomState(0)
    X = rng.normal(size=(120, 4))
    y = np.array(["a", "b", "c"])[np.argmax(X[:, :3], axis=1)]
    data = Dataset(X, y, ["f0", "f1", "f2", "f3"])
    result = fitting.train("classification", {"max_iter": 30, "hidden_layer_sizes": (8,), "random_state": 0}, data)
    store = open_store(root)
    for v in range(VERSIONS):
        fitting.publish(store, "bench", result, parent_version=v or None, trigger="bench", job_id=f"job-{v}")
    queue = open_queue(root)
    for i in range(JOBS):
        job = queue.enqueue("bench", RetrainRequest())
        if i < JOBS - 2:  # all but the last two finished; one running with 30 epochs of progress, one queued
            claimed = queue.claim("bench")
            assert claimed is not None
            outcome = JobResult(1, 1, {"accuracy": 0.9}, 0.9, True, "bench", 30, 0.1, 120)
            queue.finish(claimed.id, "succeeded", result=outcome)
    running = queue.claim("bench")
    assert running is not None
    losses = [1.0 / (e + 1) for e in range(30)]
    queue.update(running.id, {"epoch": 30, "epochs": 60, "loss": losses[-1], "losses": losses})
    del job


def measure(client, url: str, repeats: int) -> tuple[float, int]:
    client.get(url)  # warm-up: templates compiled, files cached
    times, size = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
        size = len(response.data)
    return statistics.median(times), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nnserve-bench-ui-") as tmp:
        root = Path(tmp) / "store"
        started = time.perf_counter()
        build(root)
        built = time.perf_counter() - started
        client = create_app({"TESTING": True, "NNSERVE_STORE": str(root)}).test_client()
        lines = [
            "## Dashboard page benchmark",
            "",
            f"- one model with {VERSIONS} versions (each with history, evaluation, lineage) and {JOBS} jobs; "
            f"store built in {built:.1f} s; medians of {args.repeats} renders through the Flask test client",
            "",
            "| page | median ms | KB | budget | status |",
            "|---|---|---|---|---|",
        ]
        for url in ("/ui/models/bench", "/ui/jobs", "/ui/"):
            ms, size = measure(client, url, args.repeats)
            ok = ms <= BUDGET_MS and size / 1024 <= BUDGET_KB
            lines.append(
                f"| {url} | {ms:.1f} | {size / 1024:.1f} | <= {BUDGET_MS:.0f} ms, <= {BUDGET_KB:.0f} KB "
                f"| {'met' if ok else 'missed'} |"
            )
    report = "\n".join(lines) + "\n"
    write_result("ui_page", report)


if __name__ == "__main__":
    main()
