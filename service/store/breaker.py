"""A circuit breaker: once a backend is known to be down, calls that need it fail at once instead of waiting.

Closed, every call goes through. A failure to reach the backend opens it: calls are then refused without
touching the backend, except one call every ``retry_interval`` seconds, the probe, which tries it; the
probe's success closes the breaker again, its failure keeps it open for another interval. So an outage
costs each call nothing but the refusal, and the service finds the backend again on its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

Admission = Literal["closed", "probe", "refused"]


class CircuitBreaker:
    """The state of one backend as this process last found it (thread-safe)."""

    def __init__(self, retry_interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.retry_interval = retry_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._opened_at: float | None = None  # None: closed
        self._next_probe = 0.0
        self.reason = ""  # why it opened, for the refusals

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None

    def admit(self) -> Admission:
        """Whether a call may try the backend: always while closed; while open, one call (the probe) per interval."""
        with self._lock:
            if self._opened_at is None:
                return "closed"
            now = self._clock()
            if now < self._next_probe:
                return "refused"
            self._next_probe = now + self.retry_interval  # the others keep being refused while this one tries
            return "probe"

    def succeeded(self) -> None:
        with self._lock:
            self._opened_at = None

    def failed(self, reason: str) -> None:
        """The backend could not be reached: open (or keep open) for another interval."""
        with self._lock:
            now = self._clock()
            if self._opened_at is None:
                self._opened_at = now
            self._next_probe = now + self.retry_interval
            self.reason = reason

    def refusal(self) -> str:
        """What a refused call says: since when the backend is down, and when it is tried again."""
        with self._lock:
            now = self._clock()
            down = 0.0 if self._opened_at is None else now - self._opened_at
            return f"{self.reason}; down for {down:.1f} s, tried again in {max(0.0, self._next_probe - now):.1f} s"
