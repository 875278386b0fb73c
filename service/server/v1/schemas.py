"""marshmallow schemas of the v1 API: request validation and the OpenAPI document."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates, validates_schema

from service.server.current import settings
from service.server.jsonvalues import is_number
from service.server.v1.fields import Matrix, Timestamp
from service.store import BASELINES, EXPLAIN_METHODS, InvalidNameError, validate_name
from service.store.audit import ACTIONS as AUDIT_ACTIONS
from service.store.audit import OUTCOMES as AUDIT_OUTCOMES
from service.store.rollouts import ENDED, MODES
from service.training.jobs import (
    CANARY_FRACTION,
    MAX_DURATION,
    MIN_REQUESTS,
    PROMOTE_CHOICES,
    ROLLOUT_OPTIONS,
    STATUSES,
)
from service.training.retrain import ROLLOUT_RANGES

AUDIT_MAX_LIMIT = 1000  # entries one GET /v1/audit returns at most
MAX_OFFSET = 2**63 - 1  # SQLite's largest integer: beyond it the job queue cannot even be asked


class ErrorSchema(Schema):
    """Every v1 error: ``{"code", "status", "message", "errors"?}`` (docs/http-api.md, "Errors")."""

    code = fields.Integer(required=True, metadata={"description": "The HTTP status code."})
    status = fields.String(required=True, metadata={"description": "The HTTP reason phrase."})
    message = fields.String(required=True, metadata={"description": "One human sentence saying what went wrong."})
    errors = fields.Dict(
        keys=fields.String(),
        values=fields.Raw(),
        metadata={"description": "Per field at fault, its messages (present only where fields are at fault)."},
    )


def _max_rows() -> int:
    return settings().max_rows


class PredictRequestSchema(Schema):
    """Rows to predict: ``instances`` (row-wise) or ``inputs`` (columnar, keyed by feature name)."""

    class Meta:
        unknown = RAISE

    instances = Matrix(max_rows=_max_rows)
    inputs = fields.Dict(
        keys=fields.String(),
        values=fields.Raw(),
        metadata={
            "description": "Columnar input: feature name to a list of values.",
            "example": {"sepal_length": [5.1], "sepal_width": [3.5], "petal_length": [1.4], "petal_width": [0.2]},
        },
    )

    @validates_schema
    def _one_of(self, data: dict[str, Any], **kwargs: Any) -> None:
        if ("instances" in data) == ("inputs" in data):
            raise ValidationError("send exactly one of 'instances' (rows) or 'inputs' (columns)", "_schema")

    def load(self, data: Any, *, many: bool | None = None, partial: Any = None, unknown: Any = None) -> Any:
        """The usual request, ``{"instances": [...]}``, straight through its one field (the same value and errors):
        marshmallow's walk of every field and hook is a tenth of a one-row prediction's time."""
        if type(data) is dict and data.keys() == {"instances"} and type(self) is PredictRequestSchema:
            try:
                return {"instances": self.fields["instances"].deserialize(data["instances"], "instances", data)}
            except ValidationError as exc:
                raise ValidationError({"instances": exc.messages}, data=data) from None
        return super().load(data, many=many, partial=partial, unknown=unknown)


class ExplainRequestSchema(PredictRequestSchema):
    """Rows to explain, in the forms predict takes, and how to explain them."""

    target = fields.Raw(
        metadata={
            "description": "The class whose probability to explain (a label of `classes`); default: each row's "
            "predicted class. Ignored for regressors, whose (first) output is explained."
        }
    )
    method = fields.String(
        load_default=EXPLAIN_METHODS[0],
        validate=validate.OneOf(EXPLAIN_METHODS),
        metadata={"description": "Attribution method."},
    )
    steps = fields.Integer(
        strict=True,
        validate=validate.Range(min=1),
        metadata={
            "description": "Integrated gradients' quadrature nodes: at most NNSERVE_EXPLAIN_MAX_STEPS; default 32 "
            "(or that cap when lower)."
        },
    )
    baseline = fields.Raw(
        load_default="mean",
        metadata={
            "description": "`mean` (the training rows' means, kept at publish), `zeros`, or a row of numbers.",
            "oneOf": [{"type": "string", "enum": list(BASELINES)}, {"type": "array", "items": {"type": "number"}}],
        },
    )

    @validates_schema
    def _baseline(self, data: dict[str, Any], **kwargs: Any) -> None:
        given = data.get("baseline")
        row = isinstance(given, list) and all(is_number(v) for v in given)
        if not (given in BASELINES or row):
            raise ValidationError(f"must be one of {list(BASELINES)} or a row of numbers", "baseline")


class RowExplanationSchema(Schema):
    prediction = fields.Raw(required=True, metadata={"description": "The class label or value predicted."})
    target = fields.Raw(required=True, metadata={"description": "The class explained (0: a regressor's output)."})
    output = fields.Float(required=True, metadata={"description": "The explained output at the row."})
    baseline_output = fields.Float(required=True, metadata={"description": "The same output at the baseline."})
    attributions = fields.Dict(keys=fields.String(), values=fields.Float(), required=True)
    completeness_gap = fields.Float(
        metadata={"description": "Integrated gradients: sum(attributions) - (output - baseline_output)."}
    )


class ExplainResponseSchema(Schema):
    model = fields.String(required=True)
    version = fields.Integer(required=True)
    method = fields.String(required=True)
    steps = fields.Integer(allow_none=True, required=True)
    baseline = fields.Raw(required=True)
    explanations = fields.List(fields.Nested(RowExplanationSchema), required=True)


class PredictResponseSchema(Schema):
    model = fields.String(required=True)
    version = fields.Integer(required=True)
    predictions = fields.List(
        fields.Raw(), required=True, metadata={"description": "Class labels (classifiers) or values (regressors)."}
    )
    probabilities = fields.List(
        fields.List(fields.Float()), metadata={"description": "Per-class probabilities, columns in `classes` order."}
    )
    request_id = fields.String(
        metadata={
            "description": "Present when the prediction was logged (sampled): quote it in feedback "
            "(`POST /v1/models/{name}/feedback`). The `X-Request-ID` header, unless the client chose one that "
            "was already logged for this model: then a fresh id, and only this one joins feedback to this "
            "prediction."
        }
    )
    feedback_token = fields.String(
        metadata={
            "description": "Present when the prediction was logged: send it with each feedback item for this "
            "`request_id` to label this prediction's rows without a key (valid for NNSERVE_FEEDBACK_TOKEN_TTL)."
        }
    )


class ModelSummarySchema(Schema):
    name = fields.String(required=True)
    version = fields.Integer(required=True, metadata={"description": "The active version."})
    task = fields.String(required=True)
    n_features = fields.Integer(required=True)
    classes = fields.List(fields.Raw())
    metrics = fields.Dict(keys=fields.String(), values=fields.Float())


class ModelListSchema(Schema):
    models = fields.List(fields.Nested(ModelSummarySchema), required=True)


class FeatureImportanceSchema(Schema):
    name = fields.String(required=True)
    mean_abs_attribution = fields.Float(required=True)


class ImportanceSchema(Schema):
    method = fields.String(required=True)
    baseline = fields.String(required=True)
    steps = fields.Integer(required=True)
    rows = fields.Integer(required=True, metadata={"description": "Evaluation rows the means are over."})
    features = fields.List(fields.Nested(FeatureImportanceSchema), required=True)


class VersionSchema(Schema):
    version = fields.Integer(required=True)
    active = fields.Boolean(required=True)
    ok = fields.Boolean(required=True)
    created_at = fields.String(allow_none=True)
    metrics = fields.Dict(keys=fields.String(), values=fields.Float(), allow_none=True)
    error = fields.String(allow_none=True)
    importance = fields.Nested(
        ImportanceSchema,
        allow_none=True,
        metadata={
            "description": "Each feature's mean absolute attribution over the evaluation rows, recorded at "
            "publish; null for a version published before."
        },
    )


class ModelInputSchema(Schema):
    n_features = fields.Integer(required=True)
    feature_names = fields.List(fields.String(), allow_none=True)


class ModelOutputSchema(Schema):
    classes = fields.List(fields.Raw(), allow_none=True)
    n_outputs = fields.Integer()


class RolloutSchema(Schema):
    mode = fields.String(required=True, validate=validate.OneOf(MODES))
    state = fields.String(required=True, validate=validate.OneOf(("running", *ENDED)))
    candidate = fields.Integer(required=True)
    baseline = fields.Integer(required=True, metadata={"description": "The active version it is tried against."})
    fraction = fields.Float(required=True, metadata={"description": "Share of unpinned requests a canary answers."})
    min_requests = fields.Integer(required=True)
    max_duration = fields.Float(required=True, metadata={"description": "Seconds."})
    started_at = Timestamp(required=True)
    ended_at = Timestamp(allow_none=True)
    job_id = fields.String(allow_none=True)
    reason = fields.String(allow_none=True, metadata={"description": "Why it ended as it did."})
    figures = fields.Dict(
        metadata={
            "description": "The evidence: per side requests, errors, labelled rows, live metrics; a shadow's "
            "agreement. While it runs, as of the retraining worker's last pass (absent before its first); as "
            "judged once it ended."
        }
    )
    computed_at = Timestamp(
        metadata={"description": "When the running rollout's figures were computed by the retraining worker."}
    )


class ModelDetailSchema(Schema):
    name = fields.String(required=True)
    task = fields.String(required=True)
    active_version = fields.Integer(allow_none=True)
    description = fields.String(allow_none=True)
    versions = fields.List(fields.Nested(VersionSchema), required=True)
    input = fields.Nested(ModelInputSchema)
    output = fields.Nested(ModelOutputSchema)
    metrics = fields.Dict(keys=fields.String(), values=fields.Float())
    rollout = fields.Nested(RolloutSchema, allow_none=True, metadata={"description": "Running, or the last one."})


class ActivateResponseSchema(Schema):
    model = fields.String(required=True)
    version = fields.Integer(required=True)
    previous_version = fields.Integer(allow_none=True)


class HealthSchema(Schema):
    status = fields.String(required=True)


class ReadinessSchema(Schema):
    ready = fields.Boolean(required=True)
    models = fields.Dict(keys=fields.String(), values=fields.Dict())
    reasons = fields.List(fields.String())
    retraining_worker = fields.Dict(
        metadata={"description": "`alive` and `heartbeat_age_seconds` of the store's retraining workers"}
    )
    grpc = fields.Dict(
        allow_none=True,
        metadata={
            "description": "the answering web worker's gRPC server: `port` and `serving` (false while it drains); "
            "null when it runs none (NNSERVE_GRPC_PORT=0)"
        },
    )


class RetrainDataSchema(Schema):
    class Meta:
        unknown = RAISE

    instances = Matrix(required=True)
    targets = fields.List(
        fields.Raw(), required=True, metadata={"description": "One target per row: class labels or numbers."}
    )


class RetrainRequestSchema(Schema):
    """Every field is optional: with no ``data`` the active version's dataset is retrained as is."""

    class Meta:
        unknown = RAISE

    data = fields.Nested(RetrainDataSchema)
    mode = fields.String(load_default="append", validate=validate.OneOf(["append", "replace"]))
    hyperparameters = fields.Dict(
        keys=fields.String(),
        values=fields.Raw(),
        metadata={
            "description": "Spec names: epochs, batch_size, learning_rate, hidden_sizes, ...",
            "example": {"epochs": 50},
        },
    )
    promote = fields.String(
        load_default="if_better",
        validate=validate.OneOf(PROMOTE_CHOICES),
        metadata={"description": "canary and shadow try the new version on live traffic first (see rollout)"},
    )
    warm_start = fields.Boolean(load_default=False)
    canary_fraction = fields.Float(
        validate=ROLLOUT_RANGES["canary_fraction"],
        metadata={"description": f"Share of unpinned requests the canary answers (default {CANARY_FRACTION})."},
    )
    min_requests = fields.Integer(
        validate=ROLLOUT_RANGES["min_requests"],
        metadata={"description": f"Requests the candidate answers before a verdict (default {MIN_REQUESTS})."},
    )
    max_duration = fields.Float(
        validate=ROLLOUT_RANGES["max_duration"],
        metadata={"description": f"Seconds the rollout runs at most (default {MAX_DURATION:g})."},
    )

    feedback = fields.String(
        validate=validate.OneOf(["train", "evaluate"]),
        metadata={
            "description": "Also train on the active version's labelled predictions (those its spec trusts): "
            "`train` (never scored on), or `evaluate` (a held-out share joins the evaluation set, as sent data "
            "does). Not with `data`."
        },
    )

    @validates_schema
    def _rollout_options(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "feedback" in data and "data" in data:
            raise ValidationError("send data or feedback, not both", "feedback")
        given = sorted(ROLLOUT_OPTIONS & set(data))
        if given and data.get("promote") not in ("canary", "shadow"):
            raise ValidationError(f"{', '.join(given)} need promote 'canary' or 'shadow'", given[0])
        if data.get("promote") == "shadow" and "canary_fraction" in data:
            raise ValidationError("a shadow sees every request: no canary_fraction", "canary_fraction")


class FeedbackItemSchema(Schema):
    class Meta:
        unknown = RAISE

    request_id = fields.String(
        required=True,
        validate=validate.Regexp(r"^[A-Za-z0-9._:-]{1,128}$", error="must be a request id (X-Request-ID)"),
        metadata={"description": "The `request_id` (or `X-Request-ID` header) of the logged prediction."},
    )
    target = fields.Raw(
        required=True,
        allow_none=False,
        metadata={"description": "The ground truth: one of the model's classes, or the true value (regressors)."},
    )
    row = fields.Integer(
        load_default=0,
        validate=validate.Range(0, None),
        metadata={"description": "Which row of a request that predicted several (default 0)."},
    )
    feedback_token = fields.String(
        validate=validate.Length(max=200),
        metadata={
            "description": "The `feedback_token` of the prediction's answer: with no key, it authorizes this "
            "item (this prediction's rows only); the label is recorded with source `token`."
        },
    )


class FeedbackRequestSchema(Schema):
    class Meta:
        unknown = RAISE

    feedback = fields.List(
        fields.Nested(FeedbackItemSchema),
        required=True,
        validate=validate.Length(min=1, max=10_000),
        metadata={"example": [{"request_id": "3f2a9c0e5b7d4e1f8a6b2c4d6e8f0a1b", "target": "setosa"}]},
    )
    replace = fields.Boolean(
        load_default=False,
        truthy={True},
        falsy={False},
        metadata={"description": "Admin only: overwrite labels already given (the first label wins otherwise)."},
    )


class FeedbackKeySchema(Schema):
    request_id = fields.String(required=True)
    row = fields.Integer(required=True)


class FeedbackResponseSchema(Schema):
    model = fields.String(required=True)
    accepted = fields.Integer(required=True, metadata={"description": "Labels joined to a logged prediction."})
    unlogged = fields.List(
        fields.Nested(FeedbackKeySchema),
        required=True,
        metadata={"description": "Labels whose prediction is not in the log (never logged, or pruned): not kept."},
    )
    conflicts = fields.List(
        fields.Nested(FeedbackKeySchema),
        required=True,
        metadata={"description": "Labels of rows already labelled: the first label wins, these changed nothing."},
    )


class MonitoringArgsSchema(Schema):
    class Meta:
        unknown = RAISE

    window = fields.Integer(
        validate=validate.Range(min=1),
        metadata={
            "description": "Newest logged rows per version (default NNSERVE_MONITOR_WINDOW, at most "
            "NNSERVE_MONITOR_MAX_WINDOW: beyond, 422)."
        },
    )


class FeatureDriftSchema(Schema):
    name = fields.String(required=True)
    psi = fields.Float(required=True)


class DriftSchema(Schema):
    available = fields.Boolean(required=True)
    reason = fields.String(allow_none=True, metadata={"description": "Why there is no drift figure."})
    rows = fields.Integer(required=True, metadata={"description": "Logged rows the figures rest on."})
    features = fields.List(
        fields.Nested(FeatureDriftSchema),
        required=True,
        metadata={"description": "PSI of each feature's logged inputs against the version's training data."},
    )
    predictions = fields.Float(
        allow_none=True, metadata={"description": "PSI of the predictions against those on the training data."}
    )


class VersionMonitoringSchema(Schema):
    version = fields.Integer(required=True)
    active = fields.Boolean(required=True)
    rows = fields.Integer(required=True, metadata={"description": "Logged rows of this version in the window."})
    labelled = fields.Integer(required=True, metadata={"description": "Labelled rows the metrics rest on."})
    metrics = fields.Dict(
        keys=fields.String(),
        values=fields.Float(),
        required=True,
        metadata={"description": "accuracy, log_loss (classifiers); mae, rmse, r2 (regressors). {} without labels."},
    )
    drift = fields.Nested(DriftSchema, required=True)


class LabelCountSchema(Schema):
    source = fields.String(
        allow_none=True,
        required=True,
        metadata={"description": "`key` or `token`; null for labels given before labels had a source."},
    )
    key = fields.String(allow_none=True, required=True, metadata={"description": "The key's id (source `key`)."})
    rows = fields.Integer(required=True, metadata={"description": "Logged rows (request id and row) labelled."})


class MonitoringSchema(Schema):
    model = fields.String(required=True)
    window = fields.Integer(required=True)
    active_version = fields.Integer(allow_none=True)
    computed_at = Timestamp(
        required=True,
        allow_none=True,
        metadata={
            "description": "When the retraining worker computed these figures (each policy pass); null: not yet."
        },
    )
    reason = fields.String(
        required=True, allow_none=True, metadata={"description": "Why there are no figures (computed_at null)."}
    )
    rollout = fields.Nested(RolloutSchema, allow_none=True)
    versions = fields.List(
        fields.Nested(VersionMonitoringSchema),
        required=True,
        metadata={"description": "The active version and every version with rows among the model's newest logged."},
    )
    labels = fields.List(
        fields.Nested(LabelCountSchema),
        required=True,
        metadata={"description": "Labelled rows of the whole log per source and key, most first."},
    )
    dropped = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        required=True,
        metadata={
            "description": "Rows of the model the prediction log does not hold, per reason, since the server started "
            "(nnserve_prediction_log_dropped_total over its processes): per_request, buffer_rows, buffer_bytes, "
            "error, disk.",
            "example": {"per_request": 9900, "buffer_rows": 0, "buffer_bytes": 0, "error": 0, "disk": 0},
        },
    )


