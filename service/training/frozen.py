"""The frozen evaluation set: the rows a model's versions are scored on, which feedback cannot reach.

A model's first version holds out the spec's ``test_size`` of its CSV (``split_seed``); a retrain trains on
the base version's training rows plus, or instead of, its new rows, and is scored with the active version on
the base version's evaluation set plus a held-out share of the rows an admin sent. Rows that came from
feedback (a policy's labelled predictions) are trained on, never scored on, so a client that labels
predictions cannot move the score that decides a promotion. Both sets are datasets in the store
(content-addressed, on every backend): the manifest names the training rows (``dataset_sha256``) and the
evaluation rows (``evaluation_set``), and each retrain carries the set forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from service.store import Dataset, LoadedModel, ModelStore
from service.training.fitting import concat, split
from service.training.jobs import RetrainRequest

__all__ = ["RetrainRows", "retrain_rows"]


@dataclass(frozen=True)
class RetrainRows:
    """What a retrain trains on and what it (and the active version) is scored on, and where each came from."""

    training: Dataset
    evaluation: Dataset
    trained: dict[str, Any]  # rows: from the base version ("base"), new ("new"), and whether the new came from feedback
    evaluated: dict[str, Any]  # rows: the base version's evaluation set ("frozen") and the new rows held out ("new")


def _empty(like: Dataset) -> Dataset:
    return Dataset(np.asarray(like.X)[:0], np.asarray(like.y)[:0], like.feature_names)


def _hold_out(data: Dataset, task: str, test_size: float, seed: int) -> tuple[Dataset, Dataset]:
    """An admin's rows split like the spec's (stratified when every class has two rows); too few to split: all
    trained on."""
    for kind in (task, "regression"):  # "regression": a split that is not stratified
        try:
            return split(data, kind, test_size, seed)
        except ValueError:
            continue
    return data, _empty(data)


def retrain_rows(store: ModelStore, base: LoadedModel, request: RetrainRequest, task: str) -> RetrainRows:
    """The training and evaluation rows of a retrain of ``base`` (``ValueError`` when there is nothing to train on).

    A version published before evaluation sets were kept stored one dataset for both: its held-out rows are
    recomputed from the split it recorded, as its own metrics were.
    """
    name, manifest = base.name, base.manifest
    trained = manifest.get("training") or {}
    test_size, seed = float(trained.get("test_size", 0.25)), int(trained.get("seed", 0))
    new = store.load_dataset(name, request.data_sha256) if request.data_sha256 else None
    digest, kept = manifest.get("dataset_sha256"), manifest.get("evaluation_set")
    old = frozen = None
    if digest is not None and kept:
        old, frozen = store.load_dataset(name, digest), store.load_dataset(name, kept["sha256"])
    elif digest is not None:
        old, frozen = split(store.load_dataset(name, digest), task, test_size, seed)
    if request.mode == "replace":
        if new is None:
            raise ValueError("mode 'replace' needs data")
        old = None
    if old is None and new is None:
        raise ValueError(f"version {base.version} of {name!r} recorded no training data; send data")
    feedback = request.data_source == "feedback"
    new_train, new_held = (new, None) if new is None or feedback else _hold_out(new, task, test_size, seed)
    training = concat([d for d in (old, new_train) if d is not None])
    evaluation_parts = [d for d in (frozen, new_held) if d is not None and len(d.X)]
    if not evaluation_parts:
        raise ValueError(f"too few rows to hold out an evaluation set for {name!r}; send more data")
    return RetrainRows(
        training=training,
        evaluation=concat(evaluation_parts),
        trained={
            "rows": len(training.X),
            "base": 0 if old is None else len(old.X),
            "new": 0 if new_train is None else len(new_train.X),
            "new_from_feedback": feedback and new is not None,
        },
        evaluated={
            "rows": sum(len(d.X) for d in evaluation_parts),
            "frozen": 0 if frozen is None else len(frozen.X),
            "new": 0 if new_held is None else len(new_held.X),
        },
    )
