"""Train a model on a dataset, score it on a held-out split, and publish it to the store.

``train`` is a plain function of (task, estimator params, dataset, seed,
callbacks): the CLI calls it for ``nnserve train`` and the retraining worker
for a retrain on appended data, so both publish models measured the same way.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import nn
from nn import Callback, MLPClassifier, MLPRegressor, TrainingDivergedError
from nn.estimators import BaseMLP
from nn.metrics import accuracy_score, r2_score
from service.store import Dataset, ModelStore, NonFiniteOutputError, predict
from service.training import drift, evaluation
from service.training.catalog import ModelSpec, estimator_params
from service.training.csvdata import read_csv_dataset
from service.training.importance import ImportanceBudget, explanation_section

PRIMARY_METRIC = {"classification": "accuracy", "regression": "r2"}


def task_of(manifest: Mapping[str, Any]) -> str:
    """A version's task: as recorded, else told by whether the model has classes (nn.save alone records none)."""
    task = manifest.get("task")
    return str(task) if task else ("classification" if "classes" in manifest else "regression")


@dataclass
class TrainResult:
    """A fitted estimator and how it scored on rows it never saw."""

    estimator: BaseMLP
    task: str
    params: dict[str, Any]
    metrics: dict[str, float]
    primary_metric: str
    epochs: int
    seconds: float
    n_train: int
    n_test: int
    test_size: float
    seed: int
    training: Dataset  # the rows the estimator was fitted on
    evaluation: Dataset  # the rows the metrics were computed on: never trained on (the frozen evaluation set)


def holdout_split(
    n_samples: int, test_size: float, seed: int, stratify: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) index arrays, the same split as scikit-learn's
    ``train_test_split(test_size=test_size, random_state=seed, stratify=stratify)``.

    Reimplemented with numpy (scikit-learn stays out of the runtime) and kept
    index-for-index equal, so the published metrics are comparable with the
    nn library's tests and with the benchmarks, which use scikit-learn's split.
    """
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be in (0, 1), got {test_size!r}")
    n_test = math.ceil(test_size * n_samples)
    n_train = n_samples - n_test
    if n_train < 1 or n_test < 1:
        raise ValueError(f"test_size={test_size} leaves an empty train or test set for {n_samples} rows")
    rng = np.random.RandomState(seed)
    if stratify is None:
        order = rng.permutation(n_samples)
        return order[n_test:], order[:n_test]
    classes, y_indices, class_counts = np.unique(stratify, return_inverse=True, return_counts=True)
    if class_counts.min() < 2:
        rare = classes[class_counts < 2].tolist()
        raise ValueError(f"every class needs at least 2 rows for a stratified split; too few: {rare}")
    if n_train < len(classes) or n_test < len(classes):
        raise ValueError(f"{len(classes)} classes need at least that many rows on each side of the split")
    class_indices = np.split(np.argsort(y_indices, kind="stable"), np.cumsum(class_counts)[:-1])
    n_i = _approximate_mode(class_counts, n_train, rng)
    t_i = _approximate_mode(class_counts - n_i, n_test, rng)
    train: list[int] = []
    test: list[int] = []
    for i in range(len(classes)):
        members = class_indices[i].take(rng.permutation(class_counts[i]), mode="clip")
        train.extend(members[: n_i[i]])
        test.extend(members[n_i[i] : n_i[i] + t_i[i]])
    return rng.permutation(train), rng.permutation(test)


def _approximate_mode(class_counts: np.ndarray, n_draws: int, rng: np.random.RandomState) -> np.ndarray:
    """Rows per class for ``n_draws`` draws: floor of the proportional share, remainders to the largest
    fractional parts (ties broken by ``rng``), as scikit-learn does."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need = int(n_draws - floored.sum())
    if need > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (inds,) = np.where(remainder == value)
            add_now = min(len(inds), need)
            floored[rng.choice(inds, size=add_now, replace=False)] += 1
            need -= add_now
            if need == 0:
                break
    return floored.astype(int)


