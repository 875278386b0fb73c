"""Closing the loop: ground truth for logged predictions (feedback), and live metrics and drift per version."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import current_app
from flask.views import MethodView

from service import telemetry
from service.server.blueprint import Blueprint
from service.server.errors import abort
from service.server.predlog import recorder
from service.server.registry import registry
from service.server.v1.schemas import (
    FeedbackRequestSchema,
    FeedbackResponseSchema,
    MonitoringArgsSchema,
    MonitoringSchema,
)
from service.server.v1.targets import first_bad_target
from service.store import validate_name
from service.store.monitoring import Label
from service.training.live import version_report

blp = Blueprint("monitoring", __name__, url_prefix="/v1/models", description="Feedback, live metrics and drift")


@blp.route("/<name>/feedback")
class Feedback(MethodView):
    @blp.errors(400, 404, 409, 413, 415, 503)
    @blp.arguments(FeedbackRequestSchema)
    @blp.response(200, FeedbackResponseSchema)
    def post(self, args: dict[str, Any], name: str) -> dict[str, Any]:
        """Ground truth for logged predictions, by their request id; labels for predictions not in the log come back.

        No admin token, as with KServe's and Seldon's feedback: the applications that predict are the ones
        that learn the truth, and they hold no operator's token. The request id is the capability: an id
        nnserve made (128 random bits) labels only the prediction it was returned with. Labels feed the
        live metrics and, through a spec's ``[retrain]`` policy, retraining, whose promotion rule still
        scores every new version on held-out rows before it serves.
        """
        loaded = registry().active(validate_name(name))
        items = args["feedback"]
        bad = first_bad_target(loaded, [item["target"] for item in items], known_classes=True)
        if bad is not None:
            row, why = bad
            field = f"feedback[{row}].target"
            abort(422, f"invalid {field}: {why}", errors={field: [why]})
        log = recorder()
        log.flush()  # this worker's own predictions not yet written can be labelled at once
        unknown = log.log.label(loaded.name, [Label(i["request_id"], i["target"], i["row"]) for i in items])
        return {
            "model": loaded.name,
            "accepted": len(items) - len(unknown),
            "unlogged": [{"request_id": u.request_id, "row": u.row} for u in unknown],
        }


@blp.route("/<name>/monitoring")
class Monitoring(MethodView):
    @blp.errors(404, 503)
    @blp.arguments(MonitoringArgsSchema, location="query")
    @blp.response(200, MonitoringSchema)
    def get(self, args: dict[str, Any], name: str) -> dict[str, Any]:
        """Live metrics and drift of the active version and of every version among the newest logged rows.

        Each rests on the version's newest ``window`` logged rows (drift: PSI of each feature and of the
        predictions against the version's training data) and labelled rows (metrics), with their counts;
        the figures are also set as the ``nnserve_live_metric`` and ``nnserve_drift_psi`` gauges.
        """
        store = registry().store
        name = validate_name(name)
        active = store.active_version(name)  # unknown model: 404
        window = int(args.get("window") or current_app.config["NNSERVE_MONITOR_WINDOW"])
        recorder().flush()  # this worker's pending predictions count too
        log = recorder().log
        seen = {row.version for row in log.recent(name, window)}
        versions = sorted(seen | ({active} if active is not None else set()), reverse=True)
        reports = []
        for version in versions:
            report = version_report(log, name, version, store.manifest(name, version), window)
            telemetry.live_figures(name, version, report.metrics, report.psi())
            shown = {**asdict(report), "active": version == active}
            shown["drift"]["features"] = [{"name": k, "psi": v} for k, v in report.drift.features.items()]
            reports.append(shown)
        return {"model": name, "window": window, "active_version": active, "versions": reports}
