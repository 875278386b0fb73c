"""``Client``: nnserve's HTTP API from Python, on the standard library's urllib (no dependency beyond nnserve's)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from service.client import operations
from service.client.operations import Answer, Call, ClientBase, Rows
from service.client.results import (
    Activation,
    AuditEntry,
    Explanation,
    FeedbackResult,
    InferResult,
    Job,
    JobPage,
    ModelDetail,
    ModelSummary,
    Monitoring,
    NnserveError,
    Prediction,
    Rollout,
)

T = TypeVar("T")


class Client(ClientBase):
    """``Client("http://127.0.0.1:8000", key=...)``: one method per operation of the API, typed results.

    ``key`` (an API key, ``nns_...``) or else ``token`` (the server's NNSERVE_ADMIN_TOKEN) is sent with
    every call when given: feedback needs the ``feedback`` scope, admin calls (activate, retrain, cancel)
    ``admin``, and a server with NNSERVE_AUTH=closed a key for everything; jobs show their request, worker
    and scores only to an admin. ``retry`` (a ``RetryPolicy``) says when a 429 or 503 is tried again: by
    default three times for reads and predictions, honouring Retry-After, never for calls that change state.
    """

    # -- models and predictions ----------------------------------------------------

    def predict(self, name: str, instances: Rows, version: int | None = None) -> Prediction:
        """Predictions of the active version (or of ``version``) for rows of numbers or dicts by feature name, a
        2-D numpy array, or a DataFrame (its columns are matched to the model's features by name)."""
        return self._run(operations.predict(name, instances, version))

    def explain(
        self,
        name: str,
        instances: Rows,
        *,
        target: Any = None,
        method: str = "integrated_gradients",
        steps: int | None = None,
        baseline: str | Sequence[float] = "mean",
        version: int | None = None,
    ) -> Explanation:
        """Each feature's attribution to the predicted class's probability (or ``target``'s) or a regressor's
        output, for rows as ``predict`` takes them, with the active version (or ``version``)."""
        return self._run(operations.explain(name, instances, target, method, steps, baseline, version))

    def infer(
        self,
        name: str,
        data: Any,
        version: int | None = None,
        outputs: Sequence[str] | None = None,
        binary: bool = False,
    ) -> InferResult:
        """A v2 (Open Inference Protocol) inference of rows of numbers in the model's feature order: every
        output (or those named) as a numpy array; ``binary`` sends and receives raw tensor bytes, not JSON."""
        return self._run(operations.infer(name, data, version, outputs, binary))

    def feedback(self, name: str, labels: Sequence[Mapping[str, Any]], replace: bool = False) -> FeedbackResult:
        """Ground truth for logged predictions: ``[{"request_id": ..., "target": ..., "row"?: 0,
        "feedback_token"?: ...}, ...]`` (with no key, each item needs its prediction's ``feedback_token``);
        ``replace`` (admin) overwrites labels already given."""
        return self._run(operations.feedback(name, labels, replace))

    def monitoring(self, name: str, window: int | None = None) -> Monitoring:
        """Live metrics and drift per version, over the newest ``window`` logged rows (the server's default)."""
        return self._run(operations.monitoring(name, window))

    def rollout(self, name: str) -> Rollout:
        """The running rollout of ``name`` with its evidence so far, or the last one with its verdict."""
        return self._run(operations.rollout(name))

    def stop_rollout(self, name: str) -> Rollout:
        """Stop the running rollout of ``name`` (admin): its candidate is rolled back."""
        return self._run(operations.stop_rollout(name))

    def models(self) -> list[ModelSummary]:
        """Every model with an active version."""
        return self._run(operations.models())

    def model(self, name: str) -> ModelDetail:
        """One model: its versions (broken ones flagged), inputs, outputs and metrics."""
        return self._run(operations.model(name))

    def activate(self, name: str, version: int) -> Activation:
        """Make ``version`` the active one (admin)."""
        return self._run(operations.activate(name, version))

    # -- retraining jobs -------------------------------------------------------------

    def retrain(
        self,
        name: str,
        instances: Rows | None = None,
        targets: Sequence[Any] | Any | None = None,
        mode: str = "append",
        promote: str = "if_better",
        hyperparameters: Mapping[str, Any] | None = None,
        warm_start: bool = False,
        rollout: Mapping[str, Any] | None = None,
        feedback: str | None = None,
    ) -> Job:
        """Queue a retraining of ``name`` (admin): on its dataset plus (``append``) or only (``replace``) new rows
        (as ``predict`` takes them; ``targets`` a sequence, an array or a Series).

        ``rollout``: with ``promote`` "canary" or "shadow", any of ``canary_fraction``, ``min_requests``,
        ``max_duration``. ``feedback`` instead of rows: "train" on the active version's labelled predictions, or
        "evaluate" on a held-out share of them too.
        """
        call = operations.retrain(
            name, instances, targets, mode, promote, hyperparameters, warm_start, rollout, feedback
        )
        return self._run(call)

    def job(self, job_id: str) -> Job:
        return self._run(operations.job(job_id))

    def jobs(self, model: str | None = None, status: str | None = None, limit: int = 50, offset: int = 0) -> JobPage:
        """Jobs, newest first, optionally of one model and one status."""
        return self._run(operations.jobs(model, status, limit, offset))

    def cancel(self, job_id: str) -> Job:
        """Cancel a job (admin): a queued one at once, a running one at its next epoch."""
        return self._run(operations.cancel(job_id))

    def audit(self, model: str | None = None, since: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """The server's audit log (admin), newest first: of one model, at or after ``since`` (ISO 8601)."""
        return self._run(operations.audit(model, since, limit))

    def wait(self, job: Job | str, timeout: float = 600.0, poll: float = 0.5) -> Job:
        """Poll the job until its status is final; NnserveError(0, ...) if ``timeout`` seconds pass first."""
        job_id = operations.job_id_of(job)
        deadline = time.monotonic() + timeout
        while True:
            current = self.job(job_id)
            if current.final:
                return current
            if time.monotonic() >= deadline:
                raise operations.still_running(job_id, current, timeout)
            time.sleep(min(poll, max(0.0, deadline - time.monotonic())))

    # -- transport -------------------------------------------------------------------

    def _run(self, call: Call[T]) -> T:
        """Send ``call``, again after a 429 or 503 as the retry policy allows, and read its result."""
        attempt = 0
        while True:
            answer = self._exchange(call.method, call.path, self._headers(call), call.body)
            delay = self.retry.delay(call, answer, attempt)
            if delay is None:
                return operations.outcome(call, answer)
            time.sleep(delay)
            attempt += 1

    def _exchange(self, method: str, path: str, headers: dict[str, str], data: bytes | None) -> Answer:
        """One HTTP exchange. The one place that touches the network."""
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                return Answer(response.status, _lower(response.headers.items()), response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return Answer(exc.code, _lower(exc.headers.items()), exc.read())
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise NnserveError(0, f"cannot reach {self.url}: {reason}") from None


def _lower(items: Any) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in items}


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """nnserve never redirects; following one would send the bearer token to wherever it points."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)
