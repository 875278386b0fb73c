"""Every operation of the client as a ``Call``: what to send and how to read the answer, without the network.

``Client`` (urllib) and ``AsyncClient`` (httpx) only move bytes: each of their methods builds its ``Call`` here,
and ``ClientBase`` holds what they share, so an operation is written once and both clients have it (a new one is a
builder here, then one line in each client; ``tests/client/test_async_client.py`` checks that both have the same
methods). ``RetryPolicy`` decides whether, and after how long, a 429 or 503 is tried again.
"""

from __future__ import annotations

import email.utils
import json
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, cast

import numpy as np

from service.client import oip
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
    RowExplanation,
    VersionInfo,
    job_from,
    monitoring_from,
    rollout_from,
    typed,
)
from service.config import DEFAULTS
from service.version import __version__

T = TypeVar("T")
DEFAULT_URL: str = DEFAULTS["NNSERVE_URL"]
JSON = "application/json"

Row = Sequence[float] | Mapping[str, float]


class FrameLike(Protocol):
    """A DataFrame as the client reads one (pandas, polars, ...): named columns, each readable by its name."""

    @property
    def columns(self) -> Any: ...

    def to_numpy(self) -> Any: ...

    def __getitem__(self, key: Any) -> Any: ...


# Rows of numbers or of values by feature name, a 2-D numpy array, or a DataFrame, whose columns are sent by name
# in whatever order it has them.
Rows = Sequence[Row] | np.ndarray | FrameLike


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: status, headers (names lower-cased) and body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self, where: str) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            raise NnserveError(0, f"{where} answered a body that is not JSON") from None


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request of the API and how its answer becomes a result. ``idempotent``: sending it twice does what
    sending it once does (reads, predictions), so a 429 or 503 may be retried without asking."""

    method: str
    path: str
    read: Callable[[Answer], T]
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    idempotent: bool = True


@dataclass(frozen=True)
class RetryPolicy:
    """When a call answered 429 or 503 is sent again, and after how long.

    The wait is the answer's ``Retry-After`` (seconds or an HTTP date), else ``backoff`` seconds doubled at each
    attempt; a ``Retry-After`` longer than ``max_wait`` is not waited for (the error is raised at once), a backoff
    is capped at it. Calls that change state (retrain, activate, cancel, feedback, stopping a rollout) are retried
    only with ``non_idempotent=True``. ``RetryPolicy(retries=0)`` never retries.
    """

    retries: int = 3
    backoff: float = 0.5
    max_wait: float = 30.0
    non_idempotent: bool = False
    statuses: tuple[int, ...] = (429, 503)

    def delay(self, call: Call[Any], answer: Answer, attempt: int) -> float | None:
        """Seconds to wait before attempt ``attempt + 1`` of ``call``, or None: do not send it again."""
        if answer.status not in self.statuses or attempt >= self.retries:
            return None
        if not (call.idempotent or self.non_idempotent):
            return None
        asked = retry_after(answer.headers.get("retry-after"))
        if asked is None:
            return min(self.backoff * 2**attempt, self.max_wait)
        return asked if asked <= self.max_wait else None


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delay-seconds or an HTTP date), None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # delay-seconds are ASCII digits ("²".isdigit() too)
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


class ClientBase:
    """What both clients keep: the server's URL, the key, the timeout and the retry policy."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        timeout: float = 30.0,
        key: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"url must be http(s)://host[:port], got {url!r}")
        if parsed.username or parsed.password or parsed.query:
            raise ValueError("url must hold no credentials or query: pass the key as key=")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retry = RetryPolicy() if retry is None else retry
        self._token = key or token

    def __repr__(self) -> str:  # the key stays out of reprs, hence out of tracebacks and logs
        name = type(self).__name__
        return f"{name}({self.url!r}, token={'***' if self._token else None}, timeout={self.timeout})"

    def _headers(self, call: Call[Any]) -> dict[str, str]:
        headers = {"Accept": JSON, "User-Agent": f"nnserve-client/{__version__}", **call.headers}
        if call.body is not None:
            headers.setdefault("Content-Type", JSON)
        if self._token:  # feedback and admin calls need it; reads show a job's internals only to an admin
            headers["Authorization"] = f"Bearer {self._token}"
        return headers


def outcome(call: Call[T], answer: Answer) -> T:
    """The result of ``call`` from its final answer, or the NnserveError the answer carries."""
    if answer.status >= 300:
        raise error_from(answer.status, answer.body)
    try:
        return call.read(answer)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:  # JSON, but not of this API's shape
        raise NnserveError(0, f"{call.path} answered a body that is not nnserve's answer ({exc!r})") from None


