"""The one explanation path: a loaded version, rows, a method and a baseline in; attributions by feature out.

The HTTP API, ``nnserve explain`` and the importance recorded at publish all call :func:`explain`, so the
choice of baseline and of the explained class exists once. The attributions are ``nn.attribution``'s.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nn import MLPClassifier
from nn.attribution import METHODS, attribute
from nn.estimators import BaseMLP

from .inference import LoadedModel, NonFiniteOutputError, Prediction, predict

__all__ = [
    "BASELINES",
    "METHODS",
    "ExplainError",
    "Explanation",
    "baseline_row",
    "class_named",
    "explain",
    "feature_names",
    "recorded_importance",
]

DEFAULT_STEPS = 32  # integrated gradients' nodes when none are asked for
CHUNK_POINTS = 4096  # gradients computed between two looks at the clock

BASELINES = ("mean", "zeros")
"""The named baselines: the training rows' feature means (kept in each manifest at publish), or all zeros."""


class ExplainError(ValueError):
    """An explanation the version cannot give; ``field`` names the request's part at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Explanation:
    """Attributions of ``n`` rows to the output each row's explanation is of.

    ``attributions`` (n, n_features) in ``feature_names`` order; ``target`` (n,) the explained class label
    (classifiers) or output column (regressors); ``output`` and ``baseline_output`` (n,) that output at the
    row and at its baseline; ``completeness_gap`` (n,) for integrated gradients, else None.
    """

    method: str
    feature_names: list[str]
    attributions: np.ndarray
    target: list[Any]
    prediction: Prediction
    output: np.ndarray
    baseline_output: np.ndarray
    completeness_gap: np.ndarray | None
    steps: int | None


def _plain(value: Any) -> Any:
    """A numpy scalar or array as plain Python (JSON) values."""
    return value.tolist() if isinstance(value, np.ndarray | np.generic) else value


def answer(model: LoadedModel, explained: Explanation, baseline: str | Sequence[float]) -> dict[str, Any]:
    """An explanation as plain data, the form the API answers and the CLI prints: per row the prediction, the
    explained ``target``, ``output`` and ``baseline_output``, each feature's attribution by name and, for
    integrated gradients, the ``completeness_gap``."""
    rows = []
    values = explained.prediction.values
    for i, attributions in enumerate(explained.attributions.tolist()):
        row: dict[str, Any] = {
            "prediction": _plain(values[i]),
            "target": explained.target[i],
            "output": float(explained.output[i]),
            "baseline_output": float(explained.baseline_output[i]),
            "attributions": dict(zip(explained.feature_names, attributions, strict=True)),
        }
        if explained.completeness_gap is not None:
            row["completeness_gap"] = float(explained.completeness_gap[i])
        rows.append(row)
    return {
        "model": model.name,
        "version": model.version,
        "method": explained.method,
        "steps": explained.steps,
        "baseline": baseline if isinstance(baseline, str) else [float(v) for v in baseline],
        "explanations": rows,
    }


def recorded_importance(manifest: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The global importance publish recorded for a version, or None for one published before it was."""
    found = ((manifest or {}).get("explanations") or {}).get("importance")
    return found if isinstance(found, dict) and found.get("features") else None


def feature_names(manifest: Mapping[str, Any]) -> list[str]:
    """A version's feature names, or ``x0``, ``x1``, ... when its columns are unnamed."""
    names = manifest.get("feature_names") or []
    return [str(n) for n in names] or [f"x{i}" for i in range(int(manifest.get("n_features", 0)))]


def baseline_row(manifest: Mapping[str, Any], baseline: str | Sequence[float]) -> np.ndarray:
    """The baseline as a row of ``n_features`` floats: ``"mean"``, ``"zeros"`` or a row given as is.

    ``"mean"`` needs the training means publish keeps (``explanations.baseline_mean``); a version
    published before they were kept has none, which is an ``ExplainError`` saying so.
    """
    n_features = int(manifest.get("n_features", 0))
    if isinstance(baseline, str):
        if baseline == "zeros":
            return np.zeros(n_features)
        if baseline == "mean":
            means = (manifest.get("explanations") or {}).get("baseline_mean")
            if not means:
                raise ExplainError(
                    "baseline",
                    "this version was published before the training means were kept; "
                    "give baseline 'zeros' or a row, or retrain for them",
                )
            return np.asarray(means, dtype=np.float64)
        raise ExplainError("baseline", f"baseline must be one of {list(BASELINES)} or a row; got {baseline!r}")
    row = np.asarray(baseline, dtype=np.float64)
    if row.shape != (n_features,):
        raise ExplainError("baseline", f"a baseline row has {n_features} numbers; got shape {row.shape}")
    if not np.isfinite(row).all():
        raise ExplainError("baseline", "a baseline row holds finite numbers only")
    return row