class JobProgressSchema(Schema):
    epoch = fields.Integer()
    epochs = fields.Integer()
    loss = fields.Float()


class JobResultSchema(Schema):
    version = fields.Integer()
    base_version = fields.Integer()
    metrics = fields.Dict(keys=fields.String(), values=fields.Float())
    active_metric = fields.Float()
    promoted = fields.Boolean()
    reason = fields.String()
    epochs = fields.Integer()
    seconds = fields.Float()
    n_rows = fields.Integer()
    trained_on = fields.Dict(
        metadata={"description": "Rows trained on: from the base version, new, whether the new came from feedback."}
    )
    evaluated_on = fields.Dict(
        metadata={"description": "Rows scored on (the frozen evaluation set): the base version's, new held out."}
    )


class JobSchema(Schema):
    id = fields.String(required=True)
    model = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    request = fields.Dict(allow_none=True, metadata={"description": "With the admin token only."})
    progress = fields.Dict(allow_none=True)
    result = fields.Nested(JobResultSchema, allow_none=True)
    error = fields.String(allow_none=True)
    cancel_requested = fields.Boolean()
    worker = fields.String(allow_none=True)
    created_at = fields.String(required=True)
    started_at = fields.String(allow_none=True)
    finished_at = fields.String(allow_none=True)
    waiting_for_worker = fields.Boolean(
        metadata={"description": "Queued, and no retraining worker is live to run it (see /readyz)."}
    )


