"""The Flask application factory."""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import flask_smorest
import swagger_ui_bundle
from apispec import BasePlugin
from flask import Flask, Request, Response, g, request, send_from_directory

from service import config, logs, telemetry, tracing
from service.server import access, auditing, auth, errors, health, query_args
from service.server.callers import Gate
from service.server.current import DATAPLANE, ROUTING_KEY_ENVIRON
from service.server.dataplane import Call, DataPlane
from service.server.feedback_tokens import FeedbackTokens
from service.server.jsonio import OrjsonProvider
from service.server.predlog import Budget, PredictionRecorder
from service.server.registry import ActivationWatcher, ModelRegistry
from service.server.settings import ServerSettings
from service.server.ui import pages as ui_pages
from service.server.v1 import audit_routes, explain_routes, job_routes, model_routes, monitoring_routes
from service.server.v1.schemas import ErrorSchema
from service.server.v2 import protocol_errors
from service.server.v2 import routes as v2_routes
from service.store import (
    AnnouncesActivations,
    AuditLog,
    KeyRing,
    configured_audit_log,
    open_key_store,
    open_store,
)
from service.store.monitoring import open_prediction_log
from service.store.snapshots import open_snapshots
from service.training.jobs import open_queue
from service.version import __version__

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")  # a client's request id (HTTP X-Request-ID, gRPC x-request-id)


def request_id(given: str) -> tuple[str, bool]:
    """A request's id and whether its client chose it (then it may already be logged): ``given`` (HTTP's
    ``X-Request-ID``, gRPC's ``x-request-id``) when well-formed, else 32 random hex digits (``secrets.token_hex(16)``
    without its two calls in Python; a quarter of ``uuid4().hex``'s time, on every request)."""
    if REQUEST_ID.match(given):
        return given, True
    return os.urandom(16).hex(), False


class Api(flask_smorest.Api):
    """flask-smorest's Api with nnserve's error handlers and error schema instead of its own."""

    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self) -> None:
        errors.register(self._app)


