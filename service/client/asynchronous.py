"""``AsyncClient``: the same methods as ``Client``, awaitable, on httpx (the ``client-async`` extra).

httpx is imported when an AsyncClient is made, not with ``service.client``: the blocking client needs nothing
beyond nnserve's own dependencies.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from service.client import operations
from service.client.operations import DEFAULT_URL, Answer, Call, ClientBase, RetryPolicy, Rows
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

if TYPE_CHECKING:
    import httpx

T = TypeVar("T")
EXTRA = "pip install 'nnserve[client-async]'"


class AsyncClient(ClientBase):
    """``async with AsyncClient("http://127.0.0.1:8000", key=...) as client: await client.predict(...)``.

    Every method of ``Client``, with the same arguments, results, errors and retry policy; one connection pool
    per client (close it with ``aclose()`` or ``async with``). The methods are documented on ``Client``.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        timeout: float = 30.0,
        key: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(url, token, timeout, key, retry)
        try:
            import httpx
        except ImportError:
            raise ImportError(f"AsyncClient needs httpx: {EXTRA}") from None
        self._http: httpx.AsyncClient = httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        self._transport_errors: type[Exception] = httpx.TransportError

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.aclose()

    async def predict(self, name: str, instances: Rows, version: int | None = None) -> Prediction:
        return await self._run(operations.predict(name, instances, version))

    async def explain(
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
        return await self._run(operations.explain(name, instances, target, method, steps, baseline, version))

    async def infer(
        self,
        name: str,
        data: Any,
        version: int | None = None,
        outputs: Sequence[str] | None = None,
        binary: bool = False,
    ) -> InferResult:
        return await self._run(operations.infer(name, data, version, outputs, binary))

    async def feedback(self, name: str, labels: Sequence[Mapping[str, Any]], replace: bool = False) -> FeedbackResult:
        return await self._run(operations.feedback(name, labels, replace))

    async def monitoring(self, name: str, window: int | None = None) -> Monitoring:
        return await self._run(operations.monitoring(name, window))

    async def rollout(self, name: str) -> Rollout:
        return await self._run(operations.rollout(name))

    async def stop_rollout(self, name: str) -> Rollout:
        return await self._run(operations.stop_rollout(name))

    async def models(self) -> list[ModelSummary]:
        return await self._run(operations.models())

    async def model(self, name: str) -> ModelDetail:
        return await self._run(operations.model(name))

    async def activate(self, name: str, version: int) -> Activation:
        return await self._run(operations.activate(name, version))

    async def retrain(
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
        call = operations.retrain(
            name, instances, targets, mode, promote, hyperparameters, warm_start, rollout, feedback
        )
        return await self._run(call)

    async def job(self, job_id: str) -> Job:
        return await self._run(operations.job(job_id))

    async def jobs(
        self, model: str | None = None, status: str | None = None, limit: int = 50, offset: int = 0
    ) -> JobPage:
        return await self._run(operations.jobs(model, status, limit, offset))

    async def cancel(self, job_id: str) -> Job:
        return await self._run(operations.cancel(job_id))

    async def audit(self, model: str | None = None, since: str | None = None, limit: int = 100) -> list[AuditEntry]:
        return await self._run(operations.audit(model, since, limit))

    async def wait(self, job: Job | str, timeout: float = 600.0, poll: float = 0.5) -> Job:
        job_id = operations.job_id_of(job)
        deadline = time.monotonic() + timeout
        while True:
            current = await self.job(job_id)
            if current.final:
                return current
            if time.monotonic() >= deadline:
                raise operations.still_running(job_id, current, timeout)
            await asyncio.sleep(min(poll, max(0.0, deadline - time.monotonic())))

    async def _run(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            answer = await self._exchange(call.method, call.path, self._headers(call), call.body)
            delay = self.retry.delay(call, answer, attempt)
            if delay is None:
                return operations.outcome(call, answer)
            await asyncio.sleep(delay)
            attempt += 1

    async def _exchange(self, method: str, path: str, headers: dict[str, str], data: bytes | None) -> Answer:
        try:
            response = await self._http.request(method, self.url + path, headers=headers, content=data)
        except self._transport_errors as exc:
            raise NnserveError(0, f"cannot reach {self.url}: {exc}") from None
        return Answer(response.status_code, {k.lower(): v for k, v in response.headers.items()}, response.content)