def error_from(status: int, raw: bytes) -> NnserveError:
    """The error of an answer: v1's ``{"message", "errors"}`` or v2's ``{"error"}``."""
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        errors = body.get("errors")
        return NnserveError(status, body["message"], errors if isinstance(errors, dict) else None)
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return NnserveError(status, body["error"])
    return NnserveError(status, f"HTTP {status} without nnserve's error body")


# -- encoding -------------------------------------------------------------------------


def segment(value: str) -> str:
    """One path segment, percent-encoded so a name can never change the path it is put in."""
    return urllib.parse.quote(str(value), safe="")


def _plain(value: Any) -> Any:
    """numpy scalars and arrays inside rows, as JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def _json(body: Any) -> bytes:
    try:
        return json.dumps(body, allow_nan=False, default=_plain).encode()
    except ValueError:
        raise ValueError("the values hold NaN or infinity, which JSON cannot carry: drop or fill them first") from None


def is_frame(data: Any) -> bool:
    """A DataFrame (pandas, polars, ...) without importing any: named ``columns`` and ``to_numpy``."""
    return hasattr(data, "columns") and hasattr(data, "to_numpy") and not isinstance(data, (str, bytes, Mapping))


def columns(frame: Any) -> dict[str, list[Any]]:
    """A DataFrame's columns by name, each as plain values (numpy's numbers become Python's)."""
    return {str(name): _listed(frame[name]) for name in frame.columns}


def _listed(values: Any) -> list[Any]:
    values = values.to_numpy() if hasattr(values, "to_numpy") else values
    return values.tolist() if hasattr(values, "tolist") else list(values)


def rows(instances: Rows) -> list[Any]:
    """Rows as JSON values: a DataFrame's as objects by column name, an array's as lists."""
    if is_frame(instances):
        named = columns(instances)
        return [dict(zip(named, row, strict=True)) for row in zip(*named.values(), strict=True)]
    if hasattr(instances, "tolist"):
        return list(instances.tolist())
    return [r if isinstance(r, Mapping) else _listed(r) for r in cast(Sequence[Row], instances)]


def row_body(instances: Rows) -> dict[str, Any]:
    """Rows as predict and explain take them: a DataFrame's columns by name (v1's ``inputs``), else ``instances``."""
    return {"inputs": columns(instances)} if is_frame(instances) else {"instances": rows(instances)}


# -- the operations ---------------------------------------------------------------------


def predict(name: str, instances: Rows, version: int | None = None) -> Call[Prediction]:
    path = f"/v1/models/{segment(name)}/predict"
    if version is not None:
        path = f"/v1/models/{segment(name)}/versions/{int(version)}/predict"
    body = row_body(instances)

    def read(answer: Answer) -> Prediction:
        found = answer.json(path)
        return Prediction(
            found["model"],
            found["version"],
            found["predictions"],
            found.get("probabilities"),
            found.get("request_id"),
            found.get("feedback_token"),
        )

    return Call("POST", path, read, _json(body))


def explain(
    name: str,
    instances: Rows,
    target: Any,
    method: str,
    steps: int | None,
    baseline: str | Sequence[float],
    version: int | None,
) -> Call[Explanation]:
    path = f"/v1/models/{segment(name)}" + ("" if version is None else f"/versions/{int(version)}") + "/explain"
    body: dict[str, Any] = row_body(instances)
    body.update(method=method, baseline=baseline if isinstance(baseline, str) else _listed(baseline))
    body.update({k: v for k, v in {"target": target, "steps": steps}.items() if v is not None})

    def read(answer: Answer) -> Explanation:
        found = answer.json(path)
        rows = [typed(RowExplanation, row) for row in found["explanations"]]
        return Explanation(found["model"], found["version"], found["method"], found["steps"], found["baseline"], rows)

    return Call("POST", path, read, _json(body))


def infer(name: str, data: Any, version: int | None, outputs: Sequence[str] | None, binary: bool) -> Call[InferResult]:
    if is_frame(data):
        raise TypeError(
            "infer takes the model's input as an array in its feature order; a DataFrame's columns go by name "
            "through predict, or pass frame[feature_names].to_numpy()"
        )
    path = f"/v2/models/{segment(name)}" + ("" if version is None else f"/versions/{int(version)}") + "/infer"
    body, headers = oip.request(data, outputs, binary)
    return Call("POST", path, lambda answer: oip.result(answer.headers, answer.body), body, headers)


def feedback(name: str, labels: Sequence[Mapping[str, Any]], replace: bool) -> Call[FeedbackResult]:
    path = f"/v1/models/{segment(name)}/feedback"
    body = {"feedback": [dict(x) for x in labels], **({"replace": True} if replace else {})}

    def read(answer: Answer) -> FeedbackResult:
        found = answer.json(path)
        return FeedbackResult(found["model"], found["accepted"], found["unlogged"], found["conflicts"])

    return Call("POST", path, read, _json(body), idempotent=False)


