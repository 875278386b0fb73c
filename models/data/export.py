"""Export the catalog's datasets from scikit-learn's bundled copies to CSV (run once).

    python models/data/export.py

scikit-learn is needed only here (the ``bench`` extra); the CSVs are committed.
"""

from __future__ import annotations

import csv
from pathlib import Path

from sklearn import datasets

HERE = Path(__file__).parent


def _clean(name: str) -> str:
    name = name.replace("(cm)", "").strip().lower()
    return name.replace(" ", "_").replace("(", "").replace(")", "").replace("/", "_")


def export(name: str, bunch, target: str, target_names: bool) -> None:
    columns = [_clean(c) for c in bunch.feature_names]
    labels = [bunch.target_names[t] if target_names else t for t in bunch.target]
    with open(HERE / f"{name}.csv", "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow([*columns, target])
        for row, label in zip(bunch.data, labels, strict=False):
            writer.writerow([*(repr(float(v)) if not float(v).is_integer() else str(int(v)) for v in row), label])


if __name__ == "__main__":
    export("iris", datasets.load_iris(), "species", True)
    export("wine", datasets.load_wine(), "cultivar", True)
    export("breast_cancer", datasets.load_breast_cancer(), "diagnosis", True)
    export("digits", datasets.load_digits(), "digit", False)
    export("diabetes", datasets.load_diabetes(scaled=False), "progression", False)
