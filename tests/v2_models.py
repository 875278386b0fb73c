"""A small model store for the Open Inference Protocol tests: every catalog dataset, trained for a few epochs.

Used by ``tests/test_v2.py`` (Flask test client) and ``tests/e2e/test_v2_tritonclient.py``
(tritonclient against gunicorn). ``iris`` has two versions, the second active.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from helpers import read_catalog_csv

import nn
from service.store import FileModelStore

CLASSIFIERS = ("iris", "wine", "breast_cancer", "digits")
REGRESSORS = ("diabetes",)
MODELS = CLASSIFIERS + REGRESSORS


@dataclass(frozen=True)
class Catalog:
    root: Path
    versions: dict[str, list[int]]  # published versions per model
    active: dict[str, int]
    rows: dict[str, np.ndarray]  # a few float32-exact feature rows per model, for predictions
    classes: dict[str, list]  # classifiers' classes, in the model's order
    n_features: dict[str, int]


def _train(name: str, X: np.ndarray, y: np.ndarray, names: list[str], seed: int):
    cls = nn.MLPClassifier if name in CLASSIFIERS else nn.MLPRegressor
    return cls(hidden_layer_sizes=(16,), max_iter=8, random_state=seed).fit(X, y, feature_names=names)


def build_store(root: Path) -> Catalog:
    store = FileModelStore(root)
    versions: dict[str, list[int]] = {}
    active, rows, classes, widths = {}, {}, {}, {}
    for name in MODELS:
        X, y, names = read_catalog_csv(name)
        seeds = (0, 1) if name == "iris" else (0,)
        for seed in seeds:
            est = _train(name, X, y, names, seed)
            task = "classification" if name in CLASSIFIERS else "regression"
            versions.setdefault(name, []).append(store.publish(name, est, {"task": task}))
            if name in CLASSIFIERS:
                classes[name] = est.classes_.tolist()
        active[name] = versions[name][-1]
        store.activate(name, active[name])
        # rows spread over the dataset, rounded to float32 so FP32 and FP64 requests carry the same numbers
        rows[name] = X[:: max(1, len(X) // 7)][:7].astype(np.float32).astype(np.float64)
        widths[name] = X.shape[1]
    return Catalog(Path(root), versions, active, rows, classes, widths)
