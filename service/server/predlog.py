"""Sampling predictions into the prediction log, off the request path.

A request only decides whether it is sampled (the version's ``[monitoring] sample_rate``, or
``NNSERVE_LOG_SAMPLE_RATE`` for every model) and puts a reference to its rows and outputs in a bounded
queue (``NNSERVE_LOG_BUFFER`` predictions): O(1), no I/O, no serialisation. One daemon thread per web
worker process turns them into rows and writes them in batches. When the queue is full, or the log
refuses a write, the rows are dropped and counted (``nnserve_prediction_log_dropped_total``): a slow or
broken log never slows or fails a prediction.

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
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from flask import current_app

from nn.estimators import BaseMLP
from service import telemetry
from service.store import LoadedModel, Prediction, StoreError, predict
from service.store.monitoring import LoggedPrediction, PredictionLog

log = logging.getLogger(__name__)
BATCH = 1000  # predictions written in one transaction at most
LINGER = 0.05  # seconds the writer lets predictions gather after each write
UNCHECKED_FOR = 5.0  # seconds client-chosen request ids are replaced unchecked after the log failed to answer


class _Sampled(NamedTuple):
    """One sampled request as the request left it: references only, converted by the writer thread (a named
    tuple: the request thread builds it, and a frozen dataclass took three times as long).

    ``prediction`` is None for a shadow's copy (``shadow`` answers it in the writer thread) and for a
    failure (``error``).
    """

    name: str
    version: int
    request_id: str
    at: float
    X: np.ndarray
    prediction: Prediction | None
    shadow: BaseMLP | None = None
    error: str | None = None


class PredictionRecorder:
    """The prediction log of one web worker: sampling, the bounded buffer and the writer thread."""

    def __init__(self, open_log: Callable[[], PredictionLog], capacity: int, override: float | None) -> None:
        self._open_log = open_log
        self._log: PredictionLog | None = None
        self.override = override
        self._queue: queue.Queue[_Sampled] = queue.Queue(maxsize=capacity)
        self._lock = threading.Lock()  # opening the log, starting the thread
        # Predictions queued and predictions written (or dropped by a failing log) so far: a flush waits for
        # the ones queued before it, never for those queued after (under load there always are some).
        self._progress = threading.Condition()
        self._queued = self._done = 0
        self._pid = 0
        # Client-chosen ids this worker logged lately: those still queued are not in the log yet.
        self._given: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._given_capacity = capacity
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
        return self._put(_Sampled(loaded.name, loaded.version, request_id, time.time(), X, prediction))

    def offer_shadow(self, candidate: LoadedModel, request_id: str, X: np.ndarray) -> bool:
        """Queue a copy of a request for a shadow candidate: the writer thread predicts and logs it."""
        item = _Sampled(candidate.name, candidate.version, request_id, time.time(), X, None, candidate.estimator)
        return self._put(item)

    def offer_failure(self, name: str, version: int, request_id: str, X: np.ndarray, error: str) -> bool:
        """Queue the failure of a canary candidate to answer a request routed to it."""
        return self._put(_Sampled(name, version, request_id, time.time(), X, None, error=error))

    def _put(self, item: _Sampled) -> bool:
        if self._pid != os.getpid():
            self._start()
        with self._progress:
            try:
                self._queue.put_nowait(item)
            except queue.Full:
                telemetry.log_dropped("full", len(item.X))
                return False
            self._queued += 1
        return True

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
            items = [self._queue.get()]
            self._write(items + self._drain())
            time.sleep(LINGER)

    def _drain(self) -> list[_Sampled]:
        items: list[_Sampled] = []
        while len(items) < BATCH:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
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
            telemetry.log_dropped("error", len(records))
            log.error("prediction log: %d rows not written: %s", len(records), exc)
            return
        finally:
            with self._progress:
                self._done += len(items)
                self._progress.notify_all()
        counts: dict[str, int] = {}
        for item in items:
            counts[item.name] = counts.get(item.name, 0) + len(item.X)
        for name, rows in counts.items():
            telemetry.rows_logged(name, rows)


def _records(item: _Sampled) -> list[LoggedPrediction]:
    """One log row per predicted row."""
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
    return [
        LoggedPrediction(
            model=item.name,
            request_id=item.request_id,
            row=i,
            version=item.version,
            logged_at=item.at,
            inputs=inputs,
            output=None if values is None else values[i],
            probabilities=None if probabilities is None else probabilities[i],
            shadow=item.shadow is not None,
            error=error,
        )
        for i, inputs in enumerate(item.X.tolist())
    ]


def recorder() -> PredictionRecorder:
    """The current app's prediction recorder (the one accessor every route uses)."""
    return current_app.extensions["nnserve.predlog"]  # type: ignore[no-any-return]
