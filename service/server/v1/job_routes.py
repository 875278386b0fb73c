"""Retraining endpoints: start a job, follow it, list jobs, cancel."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from flask import url_for
from flask.views import MethodView
from marshmallow import ValidationError

from nn import MLPClassifier
from service import telemetry, tracing
from service.server.auditing import audited, note
from service.server.auth import authorize, is_admin, require_admin
from service.server.blueprint import ADMIN, Blueprint
from service.server.callers import READ, limited_to
from service.server.current import dataplane, job_queue, recorder, registry, settings
from service.server.dataplane import InputError
from service.server.errors import abort
from service.server.health import retraining_worker
from service.server.v1.fields import NamedRows, named_rows_to_matrix
from service.server.v1.schemas import JobListArgsSchema, JobListSchema, JobSchema, RetrainRequestSchema
from service.server.v1.targets import first_bad_target
from service.store import ADMIN as ADMIN_SCOPE
from service.store import Dataset, LoadedModel, validate_name, width_problem
from service.training import jobs
from service.training.catalog import ARCHITECTURE_KEYS, spec_hyperparameters, validate_hyperparameters
from service.training.jobs import (
    INTERNAL_ERROR,
    ROLLOUT_OPTIONS,
    JobNotFoundError,
    JobQueue,
    JobStateError,
    RetrainRequest,
)
from service.training.limits import LimitError, Limits, check_labels
from service.training.policies import labelled_predictions
from service.training.retrain import RetrainError, validated

blp = Blueprint("jobs", __name__, description="Retraining jobs")
RETRY_AFTER = 30  # seconds a client told 429 (queue full) waits: about one short retrain


def queue() -> JobQueue:
    return job_queue()


def new_rows(base: LoadedModel, data: dict[str, Any], limits: Limits) -> Dataset:
    """The request's rows and targets as a dataset matching the model's features, outputs and label kind."""
    names = base.manifest.get("feature_names") or []
    X = data["instances"]
    if isinstance(X, NamedRows):
        X = named_rows_to_matrix(X, names)
    problem = width_problem(base, X.shape[1])
    if problem is not None:
        raise ValidationError({"instances": [problem]})
    try:  # a prediction's rule on values: rows the model cannot represent would train on infinity
        dataplane().check_values(base, X, "instances", "the data")
    except InputError as exc:
        raise ValidationError({"instances": [exc.message]}) from None
    targets = data["targets"]
    if not isinstance(targets, list) or len(targets) != len(X):
        raise ValidationError({"targets": [f"must be a list of {len(X)} targets, one per row"]})
    estimator = base.estimator
    if isinstance(estimator, MLPClassifier):
        try:
            check_labels(limits, targets)
        except LimitError as exc:
            raise ValidationError({"targets": [str(exc)]}) from None
    bad = first_bad_target(base, targets, known_classes=False)  # a retrain may add a class
    if bad is not None:
        raise ValidationError({"targets": [f"row {bad[0]}: {bad[1]}"]})
    kind = estimator.classes_.dtype.kind if isinstance(estimator, MLPClassifier) else "f"
    y = np.asarray(targets, dtype={"i": np.int64, "u": np.int64, "f": np.float64}.get(kind, str))
    return Dataset(X, y, list(names))


@blp.route("/v1/models/<name>/retrain")
class Retrain(MethodView):
    @audited("retrain")
    @blp.doc(security=ADMIN)
    @blp.errors(400, 401, 403, 404, 409, 413, 415, 429, 503)
    @require_admin  # before the body is parsed: no validation detail for callers without the token
    @blp.body(RetrainRequestSchema)
    @blp.response(202, JobSchema, headers={"Location": {"description": "URL of the job", "schema": {"type": "string"}}})
    def post(self, args: dict[str, Any], name: str) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Start retraining in the background (admin); answers 202 with the job and its URL."""
        base = registry().active(validate_name(name))
        limits = settings().limits
        _, queued = queue().list_jobs(base.name, "queued", limit=1)
        if queued >= limits.max_queued_jobs:
            message = f"model {base.name!r} has {queued} retrains queued, the most allowed (NNSERVE_MAX_QUEUED_JOBS)"
            abort(429, message, headers={"Retry-After": str(RETRY_AFTER)})
        try:
            request = RetrainRequest(
                mode=args["mode"],
                promote=args["promote"],
                warm_start=args["warm_start"],
                hyperparameters=_hyperparameters(args),
                traceparent=tracing.traceparent(),
                **{option: args[option] for option in ROLLOUT_OPTIONS if option in args},
            )
            dataset = new_rows(base, args["data"], limits) if "data" in args else None
            if "feedback" in args:
                recorder().flush()  # this worker's own predictions not yet written count too
                keep = settings().log_keep_rows  # the most a policy's retrain adds too
                dataset = labelled_predictions(recorder().log, base, keep)
                if dataset is None:
                    raise ValidationError({"feedback": [f"version {base.version} has no trusted labelled predictions"]})
                request = replace(request, data_source="feedback" if args["feedback"] == "train" else "request")
            if dataset is not None:
                request = replace(request, n_new_rows=len(dataset.X))
            try:
                validated(request, base, limits)
            except RetrainError as exc:
                raise ValidationError({exc.field: [exc.message]}) from None
            if dataset is not None:
                request = replace(request, data_sha256=registry().store.save_dataset(base.name, dataset))
        except ValidationError as exc:
            field = next(iter(exc.messages)) if isinstance(exc.messages, dict) else "_schema"
            messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
            first = messages[field][0] if isinstance(messages[field], list) else messages[field]
            abort(422, f"invalid {field}: {first}", errors=messages)
        job = queue().enqueue(base.name, request)
        note(detail=f"job {job.id} queued ({request.mode}, {request.n_new_rows} new rows)")
        return as_sent(job), 202, {"Location": url_for("jobs.Job", job_id=job.id)}


