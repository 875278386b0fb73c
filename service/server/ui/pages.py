"""The dashboard: models, one model's versions with curves and evaluation, and the job queue.

Pages are rendered here with Jinja2 (autoescaped) and every asset comes from
``static/``; a strict Content-Security-Policy on every ``/ui`` response forbids
anything inline but SVG markup. Admin actions are done by ``static/admin.js``
calling the v1 admin endpoints with the key the user typed, kept in ``sessionStorage`` only.
The pages show what the v1 API shows a caller without a key (no dataset hashes, hyperparameters
or job internals; ``nnserve report`` has those). With NNSERVE_AUTH=closed a browser's page request
without a key gets ``locked()``, whose ``static/locked.js`` loads the page again with the key.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import numpy as np
from flask import Blueprint, Response, render_template, request

from service.server.auth import current_caller, require
from service.server.callers import READ, Caller, limited_to, listed
from service.server.current import call as current_call
from service.server.current import dataplane, job_queue, registry, settings
from service.server.dataplane import InputError
from service.server.errors import abort
from service.server.health import retraining_worker
from service.server.ui import svg
from service.server.v1.job_routes import shown
from service.server.v1.monitoring_routes import window_snapshot
from service.store import (
    EXPLAIN_METHODS,
    CorruptVersionError,
    InvalidNameError,
    ModelStore,
    NotFoundError,
    StoreError,
    VersionInfo,
    class_named,
    explanation_answer,
    feature_names,
    recorded_importance,
    validate_name,
)
from service.training.drift import psi_band
from service.training.fitting import task_of
from service.training.jobs import Job, JobQueue

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
JOBS_SHOWN = 100
DETAILED = 20  # newest versions shown with charts and evaluation; the versions table lists every one

blp = Blueprint("ui", __name__, url_prefix="/ui", template_folder="templates", static_folder="static")


@blp.after_request
def secure(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def _store() -> ModelStore:
    return registry().store


def _queue() -> JobQueue:
    return job_queue()


def version_view(info: VersionInfo, charts: bool = True) -> dict[str, Any]:
    """What a page shows of one version, with its charts drawn unless told not to (rows of the versions
    table need none); sections an old manifest lacks are None."""
    m = info.manifest or {}
    evaluation = m.get("evaluation")
    history = m.get("epoch_history") or None
    drawn: dict[str, Any] = {}
    importance = recorded_importance(m)
    if charts:
        drawn = _charts(info, history, evaluation)
        if importance:
            drawn["importance"] = svg.bar_chart(
                {f["name"]: f["mean_abs_attribution"] for f in importance["features"]},
                f"{info.name} version {info.version}: mean absolute attribution per feature",
            )
    return {
        "version": info.version,
        "active": info.active,
        "error": info.error,
        "task": task_of(m) if m else None,
        "created_at": m.get("created_at"),
        "metrics": m.get("metrics") or {},
        "primary_metric": m.get("primary_metric"),
        "epochs": len(history["loss"]) if history and isinstance(history.get("loss"), list) else None,
        "lineage": m.get("lineage"),
        "evaluation": evaluation,
        "importance": importance,
        "charts": drawn,
    }


def _charts(info: VersionInfo, history: dict[str, Any] | None, evaluation: dict[str, Any] | None) -> dict[str, Any]:
    title = f"{info.name} version {info.version}"
    charts: dict[str, Any] = {}
    if history:
        charts["loss"] = svg.loss_chart(
            {k: v for k, v in history.items() if k.endswith("loss")}, f"{title}: training and validation loss"
        )
        scores = {k: v for k, v in history.items() if k.startswith("val_") and not k.endswith("loss")}
        if scores:
            charts["score"] = svg.loss_chart(scores, f"{title}: validation score per epoch")
    if evaluation and "confusion_matrix" in evaluation:
        charts["matrix"] = svg.confusion_matrix(
            evaluation.get("labels") or [], evaluation["confusion_matrix"], f"{title}: held-out confusion matrix"
        )
    sample = (evaluation or {}).get("sample") or {}
    if sample:
        title = f"{title}: predicted vs actual"
        charts["scatter"] = svg.scatter(sample.get("actual") or [], sample.get("predicted") or [], title)
    return charts


def model_rows(store: ModelStore, caller: Caller | None) -> list[dict[str, Any]]:
    """One row per model ``caller`` sees (``listed``): its active version's task and held-out metrics, or why
    there is none."""
    rows = []
    for name in listed(caller, store.model_names()):
        row: dict[str, Any] = {"name": name, "active": None, "task": None, "metrics": {}, "error": None}
        try:
            active = store.active_version(name)
            row["active"] = active
            if active is not None:
                manifest = store.manifest(name, active)
                row.update(task=task_of(manifest), metrics=manifest.get("metrics") or {})
        except StoreError as exc:
            row["error"] = str(exc)
        rows.append(row)
    return rows


def drift_view(name: str, active: int | None) -> dict[str, Any]:
    """Each version's drift over the default window as the retraining worker last computed it (what
    ``GET /v1/models/{name}/monitoring`` shows), every PSI with its reading, or why there is none."""
    window = settings().monitor_window
    snapshot, reason = window_snapshot(name, window)
    figures = (snapshot and snapshot.figures) or {}
    versions = []
    for report in figures.get("versions", []):
        drift = report["drift"]
        psis = [(f["name"], f["psi"]) for f in drift["features"]]
        if drift.get("predictions") is not None:
            psis.append(("(predictions)", drift["predictions"]))
        versions.append(
            {
                "version": report["version"],
                "active": report["version"] == active,
                "rows": drift["rows"],
                "reason": None if drift["available"] else drift["reason"],
                "psi": [{"name": n, "psi": p, "band": psi_band(p)} for n, p in psis],
            }
        )
    at = None if snapshot is None else snapshot.computed_at
    return {
        "window": window,
        "computed_at": None if at is None else datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "reason": reason,
        "versions": versions,
    }


def locked() -> Response:
    """The page a browser gets for a dashboard page without a key under NNSERVE_AUTH=closed: a 401 whose script
    (``locked.js``) loads the page again with the tab's key as a header."""
    return Response(render_template("ui/locked.html"), 401, {"WWW-Authenticate": 'Bearer realm="nnserve"'})