def monitoring(name: str, window: int | None) -> Call[Monitoring]:
    query = "" if window is None else "?" + urllib.parse.urlencode({"window": int(window)})
    path = f"/v1/models/{segment(name)}/monitoring{query}"
    return Call("GET", path, lambda answer: monitoring_from(answer.json(path)))


def rollout(name: str) -> Call[Rollout]:
    path = f"/v1/models/{segment(name)}/rollout"
    return Call("GET", path, lambda answer: rollout_from(answer.json(path)))


def stop_rollout(name: str) -> Call[Rollout]:
    path = f"/v1/models/{segment(name)}/rollout"
    return Call("DELETE", path, lambda answer: rollout_from(answer.json(path)), idempotent=False)


def models() -> Call[list[ModelSummary]]:
    def read(answer: Answer) -> list[ModelSummary]:
        return [typed(ModelSummary, m) for m in answer.json("/v1/models")["models"]]

    return Call("GET", "/v1/models", read)


def model(name: str) -> Call[ModelDetail]:
    path = f"/v1/models/{segment(name)}"

    def read(answer: Answer) -> ModelDetail:
        body = answer.json(path)
        return ModelDetail(
            name=body["name"],
            task=body["task"],
            active_version=body.get("active_version"),
            versions=[typed(VersionInfo, i) for i in body["versions"]],
            feature_names=(body.get("input") or {}).get("feature_names"),
            n_features=(body.get("input") or {}).get("n_features", 0),
            classes=(body.get("output") or {}).get("classes"),
            metrics=body.get("metrics") or {},
            description=body.get("description"),
        )

    return Call("GET", path, read)


def activate(name: str, version: int) -> Call[Activation]:
    path = f"/v1/models/{segment(name)}/versions/{int(version)}/activate"

    def read(answer: Answer) -> Activation:
        body = answer.json(path)
        return Activation(body["model"], body["version"], body.get("previous_version"))

    return Call("POST", path, read, idempotent=False)


def retrain(
    name: str,
    instances: Rows | None,
    targets: Sequence[Any] | Any | None,
    mode: str,
    promote: str,
    hyperparameters: Mapping[str, Any] | None,
    warm_start: bool,
    rollout: Mapping[str, Any] | None,
    feedback: str | None,
) -> Call[Job]:
    if (instances is None) != (targets is None):
        raise ValueError("send instances and targets together, or neither")
    body: dict[str, Any] = {"mode": mode, "promote": promote, "warm_start": warm_start, **(rollout or {})}
    if instances is not None and targets is not None:
        body["data"] = {"instances": rows(instances), "targets": _listed(targets)}
    if hyperparameters:
        body["hyperparameters"] = dict(hyperparameters)
    if feedback is not None:
        body["feedback"] = feedback
    path = f"/v1/models/{segment(name)}/retrain"
    return Call("POST", path, lambda answer: job_from(answer.json(path)), _json(body), idempotent=False)


def job(job_id: str) -> Call[Job]:
    path = f"/v1/jobs/{segment(job_id)}"
    return Call("GET", path, lambda answer: job_from(answer.json(path)))


def jobs(model: str | None, status: str | None, limit: int, offset: int) -> Call[JobPage]:
    query = {"limit": limit, "offset": offset} | ({"model": model} if model else {})
    query |= {"status": status} if status else {}
    path = "/v1/jobs?" + urllib.parse.urlencode(query)

    def read(answer: Answer) -> JobPage:
        body = answer.json(path)
        return JobPage([job_from(j) for j in body["jobs"]], body["total"], body["limit"], body["offset"])

    return Call("GET", path, read)


def cancel(job_id: str) -> Call[Job]:
    path = f"/v1/jobs/{segment(job_id)}"
    return Call("DELETE", path, lambda answer: job_from(answer.json(path)), idempotent=False)


def audit(model: str | None, since: str | None, limit: int) -> Call[list[AuditEntry]]:
    query = {"limit": limit} | ({"model": model} if model else {}) | ({"since": since} if since else {})
    path = "/v1/audit?" + urllib.parse.urlencode(query)
    return Call("GET", path, lambda answer: [AuditEntry(**e) for e in answer.json(path)["entries"]])


def job_id_of(job: Job | str) -> str:
    return job.id if isinstance(job, Job) else job


def still_running(job_id: str, current: Job, timeout: float) -> NnserveError:
    """The error of ``wait`` when ``timeout`` seconds passed before the job finished."""
    return NnserveError(0, f"job {job_id} still {current.status} after {timeout:g} s")
