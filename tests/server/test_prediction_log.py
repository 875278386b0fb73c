"""The prediction recorder: sampling, the bounded buffer (overflow dropped and counted, never blocking), the writer."""

from __future__ import annotations

import os
import threading
import time

import numpy as np

from service import telemetry
from service.server.predlog import PredictionRecorder
from service.store import LoadedModel, Prediction, StoreUnavailableError
from service.store.monitoring import Label, LoggedPrediction

ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])
PREDICTION = Prediction(
    values=np.array(["setosa", "virginica"]),
    classes=np.array(["setosa", "versicolor", "virginica"]),
    index=np.array([0, 2]),
    probabilities=np.array([[0.9, 0.05, 0.05], [0.0, 0.1, 0.9]]),
)


def loaded(rate: float | None) -> LoadedModel:
    manifest = {} if rate is None else {"monitoring": {"sample_rate": rate}}
    return LoadedModel("iris", 3, None, manifest)  # type: ignore[arg-type]  # the recorder never touches it


class MemoryLog:
    """A PredictionLog in a list; ``gate`` (when given) holds every append until it is set, ``fail`` refuses it.

    A stand-in, not the real log, because these tests must stall or break the writer on demand to prove a
    request never waits on it; the real backends are proven by tests/contract/test_prediction_log_contract.py.
    """

    def __init__(self, gate: threading.Event | None = None, fail: bool = False) -> None:
        self.rows: list[LoggedPrediction] = []
        self.gate, self.fail, self.entered = gate, fail, threading.Event()

    def append(self, records):
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        if self.fail:
            raise StoreUnavailableError("the database cannot be reached")
        self.rows.extend(records)
        return len(records)

    # The recorder only appends; a call to any other method would be a bug in it, so it fails the test loudly.
    def label(self, model: str, labels: list[Label], now: float | None = None) -> list[Label]:
        raise NotImplementedError

    def recent(self, *args, **kwargs):
        raise NotImplementedError

    def prune(self, *args, **kwargs):
        raise NotImplementedError


def dropped(reason: str) -> float:
    return telemetry.REGISTRY.get_sample_value("nnserve_prediction_log_dropped_total", {"reason": reason}) or 0.0


def test_a_sampled_prediction_becomes_one_row_per_predicted_row() -> None:
    memory = MemoryLog()
    recorder = PredictionRecorder(lambda: memory, 10, None)
    assert recorder.offer(loaded(1.0), "req-1", ROWS, PREDICTION)
    recorder.flush()
    deadline = time.monotonic() + 5
    while len(memory.rows) < 2 and time.monotonic() < deadline:  # the writer thread may have taken it first
        time.sleep(0.01)
    first, second = sorted(memory.rows, key=lambda r: r.row)
    assert (first.model, first.version, first.request_id, first.row) == ("iris", 3, "req-1", 0)
    assert first.inputs == [5.1, 3.5, 1.4, 0.2] and first.output == "setosa"
    assert first.probabilities == [0.9, 0.05, 0.05]
    assert (second.row, second.output, second.inputs) == (1, "virginica", [6.7, 3.0, 5.2, 2.3])
    assert abs(first.logged_at - time.time()) < 5


def test_the_version_sample_rate_and_the_setting_that_overrides_it() -> None:
    never = PredictionRecorder(MemoryLog, 10, None)
    assert not never.offer(loaded(None), "a", ROWS, PREDICTION)  # a version without [monitoring]: nothing logged
    assert not never.offer(loaded(0.0), "a", ROWS, PREDICTION)
    forced = PredictionRecorder(MemoryLog, 10_000, 1.0)
    assert forced.offer(loaded(None), "a", ROWS, PREDICTION)
    off = PredictionRecorder(MemoryLog, 10, 0.0)
    assert not off.offer(loaded(1.0), "a", ROWS, PREDICTION)


def test_a_fraction_is_sampled() -> None:
    recorder = PredictionRecorder(MemoryLog, 10_000, None)
    taken = sum(recorder.offer(loaded(0.3), str(i), ROWS[:1], PREDICTION) for i in range(4000))
    assert 1000 < taken < 1400  # 1200 expected; binomial sd ~29


def test_a_full_buffer_drops_and_counts_never_blocks() -> None:
    gate = threading.Event()
    memory = MemoryLog(gate)
    recorder = PredictionRecorder(lambda: memory, 2, 1.0)
    before = dropped("full")
    assert recorder.offer(loaded(None), "first", ROWS, PREDICTION)
    assert memory.entered.wait(5)  # the writer holds the first batch, stuck in a slow log
    started = time.perf_counter()
    accepted = [recorder.offer(loaded(None), f"r{i}", ROWS, PREDICTION) for i in range(5)]
    assert time.perf_counter() - started < 0.5  # never waits for the log
    assert accepted == [True, True, False, False, False]
    assert dropped("full") - before == 3 * len(ROWS)
    gate.set()
    recorder.flush()
    assert {r.request_id for r in memory.rows} == {"first", "r0", "r1"}


def test_a_failing_log_drops_and_counts_the_rows() -> None:
    recorder = PredictionRecorder(lambda: MemoryLog(fail=True), 10, 1.0)
    before = dropped("error")
    recorder._pid = os.getpid()  # as if the writer ran: this test writes with flush alone, deterministically
    assert recorder.offer(loaded(None), "a", ROWS, PREDICTION)
    recorder.flush()
    assert dropped("error") - before == 2