@blp.get("/")
def index() -> str:
    """Every model: its active version, task and held-out metrics."""
    return render_template("ui/index.html", models=model_rows(_store(), current_caller()), counts=_queue().counts())


_verified: dict[tuple[ModelStore, str, int], dict[str, Any]] = {}  # the store itself in the key: no id reuse
VERIFIED_CACHE = 4096


def versions_of(store: ModelStore, name: str) -> list[VersionInfo]:
    """``store.version_info(name)``, remembering the manifests that passed verification.

    A published version never changes, so its verified manifest is kept (per store, per process) and
    only new or broken versions are read and checked again: the store verifies every file of every
    version, which on a model with hundreds of versions would cost most of the page's time. Serving
    does not use this cache; it always loads through the store.
    """
    active: int | None
    try:
        active = store.active_version(name)
    except CorruptVersionError:
        active = None
    infos = []
    for version in store.versions(name):
        key = (store, name, version)
        manifest = _verified.get(key)
        if manifest is None:
            try:
                manifest = store.manifest(name, version)
            except (CorruptVersionError, NotFoundError) as exc:
                infos.append(VersionInfo(name, version, version == active, None, str(exc)))
                continue
            if len(_verified) >= VERIFIED_CACHE:
                _verified.clear()
            _verified[key] = manifest
        infos.append(VersionInfo(name, version, version == active, manifest, None))
    return infos


@contextmanager
def _page_errors() -> Iterator[None]:
    """A bad model name, an unknown model and a store that cannot answer as the v1 error shape: 400, 404, 503."""
    try:
        yield
    except InvalidNameError as exc:
        abort(400, str(exc))
    except NotFoundError as exc:
        abort(404, str(exc))
    except StoreError as exc:
        abort(503, str(exc))


