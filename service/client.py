"""A Python client for nnserve's v1 HTTP API, on the standard library alone (urllib).

Every failure, an error answer of the server or a failed connection, is raised
as one exception class, :class:`NnserveError`. The key (or admin token) travels only in
an ``Authorization: Bearer`` header: never in a URL, a log line or an
exception message.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from service.config import DEFAULTS
from service.version import __version__

FINAL_STATUSES = ("succeeded", "failed", "cancelled")
DEFAULT_URL: str = DEFAULTS["NNSERVE_URL"]

Row = Sequence[float] | Mapping[str, float]


class NnserveError(Exception):
    """An error answer of the server (its ``status``, ``message`` and field ``errors``), or no answer at all.

    ``status`` is the HTTP status; 0 means no HTTP answer arrived (connection
    refused, timeout, a body that is not nnserve's JSON). ``errors`` maps
    request fields to their messages, as the server sent them.
    """

    def __init__(self, status: int, message: str, errors: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status
        self.message = message
        self.errors: dict[str, Any] = dict(errors or {})


@dataclass(frozen=True)
class Prediction:
    model: str
    version: int
    predictions: list[Any]  # class labels for classifiers, numbers (or rows of numbers) for regressors
    probabilities: list[list[float]] | None = None  # one row per instance, classes in the model's order
    request_id: str | None = None  # set when the prediction was logged: quote it in ``feedback``
    feedback_token: str | None = None  # set when logged: lets ``feedback`` label this prediction without a key


@dataclass(frozen=True)
class RowExplanation:
    """One row's explanation: each feature's attribution to the explained output, which moved from
    ``baseline_output`` (at the baseline) to ``output`` (at the row); integrated gradients' ``completeness_gap``."""

    prediction: Any
    target: Any  # the class explained, or 0 for a regressor's output
    output: float
    baseline_output: float
    attributions: dict[str, float]
    completeness_gap: float | None = None


@dataclass(frozen=True)
class Explanation:
    model: str
    version: int
    method: str
    steps: int | None
    baseline: Any  # "mean", "zeros" or the row given
    explanations: list[RowExplanation]


@dataclass(frozen=True)
class ModelSummary:
    name: str
    version: int
    task: str
    n_features: int
    metrics: dict[str, float]
    classes: list[Any] | None = None


@dataclass(frozen=True)
class VersionInfo:
    version: int
    active: bool
    ok: bool
    created_at: str | None = None
    metrics: dict[str, float] | None = None
    error: str | None = None


@dataclass(frozen=True)
class ModelDetail:
    name: str
    task: str
    active_version: int | None
    versions: list[VersionInfo]
    feature_names: list[str] | None
    n_features: int
    classes: list[Any] | None
    metrics: dict[str, float]
    description: str | None = None


@dataclass(frozen=True)
class Activation:
    model: str
    version: int
    previous_version: int | None


@dataclass(frozen=True)
class Job:
    id: str
    model: str
    status: str
    created_at: str
    request: dict[str, Any] | None = None  # shown with the admin token only
    progress: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    cancel_requested: bool = False
    worker: str | None = None
    started_at: str | None = None
    finished_at: str | None = None

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES


@dataclass(frozen=True)
class JobPage:
    jobs: list[Job]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True)
class AuditEntry:
    """One entry of the server's audit log (``GET /v1/audit``): ``at`` is ISO 8601 UTC; ``actor`` a key id,
    ``bootstrap``, ``token`` or ``cli`` (None: no credential); ``status`` None for a command."""

    seq: int
    at: str
    actor: str | None
    action: str
    model: str | None
    outcome: str
    status: int | None
    detail: str


@dataclass(frozen=True)
class FeedbackResult:
    model: str
    accepted: int  # labels joined to a logged prediction
    unlogged: list[dict[str, Any]]  # {"request_id", "row"} of labels whose prediction is not in the log
    conflicts: list[dict[str, Any]]  # {"request_id", "row"} of rows already labelled: the first label won


