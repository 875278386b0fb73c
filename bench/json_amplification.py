"""JSON amplification: peak resident memory of a web worker under 8 concurrent worst-case bodies at the body limit.

    .venv/bin/python bench/json_amplification.py

Bodies of NNSERVE_MAX_BODY_BYTES (16 MB) that cost a JSON parser the most
memory per byte: ``[{},{},...]`` (refused before parsing), one flat row of
``1e1`` numbers (the most numbers per byte), and a list of two-character
strings. Each kind is posted 8 times at once to ``nnserve serve --workers 2``
(4 threads each); a sampler reads each web worker's RSS every 10 ms. The
peak over the base, divided by the body limit, is the multiple SECURITY.md states.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from common import (
    bench_env,
    children,
    free_port,
    rss_mb,
    serve_argv,
    start,
    stop,
    train_store,
    wait_ready,
    write_result,
)

LIMIT = 16 * 1024 * 1024
CONCURRENT = 8


def body_of(kind: str) -> bytes:
    """A JSON body of ``kind`` just under LIMIT bytes."""
    if kind == "objects":
        item, head, tail = b"{}", b'{"instances": [', b"]}"
    elif kind == "numbers":
        item, head, tail = b"1e1", b'{"instances": [[', b"]]}"
    else:
        item, head, tail = b'"ab"', b'{"instances": [[', b"]]}"
    count = (LIMIT - len(head) - len(tail)) // (len(item) + 1)
    return head + b",".join([item] * count) + tail


def post(url: str, body: bytes) -> int:
    return requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=120).status_code


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="nnserve-bench-"))
    store = work / "store"
    env = bench_env(NNSERVE_STORE=str(store), NNSERVE_LOG_LEVEL="warning", NNSERVE_MAX_BODY_BYTES=str(LIMIT))
    train_store(store, ["iris"], env)
    port = free_port()
    serve = start(serve_argv(port, store, 2, ["--no-retrain-worker"]), env)
    url = f"http://127.0.0.1:{port}/v1/models/iris/predict"
    table = []
    try:
        wait_ready(f"http://127.0.0.1:{port}")
        time.sleep(1)
        workers = list(children(serve.pid))
        for kind in ("objects", "numbers", "strings"):
            body = body_of(kind)
            base = {pid: rss_mb(pid) or 0.0 for pid in workers}
            peak = dict(base)
            done = threading.Event()

            def sample(peak: dict[int, float] = peak, done: threading.Event = done) -> None:
                while not done.is_set():
                    for pid in workers:
                        peak[pid] = max(peak[pid], rss_mb(pid) or 0.0)
                    time.sleep(0.01)

            sampler = threading.Thread(target=sample)
            sampler.start()
            started = time.perf_counter()
            with ThreadPoolExecutor(CONCURRENT) as pool:
                statuses = list(pool.map(lambda _, body=body: post(url, body), range(CONCURRENT)))
            seconds = time.perf_counter() - started
            done.set()
            sampler.join()
            growth = max(peak[pid] - base[pid] for pid in workers)
            table.append((kind, len(body), statuses, seconds, max(peak.values()), growth))
            time.sleep(2)
    finally:
        stop(serve)
        shutil.rmtree(work, ignore_errors=True)

    lines = [
        f"# JSON amplification ({time.strftime('%Y-%m-%d %H:%M')}): {CONCURRENT} concurrent {LIMIT >> 20} MB bodies,"
        " nnserve serve --workers 2 (4 threads each)",
        "",
        "| body | bytes | statuses | seconds | peak worker RSS MB | peak growth MB | growth / body limit |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for kind, size, statuses, seconds, peak_mb, growth in table:
        codes = ", ".join(f"{statuses.count(c)}x {c}" for c in sorted(set(statuses)))
        multiple = growth / (LIMIT >> 20)
        lines.append(f"| {kind} | {size} | {codes} | {seconds:.1f} | {peak_mb:.0f} | {growth:.0f} | {multiple:.1f}x |")
    write_result("json_amplification", "\n".join(lines))


if __name__ == "__main__":
    main()