@blp.get("/models/<name>")
@require(READ)
def model(name: str) -> str:
    """One model's versions, lineage, loss curves and evaluation (the dashboard's model page)."""
    with _page_errors():
        infos = versions_of(_store(), validate_name(name))
        rollout = _store().rollout(name)
    views = [version_view(info, charts=n < DETAILED) for n, info in enumerate(reversed(infos))]
    drift = drift_view(name, next((info.version for info in infos if info.active), None))
    jobs, total = _queue().list_jobs(model=name, limit=JOBS_SHOWN)
    active = next((info for info in infos if info.active and info.manifest), None)
    return render_template(
        "ui/model.html",
        name=name,
        explain_form=_explain_form(active.manifest) if active and active.manifest else None,
        versions=views,
        jobs=jobs,
        jobs_total=total,
        detailed=DETAILED,
        rollout=rollout,
        drift=drift,
    )


def _explain_form(manifest: dict[str, Any]) -> dict[str, Any]:
    """What the "explain a row" form offers for the active version: its features, classes and baselines."""
    means = (manifest.get("explanations") or {}).get("baseline_mean")
    return {
        "features": feature_names(manifest),
        "classes": manifest.get("classes") or [],
        "baselines": (["mean"] if means else []) + ["zeros"],
        "methods": EXPLAIN_METHODS,
        "example": ", ".join(f"{v:.4g}" for v in means) if means else "",
    }


@blp.post("/models/<name>/explain")
@require("predict")
def explain(name: str) -> tuple[str, int]:
    """The "explain a row" form's answer: the active version's attributions for one row, or why there are none."""
    plane, made = dataplane(), current_call()
    with _page_errors():
        loaded = plane.model(validate_name(name), None, made)
    form = request.form
    method, baseline = form.get("method", EXPLAIN_METHODS[0]), form.get("baseline", "mean")
    target = form.get("target") or None
    body, problem = None, None
    try:
        row = [float(v) for v in form.get("row", "").replace(";", ",").split(",") if v.strip()]
    except ValueError:
        problem = "the row must be numbers separated by commas"
    else:
        try:
            explained = plane.explain(
                loaded,
                np.asarray([row], dtype=np.float64).reshape(1, -1),
                method=method,
                target=class_named(loaded, target),
                steps=None,
                baseline=baseline,
                field="row",
            )
            body = explanation_answer(loaded, explained, baseline)
        except InputError as exc:
            problem = f"{exc.field}: {exc.message}"
    if body is not None:
        (answer,) = body["explanations"]
        ranked = sorted(answer["attributions"].items(), key=lambda kv: -abs(kv[1]))
        body["ranked"] = ranked
    page = render_template(
        "ui/explanation.html",
        name=loaded.name,
        version=loaded.version,
        body=body,
        problem=problem,
        row_text=form.get("row", ""),
        classifier=bool(loaded.manifest.get("classes")),
    )
    return page, 200 if problem is None else 422


def job_views(jobs: list[Job]) -> list[dict[str, Any]]:
    """Jobs with the loss curve of their epochs so far, when their progress carries it."""
    views = []
    alive = bool(retraining_worker()["alive"])
    for job in jobs:
        progress = job.progress or {}
        losses = progress.get("losses")
        chart = None
        if losses:
            title = f"job {job.id}: training loss over {progress.get('epoch')} epochs so far"
            chart = svg.loss_chart({"loss": losses}, title, last_epoch=progress.get("epoch"))
        views.append({**shown(job, alive), "chart": chart})  # what /v1/jobs shows this caller: no internals
    return views


@blp.get("/jobs")
def jobs() -> str:
    """Queued, running and finished retraining jobs (of the caller's models), refreshed while one runs."""
    found, total = _queue().list_jobs(limit=JOBS_SHOWN, models=limited_to(current_caller()))
    return render_template("ui/jobs.html", jobs=job_views(found), total=total)


@blp.get("/jobs/fragment")
def jobs_fragment() -> str:
    """The jobs table alone, for ``static/jobs.js`` to swap in while jobs run."""
    found, total = _queue().list_jobs(limit=JOBS_SHOWN, models=limited_to(current_caller()))
    return render_template("ui/_jobs_table.html", jobs=job_views(found), total=total)