@dataclass(frozen=True)
class VersionMonitoring:
    version: int
    active: bool
    rows: int  # logged rows in the window
    labelled: int  # labelled rows the metrics rest on
    metrics: dict[str, float]
    drift: dict[str, Any]  # available, reason, rows, features [{"name", "psi"}], predictions


@dataclass(frozen=True)
class Monitoring:
    model: str
    window: int
    active_version: int | None
    versions: list[VersionMonitoring]
    rollout: dict[str, Any] | None = None  # running (with its evidence so far) or the last one, as the server shows
    labels: list[dict[str, Any]] = field(default_factory=list)  # {"source", "key", "rows"}: labelled rows per key
    computed_at: str | None = None  # ISO 8601 UTC: when the retraining worker computed the figures; None: not yet
    reason: str | None = None  # why there are no figures
    dropped: dict[str, int] = field(default_factory=dict)  # rows the log does not hold, per reason


def _job(body: Mapping[str, Any]) -> Job:
    known = Job.__dataclass_fields__
    return Job(**{k: v for k, v in body.items() if k in known})


class Client:
    """``Client("http://127.0.0.1:8000", key=...)``: one method per v1 operation, typed results.

    ``key`` (an API key, ``nns_...``) or else ``token`` (the server's NNSERVE_ADMIN_TOKEN) is sent with
    every call when given: feedback needs the ``feedback`` scope, admin calls (activate, retrain, cancel)
    ``admin``, and a server with NNSERVE_AUTH=closed a key for everything; jobs show their request, worker
    and scores only to an admin.
    """

    def __init__(
        self, url: str = DEFAULT_URL, token: str | None = None, timeout: float = 30.0, key: str | None = None
    ) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"url must be http(s)://host[:port], got {url!r}")
        if parsed.username or parsed.password or parsed.query:
            raise ValueError("url must hold no credentials or query: pass the key as key=")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._token = key or token

    def __repr__(self) -> str:  # the key stays out of reprs, hence out of tracebacks and logs
        return f"Client({self.url!r}, token={'***' if self._token else None}, timeout={self.timeout})"

    # -- models and predictions ----------------------------------------------------

    def predict(self, name: str, instances: Sequence[Row], version: int | None = None) -> Prediction:
        """Predictions of the active version (or of ``version``) for rows of numbers or dicts by feature name."""
        path = f"/v1/models/{_segment(name)}/predict"
        if version is not None:
            path = f"/v1/models/{_segment(name)}/versions/{int(version)}/predict"
        body = self._call("POST", path, {"instances": [r if isinstance(r, Mapping) else list(r) for r in instances]})
        return Prediction(
            body["model"],
            body["version"],
            body["predictions"],
            body.get("probabilities"),
            body.get("request_id"),
            body.get("feedback_token"),
        )

    def explain(
        self,
        name: str,
        instances: Sequence[Row],
        *,
        target: Any = None,
        method: str = "integrated_gradients",
        steps: int | None = None,
        baseline: str | Sequence[float] = "mean",
        version: int | None = None,
    ) -> Explanation:
        """Each feature's attribution to the predicted class's probability (or ``target``'s) or a regressor's
        output, for rows of numbers or dicts by feature name, with the active version (or ``version``)."""
        path = f"/v1/models/{_segment(name)}" + ("" if version is None else f"/versions/{int(version)}") + "/explain"
        body: dict[str, Any] = {"instances": [r if isinstance(r, Mapping) else list(r) for r in instances]}
        body.update(method=method, baseline=baseline if isinstance(baseline, str) else list(baseline))
        body.update({k: v for k, v in {"target": target, "steps": steps}.items() if v is not None})
        found = self._call("POST", path, body)
        known = RowExplanation.__dataclass_fields__
        rows = [RowExplanation(**{k: v for k, v in row.items() if k in known}) for row in found["explanations"]]
        return Explanation(found["model"], found["version"], found["method"], found["steps"], found["baseline"], rows)

    def feedback(self, name: str, labels: Sequence[Mapping[str, Any]], replace: bool = False) -> FeedbackResult:
        """Ground truth for logged predictions: ``[{"request_id": ..., "target": ..., "row"?: 0,
        "feedback_token"?: ...}, ...]`` (with no key, each item needs its prediction's ``feedback_token``);
        ``replace`` (admin) overwrites labels already given."""
        body = {"feedback": [dict(x) for x in labels], **({"replace": True} if replace else {})}
        found = self._call("POST", f"/v1/models/{_segment(name)}/feedback", body)
        return FeedbackResult(found["model"], found["accepted"], found["unlogged"], found["conflicts"])

    def monitoring(self, name: str, window: int | None = None) -> Monitoring:
        """Live metrics and drift per version, over the newest ``window`` logged rows (the server's default)."""
        query = "" if window is None else "?" + urllib.parse.urlencode({"window": int(window)})
        body = self._call("GET", f"/v1/models/{_segment(name)}/monitoring{query}")
        known = VersionMonitoring.__dataclass_fields__
        versions = [VersionMonitoring(**{k: v for k, v in x.items() if k in known}) for x in body["versions"]]
        return Monitoring(
            body["model"],
            body["window"],
            body.get("active_version"),
            versions,
            body.get("rollout"),
            body.get("labels", []),
            body.get("computed_at"),
            body.get("reason"),
            body.get("dropped", {}),
        )

    def rollout(self, name: str) -> dict[str, Any]:
        """The running rollout of ``name`` with its evidence so far, or the last one with its verdict."""
        return self._call("GET", f"/v1/models/{_segment(name)}/rollout")  # type: ignore[no-any-return]

    def stop_rollout(self, name: str) -> dict[str, Any]:
        """Stop the running rollout of ``name`` (admin): its candidate is rolled back."""
        return self._call("DELETE", f"/v1/models/{_segment(name)}/rollout")  # type: ignore[no-any-return]

    def models(self) -> list[ModelSummary]:
        """Every model with an active version."""
        known = ModelSummary.__dataclass_fields__
        return [
            ModelSummary(**{k: v for k, v in m.items() if k in known})
            for m in self._call("GET", "/v1/models")["models"]
        ]

    def model(self, name: str) -> ModelDetail:
        """One model: its versions (broken ones flagged), inputs, outputs and metrics."""
        body = self._call("GET", f"/v1/models/{_segment(name)}")
        known = VersionInfo.__dataclass_fields__
        return ModelDetail(
            name=body["name"],
            task=body["task"],
            active_version=body.get("active_version"),
            versions=[VersionInfo(**{k: v for k, v in i.items() if k in known}) for i in body["versions"]],
            feature_names=(body.get("input") or {}).get("feature_names"),
            n_features=(body.get("input") or {}).get("n_features", 0),
            classes=(body.get("output") or {}).get("classes"),
            metrics=body.get("metrics") or {},
            description=body.get("description"),
        )

    def activate(self, name: str, version: int) -> Activation:
        """Make ``version`` the active one (admin)."""
        body = self._call("POST", f"/v1/models/{_segment(name)}/versions/{int(version)}/activate")
        return Activation(body["model"], body["version"], body.get("previous_version"))

    # -- retraining jobs -------------------------------------------------------------

    def retrain(
        self,
        name: str,
        instances: Sequence[Row] | None = None,
        targets: Sequence[Any] | None = None,
        mode: str = "append",
        promote: str = "if_better",
        hyperparameters: Mapping[str, Any] | None = None,
        warm_start: bool = False,
        rollout: Mapping[str, Any] | None = None,
        feedback: str | None = None,
    ) -> Job:
        """Queue a retraining of ``name`` (admin): on its dataset plus (``append``) or only (``replace``) new rows.

        ``rollout``: with ``promote`` "canary" or "shadow", any of ``canary_fraction``, ``min_requests``,
        ``max_duration``. ``feedback`` instead of rows: "train" on the active version's labelled predictions, or
        "evaluate" on a held-out share of them too.
        """
        if (instances is None) != (targets is None):
            raise ValueError("send instances and targets together, or neither")
        body: dict[str, Any] = {"mode": mode, "promote": promote, "warm_start": warm_start, **(rollout or {})}
        if instances is not None and targets is not None:
            rows = [r if isinstance(r, Mapping) else list(r) for r in instances]
            body["data"] = {"instances": rows, "targets": list(targets)}
        if hyperparameters:
            body["hyperparameters"] = dict(hyperparameters)
        if feedback is not None:
            body["feedback"] = feedback
        return _job(self._call("POST", f"/v1/models/{_segment(name)}/retrain", body))

    def job(self, job_id: str) -> Job:
        return _job(self._call("GET", f"/v1/jobs/{_segment(job_id)}"))

    def jobs(self, model: str | None = None, status: str | None = None, limit: int = 50, offset: int = 0) -> JobPage:
        """Jobs, newest first, optionally of one model and one status."""
        query = {"limit": limit, "offset": offset} | ({"model": model} if model else {})
        query |= {"status": status} if status else {}
        body = self._call("GET", "/v1/jobs?" + urllib.parse.urlencode(query))
        return JobPage([_job(j) for j in body["jobs"]], body["total"], body["limit"], body["offset"])

    def cancel(self, job_id: str) -> Job:
        """Cancel a job (admin): a queued one at once, a running one at its next epoch."""
        return _job(self._call("DELETE", f"/v1/jobs/{_segment(job_id)}"))

    def audit(self, model: str | None = None, since: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """The server's audit log (admin), newest first: of one model, at or after ``since`` (ISO 8601)."""
        query = {"limit": limit} | ({"model": model} if model else {}) | ({"since": since} if since else {})
        body = self._call("GET", "/v1/audit?" + urllib.parse.urlencode(query))
        return [AuditEntry(**e) for e in body["entries"]]

    def wait(self, job: Job | str, timeout: float = 600.0, poll: float = 0.5) -> Job:
        """Poll the job until its status is final; NnserveError(0, ...) if ``timeout`` seconds pass first."""
        job_id = job.id if isinstance(job, Job) else job
        deadline = time.monotonic() + timeout
        while True:
            current = self.job(job_id)
            if current.final:
                return current
            if time.monotonic() >= deadline:
                raise NnserveError(0, f"job {job_id} still {current.status} after {timeout:g} s")
            time.sleep(min(poll, max(0.0, deadline - time.monotonic())))

    # -- transport -------------------------------------------------------------------

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Accept": "application/json", "User-Agent": f"nnserve-client/{__version__}"}
        data = None
        if body is not None:
            data = json.dumps(body, allow_nan=False).encode()
            headers["Content-Type"] = "application/json"
        if self._token:  # feedback and admin calls need it; reads show a job's internals only to an admin
            headers["Authorization"] = f"Bearer {self._token}"
        status, raw = self._send(method, path, headers, data)
        if status >= 300:
            raise _error_from(status, raw)
        try:
            return json.loads(raw)
        except ValueError:
            raise NnserveError(0, f"{method} {self.url}{path} answered a body that is not JSON") from None

    def _send(self, method: str, path: str, headers: dict[str, str], data: bytes | None) -> tuple[int, bytes]:
        """One HTTP exchange: (status, body). The one place that touches the network."""
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.read()
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise NnserveError(0, f"cannot reach {self.url}: {reason}") from None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """nnserve never redirects; following one would send the bearer token to wherever it points."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def _segment(value: str) -> str:
    """One path segment, percent-encoded so a name can never change the path it is put in."""
    return urllib.parse.quote(str(value), safe="")


def _error_from(status: int, raw: bytes) -> NnserveError:
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        errors = body.get("errors")
        return NnserveError(status, body["message"], errors if isinstance(errors, dict) else None)
    return NnserveError(status, f"HTTP {status} without nnserve's error body")
