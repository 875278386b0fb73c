"""The prediction log's budget for real (issue 22): ``nnserve serve --workers 2``, every prediction logged, 4 clients
posting 10,000-row predictions for 15 s.

Each web worker's RSS (from /proc) stays under its start + 200 MB and is back within 20% of its start 15 s after
the load; the rows beyond one request's sample are dropped and counted in /metrics (present at 0 before any
request); the log on disk (database + WAL) never exceeds ``NNSERVE_LOG_MAX_BYTES``, whose oldest rows went.

"Start" is a worker's RSS after a short warm-up of the same load and a rest: a fresh worker's first requests
load code and fill caches once (~12 MB, the same with logging off: bench/prediction_log_budget.py), which is
not growth. Memory, not timings: the bounds hold on a loaded machine too (it only sends fewer requests).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests
from helpers import read_catalog_csv, service_env, train_store

ROWS = 10_000
CAP = 3 * 1024 * 1024  # small enough that a few seconds of logging reach it
REASONS = {"per_request", "buffer_rows", "buffer_bytes", "error", "disk"}


def rss_mb(pid: int) -> float:
    return int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1)) / 1024


def web_workers(master: int) -> list[int]:
    """The gunicorn master's children but the retraining worker's supervisor (``service.training.supervisor``)."""
    pids = []
    for child in Path(f"/proc/{master}/task/{master}/children").read_text().split():
        if b"service.training.supervisor" not in Path(f"/proc/{child}/cmdline").read_bytes():
            pids.append(int(child))
    return pids


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def log_bytes(store: Path) -> int:
    return sum(p.stat().st_size for p in store.glob(".predictions.sqlite3*") if p.suffix != ".lock")


def dropped(metrics: str) -> dict[str, float]:
    pattern = r'^nnserve_prediction_log_dropped_total\{model="iris",reason="(\w+)"\} (\S+)$'
    return {reason: float(value) for reason, value in re.findall(pattern, metrics, re.M)}


class Load:
    """4 client threads posting ``body`` until stopped, while the test samples RSS and the log's size; each on one
    kept-alive connection, or a new connection per request (``close``: the workers share them out)."""

    def __init__(self, url: str, body: bytes, close: bool = False) -> None:
        self.url, self.body, self.done, self.statuses = url, body, threading.Event(), list[int]()
        self.headers = {"Content-Type": "application/json", **({"Connection": "close"} if close else {})}
        self.threads = [threading.Thread(target=self._client) for _ in range(4)]

    def _client(self) -> None:
        with requests.Session() as session:
            while not self.done.is_set():
                answer = session.post(self.url, data=self.body, headers=self.headers, timeout=120)
                self.statuses.append(answer.status_code)

    def run(self, seconds: float, each_tenth: Callable[[], None]) -> None:
        for thread in self.threads:
            thread.start()
        ends = time.monotonic() + seconds
        while time.monotonic() < ends:
            each_tenth()
            time.sleep(0.1)
        self.done.set()
        for thread in self.threads:
            thread.join()


def test_ten_thousand_row_predictions_all_logged_stay_within_the_budget(tmp_path, nnserve_serve) -> None:
    store = train_store(tmp_path / "store", "iris", epochs=20)
    env = service_env(
        NNSERVE_LOG_SAMPLE_RATE="1.0",
        NNSERVE_LOG_MAX_BYTES=str(CAP),
        NNSERVE_ACCESS_LOG="/dev/null",
        NNSERVE_LOG_LEVEL="warning",
    )
    server = nnserve_serve(store, env)
    metrics = requests.get(f"{server.url}/metrics", timeout=10).text
    assert dropped(metrics) == dict.fromkeys(REASONS, 0.0)  # every reason shown, at 0, before any request

    X, _, _ = read_catalog_csv("iris")
    body = json.dumps({"instances": [X[i % len(X)].tolist() for i in range(ROWS)]}).encode()
    predict = f"{server.url}/v1/models/iris/predict"
    workers = web_workers(server.process.pid)
    assert len(workers) == 2

    idle = {pid: cpu_seconds(pid) for pid in workers}
    for _ in range(10):  # warm-up until each worker has answered some: code loaded, caches filled once
        Load(predict, body, close=True).run(2, lambda: None)
        if all(cpu_seconds(pid) - idle[pid] > 1.0 for pid in workers):
            break
    time.sleep(10)
    start = {pid: rss_mb(pid) for pid in workers}
    peak, disk = dict(start), [0]

    def sample() -> None:
        for pid in workers:
            peak[pid] = max(peak[pid], rss_mb(pid))
        disk[0] = max(disk[0], log_bytes(store))

    load = Load(predict, body)
    load.run(15, sample)
    assert load.statuses and set(load.statuses) == {200}
    ends = time.monotonic() + 15
    while time.monotonic() < ends:
        sample()
        time.sleep(0.1)
    after = {pid: rss_mb(pid) for pid in workers}
    figures = {pid: (start[pid], peak[pid], after[pid]) for pid in workers}
    print(f"RSS MB (start, peak, 15 s after) per web worker: {figures}; log on disk at most {disk[0]} bytes")
    for pid in workers:
        assert peak[pid] < start[pid] + 200, figures
        assert after[pid] <= 1.2 * start[pid], figures

    counted = dropped(requests.get(f"{server.url}/metrics", timeout=10).text)
    requests_sent = len(load.statuses)
    assert counted["per_request"] >= requests_sent * (ROWS - 100)  # each request kept 100 of its rows
    assert counted["disk"] > 0  # the cap was reached: the oldest rows went, counted
    assert 0 < disk[0] <= CAP
    assert log_bytes(store) <= CAP
