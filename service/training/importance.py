"""What publish keeps for explanations: the training means (the default baseline) and global importance.

Global importance is the mean absolute integrated-gradients attribution of each feature over the version's
evaluation rows (at most ``NNSERVE_IMPORTANCE_ROWS`` of them, a seeded sample), each row explained for its
predicted class (classifiers) or its first output (regressors), from the training means.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nn.estimators import BaseMLP
from service import config
from service.store import LoadedModel, explain, feature_names

SAMPLE_SEED = 0  # which evaluation rows a capped importance uses: the same for every version of a model


@dataclass(frozen=True)
class ImportanceBudget:
    """What the importance at publish may cost: rows (``NNSERVE_IMPORTANCE_ROWS``) and integrated gradients'
    steps (``NNSERVE_IMPORTANCE_STEPS``)."""

    rows: int
    steps: int

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any] | None = None) -> ImportanceBudget:
        s = config.from_environ() if settings is None else settings
        return cls(rows=int(s["NNSERVE_IMPORTANCE_ROWS"]), steps=int(s["NNSERVE_IMPORTANCE_STEPS"]))


def explanation_section(
    name: str,
    estimator: BaseMLP,
    training_X: np.ndarray,
    evaluation_X: np.ndarray,
    names: Sequence[str],
    budget: ImportanceBudget,
) -> dict[str, Any]:
    """The manifest's ``explanations``: ``baseline_mean`` (per feature) and ``importance`` (method, baseline,
    steps, rows used, and per feature in column order ``{"name", "mean_abs_attribution"}``)."""
    training_X = np.asarray(training_X, dtype=np.float64)
    evaluation_X = np.asarray(evaluation_X, dtype=np.float64)
    means = training_X.mean(axis=0)
    if len(evaluation_X) > budget.rows:
        chosen = np.random.default_rng(SAMPLE_SEED).choice(len(evaluation_X), budget.rows, replace=False)
        evaluation_X = evaluation_X[np.sort(chosen)]
    manifest = {"n_features": training_X.shape[1], "feature_names": list(names)}
    manifest["explanations"] = {"baseline_mean": means.tolist()}
    explained = explain(LoadedModel(name, 0, estimator, manifest), evaluation_X, steps=budget.steps, baseline="mean")
    importance = np.abs(explained.attributions).mean(axis=0)
    return {
        "baseline_mean": means.tolist(),
        "importance": {
            "method": explained.method,
            "baseline": "mean",
            "steps": budget.steps,
            "rows": len(evaluation_X),
            "features": [
                {"name": n, "mean_abs_attribution": float(v)}
                for n, v in zip(feature_names(manifest), importance, strict=True)
            ],
        },
    }
