"""The request metrics' Flask hooks: ``GET /metrics``, and one count, one duration and one access log line per
request, labelled with the model version the data plane resolved for it (``Call.resolved``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from flask import Flask, Response, g, request

from service.logs import ACCESS
from service.server.registry import ModelRegistry
from service.telemetry import CONTENT_TYPE, UNMATCHED, exposition, request_answered


def install(app: Flask, registry: ModelRegistry, before_scrape: Callable[[], None] | None = None) -> None:
    """``GET /metrics`` (calling ``before_scrape`` first), and one count, one duration and one JSON log line per
    request."""

    @app.get("/metrics")
    def metrics() -> Response:
        if before_scrape is not None:
            before_scrape()
        return Response(exposition(), 200, {"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"})

    @app.before_request
    def start() -> None:
        g.nnserve_started = time.perf_counter()

    @app.after_request
    def record(response: Response) -> Response:
        seconds = time.perf_counter() - g.get("nnserve_started", time.perf_counter())
        rule = request.url_rule
        endpoint = rule.rule if rule is not None else UNMATCHED
        name, version = _model_labels(registry)
        status = response.status_code
        request_answered(endpoint, name, version, status, seconds)
        if ACCESS.isEnabledFor(logging.INFO):
            method, path = request.method, request.path
            ACCESS.info(
                "%s %s %s",
                method,
                path,
                status,
                extra={
                    "request_id": g.get("request_id", ""),
                    "method": method,
                    "path": path,
                    "endpoint": endpoint,
                    "model": name,
                    "version": int(version) if version else None,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 3),
                    "key_id": g.get("nnserve_key_id"),  # the credential's public id, never the key itself
                },
            )
        return response


def _model_labels(registry: ModelRegistry) -> tuple[str, str]:
    """(model, version) label values: what the request resolved, else a model name this worker knows, else ""."""
    call = g.get("nnserve_call")
    resolved = None if call is None else call.resolved
    if resolved is not None:
        return resolved[0], str(resolved[1])
    name = (request.view_args or {}).get("name")
    if isinstance(name, str) and registry.knows(name):
        return name, ""
    return "", ""