def class_named(model: LoadedModel, text: str | None) -> Any:
    """The class label of ``model`` whose text is ``text`` (labels keep their type: 3, not "3"), or ``text`` as it
    is when no class reads so (``explain`` then refuses it, naming the classes): a target given as text, by a form
    or a command line."""
    estimator = model.estimator
    if text is None or not isinstance(estimator, MLPClassifier):
        return text
    return next((label for label in estimator.classes_.tolist() if str(label) == text), text)


def _class_index(estimator: MLPClassifier, target: Any) -> int:
    """The index in ``classes_`` of the class label ``target``."""
    found = [i for i, c in enumerate(estimator.classes_.tolist()) if c == target and type(c) is type(target)]
    if not found:
        shown = ", ".join(repr(c) for c in estimator.classes_.tolist()[:20])
        raise ExplainError("target", f"unknown class {target!r}; the classes are {shown}")
    return found[0]


def explain(
    model: LoadedModel,
    X: np.ndarray,
    *,
    method: str = METHODS[0],
    target: Any = None,
    steps: int | None = None,
    baseline: str | Sequence[float] = "mean",
    max_steps: int | None = None,
    max_seconds: float | None = None,
) -> Explanation:
    """Explain each row of ``X`` (n, n_features): the predicted class's probability (or ``target``'s, a class
    label) for a classifier, the first output for a regressor (``target`` ignored), from ``baseline``.

    ``steps`` (integrated gradients' nodes) is ``DEFAULT_STEPS`` when not given, or ``max_steps`` when lower;
    more than ``max_steps`` is refused (``ExplainError`` on ``steps``) before anything is computed, as
    Gauss-Legendre's nodes cost steps² memory.

    Rows are explained a few at a time (``CHUNK_POINTS`` gradients); past ``max_seconds`` the next chunk is not
    started and the call fails (``ExplainError`` on ``steps``), so a slow explanation is bounded like a prediction.
    Raises ``ExplainError`` (its ``field``) for a method, target or baseline the version cannot take, the
    estimator's ``ValueError`` for rows of the wrong width and ``NonFiniteOutputError`` like ``predict``.
    """
    if steps is None:
        steps = DEFAULT_STEPS if max_steps is None else min(DEFAULT_STEPS, max_steps)
    if max_steps is not None and steps > max_steps:
        raise ExplainError("steps", f"steps is {steps}; at most {max_steps} are accepted (NNSERVE_EXPLAIN_MAX_STEPS)")
    if method not in METHODS:
        raise ExplainError("method", f"method must be one of {list(METHODS)}; got {method!r}")
    estimator: BaseMLP = model.estimator
    base = baseline_row(model.manifest, baseline)
    prediction = predict(estimator, X)
    index: np.ndarray
    if isinstance(estimator, MLPClassifier) and prediction.index is not None:
        index = prediction.index if target is None else np.full(len(X), _class_index(estimator, target))
        labels = estimator.classes_[index].tolist()
    else:
        index = np.zeros(len(X), np.intp)
        labels = index.tolist()
    started = time.monotonic()
    chunk = max(1, CHUNK_POINTS // (steps + 2 if method == "integrated_gradients" else 2))
    parts = []
    for start in range(0, len(X), chunk):
        if max_seconds is not None and start and time.monotonic() - started > max_seconds:
            raise ExplainError(
                "steps",
                f"explaining took longer than {max_seconds:g} s (NNSERVE_EXPLAIN_MAX_SECONDS) after {start} of "
                f"{len(X)} rows; send fewer rows or steps",
            )
        rows = slice(start, start + chunk)
        with np.errstate(over="ignore", invalid="ignore"):
            parts.append(attribute(estimator, X[rows], base, method=method, target=index[rows], steps=steps))
    values = np.vstack([p.values for p in parts])
    output = np.concatenate([p.output for p in parts])
    baseline_output = np.concatenate([p.baseline_output for p in parts])
    finite = np.isfinite(values).all(axis=1) & np.isfinite(output) & np.isfinite(baseline_output)
    if not finite.all():
        raise NonFiniteOutputError(np.flatnonzero(~finite))
    integrated = method == "integrated_gradients"
    return Explanation(
        method=method,
        feature_names=feature_names(model.manifest),
        attributions=values,
        target=labels,
        prediction=prediction,
        output=output,
        baseline_output=baseline_output,
        completeness_gap=np.concatenate([p.completeness_gap for p in parts]) if integrated else None,
        steps=steps if integrated else None,
    )
