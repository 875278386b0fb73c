"""Slow clients through a proxy: one-row predictions still answered fast beside 32 slow connections.

    .venv/bin/python scripts/slow_clients_probe.py http://127.0.0.1:8080 [--slow 32] [--predictions 50]

make test-container runs it against nginx in front of the scaled compose stack. The slow connections
are bench/slow_clients.py's (half send a request line a byte a second, half headers and then one byte
of a 100,000-byte body every 5 s; each reopened when the server closes it). The predictions go one
after another, every --interval s, first without the slow clients (the baseline), then with them.
Prints both cases' latencies; exits 1 unless every prediction answered 200 with the slow clients
connected and their p99 is under --limit s.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from slow_clients import slow_client  # bench/ is not a package: its directory is put on sys.path above

ROW = {"instances": [[5.1, 3.5, 1.4, 0.2]]}


def predictions(url: str, count: int, interval: float) -> tuple[list[float], list[int]]:
    """``count`` one-row predictions on one keep-alive session: latencies (s) and the non-200 statuses."""
    latencies: list[float] = []
    failures: list[int] = []
    with requests.Session() as session:
        for _ in range(count):
            started = time.monotonic()
            status = session.post(f"{url}/v1/models/iris/predict", json=ROW, timeout=10).status_code
            latencies.append(time.monotonic() - started)
            if status != 200:
                failures.append(status)
            time.sleep(interval)
    return latencies, failures


def summary(latencies: list[float]) -> tuple[float, float, float]:
    """p50, p99 and max in ms (p99: the nearest-rank percentile)."""
    ordered = sorted(latencies)
    p99 = ordered[math.ceil(0.99 * len(ordered)) - 1]
    return statistics.median(ordered) * 1000, p99 * 1000, ordered[-1] * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", help="the proxy, e.g. http://127.0.0.1:8080 (its host must be 127.0.0.1)")
    parser.add_argument("--slow", type=int, default=32, help="slow connections [32]")
    parser.add_argument("--predictions", type=int, default=50, help="predictions per case [50]")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between two predictions [0.2]")
    parser.add_argument("--limit", type=float, default=1.0, help="the p99 must stay under this, in s [1.0]")
    args = parser.parse_args()
    url = args.url.rstrip("/")
    port = urlsplit(url).port
    assert port is not None and urlsplit(url).hostname == "127.0.0.1", "give http://127.0.0.1:<port>"

    baseline, _ = predictions(url, args.predictions, args.interval)
    stop_at = time.monotonic() + 3600
    threads = [threading.Thread(target=slow_client, args=(port, i, stop_at), daemon=True) for i in range(args.slow)]
    for t in threads:
        t.start()
    time.sleep(1.0)  # every slow connection is open and has sent its first bytes
    loaded, failures = predictions(url, args.predictions, args.interval)
    seconds = args.predictions * args.interval

    for case, latencies in (("without slow clients", baseline), (f"{args.slow} slow clients connected", loaded)):
        p50, p99, worst = summary(latencies)
        print(f"{case}: {len(latencies)} predictions, p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {worst:.1f} ms")
    print(f"(the slow clients were connected for the {seconds:.0f} s of the second case)")
    p99 = summary(loaded)[1] / 1000
    if failures:
        print(f"FAILED: {len(failures)} predictions did not answer 200: {failures[:10]}")
        return 1
    if p99 >= args.limit:
        print(f"FAILED: p99 {p99 * 1000:.0f} ms with {args.slow} slow clients, limit {args.limit * 1000:.0f} ms")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
