"""Closing the loop: ground truth for logged predictions (feedback), live metrics and drift per version, and
the model's rollout (canary or shadow) with its evidence."""

from __future__ import annotations

import time
from typing import Any

from flask.views import MethodView

from service import telemetry
from service.server.auditing import audited, note
from service.server.auth import authorize, current_caller, require, require_admin
from service.server.blueprint import ADMIN, Blueprint
from service.server.callers import READ
from service.server.current import feedback_tokens, recorder, registry, settings, snapshots
from service.server.errors import abort
from service.server.v1.schemas import (
    FeedbackRequestSchema,
    FeedbackResponseSchema,
    MonitoringArgsSchema,
    MonitoringSchema,
    RolloutSchema,
)
from service.server.v1.targets import first_bad_target
from service.store import NotFoundError, RolloutConflictError, validate_name
from service.store.monitoring import Label
from service.store.snapshots import Snapshot

blp = Blueprint("monitoring", __name__, url_prefix="/v1/models", description="Feedback, live metrics and drift")


def _provenance(model: str, items: list[dict[str, Any]], replace: bool) -> tuple[str, str | None]:
    """(source, key id) the labels of this call are recorded with, or a 401/403: a key with the ``feedback``
    scope for ``model`` (NNSERVE_ADMIN_TOKEN: key id ``bootstrap``), else each item's feedback token, valid
    for its own request id of ``model``."""
    challenge = {"WWW-Authenticate": 'Bearer realm="nnserve"'}
    if current_caller() is not None:  # a bad credential is a 401 here
        caller = authorize("feedback", model)
        assert caller is not None
        if replace and not caller.allows("admin", model):
            abort(403, f"key {caller.key_id!r} lacks the 'admin' scope: replacing labels takes an admin key")
        return "key", caller.key_id
    if replace:
        abort(403, "replacing labels takes an admin key")
    tokens, now = feedback_tokens(), time.time()
    for i, item in enumerate(items):
        token = item.get("feedback_token")
        if token is None:
            abort(401, f"feedback[{i}]: send a key, or the feedback_token of its prediction", headers=challenge)
        if not tokens.valid(token, model, item["request_id"], now):
            why = "is not valid for this request id (another prediction's, altered, or expired)"
            abort(401, f"feedback[{i}].feedback_token {why}", headers=challenge)
    return "token", None


@blp.route("/<name>/feedback")
class Feedback(MethodView):
    # No scope decorator: with no key, each item's feedback token authorizes it (``_provenance`` decides).
    @audited("feedback")
    @blp.doc(security=[*ADMIN, {}])  # a key, or none with feedback tokens
    @blp.errors(400, 401, 403, 404, 409, 413, 415, 503)
    @blp.body(FeedbackRequestSchema)
    @blp.response(200, FeedbackResponseSchema)
    def post(self, args: dict[str, Any], name: str) -> dict[str, Any]:
        """Ground truth for logged predictions, by their request id; labels for predictions not in the log, and
        for rows already labelled, come back.

        Each label records who gave it: a key (``Authorization: Bearer``), or, with no key, the
        ``feedback_token`` each item carries, which its prediction's answer gave and which labels that
        prediction's rows only. The first label of a row wins; an admin may ``replace`` it. Labels feed the
        live metrics and, through a spec's ``[retrain]`` policy, retraining, counting only the sources the
        spec trusts (``[monitoring] trusted_labels``).
        """
        loaded = registry().active(validate_name(name))
        items = args["feedback"]
        source, key = _provenance(loaded.name, items, args["replace"])
        bad = first_bad_target(loaded, [item["target"] for item in items], known_classes=True)
        if bad is not None:
            row, why = bad
            field = f"feedback[{row}].target"
            abort(422, f"invalid {field}: {why}", errors={field: [why]})
        log = recorder()
        log.flush()  # this worker's own predictions not yet written can be labelled at once
        labels = [Label(i["request_id"], i["target"], i["row"]) for i in items]
        done = log.log.label(loaded.name, labels, source=source, key=key, replace=args["replace"])
        note(
            actor="token" if source == "token" else None,
            detail=f"{done.accepted} accepted, {len(done.unlogged)} unlogged, {len(done.conflicts)} conflicts"
            + (" (replace)" if args["replace"] else ""),
        )
        return {
            "model": loaded.name,
            "accepted": done.accepted,
            "unlogged": [{"request_id": u.request_id, "row": u.row} for u in done.unlogged],
            "conflicts": [{"request_id": c.request_id, "row": c.row} for c in done.conflicts],
        }


