"""store.inference.predict: the one inference path, with the estimator's input checks or, for a caller that
applied them (the data plane), without."""

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from nn import MLPClassifier, MLPRegressor
from service.store.inference import NonFiniteOutputError, predict

RNG = np.random.default_rng(0)
X = RNG.normal(size=(60, 4))


@pytest.fixture(scope="module")
def estimators():
    classes = np.array(["a", "b", "c"])[np.arange(60) % 3]
    return (
        MLPClassifier((8,), max_iter=5, random_state=0).fit(X, classes),
        MLPRegressor((8,), max_iter=5, random_state=0).fit(X, X @ np.arange(4.0)),
    )


@pytest.mark.parametrize("which", [0, 1], ids=["classifier", "regressor"])
def test_unchecked_rows_get_the_same_answer_bit_for_bit(estimators, which):
    rows = X[:5]
    checked, unchecked = predict(estimators[which], rows), predict(estimators[which], rows, check_input=False)
    for field in ("values", "classes", "index", "probabilities"):
        assert_array_equal(getattr(unchecked, field), getattr(checked, field))
    assert (checked.probabilities is None) == bool(which)


@pytest.mark.parametrize("which", [0, 1], ids=["classifier", "regressor"])
def test_by_default_the_estimator_still_refuses_bad_rows(estimators, which):
    with pytest.raises(ValueError, match="X contains NaN"):
        predict(estimators[which], np.array([[1.0, np.nan, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="is expecting 4 features"):
        predict(estimators[which], np.ones((1, 3)))
    with pytest.raises(ValueError, match="2-D"):
        predict(estimators[which], np.ones(4))


@pytest.mark.parametrize("check_input", [True, False])
def test_outputs_that_are_not_finite_name_their_rows_either_way(estimators, check_input):
    rows = np.array([[0.0, 0.0, 0.0, 0.0], [3e38, 3e38, 3e38, 3e38], [0.1, 0.2, 0.3, 0.4]])
    with pytest.raises(NonFiniteOutputError) as info:
        predict(estimators[1], rows, check_input=check_input)
    assert info.value.rows == [1]