class JobListSchema(Schema):
    jobs = fields.List(fields.Nested(JobSchema), required=True)
    total = fields.Integer(required=True)
    limit = fields.Integer(required=True)
    offset = fields.Integer(required=True)


class JobListArgsSchema(Schema):
    class Meta:
        unknown = RAISE

    model = fields.String()
    status = fields.String(validate=validate.OneOf(STATUSES))
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 200))
    offset = fields.Integer(load_default=0, validate=validate.Range(0, MAX_OFFSET))


class AuditArgsSchema(Schema):
    class Meta:
        unknown = RAISE

    model = fields.String(metadata={"description": "Only this model's entries."})
    since = fields.AwareDateTime(
        default_timezone=UTC,
        metadata={"description": "Only entries recorded at or after this ISO 8601 time (UTC unless it says)."},
    )
    limit = fields.Integer(load_default=100, validate=validate.Range(1, AUDIT_MAX_LIMIT))

    @validates("model")
    def _a_model_name(self, value: str, **kwargs: Any) -> None:
        try:
            validate_name(value)
        except InvalidNameError as exc:
            raise ValidationError(str(exc)) from None


class AuditEntrySchema(Schema):
    seq = fields.Integer(required=True)
    at = fields.String(required=True, metadata={"description": "ISO 8601 UTC."})
    actor = fields.String(
        required=True,
        allow_none=True,
        metadata={
            "description": "The key id; `bootstrap` (NNSERVE_ADMIN_TOKEN), `token` (feedback tokens), `cli` (a "
            "command run where the store is); null: no credential was sent."
        },
    )
    action = fields.String(required=True, validate=validate.OneOf(AUDIT_ACTIONS))
    model = fields.String(required=True, allow_none=True)
    outcome = fields.String(required=True, validate=validate.OneOf(AUDIT_OUTCOMES))
    status = fields.Integer(required=True, allow_none=True, metadata={"description": "HTTP status; null: a command."})
    detail = fields.String(required=True)


class AuditSchema(Schema):
    entries = fields.List(fields.Nested(AuditEntrySchema), required=True, metadata={"description": "Newest first."})