class OperationIds(BasePlugin):
    """An ``operationId`` for every operation, from its view: POST views are named for their action
    (``Predict`` -> ``predict``), other methods prefix theirs (``GET Models`` -> ``getModels``)."""

    def operation_helper(
        self, path: str | None = None, operations: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        view = kwargs["rule"].endpoint.rpartition(".")[2]
        for method, operation in (operations or {}).items():
            name = view if method == "post" else method + view
            operation.setdefault("operationId", name[0].lower() + name[1:])


class RefusedQueryArguments(BasePlugin):
    """Every operation documents the 422 that ``query_args`` answers to an undeclared or repeated query argument."""

    def operation_helper(
        self, path: str | None = None, operations: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        for operation in (operations or {}).values():
            responses = operation.setdefault("responses", {})
            if 422 not in responses and "422" not in responses:
                responses["422"] = "UNPROCESSABLE_ENTITY"


class _Flask(Flask):
    """Flask, asking once per function (not on every request, for every hook) whether it is a coroutine."""

    _coroutines: ClassVar[dict[Any, bool]] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        key = getattr(func, "__func__", func)  # a view's bound method is new on every request; its function is not
        is_coroutine = self._coroutines.get(key)
        if is_coroutine is None:
            is_coroutine = self._coroutines[key] = inspect.iscoroutinefunction(key)
        return super().ensure_sync(func) if is_coroutine else func


def _bounded_request(limit: int) -> type[Request]:
    """Flask's ``Request`` with the app's body limit (werkzeug answers 413 beyond it) as a constant, not Flask's
    ``MAX_CONTENT_LENGTH`` setting: Flask's property looks the app up twice each time werkzeug reads it, once on every
    request with a body."""

    class BoundedRequest(Request):
        max_content_length = limit  # type: ignore[assignment]

    return BoundedRequest


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: settings from ``NNSERVE_*`` (overridden by ``test_config``), store, blueprints.

    Every active model is loaded before the app is returned, so a worker is
    ready when it starts accepting requests.
    """
    app = _Flask(__name__)
    # Every answer of the API is JSON: werkzeug's routing would otherwise answer an HTML 308 redirect for
    # a path with "//" (a name of percent-encoded "../") or a missing trailing slash; these paths get a JSON 404.
    app.url_map.merge_slashes = False
    app.url_map.strict_slashes = False
    app.json = OrjsonProvider(app)
    app.config.from_mapping(config.from_environ())
    if test_config:
        app.config.from_mapping(test_config)
    app.request_class = _bounded_request(int(app.config["NNSERVE_MAX_BODY_BYTES"]))
    app.config.update(
        API_TITLE="nnserve",
        API_VERSION=__version__,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        OPENAPI_SWAGGER_UI_URL="/docs/assets/",
    )
    store = open_store(app.config["NNSERVE_STORE"], app.config.get("NNSERVE_DATABASE_URL"))
    registry = ModelRegistry(
        store, float(app.config["NNSERVE_RELOAD_INTERVAL"]), int(app.config["NNSERVE_CACHE_VERSIONS"])
    )
    # a shared store announces activations (and key changes): requests then never ask it
    announcer = store if isinstance(store, AnnouncesActivations) else None
    shared = announcer is not None
    keyring = KeyRing(
        open_key_store(app.config["NNSERVE_STORE"], app.config.get("NNSERVE_DATABASE_URL")),
        check_interval=float("inf") if shared else float(app.config["NNSERVE_KEY_CHECK_INTERVAL"]),
        miss_interval=0.25 if shared else 0.0,  # an unknown id: one stat() on the filesystem, a query on PostgreSQL
        touch_interval=float(app.config["NNSERVE_KEY_USE_INTERVAL"]),
    )
    app.extensions["nnserve.keys"] = keyring
    if not app.testing:  # tests capture logs their own way; gunicorn and `flask run` get JSON lines
        logs.configure(app.config["NNSERVE_LOG_LEVEL"])
    tracing.configure("web", __version__)  # in each web worker: gunicorn imports the app after it forks
    app.extensions["nnserve.jobs"] = open_queue(app.config["NNSERVE_STORE"], app.config.get("NNSERVE_DATABASE_URL"))
    app.extensions["nnserve.snapshots"] = open_snapshots(
        app.config["NNSERVE_STORE"], app.config.get("NNSERVE_DATABASE_URL")
    )
    rate = app.config.get("NNSERVE_LOG_SAMPLE_RATE")
    recorder = PredictionRecorder(
        lambda: open_prediction_log(
            app.config["NNSERVE_STORE"],
            app.config.get("NNSERVE_DATABASE_URL"),
            int(app.config["NNSERVE_LOG_MAX_BYTES"]),
        ),
        Budget.from_settings(app.config),
        None if rate is None else float(rate),
    )
    tokens = FeedbackTokens(lambda: recorder.log, float(app.config["NNSERVE_FEEDBACK_TOKEN_TTL"]))
    settings = ServerSettings.from_config(app.config)
    app.extensions[DATAPLANE] = DataPlane(registry, recorder, tokens, settings)

    api = Api(
        app,
        spec_kwargs={
            "extra_plugins": [OperationIds(), RefusedQueryArguments()],
            "info": {
                "description": "Predictions and model management for nnserve models. An operation takes only the "
                "query arguments it declares, each once: any other, or one repeated, is refused with 422."
            },
        },
    )
    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer"})
    blueprints = (
        health.blp,
        model_routes.blp,
        explain_routes.blp,
        job_routes.blp,
        monitoring_routes.blp,
        audit_routes.blp,
    )
    for blueprint in blueprints:
        api.register_blueprint(blueprint)
    app.register_blueprint(v2_routes.blp)  # Open Inference Protocol: plain Flask, its own {"error"} shape
    app.register_blueprint(ui_pages.blp)  # the dashboard at /ui/

    @app.get("/docs/assets/<path:filename>")
    def swagger_assets(filename: str) -> Response:
        return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename)

    if tracing.enabled():  # hooks cost every request their time: none while tracing is off
        _install_request_spans(app)  # first: every other hook runs inside the request's span
    audit_log = configured_audit_log(app.config["NNSERVE_STORE"], app.config)
    auditing.install(app, audit_log)
    # GET /metrics (with the retraining workers' heartbeat age)
    access.install(app, lambda: telemetry.worker_heartbeat_age(health.retraining_worker()["heartbeat_age_seconds"]))
    _install_request_hooks(
        app,
        registry,
        auth.install(app, Gate(keyring, settings), ui_pages.locked),
        query_args.checker(app),
        audit_log,
    )
    registry.load_all()
    keyring.refresh()
    if announcer is not None:  # requests stop polling the store: the watcher keeps models and keys current
        registry.reload_interval = float("inf")
        watcher = ActivationWatcher(
            registry,
            poll_interval=float(app.config["NNSERVE_ACTIVATION_POLL"]),
            notify=app.config["NNSERVE_ACTIVATION_NOTIFY"] == "on",
            keyring=keyring,
            announcer=announcer,
        )
        app.extensions["nnserve.watcher"] = watcher
        watcher.start()
    return app


def _install_request_spans(app: Flask) -> None:
    """A server span per request while tracing is on, continuing the trace of its ``traceparent`` header."""

    @app.before_request
    def open_span() -> None:
        rule = request.url_rule
        route = rule.rule if rule is not None else ""
        g.nnserve_span = tracing.start_server(
            f"{request.method} {route}".rstrip(),
            request.headers,
            {"http.request.method": request.method, "http.route": route, "url.path": request.path},
        )

    @app.after_request
    def record_status(response: Response) -> Response:
        opened = g.get("nnserve_span")
        if opened is not None:
            status = response.status_code
            answered = {"http.response.status_code": status, "nnserve.request_id": g.get("request_id", "")}
            opened.respond(answered, f"status {status}" if status >= 500 else None)
        return response

    @app.teardown_request
    def close_span(_exc: BaseException | None) -> None:
        opened = g.pop("nnserve_span", None)
        if opened is not None:
            opened.end()


def _install_request_hooks(
    app: Flask,
    registry: ModelRegistry,
    gate_closed: Callable[[Request], Response | None] | None,
    check_query: Callable[[Request], None],
    audit_log: AuditLog,
) -> None:
    """What every request needs, in one ``before_request`` and one ``after_request`` hook (a hook each would cost
    every request its dispatch and its own look-ups of the request and ``g``).

    Before: the start time; a well-formed ``X-Request-ID`` honoured, or one made, and the request's ``Call``; a
    routing error under ``/v2`` in the protocol's shape; in ``closed`` mode the gate (``gate_closed``: its 401
    carries the request id); the query arguments (after the gate: a stranger gets its 401 first). After: the
    audit entry, the metrics and the access log line, and the request id returned.
    """

    @app.before_request
    def begin() -> Response | None:
        # one proxy look-up each for the request and its state, then plain objects: this runs on every request
        state, req = g._get_current_object(), request._get_current_object()  # type: ignore[attr-defined]
        access.start(state)
        environ = req.environ
        state.request_id, chosen = request_id(environ.get("HTTP_X_REQUEST_ID", ""))
        state.nnserve_call = Call(state.request_id, chosen, environ.get(ROUTING_KEY_ENVIRON) or None)
        if req.routing_exception is not None:
            protocol_errors.routing_error(req)  # v2's shape for a URL under /v2 that matches no route
        if gate_closed is not None:
            refused = gate_closed(req)
            if refused is not None:
                return refused
        check_query(req)
        return None

    @app.after_request
    def finish(response: Response) -> Response:
        state, req = g._get_current_object(), request._get_current_object()  # type: ignore[attr-defined]
        auditing.record(app, audit_log, state, req, response)
        access.record(registry, state, req, response)
        headers = response.headers  # no view sets these two: added, not set (a set scans every header)
        headers.add("X-Request-ID", state.get("request_id", ""))
        headers.add("X-Content-Type-Options", "nosniff")
        return response
