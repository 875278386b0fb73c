"""Sampling predictions into the prediction log, off the request path.

A request only decides whether it is sampled (the version's ``[monitoring] sample_rate``, or
``NNSERVE_LOG_SAMPLE_RATE`` for every model) and puts a reference to its rows and outputs in a buffer:
no I/O, no serialisation. One daemon thread per web worker process turns them into rows and writes them in
batches. Everything has a budget (``Budget``), and rows beyond it are dropped and counted by model and
reason (``nnserve_prediction_log_dropped_total``): a slow or broken log never slows or fails a prediction,
and never grows a web worker without bound.

- ``per_request``: one request logs at most ``NNSERVE_LOG_MAX_ROWS_PER_REQUEST`` of its rows, a uniform
  sample (chosen by the request id, so its answer, a shadow's copy and a canary's failure log the same rows,
  each under its own row number); only the sample is kept, never the request's whole arrays.
- ``buffer_rows``, ``buffer_bytes``: the rows and bytes (arrays and a fixed cost per request) queued or in the
  writer's hands stay within ``NNSERVE_LOG_BUFFER_ROWS`` and ``NNSERVE_LOG_BUFFER_BYTES``.
- ``error``: the log refused the write. (``disk``, the oldest rows removed to keep the log under
  ``NNSERVE_LOG_MAX_BYTES``, is counted by the log itself: ``service/store/monitoring.py``.)

During a rollout every prediction of the model is logged (the rollout's evidence), a shadow candidate's
copy is computed by the writer thread, off the request path, and a canary candidate's failure is logged
as its error row.

A request id the client chose (``X-Request-ID``) that is already logged for the model is logged under a
fresh one (``log_id``), so nobody can claim another client's future id and have its feedback joined to
their own rows: the one read of the log on a request's path, and only for a logged request with its own id.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import random
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from nn.estimators import BaseMLP
from service import telemetry
from service.store import LoadedModel, Prediction, StoreError, predict
from service.store.monitoring import LoggedPrediction, PredictionLog

log = logging.getLogger(__name__)
BATCH_ROWS = 1000  # rows the writer turns into log rows and writes in one transaction (after the first request)
LINGER = 0.05  # seconds the writer lets predictions gather after each write
UNCHECKED_FOR = 5.0  # seconds client-chosen request ids are replaced unchecked after the log failed to answer
ITEM_BYTES = 1024  # what one queued request costs beside its arrays (the tuple, three array headers, its id)


@dataclass(frozen=True)
class Budget:
    """What one web worker's prediction log may hold (settings ``NNSERVE_LOG_BUFFER_ROWS``,
    ``NNSERVE_LOG_BUFFER_BYTES``, ``NNSERVE_LOG_MAX_ROWS_PER_REQUEST``)."""

    rows: int
    bytes: int
    per_request: int

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Budget:
        return cls(
            int(settings["NNSERVE_LOG_BUFFER_ROWS"]),
            int(settings["NNSERVE_LOG_BUFFER_BYTES"]),
            int(settings["NNSERVE_LOG_MAX_ROWS_PER_REQUEST"]),
        )


class _Sampled(NamedTuple):
    """One sampled request as the request left it: references only, converted by the writer thread (a named
    tuple: the request thread builds it, and a frozen dataclass took three times as long).

    ``prediction`` is None for a shadow's copy (``shadow`` answers it in the writer thread) and for a
    failure (``error``); ``rows`` the request's row numbers of ``X``'s rows when it is a sample, else None.
    """

    name: str
    version: int
    request_id: str
    at: float
    X: np.ndarray
    prediction: Prediction | None
    shadow: BaseMLP | None = None
    error: str | None = None
    rows: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        """What this item holds in the buffer, as its budget counts it."""
        held = ITEM_BYTES + self.X.nbytes
        if self.prediction is not None:
            held += self.prediction.values.nbytes
            for array in (self.prediction.index, self.prediction.probabilities):
                held += 0 if array is None else array.nbytes
        return held


class PredictionRecorder:
    """The prediction log of one web worker: sampling, the bounded buffer and the writer thread."""

    def __init__(self, open_log: Callable[[], PredictionLog], budget: Budget, override: float | None) -> None:
        self._open_log = open_log
        self._log: PredictionLog | None = None
        self.budget = budget
        self.override = override
        self._queue: queue.SimpleQueue[_Sampled] = queue.SimpleQueue()
        self._lock = threading.Lock()  # opening the log, starting the thread
        # Predictions queued and predictions written (or dropped by a failing log) so far: a flush waits for
        # the ones queued before it, never for those queued after (under load there always are some). Rows and
        # bytes held: queued or in the writer's hands, what the budget bounds.
        self._progress = threading.Condition()
        self._queued = self._done = 0
        self._rows = self._bytes = 0
        self._pid = 0
        # Client-chosen ids this worker logged lately: those still queued are not in the log yet (at most one
        # per buffered row).
        self._given: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._given_capacity = budget.rows
        self._given_lock = threading.Lock()
        self._unchecked_until = 0.0

    @property
    def log(self) -> PredictionLog:
        """The prediction log, opened on first use (a store nobody logs to gets no file)."""
        with self._lock:
            if self._log is None:
                self._log = self._open_log()
            return self._log

    def sample_rate(self, loaded: LoadedModel) -> float:
        if self.override is not None:
            return self.override
        return float((loaded.manifest.get("monitoring") or {}).get("sample_rate", 0.0))

    def sampled(self, loaded: LoadedModel) -> bool:
        """Whether a prediction of ``loaded`` is drawn for the log (its sample rate)."""
        rate = self.sample_rate(loaded)
        return rate > 0.0 and (rate >= 1.0 or random.random() < rate)

    def log_id(self, name: str, request_id: str, given: bool) -> str:
        """The id a request of model ``name`` is logged under: its own, unless the client chose it (``given``)
        and it is already logged (or queued here) for ``name``; then a fresh one. A log that cannot answer
        gets a fresh one too, without asking for ``UNCHECKED_FOR`` s: a prediction never waits on a broken log."""
        if not given:
            return request_id  # made here: 128 random bits, never logged before
        key = (name, request_id)
        with self._given_lock:
            taken = key in self._given
            unchecked = time.monotonic() < self._unchecked_until
        if not taken and not unchecked:
            try:
                taken = self.log.logged(name, request_id)
            except (StoreError, OSError) as exc:
                log.error("prediction log: cannot check request id %r, logging under a fresh one: %s", request_id, exc)
                with self._given_lock:
                    self._unchecked_until = time.monotonic() + UNCHECKED_FOR
                unchecked = True
        if taken or unchecked:
            return uuid.uuid4().hex
        with self._given_lock:
            self._given[key] = None
            if len(self._given) > self._given_capacity:
                self._given.popitem(last=False)
        return request_id

    def offer(
        self, loaded: LoadedModel, request_id: str, X: np.ndarray, prediction: Prediction, always: bool = False
    ) -> bool:
        """Sample this prediction (every one with ``always``) and queue it for the log; True when it was queued."""
        if not (always or self.sampled(loaded)):
            return False
        rows = self._rows_of(loaded.name, request_id, len(X))
        if rows is not None:
            X, prediction = X[rows], _subset(prediction, rows)
        return self._put(_Sampled(loaded.name, loaded.version, request_id, time.time(), X, prediction, rows=rows))

    def offer_shadow(self, candidate: LoadedModel, request_id: str, X: np.ndarray) -> bool:
        """Queue a copy of a request for a shadow candidate: the writer thread predicts and logs it."""
        rows = self._rows_of(candidate.name, request_id, len(X))
        X = X if rows is None else X[rows]
        shadow = candidate.estimator
        return self._put(
            _Sampled(candidate.name, candidate.version, request_id, time.time(), X, None, shadow, rows=rows)
        )

    def offer_failure(self, name: str, version: int, request_id: str, X: np.ndarray, error: str) -> bool:
        """Queue the failure of a canary candidate to answer a request routed to it."""
        rows = self._rows_of(name, request_id, len(X))
        X = X if rows is None else X[rows]
        return self._put(_Sampled(name, version, request_id, time.time(), X, None, error=error, rows=rows))

    def _rows_of(self, name: str, request_id: str, n: int) -> np.ndarray | None:
        """The request's rows to log when it has more than the budget allows (the others dropped and counted);
        None when every row is logged. Seeded by the request id: every copy of one request logs the same rows."""
        most = self.budget.per_request
        if n <= most:
            return None
        telemetry.log_dropped(name, "per_request", n - most)
        return np.array(sorted(random.Random(request_id).sample(range(n), most)), dtype=np.intp)

    def _put(self, item: _Sampled) -> bool:
        if self._pid != os.getpid():
            self._start()
        rows, nbytes = len(item.X), item.nbytes
        with self._progress:
            if self._rows + rows > self.budget.rows:
                reason = "buffer_rows"
            elif self._bytes + nbytes > self.budget.bytes:
                reason = "buffer_bytes"
            else:
                self._queue.put(item)
                self._queued += 1
                self._rows += rows
                self._bytes += nbytes
                return True
        telemetry.log_dropped(item.name, reason, rows)
        return False

    def _start(self) -> None:
        """Start this process's writer (once; again in a forked child, which has no thread of its parent's)."""
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            threading.Thread(target=self._run, name="nnserve-prediction-log", daemon=True).start()
            atexit.register(self.flush)

    def _run(self) -> None:
        """Write whatever is queued, then let more gather for ``LINGER`` s: one transaction per batch under load."""
        while True:
            first = self._queue.get()
            self._write([first, *self._drain(len(first.X))])
            time.sleep(LINGER)

    def _drain(self, rows: int = 0) -> list[_Sampled]:
        """Queued items up to ``BATCH_ROWS`` rows with the ``rows`` already taken (one at least)."""
        items: list[_Sampled] = []
        while rows < BATCH_ROWS:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            items.append(item)
            rows += len(item.X)
        return items

    def flush(self, timeout: float = 5.0) -> None:
        """Write everything queued so far, now (feedback calls it so a prediction just made can be labelled)."""
        with self._progress:
            target = self._queued
        while items := self._drain():
            self._write(items)
        with self._progress:
            self._progress.wait_for(lambda: self._done >= target, timeout)

    def _write(self, items: list[_Sampled]) -> None:
        records = [record for item in items for record in _records(item)]
        try:
            self.log.append(records)
        except (StoreError, OSError) as exc:
            for name, rows in _rows_per_model(items).items():
                telemetry.log_dropped(name, "error", rows)
            log.error("prediction log: %d rows not written: %s", len(records), exc)
            return
        finally:
            del records  # the batch's Python rows go before the buffer admits more
            with self._progress:
                self._done += len(items)
                self._rows -= sum(len(item.X) for item in items)
                self._bytes -= sum(item.nbytes for item in items)
                self._progress.notify_all()
        for name, rows in _rows_per_model(items).items():
            telemetry.rows_logged(name, rows)


def _rows_per_model(items: list[_Sampled]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item.name] = counts.get(item.name, 0) + len(item.X)
    return counts


def _subset(prediction: Prediction, rows: np.ndarray) -> Prediction:
    """The prediction of ``rows`` alone (copies: the request's whole arrays are not kept)."""
    return Prediction(
        values=prediction.values[rows],
        classes=prediction.classes,
        index=None if prediction.index is None else prediction.index[rows],
        probabilities=None if prediction.probabilities is None else prediction.probabilities[rows],
    )


def _records(item: _Sampled) -> list[LoggedPrediction]:
    """One log row per predicted row (numbered as in the request)."""
    prediction, error = item.prediction, item.error
    if item.shadow is not None:
        try:
            prediction = predict(item.shadow, item.X)
        except Exception as exc:  # a shadow's failure is logged as its answer, never raised
            error = f"{type(exc).__name__}: {exc}"
    values = None if prediction is None else prediction.values.tolist()
    probabilities = None
    if prediction is not None and prediction.probabilities is not None:
        probabilities = prediction.probabilities.tolist()
    numbers = range(len(item.X)) if item.rows is None else item.rows.tolist()
    return [
        LoggedPrediction(
            model=item.name,
            request_id=item.request_id,
            row=row,
            version=item.version,
            logged_at=item.at,
            inputs=inputs,
            output=None if values is None else values[i],
            probabilities=None if probabilities is None else probabilities[i],
            shadow=item.shadow is not None,
            error=error,
        )
        for i, (row, inputs) in enumerate(zip(numbers, item.X.tolist(), strict=True))
    ]
