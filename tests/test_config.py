"""Settings are converted and range-checked at start-up, so a typo fails before the first request."""

from __future__ import annotations

import pytest

from service import config


def test_a_sample_rate_of_zero_turns_logging_off_and_one_logs_everything() -> None:
    assert config.value("NNSERVE_LOG_SAMPLE_RATE", {}) is None
    assert config.value("NNSERVE_LOG_SAMPLE_RATE", {"NNSERVE_LOG_SAMPLE_RATE": "0"}) == 0.0
    assert config.value("NNSERVE_LOG_SAMPLE_RATE", {"NNSERVE_LOG_SAMPLE_RATE": "1"}) == 1.0


@pytest.mark.parametrize(("raw", "message"), [("1.5", "at most 1"), ("-0.1", "0 or more"), ("nan", "0 or more")])
def test_a_sample_rate_outside_zero_to_one_is_refused(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"NNSERVE_LOG_SAMPLE_RATE={raw!r} must be {message}"):
        config.value("NNSERVE_LOG_SAMPLE_RATE", {"NNSERVE_LOG_SAMPLE_RATE": raw})


def test_zero_stays_refused_where_it_means_nothing() -> None:
    with pytest.raises(ValueError, match="NNSERVE_LOG_BUFFER_ROWS='0' must be positive"):
        config.value("NNSERVE_LOG_BUFFER_ROWS", {"NNSERVE_LOG_BUFFER_ROWS": "0"})
