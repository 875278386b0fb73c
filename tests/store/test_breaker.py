"""The circuit breaker's rule, on a clock the test turns."""

from __future__ import annotations

from service.store.breaker import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_closed_admits_every_call_and_a_failure_opens_it():
    clock = Clock()
    breaker = CircuitBreaker(2.0, clock)
    assert [breaker.admit() for _ in range(3)] == ["closed"] * 3 and not breaker.is_open
    breaker.failed("the database cannot be reached (refused)")
    assert breaker.is_open
    clock.now += 1.0
    assert [breaker.admit() for _ in range(3)] == ["refused"] * 3
    assert breaker.refusal() == "the database cannot be reached (refused); down for 1.0 s, tried again in 1.0 s"


def test_one_probe_per_interval_and_its_success_closes_it():
    clock = Clock()
    breaker = CircuitBreaker(2.0, clock)
    breaker.failed("down")
    clock.now += 2.0
    assert [breaker.admit() for _ in range(3)] == ["probe", "refused", "refused"]  # one call tries, the others wait
    breaker.failed("still down")  # the probe failed: another interval
    clock.now += 1.9
    assert breaker.admit() == "refused"
    clock.now += 0.1
    assert breaker.admit() == "probe"
    clock.now += 2.5  # a probe that never reports (its thread died) does not keep the others out for good
    assert breaker.admit() == "probe"
    breaker.succeeded()
    assert not breaker.is_open and breaker.admit() == "closed"
    assert "down for 4.5 s" not in breaker.refusal()
