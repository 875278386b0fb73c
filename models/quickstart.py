"""Train an MLPClassifier on the shipped iris CSV and print its held-out accuracy."""

import csv
from pathlib import Path

import numpy as np

from nn import MLPClassifier

with open(Path(__file__).parent / "data" / "iris.csv") as f:
    rows = list(csv.reader(f))
X = np.array([[float(v) for v in r[:-1]] for r in rows[1:]])
y = np.array([r[-1] for r in rows[1:]])
test = np.random.default_rng(0).permutation(len(X))[: len(X) // 4]
train = np.setdiff1d(np.arange(len(X)), test)
model = MLPClassifier((16,), batch_size=16, learning_rate_init=0.01, max_iter=200, random_state=0)
model.fit(X[train], y[train], feature_names=rows[0][:-1])
print(f"iris: held-out accuracy {model.score(X[test], y[test]):.3f} after {model.n_iter_} epochs")
