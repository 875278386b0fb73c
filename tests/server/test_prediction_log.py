"""The prediction recorder: sampling, the per-request sample, the buffer bounded in rows and bytes (overflow dropped
and counted, never blocking), the writer."""

from __future__ import annotations

import os
import threading
import time

import numpy as np

from service import telemetry
from service.server.predlog import Budget, PredictionRecorder
from service.store import LoadedModel, Prediction, StoreUnavailableError
from service.store.monitoring import LoggedPrediction

MODEL = "recorded"  # a name of its own: the counters are the process's, other tests read iris's
ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])
PREDICTION = Prediction(
    values=np.array(["setosa", "virginica"]),
    classes=np.array(["setosa", "versicolor", "virginica"]),
    index=np.array([0, 2]),
    probabilities=np.array([[0.9, 0.05, 0.05], [0.0, 0.1, 0.9]]),
)


def loaded(rate: float | None) -> LoadedModel:
    manifest = {} if rate is None else {"monitoring": {"sample_rate": rate}}
    return LoadedModel(MODEL, 3, None, manifest)  # type: ignore[arg-type]  # the recorder never touches it


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
    def label(self, *args, **kwargs):
        raise NotImplementedError

    def recent(self, *args, **kwargs):
        raise NotImplementedError

    def prune(self, *args, **kwargs):
        raise NotImplementedError


def budget(rows: int = 10_000, nbytes: int = 1 << 24, per_request: int = 100) -> Budget:
    return Budget(rows, nbytes, per_request)


def dropped(reason: str, model: str = MODEL) -> float:
    labels = {"model": model, "reason": reason}
    return telemetry.REGISTRY.get_sample_value("nnserve_prediction_log_dropped_total", labels) or 0.0


def written(memory: MemoryLog, rows: int) -> list[LoggedPrediction]:
    """The rows of ``memory`` once it holds ``rows`` (the writer thread may have taken them before a flush)."""
    deadline = time.monotonic() + 5
    while len(memory.rows) < rows and time.monotonic() < deadline:
        time.sleep(0.01)
    return memory.rows


def test_a_sampled_prediction_becomes_one_row_per_predicted_row() -> None:
    memory = MemoryLog()
    recorder = PredictionRecorder(lambda: memory, budget(), None)
    assert recorder.offer(loaded(1.0), "req-1", ROWS, PREDICTION)
    recorder.flush()
    first, second = sorted(written(memory, 2), key=lambda r: r.row)
    assert (first.model, first.version, first.request_id, first.row) == (MODEL, 3, "req-1", 0)
    assert first.inputs == [5.1, 3.5, 1.4, 0.2] and first.output == "setosa"
    assert first.probabilities == [0.9, 0.05, 0.05]
    assert (second.row, second.output, second.inputs) == (1, "virginica", [6.7, 3.0, 5.2, 2.3])
    assert abs(first.logged_at - time.time()) < 5


def test_the_version_sample_rate_and_the_setting_that_overrides_it() -> None:
    never = PredictionRecorder(MemoryLog, budget(), None)
    assert not never.offer(loaded(None), "a", ROWS, PREDICTION)  # a version without [monitoring]: nothing logged
    assert not never.offer(loaded(0.0), "a", ROWS, PREDICTION)
    forced = PredictionRecorder(MemoryLog, budget(), 1.0)
    assert forced.offer(loaded(None), "a", ROWS, PREDICTION)
    off = PredictionRecorder(MemoryLog, budget(), 0.0)
    assert not off.offer(loaded(1.0), "a", ROWS, PREDICTION)


def test_a_fraction_is_sampled() -> None:
    recorder = PredictionRecorder(MemoryLog, budget(), None)
    taken = sum(recorder.offer(loaded(0.3), str(i), ROWS[:1], PREDICTION) for i in range(4000))
    assert 1000 < taken < 1400  # 1200 expected; binomial sd ~29


