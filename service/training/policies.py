"""Retraining policies: a spec's ``[retrain]`` rules, evaluated by the retraining worker (never a web worker).

Each pass looks at every model whose active version carries a policy (``catalog.RetrainPolicySchema``,
kept in the manifest) and at what the prediction log holds of that version since its last retrain
(``since``: the later of the version's publication and the end of the model's newest job). The first
rule that fires enqueues one retrain, atomically only when the model has no job queued or running
(``JobQueue.enqueue_if_idle``), on the version's training data plus the version's labelled predictions,
with the rule as the job's ``trigger`` (the new version's lineage records it). The usual promotion rule
decides whether the new version serves. Counting rows only since the last retrain is what stops a policy
from firing again on the same evidence after a retrain that was not promoted, and a policy whose candidate
was not promoted (or whose job failed) waits its ``cooldown`` (default ``COOLDOWN``) before it fires again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

import numpy as np

from service import telemetry, tracing
from service.store import AuditLog, Dataset, LoadedModel, ModelStore, Rollout, StoreError
from service.store.audit import KEEP_DAYS as AUDIT_KEEP_DAYS
from service.store.audit import KEEP_ROWS as AUDIT_KEEP_ROWS
from service.store.monitoring import PredictionLog
from service.store.snapshots import MonitoringSnapshots, Snapshot
from service.training.canary import Verdict, evidence, frozen_scores, judge
from service.training.fitting import task_of
from service.training.jobs import COOLDOWN, ROLLOUT_OPTIONS, Job, JobQueue, RetrainRequest
from service.training.limits import Limits
from service.training.live import VersionReport, trusted_labels, version_report, window_reports
from service.training.retrain import validated

log = logging.getLogger(__name__)

__all__ = ["PolicyRunner", "Settings", "fires", "labelled_predictions"]


def fires(policy: Mapping[str, Any], report: VersionReport, age_seconds: float) -> str | None:
    """The trigger of the first rule of ``policy`` that ``report`` (rows since the last retrain) sets off, or None.

    Rules in order: drift, live metric, feedback count, schedule. ``age_seconds`` is the time since the last
    retrain (or the version's publication).
    """
    threshold = policy.get("on_drift_psi")
    worst = report.drift.worst()
    if threshold is not None and worst is not None and report.drift.rows >= policy.get("drift_min_rows", 100):
        feature, psi = worst
        if psi >= threshold:
            return f"drift: PSI {psi:.2f} on {feature} (>= {threshold:g}, {report.drift.rows} rows)"
    rule = policy.get("on_live_metric_below")
    if rule is not None and report.labelled >= rule.get("min_rows", 50):
        value = report.metrics.get(rule["metric"])
        if value is not None and value < rule["threshold"]:
            return f"live {rule['metric']} {value:.3f} < {rule['threshold']:g} over {report.labelled} labelled rows"
    every = policy.get("every_n_feedback")
    if every is not None and report.labelled >= every:
        return f"feedback: {report.labelled} labelled predictions (every {every})"
    interval = policy.get("schedule")
    if interval is not None and age_seconds >= interval:
        return f"schedule: {age_seconds:.0f} s since the last retrain (every {interval:g} s)"
    return None


def labelled_predictions(prediction_log: PredictionLog, base: LoadedModel, limit: int) -> Dataset | None:
    """The newest ``limit`` predictions of version ``base`` labelled by a source its spec trusts, as a dataset of
    its features and target type (those it made, so never rows it was trained on); None when there are none."""
    labelled = prediction_log.recent(
        base.name, limit, version=base.version, labelled=True, sources=trusted_labels(base.manifest)
    )
    if not labelled:
        return None
    classes = getattr(base.estimator, "classes_", None)
    integers = classes is not None and classes.dtype.kind in "iu"
    dtype = np.int64 if integers else (str if classes is not None else np.float64)
    y = np.asarray([r.target for r in labelled], dtype=dtype)
    X = np.array([r.inputs for r in labelled], dtype=np.float64)
    return Dataset(X, y, list(base.manifest.get("feature_names") or []))


@dataclass(frozen=True)
class Settings:
    window: int  # NNSERVE_MONITOR_WINDOW: rows a rule looks at, the monitoring read's default window
    max_window: int  # NNSERVE_MONITOR_MAX_WINDOW: the largest window a monitoring read may ask for
    keep_rows: int  # NNSERVE_LOG_KEEP_ROWS: also the most feedback rows a retrain adds
    keep_days: float  # NNSERVE_LOG_KEEP_DAYS
    drift_min_rows: int  # NNSERVE_DRIFT_MIN_ROWS: below, a version has no drift and no drift rule fires
    audit_keep_rows: int = AUDIT_KEEP_ROWS  # NNSERVE_AUDIT_KEEP_ROWS
    audit_keep_days: float = AUDIT_KEEP_DAYS  # NNSERVE_AUDIT_KEEP_DAYS

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Settings:
        return cls(
            window=int(settings["NNSERVE_MONITOR_WINDOW"]),
            max_window=int(settings["NNSERVE_MONITOR_MAX_WINDOW"]),
            keep_rows=int(settings["NNSERVE_LOG_KEEP_ROWS"]),
            keep_days=float(settings["NNSERVE_LOG_KEEP_DAYS"]),
            drift_min_rows=int(settings["NNSERVE_DRIFT_MIN_ROWS"]),
            audit_keep_rows=int(settings["NNSERVE_AUDIT_KEEP_ROWS"]),
            audit_keep_days=float(settings["NNSERVE_AUDIT_KEEP_DAYS"]),
        )


def unix_time(stamp: str | None) -> float | None:
    """Unix seconds of a job's ISO 8601 time stamp (None for none)."""
    return None if not stamp else datetime.fromisoformat(stamp).timestamp()


class PolicyRunner:
    """One pass over every model: prune the prediction log (and the audit log), judge running rollouts, compute
    each policy's figures, enqueue what fires, then write every model's monitoring snapshots (and gauges). A model
    whose rollout runs is not retrained until it ends."""

    def __init__(
        self,
        store: ModelStore,
        queue: JobQueue,
        prediction_log: PredictionLog,
        settings: Settings,
        snapshots: MonitoringSnapshots,
        audit: AuditLog | None = None,
    ) -> None:
        self.store, self.queue, self.log, self.settings = store, queue, prediction_log, settings
        self.snapshots, self.audit = snapshots, audit

    def run(self, now: float | None = None) -> list[Job]:
        """Judge every running rollout, evaluate every model's policy once and write the monitoring snapshots;
        returns the jobs it enqueued."""
        now = time.time() if now is None else now
        policies = {}
        names = self.store.model_names()
        for name in names:
            try:
                rollout = self.store.rollout(name)
                if rollout is not None and rollout.running:
                    self.judge_rollout(name, rollout, now)
                    continue
                found = self._policy(name)
            except (StoreError, ValueError, OSError) as exc:
                log.error("retraining policy or rollout of %s not read: %s", name, exc)
                continue
            if found is not None:
                policies[name] = found
        removed = self.log.prune(self.settings.keep_rows, self.settings.keep_days)
        if removed:
            log.info("prediction log retention removed %s rows", removed)
        if self.audit is not None:
            try:
                gone = self.audit.prune(self.settings.audit_keep_rows, self.settings.audit_keep_days)
            except StoreError as exc:
                log.error("audit log retention not applied: %s", exc)
            else:
                if gone:
                    log.info("audit log retention removed %d entries", gone)
        started = []
        for name, (version, manifest) in policies.items():
            try:
                job = self.evaluate(self.log, name, version, manifest, now)
            except (StoreError, ValueError, OSError) as exc:  # ValueError: a RetrainError among them
                log.error("retraining policy of %s not evaluated: %s", name, exc)
                continue
            if job is not None:
                started.append(job)
        for name in names:
            try:
                self.monitor(name)
            except (StoreError, ValueError, OSError) as exc:
                log.error("monitoring snapshot of %s not written: %s", name, exc)
        return started

    def monitor(self, name: str) -> None:
        """Write the monitoring snapshots of ``name``: the default and largest windows and those clients asked for
        (up to the largest), each with the log's label counts and its running rollout's evidence; set the gauges
        from the default window."""
        top = self.settings.max_window
        windows = sorted({self.settings.window, top, *(w for w in self.snapshots.windows(name) if w <= top)})
        active = self.store.active_version(name)
        reports = window_reports(
            self.log,
            name,
            active,
            lambda v: self.store.manifest(name, v),
            windows,
            drift_min_rows=self.settings.drift_min_rows,
        )
        rollout = self.store.rollout(name)
        labels = [asdict(count) for count in self.log.label_counts(name)]
        for window in windows:
            figures = {
                "versions": [r.to_json() for r in reports[window]],
                "labels": labels,
                "rollout": self._evidence(name, rollout, window),
            }
            self.snapshots.write(Snapshot(name, window, time.time(), figures))
        for report in reports[self.settings.window]:
            telemetry.live_figures(name, report.version, report.metrics, report.psi())

    def _evidence(self, name: str, rollout: Rollout | None, window: int) -> dict[str, Any] | None:
        """A running rollout's evidence over ``window`` as a snapshot keeps it (None without one, or when it cannot
        be read: the versions' figures are written all the same)."""
        if rollout is None or not rollout.running:
            return None
        try:
            found = evidence(self.log, name, rollout, self.store.manifest(name, rollout.candidate), window)
        except (StoreError, ValueError, OSError) as exc:
            log.error("evidence of the rollout of %s not read: %s", name, exc)
            return None
        return {"candidate": rollout.candidate, "started_at": rollout.started_at, "evidence": found.to_json()}

    def judge_rollout(self, name: str, rollout: Rollout, now: float) -> Rollout | None:
        """End ``rollout`` if the rule has a verdict now (promoting its candidate, or not); returns it ended.

        A rollout whose baseline is no longer active (a crash between a promotion's two writes, a store
        copied over it) ends as superseded: no web worker routes by it any more. One whose evidence cannot
        be read or judged is tried again on the next pass until its ``max_duration``, then rolled back with
        the reason: a rollout always ends.
        """
        active = self.store.active_version(name)
        if active != rollout.baseline:
            ended = rollout.ended("superseded", f"version {active} is active, not its baseline", now)
            self.store.end_rollout(name, ended)
            log.warning("%s of %s version %s superseded: %s", rollout.mode, name, rollout.candidate, ended.reason)
            return ended
        figures: dict[str, Any] | None = None
        try:
            manifest = self.store.manifest(name, rollout.candidate)
            found = evidence(self.log, name, rollout, manifest, self.settings.window)
            frozen = frozen_scores(manifest, rollout)
            verdict = judge(rollout, task_of(manifest), found, now, frozen)
            figures = {**found.to_json(), "frozen": None if frozen is None else asdict(frozen)}
        except Exception as exc:  # whatever stops a verdict, the rollout still ends by its max_duration
            problem = f"{type(exc).__name__}: {exc}"
            if now - rollout.started_at < rollout.max_duration:
                log.error("%s of %s: evidence not read or judged (%s); trying again", rollout.mode, name, problem)
                return None
            log.exception("%s of %s: evidence not read or judged by its max_duration", rollout.mode, name)
            why = f"its evidence could not be read or judged in {rollout.max_duration:g} s ({problem})"
            verdict = Verdict("rolled_back", why)
        if verdict is None:
            return None
        ended = rollout.ended(verdict.state, verdict.reason, now, figures)
        self.store.end_rollout(name, ended)
        log.info("%s of %s version %s %s: %s", rollout.mode, name, rollout.candidate, verdict.state, verdict.reason)
        return ended

    def _policy(self, name: str) -> tuple[int, dict[str, Any]] | None:
        """(active version, its manifest) when that version carries a retraining policy."""
        version = self.store.active_version(name)
        if version is None:
            return None
        manifest = self.store.manifest(name, version)
        return (version, manifest) if manifest.get("retrain") else None

    def evaluate(
        self, prediction_log: PredictionLog, name: str, version: int, manifest: dict[str, Any], now: float
    ) -> Job | None:
        """The job the policy of ``name`` (active ``version``) starts now, if a rule fires and the model is idle."""
        policy = manifest["retrain"]
        newest, _ = self.queue.list_jobs(name, limit=1)
        if newest and newest[0].status in ("queued", "running"):
            return None
        finished = unix_time(newest[0].finished_at) if newest else None
        if newest and self._cooling(name, newest[0], float(policy.get("cooldown", COOLDOWN)), now):
            return None
        since = max(t for t in (unix_time(manifest.get("created_at")), finished, 0.0) if t is not None)
        report = version_report(
            prediction_log,
            name,
            version,
            manifest,
            self.settings.window,
            since=since,
            drift_min_rows=self.settings.drift_min_rows,
        )
        trigger = fires(policy, report, now - since)
        if trigger is None:
            return None
        with tracing.span("policy.fired", {"nnserve.model": name, "nnserve.trigger": trigger}):  # the job's trace
            request = self._request(prediction_log, name, version, manifest, policy, trigger)
            job = self.queue.enqueue_if_idle(name, request)
        if job is not None:
            log.info("retraining policy of %s started job %s: %s", name, job.id, trigger)
        return job

    def _cooling(self, name: str, job: Job, cooldown: float, now: float) -> bool:
        """Whether ``job``, the model's newest, was a policy's whose candidate was not promoted less than
        ``cooldown`` seconds ago (its end, or the end of the rollout it started): forged labels that set a rule
        off cannot keep the worker retraining."""
        if job.request.trigger is None:
            return False
        ended = unix_time(job.finished_at) or 0.0
        if job.status == "succeeded" and job.result is not None and job.result.promoted:
            return False
        rollout = self.store.rollout(name)
        if job.status == "succeeded" and rollout is not None and rollout.job_id == job.id:
            if rollout.state == "promoted":
                return False
            ended = max(ended, rollout.ended_at or now)
        return now - ended < cooldown

    def _request(
        self,
        prediction_log: PredictionLog,
        name: str,
        version: int,
        manifest: Mapping[str, Any],
        policy: Mapping[str, Any],
        trigger: str,
    ) -> RetrainRequest:
        """A retrain on the version's training data plus its predictions labelled by a source its spec trusts
        (those it made, so never rows it was trained on), checked against the limits like any retrain."""
        base = self.store.load(name, version)
        labelled = labelled_predictions(prediction_log, base, self.settings.keep_rows)
        n_labelled = 0 if labelled is None else len(labelled.X)
        options = {option: policy[option] for option in ROLLOUT_OPTIONS if option in policy}
        request = RetrainRequest(
            mode="append",
            promote=policy.get("promote", "if_better"),
            trigger=trigger,
            traceparent=tracing.traceparent(),
            n_new_rows=n_labelled,
            data_source="request" if labelled is None else "feedback",
            **options,
        )
        validated(request, base, Limits.from_settings())  # before anything is saved
        if labelled is None:
            return request
        return replace(request, data_sha256=self.store.save_dataset(name, labelled))