def _hyperparameters(args: dict[str, Any]) -> dict[str, Any]:
    """The request's hyperparameters (the catalog's names) as estimator parameters; with a warm start, names of
    the network's shape other than hidden_sizes are refused rather than ignored."""
    given = args.get("hyperparameters") or {}
    params = validate_hyperparameters(given)
    if not args["warm_start"]:
        return params
    ignored = [key for key in ARCHITECTURE_KEYS if key in given and key != "hidden_sizes"]
    if ignored:
        message = f"warm_start keeps the active network's {', '.join(ignored)}; send them without warm_start"
        raise ValidationError({key: [message] for key in ignored})
    return params


def as_sent(job: jobs.Job) -> dict[str, Any]:
    """The job's JSON with its hyperparameters under the names the caller sent (``epochs``, not ``max_iter``)."""
    body = job.to_json()
    body["request"]["hyperparameters"] = spec_hyperparameters(job.request.hyperparameters)
    return body


PUBLIC_RESULT = ("version", "base_version", "promoted")


def shown(job: jobs.Job, worker_alive: bool) -> dict[str, Any]:
    """The job as this caller may see it: everything with the admin token; without, no internals.

    Without the token: status, progress, timestamps, the version it published and whether it was
    promoted, and a public error message (an internal error's text stays for admins). The worker's host
    and pid, hyperparameters, dataset hashes and the reason's figures need the token.
    """
    body = as_sent(job)
    body["waiting_for_worker"] = job.status == "queued" and not worker_alive
    if is_admin():
        return body
    for key in ("request", "worker"):
        body[key] = None
    if body["result"] is not None:
        body["result"] = {k: body["result"][k] for k in PUBLIC_RESULT}
    if body["error"] and body["error"].startswith(INTERNAL_ERROR):
        body["error"] = "the job failed on an internal error; the admin token shows the details"
    return body


@blp.route("/v1/jobs")
class Jobs(MethodView):
    @blp.errors(401, 403)
    @blp.arguments(JobListArgsSchema, location="query")
    @blp.response(200, JobListSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Jobs, newest first, filtered by model and status, paginated with limit/offset (a key limited to models:
        their jobs only)."""
        model = args.get("model")
        caller = authorize(READ, model)  # naming a model the key is not limited to: 403
        jobs, total = queue().list_jobs(
            model, args.get("status"), args["limit"], args["offset"], models=limited_to(caller)
        )
        alive = retraining_worker()["alive"]
        return {
            "jobs": [shown(job, alive) for job in jobs],
            "total": total,
            "limit": args["limit"],
            "offset": args["offset"],
        }


@blp.route("/v1/jobs/<job_id>")
class Job(MethodView):
    @blp.errors(401, 403, 404)
    @blp.response(200, JobSchema)
    def get(self, job_id: str) -> dict[str, Any]:
        """One job: status, progress, result or error, timestamps."""
        try:
            job = queue().get(job_id)
        except JobNotFoundError as exc:
            abort(404, str(exc))
        authorize(READ, job.model)  # another model's job, for a key limited to models: 403
        return shown(job, retraining_worker()["alive"])

    @audited("cancel")
    @blp.doc(security=ADMIN)
    @blp.errors(401, 403, 404, 409)
    @blp.response(200, JobSchema)
    @require_admin
    def delete(self, job_id: str) -> dict[str, Any]:
        """Cancel a job (admin): a queued one at once, a running one at its next epoch. Nothing is published."""
        try:
            authorize(ADMIN_SCOPE, queue().get(job_id).model)  # an admin key limited to models: theirs only
            job = queue().cancel(job_id)
        except JobNotFoundError as exc:
            abort(404, str(exc))
        except JobStateError as exc:
            abort(409, str(exc))
        note(model=job.model, detail=f"job {job.id} {job.status}")
        if job.status == "cancelled":  # it was queued; a running one is counted by its worker when it stops
            telemetry.job_finished("cancelled")
        return as_sent(job)
