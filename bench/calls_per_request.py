"""Python calls per one-row iris prediction, counted by cProfile on a WSGI app called in-process; or the
microseconds each app spends on one, interleaved in one process.

    NNSERVE_STORE=<store> .venv/bin/python bench/calls_per_request.py nnserve|floor [--top N]
    NNSERVE_STORE=<store> .venv/bin/python bench/calls_per_request.py time

Deterministic (no sockets, no other process): the measure of the hot path's length that the machine's load does
not move. ``nnserve`` is ``create_app()``, ``floor`` is ``floor_app``; ``--top`` lists the functions
making the most calls. ``time`` calls both apps in turn (medians of ``ROUNDS`` rounds of ``REQUESTS``): their
own CPU per request, without gunicorn's and the sockets' share that both pay alike. Run by ``http_predict.py``
beside its timed rounds.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import time
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.test import EnvironBuilder

REQUESTS = 1000
ROUNDS = 7
BODY = json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]]}).encode()


def predictor(app: Callable[..., Iterable[bytes]]) -> Callable[[], None]:
    """One one-row prediction by ``app``, warmed up and checked to answer 200."""
    environ = EnvironBuilder(
        path="/v1/models/iris/predict", method="POST", data=BODY, content_type="application/json"
    ).get_environ()
    statuses: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        statuses.append(status)

    def one() -> None:
        answer = app({**environ, "wsgi.input": io.BytesIO(BODY)}, start_response)
        b"".join(answer)
        getattr(answer, "close", lambda: None)()

    for _ in range(300):
        one()
    if statuses[-1] != "200 OK":
        raise SystemExit(f"the app answered {statuses[-1]}")
    return one


def calls_per_request(app: Callable[..., Iterable[bytes]], top: int = 0) -> float:
    """Calls per request of ``app`` answering one-row predictions (after a warm-up), the harness's own included."""
    one = predictor(app)
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(REQUESTS):
        one()
    profile.disable()
    stats = pstats.Stats(profile)
    if top:
        stats.sort_stats("calls").print_stats(top)
    return stats.total_calls / REQUESTS  # type: ignore[attr-defined, no-any-return]


def microseconds_per_request(apps: dict[str, Callable[..., Iterable[bytes]]]) -> dict[str, float]:
    """{name: median µs per one-row prediction} of ``apps``, called in turn round after round in this process."""
    ones = {name: predictor(app) for name, app in apps.items()}
    rounds: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(ROUNDS):
        for name, one in ones.items():
            started = time.perf_counter()
            for _ in range(REQUESTS):
                one()
            rounds[name].append((time.perf_counter() - started) / REQUESTS * 1e6)
    return {name: statistics.median(values) for name, values in rounds.items()}


def nnserve_app() -> Callable[..., Iterable[bytes]]:
    from service.server.app import create_app

    os.environ.setdefault("NNSERVE_LOG_LEVEL", "warning")  # as http_predict.py serves it
    return create_app()


def floor_app() -> Callable[..., Iterable[bytes]]:
    from floor_app import app

    return app  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("app", choices=("nnserve", "floor", "time"))
    parser.add_argument("--top", type=int, default=0)
    args = parser.parse_args()
    if args.app == "time":
        timed = microseconds_per_request({"nnserve": nnserve_app(), "floor": floor_app()})
        print(" ".join(f"{name} {us:.1f}" for name, us in timed.items()))
        return
    app = nnserve_app() if args.app == "nnserve" else floor_app()
    print(f"{calls_per_request(app, args.top):.0f}")


if __name__ == "__main__":
    main()