@blp.route("/<name>/monitoring")
class Monitoring(MethodView):
    @blp.errors(401, 403, 404, 503)
    @require(READ)
    @blp.arguments(MonitoringArgsSchema, location="query")
    @blp.response(200, MonitoringSchema)
    def get(self, args: dict[str, Any], name: str) -> dict[str, Any]:
        """Live metrics and drift of the active version and of every version among the newest logged rows, as the
        retraining worker last computed them (``computed_at``; every ``NNSERVE_POLICY_INTERVAL`` seconds).

        Each rests on the version's newest ``window`` logged rows (drift: PSI of each feature and of the
        predictions against the version's training data) and labelled rows (metrics), with their counts; the
        worker also sets them as the ``nnserve_live_metric`` and ``nnserve_drift_psi`` gauges. ``window`` is at
        most ``NNSERVE_MONITOR_MAX_WINDOW``. A call reads one snapshot, never the log: until the worker computed
        the window asked for (its first pass, or a window other than the default and the maximum, computed from
        the next pass on), ``versions`` is empty, ``computed_at`` null and ``reason`` says why.
        """
        store = registry().store
        name = validate_name(name)
        active = store.active_version(name)  # unknown model: 404
        window = _window(args)
        snapshot, reason = window_snapshot(name, window)
        figures = (snapshot and snapshot.figures) or {}
        return {
            "model": name,
            "window": window,
            "active_version": active,
            "computed_at": None if snapshot is None else snapshot.computed_at,
            "reason": reason,
            "versions": [{**v, "active": v["version"] == active} for v in figures.get("versions", [])],
            "labels": figures.get("labels", []),
            "rollout": rollout_state(name, snapshot),
            "dropped": telemetry.dropped_rows(name),
        }


def _window(args: dict[str, Any]) -> int:
    """The window asked for (422 beyond the configured cap), or the default."""
    cap = settings().monitor_max_window
    if args.get("window", 0) > cap:
        why = f"Must be at most {cap} (NNSERVE_MONITOR_MAX_WINDOW)."
        abort(422, f"invalid window: {why}", errors={"window": [why]})
    return int(args.get("window") or settings().monitor_window)


def window_snapshot(name: str, window: int) -> tuple[Snapshot | None, str | None]:
    """The computed snapshot of ``name`` over ``window``, or None and why not; a window the worker does not
    compute yet is asked for (the default and the largest always are)."""
    config = settings()
    found = snapshots().read(name, window)
    if found is not None and found.figures is not None:
        return found, None
    always = (config.monitor_window, config.monitor_max_window)
    most = config.monitor_windows
    if found is None and window not in always and not snapshots().ask(name, window, most):
        return None, (
            f"not computed: {name} already has NNSERVE_MONITOR_WINDOWS ({most}) windows: ask for one of "
            + ", ".join(map(str, sorted({*always, *snapshots().windows(name)})))
        )
    return None, (
        "not computed yet: the retraining worker computes live metrics and drift at each policy pass "
        f"(every NNSERVE_POLICY_INTERVAL = {config.policy_interval:g} s); is one running?"
    )


def rollout_state(name: str, snapshot: Snapshot | None = None) -> dict[str, Any] | None:
    """The model's rollout as shown: a running one with its evidence as of the last policy pass (from ``snapshot``,
    or the default window's), an ended one as judged."""
    store = registry().store
    rollout = store.rollout(name)
    if rollout is None:
        return None
    shown = rollout.to_json()
    if rollout.running:
        if snapshot is None:
            snapshot = snapshots().read(name, settings().monitor_window)
        found = ((snapshot and snapshot.figures) or {}).get("rollout")
        if found and (found["candidate"], found["started_at"]) == (rollout.candidate, rollout.started_at):
            shown["figures"] = found["evidence"]
            shown["computed_at"] = snapshot.computed_at  # type: ignore[union-attr]
    return shown


@blp.route("/<name>/rollout")
class RolloutView(MethodView):
    @blp.errors(401, 403, 404, 503)
    @blp.response(200, RolloutSchema)
    @require(READ)
    def get(self, name: str) -> dict[str, Any]:
        """The running rollout with its evidence so far, or the last one with its verdict and why."""
        shown = rollout_state(validate_name(name))
        if shown is None:
            raise NotFoundError(f"model {name!r} has had no rollout")
        return shown

    @audited("rollout-stop")
    @blp.doc(security=ADMIN)
    @blp.errors(401, 403, 404, 409, 503)
    @blp.response(200, RolloutSchema)
    @require_admin
    def delete(self, name: str) -> dict[str, Any]:
        """Stop the running rollout (admin): its candidate is rolled back, the active version serves alone."""
        store = registry().store
        name = validate_name(name)
        rollout = store.rollout(name)
        if rollout is None or not rollout.running:
            raise RolloutConflictError(f"model {name!r} has no rollout running")
        ended = rollout.ended("rolled_back", "stopped by an admin", time.time())
        store.end_rollout(name, ended)
        note(detail=f"{rollout.mode} of version {rollout.candidate} rolled back")
        registry().refresh(name)
        return ended.to_json()
