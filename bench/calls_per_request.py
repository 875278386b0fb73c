"""Python calls per one-row iris prediction, counted by cProfile on a WSGI app called in-process.

    NNSERVE_STORE=<store> .venv/bin/python bench/calls_per_request.py nnserve|floor [--top N]

Deterministic (no sockets, no other process): the measure of the hot path's length that the machine's load does
not move. ``nnserve`` is ``create_app()``, ``floor`` is ``floor_app``; ``--top`` lists the functions
making the most calls. Run by ``http_predict.py`` beside its timed rounds.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.test import EnvironBuilder

REQUESTS = 1000
BODY = json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]]}).encode()


def calls_per_request(app: Callable[..., Iterable[bytes]], top: int = 0) -> float:
    """Calls per request of ``app`` answering one-row predictions (after a warm-up), the harness's own included."""
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
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(REQUESTS):
        one()
    profile.disable()
    stats = pstats.Stats(profile)
    if top:
        stats.sort_stats("calls").print_stats(top)
    return stats.total_calls / REQUESTS  # type: ignore[attr-defined, no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("app", choices=("nnserve", "floor"))
    parser.add_argument("--top", type=int, default=0)
    args = parser.parse_args()
    if args.app == "nnserve":
        from service.server.app import create_app

        os.environ.setdefault("NNSERVE_LOG_LEVEL", "warning")  # as http_predict.py serves it

        app = create_app()
    else:
        from floor_app import app
    print(f"{calls_per_request(app, args.top):.0f}")


if __name__ == "__main__":
    main()
