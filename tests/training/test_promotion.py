"""The promotion rule, exhaustively: one pure function decides, the worker applies it."""

import pytest

from service.training.promotion import Decision, decide


@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize(("new", "active"), [(0.9, 0.5), (0.5, 0.5), (0.1, 0.5)])
def test_always_and_never_ignore_the_scores(task, new, active):
    assert decide("always", task, new, active) == Decision(True, "promote is 'always'")
    assert decide("never", task, new, active) == Decision(False, "promote is 'never'")


def test_if_better_promotes_a_better_or_equal_score_and_says_why():
    assert decide("if_better", "classification", 0.97, 0.95) == Decision(
        True, "validation accuracy 0.9700 >= active 0.9500"
    )
    assert decide("if_better", "classification", 0.95, 0.95).promote is True  # a tie takes the newer model
    assert decide("if_better", "regression", 0.31, 0.42) == Decision(False, "validation R2 0.3100 < active 0.4200")


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="promote"):
        decide("sometimes", "classification", 1.0, 0.0)  # type: ignore[arg-type]
