"""The request metrics: ``GET /metrics``, and one count, one duration and one access log line per request (app.py's
request hooks call ``start`` and ``record``), labelled with the model version the data plane resolved for it
(``Call.resolved``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from flask import Flask, Request, Response
from flask.ctx import _AppCtxGlobals

from service.logs import ACCESS
from service.server.registry import ModelRegistry
from service.telemetry import CONTENT_TYPE, UNMATCHED, exposition, request_answered


def install(app: Flask, before_scrape: Callable[[], None] | None = None) -> None:
    """``GET /metrics``, calling ``before_scrape`` first."""

    @app.get("/metrics")
    def metrics() -> Response:
        if before_scrape is not None:
            before_scrape()
        return Response(exposition(), 200, {"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"})


def start(state: _AppCtxGlobals) -> None:
    """Note when the request started (``record`` times it from here)."""
    state.nnserve_started = time.perf_counter()


def record(registry: ModelRegistry, state: _AppCtxGlobals, req: Request, response: Response) -> None:
    """The request's count, duration and JSON access log line (``state`` is its ``flask.g``)."""
    started = getattr(state, "nnserve_started", None)  # getattr, not g.get: a call less on every request
    seconds = 0.0 if started is None else time.perf_counter() - started
    rule = req.url_rule
    endpoint = rule.rule if rule is not None else UNMATCHED
    name, version = _model_labels(registry, state, req)
    status = response.status_code
    request_answered(endpoint, name, version, status, seconds)
    if ACCESS.isEnabledFor(logging.INFO):
        method, path = req.method, req.path
        ACCESS.info(
            "%s %s %s",
            method,
            path,
            status,
            extra={
                "request_id": state.get("request_id", ""),
                "method": method,
                "path": path,
                "endpoint": endpoint,
                "model": name,
                "version": int(version) if version else None,
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
                "key_id": state.get("nnserve_key_id"),  # the credential's public id, never the key itself
            },
        )


def _model_labels(registry: ModelRegistry, state: _AppCtxGlobals, req: Request) -> tuple[str, str]:
    """(model, version) label values: what the request resolved, else a model name this worker knows, else ""."""
    call = state.get("nnserve_call")
    resolved = None if call is None else call.resolved
    if resolved is not None:
        return resolved[0], str(resolved[1])
    name = (req.view_args or {}).get("name")
    if isinstance(name, str) and registry.knows(name):
        return name, ""
    return "", ""
