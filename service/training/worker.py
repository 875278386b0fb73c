"""The retraining worker: a process of its own that claims jobs one at a time and runs them.

A job trains on the active version's training rows (``append``: plus the job's new
rows; ``replace``: the new rows alone), scores the new model and the active
one on the same frozen evaluation rows (``frozen.py``: no feedback row among them),
publishes the new version through the store (atomic) and activates it only as
``promote`` says (``canary`` and ``shadow`` start a rollout of it instead, judged
later from live traffic: ``canary.py``). Web workers then pick it up through their
hot reload. Progress and heartbeats go to the job queue
after every epoch, which is also where a cancel or a shutdown is noticed.

On SIGTERM the running job stops at its next epoch boundary and goes back to
the queue (``queued``), to be run again by the next worker; nothing is
published. A worker that died without that chance (kill -9, power loss)
leaves a ``running`` job that the next worker to start, or any idle worker of
the store (every ``RECOVER_INTERVAL`` s), takes back: the embedded queue marks it
``failed`` ("worker stopped"); PostgreSQL, where a publish is keyed by its job,
queues it again for another worker (``JobQueue.release_abandoned``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sqlite3
import threading
import time

from nn import Callback
from service import config, logs, telemetry, tracing
from service.store import (
    ActiveVersionChangedError,
    ModelStore,
    Rollout,
    RolloutConflictError,
    StoreError,
    configured_audit_log,
    enforce_retention,
    open_store,
)
from service.store.monitoring import open_prediction_log
from service.store.snapshots import open_snapshots
from service.training import fitting as training
from service.training.catalog import STORED_SECTIONS
from service.training.frozen import retrain_rows
from service.training.jobs import (
    INTERNAL_ERROR,
    Job,
    JobQueue,
    JobResult,
    NotifiesJobs,
    open_queue,
    worker_identity,
)
from service.training.limits import Limits, check_labels
from service.training.policies import PolicyRunner, Settings, unix_time
from service.training.promotion import Decision, decide
from service.training.retrain import RetrainError, validated
from service.version import __version__

log = logging.getLogger(__name__)
LOSS_POINTS = 100  # loss curve points a running job's progress carries, for a dashboard to draw
HEARTBEAT_INTERVAL = 2.0  # seconds between an idle worker's signs of life (a busy one beats every epoch)
RECOVER_INTERVAL = 2.0  # seconds between looks for jobs a dead worker left running, while idle
UNAVAILABLE = (sqlite3.Error, OSError, StoreError)  # the queue or the store failing: logged, tried again, never the end


class JobCancelledError(Exception):
    """A client cancelled the job."""


class ShutdownRequestedError(Exception):
    """The worker was asked to shut down; the job goes back to the queue."""


class JobTimeLimitError(Exception):
    """The job trained longer than NNSERVE_JOB_MAX_RUNTIME."""


class JobProgress(Callback):
    """Reports each epoch to the queue; stops training on cancel, shutdown or the time limit."""

    def __init__(
        self, queue: JobQueue, job_id: str, epochs: int, stopping: threading.Event, max_runtime: float
    ) -> None:
        self.queue, self.job_id, self.epochs, self.stopping = queue, job_id, epochs, stopping
        self.max_runtime, self.started = max_runtime, time.monotonic()
        self.losses: list[float] = []  # every epoch so far; the queue gets at most LOSS_POINTS of them

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        self.losses.append(float(logs["loss"]))
        step = -(-len(self.losses) // LOSS_POINTS)  # every step-th epoch, so each update stays small
        progress = {"epoch": epoch + 1, "epochs": self.epochs, "loss": logs["loss"], "losses": self.losses[::step]}
        progress.update({k: v for k, v in logs.items() if k.startswith("val_")})
        if self.queue.update(self.job_id, progress):
            raise JobCancelledError
        if self.stopping.is_set():
            raise ShutdownRequestedError
        if time.monotonic() - self.started > self.max_runtime:
            raise JobTimeLimitError(
                f"stopped after {self.max_runtime:g} s of training (NNSERVE_JOB_MAX_RUNTIME); nothing was published"
            )


def run_job(store: ModelStore, queue: JobQueue, job: Job, stopping: threading.Event) -> JobResult:
    """Train, publish and maybe promote one claimed job; returns its result."""
    name, request = job.model, job.request
    base = store.load(name)
    manifest = base.manifest
    task = training.task_of(manifest)
    params = {k: v for k, v in manifest["params"].items() if k in base.estimator.get_params()}
    params.update(request.hyperparameters)
    if "hidden_layer_sizes" in params:
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    rows = retrain_rows(store, base, request, task)
    dataset = rows.training
    limits = Limits.from_settings()
    try:  # again: the job may predate the settings
        validated(request, base, limits, len(dataset.X) + len(rows.evaluation.X))
    except RetrainError as exc:
        raise RetrainError(f"{exc.message}; nothing was trained", exc.field) from None
    if dataset.y.dtype.kind == "U":
        check_labels(limits, dataset.y.tolist())
    trained = manifest.get("training") or {}
    progress = JobProgress(queue, job.id, int(params.get("max_iter", 200)), stopping, limits.max_runtime)
    with tracing.span("job.fit", {"nnserve.rows": len(dataset.X)}) as fitting:  # every epoch, one span
        try:
            result = training.train(
                task,
                params,
                dataset,
                test_size=float(trained.get("test_size", 0.25)),
                seed=int(trained.get("seed", 0)),
                evaluation=rows.evaluation,
                callbacks=[progress],
                warm_start_from=base.estimator if request.warm_start else None,
            )
        finally:
            fitting.set_attribute("nnserve.epochs", len(progress.losses))
            if progress.losses:
                fitting.set_attribute("nnserve.loss", progress.losses[-1])
    new_score = result.metrics[result.primary_metric]
    held_out = rows.evaluation
    with tracing.span("job.evaluate", {"nnserve.rows": len(held_out.X)}) as evaluating:
        active_score = training.evaluate(task, base.estimator, held_out.X, held_out.y)[result.primary_metric]
        evaluating.set_attribute("nnserve.metric", result.primary_metric)
        evaluating.set_attribute("nnserve.score", new_score)
        evaluating.set_attribute("nnserve.active_score", active_score)
    with tracing.span("job.publish"):
        version = training.publish(
            store,
            name,
            result,
            description=manifest.get("description", ""),
            target=manifest.get("target"),
            activate=False,
            parent_version=base.version,
            parent_metric=active_score,
            trigger=request.trigger or f"retrain ({request.mode})",
            job_id=job.id,
            spec_sections={key: manifest[key] for key in STORED_SECTIONS if key in manifest},
        )
    with tracing.span("job.promote", {"nnserve.version": version, "nnserve.promote": request.promote}) as promoting:
        if request.promote in ("canary", "shadow"):
            reported = decide("if_better", task, new_score, active_score)
            decision = start_rollout(store, job, version, base.version, reported)
        else:
            decision = decide(request.promote, task, new_score, active_score)
        if decision.promote:
            try:  # compare-and-swap: an admin's activation while this job trained wins over the job
                store.activate(name, version, expected=base.version)
            except ActiveVersionChangedError:
                now = store.active_version(name)
                decision = Decision(
                    False, f"not promoted: the active version changed ({base.version} -> {now}) during training"
                )
        promoting.set_attribute("nnserve.promoted", decision.promote)
    return JobResult(
        version=version,
        base_version=base.version,
        metrics=result.metrics,
        active_metric=active_score,
        promoted=decision.promote,
        reason=decision.reason,
        epochs=result.epochs,
        seconds=round(result.seconds, 3),
        n_rows=len(dataset.X) + len(held_out.X),
        trained_on={**rows.trained, "sha256": store.dataset_sha256(dataset)},
        evaluated_on={**rows.evaluated, "sha256": store.dataset_sha256(held_out)},
    )


def start_rollout(store: ModelStore, job: Job, version: int, baseline: int, held_out: Decision) -> Decision:
    """Start the canary or shadow of the job's new ``version`` against ``baseline``; never a promotion now.

    The held-out comparison is only reported: live traffic decides (``canary.judge``).
    """
    request = job.request
    rollout = Rollout(
        mode=request.promote,  # type: ignore[arg-type]  # run_job checked it is "canary" or "shadow"
        candidate=version,
        baseline=baseline,
        fraction=request.canary_fraction if request.promote == "canary" else 1.0,
        min_requests=request.min_requests,
        max_duration=request.max_duration,
        started_at=time.time(),
        job_id=job.id,
    )
    try:
        store.start_rollout(job.model, rollout)
    except (ActiveVersionChangedError, RolloutConflictError) as exc:
        return Decision(False, f"no {request.promote} started: {exc}")
    share = f"{rollout.fraction:.0%} of unpinned requests" if rollout.mode == "canary" else "a copy of every request"
    return Decision(
        False,
        f"{rollout.mode} started: version {version} gets {share} until {rollout.min_requests} requests or "
        f"{rollout.max_duration:g} s (held out: {held_out.reason})",
    )


class Worker:
    """The claim-train-publish loop over one store."""

    def __init__(
        self, store_root: str | os.PathLike[str], poll_interval: float = 0.5, database_url: str | None = None
    ) -> None:
        self.store = open_store(store_root, database_url)
        self.queue = open_queue(store_root, database_url)
        self.poll_interval = poll_interval
        # woken by the queue's notification when it has one, else one poll interval
        self.notified = self.queue if isinstance(self.queue, NotifiesJobs) else None
        settings = config.from_environ()
        self.policies = PolicyRunner(
            self.store,
            self.queue,
            open_prediction_log(store_root, database_url),
            Settings.from_settings(settings),
            open_snapshots(store_root, database_url),
            configured_audit_log(store_root, {**settings, "NNSERVE_DATABASE_URL": database_url}),
        )
        self.policy_interval = float(settings["NNSERVE_POLICY_INTERVAL"])
        self.identity = worker_identity()
        self.stopping = threading.Event()
        # Final states the queue could not record yet (a locked or failing database): retried before
        # anything else, so a job never stays 'running' under a live worker that is done with it.
        self._unrecorded: list[tuple[str, str, JobResult | None, str | None]] = []

    def recover(self) -> list[str]:
        """Take back the jobs dead workers left running, and remove the temporary files they left in the store."""
        released = self.release_abandoned()
        removed = self.store.clean_temporary()
        if removed:
            log.info("removed %d leftover temporary entries from the store", removed)
        return released

    def release_abandoned(self) -> list[str]:
        """Take back the running jobs whose worker died (this worker never has one running while it calls this)."""
        released = self.queue.release_abandoned()
        for job in released:
            if job.status == "failed":
                telemetry.job_finished("failed")
            log.warning("job %s was left running by a worker that stopped; now %s", job.id, job.status)
        return [job.id for job in released]

    def _finish(self, job_id: str, status: str, result: JobResult | None = None, error: str | None = None) -> None:
        self._unrecorded.append((job_id, status, result, error))
        self._record_finished()

    def _record_finished(self) -> bool:
        """Write the final states still owed to the queue; False while the queue keeps failing."""
        while self._unrecorded:
            job_id, status, result, error = self._unrecorded[0]
            try:
                self.queue.finish(job_id, status, result=result, error=error)
            except (sqlite3.Error, OSError) as exc:
                log.error("job %s: the queue did not record '%s' (%s); retrying", job_id, status, exc)
                return False
            self._unrecorded.pop(0)
        return True

    def run_once(self) -> bool:
        """Claim and run one job; False when the queue had nothing to run (or still owes a final state)."""
        if not self._record_finished():
            return False
        claiming = time.time()
        job = self.queue.claim(self.identity)
        if job is None:
            return False
        attributes = {"nnserve.job.id": job.id, "nnserve.model": job.model}
        parent = job.request.traceparent  # the request that asked for the job: its trace goes on here
        if tracing.enabled():
            tracing.record("job.queued", unix_time(job.created_at) or claiming, claiming, parent, attributes)
            tracing.record("queue.claim", claiming, time.time(), parent, attributes)
        log.info("job %s: retraining %s", job.id, job.model)
        with tracing.span("job", attributes, parent=parent) as span:
            status, error = self._run(job)
            span.set_attribute("nnserve.job.status", status)
            if error is not None:
                tracing.failed(span, error)
        return True

    def _run(self, job: Job) -> tuple[str, str | None]:
        """Run a claimed job and record how it ended; returns (its status, the error that failed it)."""
        try:
            result = run_job(self.store, self.queue, job, self.stopping)
        except JobCancelledError:
            self._finish(job.id, "cancelled", error="cancelled by request; nothing was published")
            telemetry.job_finished("cancelled")
            return "cancelled", None
        except ShutdownRequestedError:
            self.queue.requeue(job.id)
            log.info("job %s: worker stopping, job requeued", job.id)
            return "queued", None
        except (StoreError, ValueError, OSError, JobTimeLimitError) as exc:
            self._finish(job.id, "failed", error=str(exc))
            telemetry.job_finished("failed")
            log.error("job %s failed: %s", job.id, exc)
            return "failed", str(exc)
        except Exception as exc:  # a bug must fail the job, not kill the worker loop
            log.exception("job %s failed unexpectedly", job.id)
            error = f"{INTERNAL_ERROR}: {type(exc).__name__}: {exc}"
            self._finish(job.id, "failed", error=error)
            telemetry.job_finished("failed")
            return "failed", error
        self._finish(job.id, "succeeded", result=result)
        telemetry.job_finished("succeeded", result.seconds)
        log.info("job %s succeeded: %s", job.id, result.reason)
        self._apply_retention(job.model)
        return "succeeded", None

    def _apply_retention(self, name: str) -> None:
        """Remove the versions NNSERVE_KEEP_* lets go; a failure is logged, never the job's."""
        try:
            report = enforce_retention(self.store, name)
        except StoreError as exc:
            log.error("retention of %s failed: %s", name, exc)
            return
        if report is not None and report.versions:
            log.info("retention removed %s versions of %s", [v for _, v in report.versions], name)

    def run(self, once: bool = False) -> None:
        """Loop until SIGTERM/SIGINT (or, with ``once``, until the queue is empty)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stopping.set())
        with contextlib.suppress(OSError):
            os.nice(10)  # serving keeps its latency; training takes what is left
        self.loop(once)

    def loop(self, once: bool = False) -> None:
        """Recover what dead workers left, then claim and run jobs until ``stopping`` is set."""
        try:
            self.recover()
        except UNAVAILABLE as exc:  # the database down at start: looked for again below
            log.error("worker: %s; trying again", exc)
        checked = time.monotonic()
        beat = checked - HEARTBEAT_INTERVAL
        evaluated = checked - self.policy_interval
        while not self.stopping.is_set():
            try:
                if time.monotonic() - beat >= HEARTBEAT_INTERVAL:
                    self.queue.heartbeat(self.identity)
                    beat = time.monotonic()
                ran = self.run_once()
            except UNAVAILABLE as exc:  # the queue or store failing must not end the loop
                log.error("worker: %s; trying again", exc)
                ran = False
            if not ran:
                if once:
                    return
                # Another worker on this store may have died since we started: its job would stay
                # 'running' and block every later job of that model, so look for such jobs while idle.
                if time.monotonic() - checked >= RECOVER_INTERVAL:
                    checked = time.monotonic()
                    try:
                        self.release_abandoned()
                    except UNAVAILABLE as exc:
                        log.error("worker: %s; trying again", exc)
                if time.monotonic() - evaluated >= self.policy_interval:
                    self.run_policies()
                    evaluated = time.monotonic()
                    continue  # a job a policy just queued runs now
                self._idle()

    def run_policies(self) -> None:
        """One pass of the retraining policies (and the prediction log's retention); a failure is logged."""
        try:
            self.policies.run()
        except UNAVAILABLE as exc:
            log.error("retraining policies: %s; trying again at the next pass", exc)

    def _idle(self) -> None:
        """Wait for work: woken by the queue's notification when it has one (PostgreSQL), else one poll interval."""
        if self.notified is None:
            self.stopping.wait(self.poll_interval)
        else:
            self.notified.wait(max(self.poll_interval, 1.0))


def main(store_root: str | os.PathLike[str], poll_interval: float = 0.5, once: bool = False) -> None:
    logs.configure(os.environ.get("NNSERVE_LOG_LEVEL") or "info")
    tracing.configure("worker", __version__)
    try:
        Worker(store_root, poll_interval, config.value("NNSERVE_DATABASE_URL")).run(once=once)
    finally:
        tracing.shutdown()  # the spans still buffered are exported before the process ends
    log.info("worker stopped")
