"""scikit-learn's own estimator checks on nn's estimators (scikit-learn is a test dependency only)."""

from sklearn.utils.estimator_checks import check_regressors_train, parametrize_with_checks

from nn import MLPClassifier, MLPRegressor

# Small, quick networks: the checks fit hundreds of times. Large enough to pass the accuracy checks.
ESTIMATORS = [
    MLPClassifier((16,), learning_rate_init=0.01, max_iter=50, random_state=0),
    MLPRegressor((16,), learning_rate_init=0.01, max_iter=50, random_state=0),
]

# Checks that cannot apply to these estimators, each with its reason: reported as xfail, never skipped.
_NO_SKLEARN_AT_RUNTIME = {
    "check_estimators_unfitted": (
        "wants scikit-learn's own NotFittedError class; nn raises nn.NotFittedError(ValueError, AttributeError), "
        "the same two bases, since nn must not import scikit-learn"
    ),
    "check_dtype_object": (
        "wants a TypeError for non-numeric objects in X; nn raises ValueError for every bad X "
        "(callers such as the service catch ValueError to answer 400)"
    ),
}
EXPECTED_FAILED_CHECKS: dict[str, dict[str, str]] = {
    "MLPClassifier": {
        **_NO_SKLEARN_AT_RUNTIME,
        "check_supervised_y_2d": (
            "wants scikit-learn's DataConversionWarning class for a column-vector y; nn ravels it with a "
            "UserWarning of the same message, since nn must not import scikit-learn"
        ),
    },
    "MLPRegressor": {
        **_NO_SKLEARN_AT_RUNTIME,
        "check_regressor_multioutput": (
            "wants float64 predictions; nn computes in float32 by default (dtype='float64' gives float64)"
        ),
    },
}


def expected_failed_checks(estimator):
    return EXPECTED_FAILED_CHECKS[type(estimator).__name__]


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_regressors_train_at_the_settings_where_scikit_learns_own_passes():
    """``MLPRegressor(max_iter=20)``: defaults otherwise; scikit-learn's passes, and so must nn's (R^2 > 0.5)."""
    check_regressors_train("MLPRegressor", MLPRegressor(max_iter=20))
