"""Feedback tokens and request ids when the prediction log cannot answer: a prediction never fails or waits.

The real backends (secret, rotation, verification, squatted ids) are proven by
tests/contract/test_prediction_log_contract.py; these break the log on demand.
"""

from __future__ import annotations

import pytest

from service.server.feedback_tokens import FeedbackTokens, sign
from service.server.predlog import Budget, PredictionRecorder
from service.store import StoreUnavailableError

SECRET = b"s" * 32


class FlakyLog:
    """A prediction log whose secret and request-id check work until ``down`` is set, counting the calls."""

    def __init__(self, down: bool = False) -> None:
        self.down, self.calls = down, 0

    def secret(self, name: str, rotate: bool = False) -> bytes:
        self.calls += 1
        if self.down:
            raise StoreUnavailableError("the database cannot be reached")
        return SECRET

    def logged(self, model: str, request_id: str) -> bool:
        self.calls += 1
        if self.down:
            raise StoreUnavailableError("the database cannot be reached")
        return False


def test_no_secret_ever_read_means_no_token_and_a_check_that_cannot_be_made() -> None:
    tokens = FeedbackTokens(lambda: FlakyLog(down=True), ttl=60)  # type: ignore[arg-type,return-value]
    assert tokens.issue("iris", 1, "r", now=0.0) is None  # a prediction is answered without one
    with pytest.raises(StoreUnavailableError, match="cannot be checked"):  # a 503: the token may well be good
        tokens.valid(sign(SECRET, "iris", 1, "r", 60), "iris", "r", now=0.0)


def test_a_stale_secret_keeps_signing_while_the_log_is_down() -> None:
    log = FlakyLog()
    tokens = FeedbackTokens(lambda: log, ttl=60)  # type: ignore[arg-type,return-value]
    assert tokens.issue("iris", 1, "r", now=0.0) == sign(SECRET, "iris", 1, "r", 60)
    log.down = True
    tokens._read_at = float("-inf")  # as if SECRET_REFRESH had passed
    assert tokens.issue("iris", 1, "r", now=0.0) == sign(SECRET, "iris", 1, "r", 60)  # not waiting for the log
    assert tokens.valid(sign(SECRET, "iris", 1, "r", 60), "iris", "r", now=0.0)  # the last secret read


def test_a_client_chosen_id_the_log_cannot_check_is_replaced_and_the_log_is_left_alone_a_while() -> None:
    log = FlakyLog(down=True)
    recorder = PredictionRecorder(lambda: log, Budget(10, 1 << 20, 100), 1.0)  # type: ignore[arg-type,return-value]
    first = recorder.log_id("iris", "mine", given=True)
    assert first != "mine" and len(first) == 32 and log.calls == 1
    second = recorder.log_id("iris", "other", given=True)
    assert second not in ("other", first) and log.calls == 1  # unchecked for UNCHECKED_FOR s: no second wait
    assert recorder.log_id("iris", "made-here", given=False) == "made-here"