def test_a_buffer_full_of_rows_drops_and_counts_never_blocks() -> None:
    gate = threading.Event()
    memory = MemoryLog(gate)
    recorder = PredictionRecorder(lambda: memory, budget(rows=3 * len(ROWS)), 1.0)
    before = dropped("buffer_rows")
    assert recorder.offer(loaded(None), "first", ROWS, PREDICTION)
    assert memory.entered.wait(5)  # the writer holds the first batch, stuck in a slow log: its rows still count
    started = time.perf_counter()
    accepted = [recorder.offer(loaded(None), f"r{i}", ROWS, PREDICTION) for i in range(5)]
    assert time.perf_counter() - started < 0.5  # never waits for the log
    assert accepted == [True, True, False, False, False]
    assert dropped("buffer_rows") - before == 3 * len(ROWS)
    gate.set()
    recorder.flush()
    assert {r.request_id for r in memory.rows} == {"first", "r0", "r1"}
    assert recorder.offer(loaded(None), "later", ROWS, PREDICTION)  # written rows leave the budget


def test_a_buffer_full_of_bytes_drops_and_counts() -> None:
    gate = threading.Event()
    memory = MemoryLog(gate)
    recorder = PredictionRecorder(lambda: memory, budget(nbytes=20_000), 1.0)
    before = dropped("buffer_bytes")
    assert recorder.offer(loaded(None), "small", ROWS, PREDICTION)
    assert memory.entered.wait(5)
    wide = np.zeros((2, 2000))  # 32 kB of inputs: alone more than the budget, though only two rows
    assert not recorder.offer(loaded(None), "wide", wide, PREDICTION)
    assert dropped("buffer_bytes") - before == 2
    taken = 0
    while recorder.offer(loaded(None), f"r{taken}", ROWS, PREDICTION):
        taken += 1
    assert 0 < taken < 100  # small ones fit until the bytes run out, far below the row budget (5,000 of them)
    gate.set()
    recorder.flush()
    assert len(written(memory, 2 * (1 + taken))) == 2 * (1 + taken)


def test_one_request_logs_a_uniform_sample_of_its_rows_numbered_as_in_the_request() -> None:
    memory = MemoryLog()
    recorder = PredictionRecorder(lambda: memory, budget(per_request=100), 1.0)
    X = np.arange(1000 * 4, dtype=float).reshape(1000, 4)
    classes = np.array(["setosa", "versicolor", "virginica"])
    index = np.arange(1000) % 3
    probabilities = np.eye(3)[index]
    prediction = Prediction(values=classes[index], classes=classes, index=index, probabilities=probabilities)
    before = dropped("per_request")
    assert recorder.offer(loaded(None), "big", X, prediction)
    assert recorder.offer_failure(MODEL, 4, "big", X, "RuntimeError: boom")  # a canary's failure of the same request
    recorder.flush()
    rows = written(memory, 200)
    assert dropped("per_request") - before == 2 * 900
    answers = sorted((r for r in rows if r.version == 3), key=lambda r: r.row)
    failures = sorted(r.row for r in rows if r.version == 4)
    assert len(answers) == 100 and len({r.row for r in answers}) == 100
    assert [r.row for r in answers] == failures  # the same rows of one request, whichever copy
    for r in answers:
        assert r.inputs == X[r.row].tolist() and r.output == classes[r.row % 3]
        assert r.probabilities == probabilities[r.row].tolist()
    assert recorder.offer(loaded(None), "small", X[:100], prediction)  # as many rows as the budget: all of them
    recorder.flush()
    assert sorted(r.row for r in written(memory, 300) if r.request_id == "small") == list(range(100))
    assert dropped("per_request") - before == 2 * 900


def test_the_sample_of_many_requests_is_uniform_over_their_rows() -> None:
    memory = MemoryLog()
    recorder = PredictionRecorder(lambda: memory, budget(per_request=5), 1.0)
    X = np.zeros((20, 4))
    for i in range(800):
        assert recorder.offer(loaded(None), f"u{i}", X, Prediction(values=np.zeros(20)))
    recorder.flush()
    counts = np.bincount([r.row for r in written(memory, 800 * 5)], minlength=20)
    assert counts.sum() == 800 * 5 and (counts <= 800).all()  # 5 distinct rows of 20 per request
    assert np.all(np.abs(counts - 200) < 65)  # each row 200 times expected; binomial sd ~12


def test_a_failing_log_drops_and_counts_the_rows() -> None:
    recorder = PredictionRecorder(lambda: MemoryLog(fail=True), budget(), 1.0)
    before = dropped("error")
    recorder._pid = os.getpid()  # as if the writer ran: this test writes with flush alone, deterministically
    assert recorder.offer(loaded(None), "a", ROWS, PREDICTION)
    recorder.flush()
    assert dropped("error") - before == 2