def evaluate(task: str, estimator: BaseMLP, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Held-out metrics: classification ``accuracy`` and ``log_loss``; regression ``r2``, ``rmse`` and ``mae``.

    A label the estimator has no class for counts as wrong (an evaluation set may hold a class a
    replacing retrain dropped)."""
    prediction = predict(estimator, X)
    if prediction.classes is not None and prediction.probabilities is not None:
        proba = np.asarray(prediction.probabilities, dtype=np.float64)
        idx = np.minimum(np.searchsorted(prediction.classes, y), len(prediction.classes) - 1)
        known = prediction.classes[idx] == y
        p_true = np.clip(np.where(known, proba[np.arange(len(y)), idx], 0.0), 1e-15, 1.0)
        return {
            "accuracy": accuracy_score(y, prediction.values),
            "log_loss": float(-np.log(p_true).mean()),
        }
    pred = np.asarray(prediction.values, dtype=np.float64)
    err = pred - np.asarray(y, dtype=np.float64)
    return {
        "r2": r2_score(y, pred),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
    }


def train(
    task: str,
    params: Mapping[str, Any],
    dataset: Dataset,
    *,
    test_size: float = 0.25,
    seed: int = 0,
    evaluation: Dataset | None = None,
    callbacks: Sequence[Callback] = (),
    warm_start_from: BaseMLP | None = None,
) -> TrainResult:
    """Fit an estimator on the training part of ``dataset`` and score it on the held-out part.

    ``seed`` picks the held-out split (stratified by class for classification);
    with an ``evaluation`` set (a retrain's frozen rows, ``frozen.py``) every row of ``dataset`` is
    trained on and ``evaluation`` alone is scored, so no new row can reach the score.
    The network's own seed is ``params["random_state"]``. The returned
    estimator is the one that was scored, so the metrics describe exactly
    what gets published. ``warm_start_from`` continues from a copy of a fitted
    estimator's weights and preprocessing (its architecture and classes win
    over ``params``); the original is left untouched. Bad data raises ``ValueError``;
    a loss, weights, held-out outputs or metrics that are not finite raise
    ``nn.TrainingDivergedError`` ("training diverged: ..."), so nothing diverged is published.
    """
    if task not in PRIMARY_METRIC:
        raise ValueError(f"task must be one of {sorted(PRIMARY_METRIC)}, got {task!r}")
    X, y = np.asarray(dataset.X, dtype=np.float64), np.asarray(dataset.y)
    if X.ndim != 2 or len(X) != len(y):
        raise ValueError(f"dataset X of shape {X.shape} does not match {len(y)} targets")
    if evaluation is None:
        fit, evaluation = split(dataset, task, test_size, seed)
    else:
        fit = dataset
    if len(evaluation.X) == 0:
        raise ValueError("the evaluation set is empty")
    estimator: BaseMLP
    if warm_start_from is None:
        cls = MLPClassifier if task == "classification" else MLPRegressor
        estimator = cls(**{**params, "callbacks": list(callbacks)})
    else:
        estimator = _copy(warm_start_from)
        estimator.set_params(**{**params, "warm_start": True, "callbacks": list(callbacks)})
    started = time.perf_counter()
    estimator.fit(np.asarray(fit.X, dtype=np.float64), np.asarray(fit.y), feature_names=dataset.feature_names or None)
    seconds = time.perf_counter() - started
    estimator.callbacks = None  # runtime-only; nothing of the caller's progress display stays in the model
    return TrainResult(
        estimator=estimator,
        task=task,
        params={k: v for k, v in estimator.get_params().items() if k != "callbacks"},
        metrics=_finite_metrics(task, estimator, np.asarray(evaluation.X, dtype=np.float64), np.asarray(evaluation.y)),
        primary_metric=PRIMARY_METRIC[task],
        epochs=int(estimator.n_iter_),
        seconds=seconds,
        n_train=len(fit.X),
        n_test=len(evaluation.X),
        test_size=float(test_size),
        seed=int(seed),
        training=fit,
        evaluation=evaluation,
    )


def split(dataset: Dataset, task: str, test_size: float, seed: int) -> tuple[Dataset, Dataset]:
    """(training rows, held-out rows) of ``dataset`` by ``holdout_split`` (stratified for classification)."""
    y = np.asarray(dataset.y)
    train_idx, test_idx = holdout_split(len(y), test_size, seed, y if task == "classification" else None)
    return take(dataset, train_idx), take(dataset, test_idx)


def concat(parts: Sequence[Dataset]) -> Dataset:
    """The rows of ``parts`` one after the other (targets in the first non-empty part's type)."""
    kept = [p for p in parts if len(p.X)] or list(parts[:1])
    first = kept[0]
    y = [p.y if first.y.dtype.kind == "U" else np.asarray(p.y).astype(first.y.dtype) for p in kept]
    return Dataset(np.vstack([p.X for p in kept]), np.concatenate(y), first.feature_names)


def take(dataset: Dataset, rows: np.ndarray) -> Dataset:
    """The rows ``rows`` of ``dataset``, in that order."""
    return Dataset(np.asarray(dataset.X)[rows], np.asarray(dataset.y)[rows], dataset.feature_names)


def _finite_metrics(task: str, estimator: BaseMLP, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """``evaluate``'s held-out metrics, or ``TrainingDivergedError`` when they or the outputs are not finite."""
    try:
        metrics = evaluate(task, estimator, X, y)
    except NonFiniteOutputError as exc:
        raise TrainingDivergedError(
            f"training diverged: the outputs for {len(exc.rows)} of {len(X)} held-out rows are not finite"
        ) from None
    bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
    if bad:
        raise TrainingDivergedError(f"training diverged: held-out {', '.join(f'{k} {v}' for k, v in bad.items())}")
    return metrics


def _copy(estimator: BaseMLP) -> BaseMLP:
    """An independent copy of a fitted estimator, through nn's own save/load (its weights are views
    into one flat buffer, which ``copy.deepcopy`` would tear apart)."""
    with tempfile.TemporaryDirectory(prefix="nnserve-warm-") as tmp:
        nn.save(estimator, tmp)
        return nn.load(tmp)


def train_spec(
    spec: ModelSpec,
    overrides: Mapping[str, Any] | None = None,
    callbacks: Sequence[Callback] = (),
) -> tuple[Dataset, TrainResult]:
    """Read a spec's CSV and ``train`` it; ``overrides`` (e.g. ``{"epochs": 5, "seed": 1}``) as in
    ``catalog.estimator_params``. The held-out rows come from the spec's ``split_seed``, which no
    override changes, so versions trained with different seeds are scored on the same rows."""
    params = estimator_params(spec, overrides)
    dataset = read_csv_dataset(spec.data_path, spec.target, spec.task)
    result = train(spec.task, params, dataset, test_size=spec.test_size, seed=spec.split_seed, callbacks=callbacks)
    return dataset, result


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def publish(
    store: ModelStore,
    name: str,
    result: TrainResult,
    *,
    description: str = "",
    target: str | None = None,
    activate: bool = True,
    parent_version: int | None = None,
    parent_metric: float | None = None,
    trigger: str | None = None,
    job_id: str | None = None,
    spec_sections: Mapping[str, Mapping[str, Any]] | None = None,
    importance: ImportanceBudget | None = None,
) -> int:
    """Store the training data, the evaluation set and the model as a new version, activate it unless told not
    to; returns the version.

    The manifest records the task, the held-out metrics, the training rows' hash
    (so a retrain can start from exactly this data) and the frozen evaluation set's (``evaluation_set``, with
    ``parent_metric``: the parent version's score on the same rows, which a canary's verdict rests on too),
    how it was trained, every epoch's
    figures, the held-out evaluation and the version's lineage (``evaluation``), the training data's reference
    statistics that drift is measured against (``drift``) and, for a regressor, the range of its targets
    (``target_range``: what a feedback target may be); a retraining job's id too,
    which a shared store uses to publish a retried job once; and the spec's ``spec_sections``
    (``catalog.STORED_SECTIONS``: monitoring), which the server and the worker read from the version; and
    ``explanations`` (``importance.explanation_section``: the training means explanations start from and
    each feature's global importance, within ``importance``, by default the settings' budget).
    """
    dataset, held_out = result.training, result.evaluation
    known = concat([dataset, held_out])  # every row the version has seen a target of
    digest = store.save_dataset(name, dataset)
    params = {k: _jsonable(v) for k, v in result.params.items()}
    X_test, y_test = np.asarray(held_out.X, dtype=np.float64), np.asarray(held_out.y)
    metadata: dict[str, Any] = {
        "task": result.task,
        "description": description,
        "target": target,
        "metrics": result.metrics,
        "primary_metric": result.primary_metric,
        "dataset_sha256": digest,
        "evaluation_set": {
            "sha256": store.save_dataset(name, held_out),
            "rows": len(y_test),
            "parent_metric": parent_metric,
        },
        "training": {
            "params": params,
            "epochs": result.epochs,
            "seconds": round(result.seconds, 3),
            "n_train": result.n_train,
            "n_test": result.n_test,
            "test_size": result.test_size,
            "seed": result.seed,
        },
        "epoch_history": evaluation.history(result.estimator),
        "evaluation": evaluation.evaluation_report(result.estimator, X_test, y_test),
        "lineage": evaluation.lineage(params, digest, parent_version=parent_version, trigger=trigger, job_id=job_id),
        "reference": drift.reference_statistics(result.estimator, known.X, known.y, known.feature_names),
        "explanations": explanation_section(
            name,
            result.estimator,
            dataset.X,
            X_test,
            dataset.feature_names,
            importance or ImportanceBudget.from_settings(),
        ),
    }
    if result.task == "regression":
        targets = np.ravel(known.y).astype(np.float64)
        metadata["target_range"] = [float(targets.min()), float(targets.max())]
    if job_id is not None:
        metadata["job_id"] = job_id
    metadata.update({key: dict(value) for key, value in (spec_sections or {}).items()})
    version = store.publish(name, result.estimator, metadata)
    if activate:
        store.activate(name, version)
    return version
