"""What one target (a ground-truth value) must be for a model: retrain data and feedback check it the same way.

A regressor's targets must be finite and inside its accepted range, so no label can make a later retrain
fail ("y contains NaN or infinity") or drag the model far from its data: the spec's ``[monitoring]
target_range``, else the version's training targets' range (``target_range`` in the manifest) widened by its
span on each side, else, for a version published before ranges were kept, ``|target| <= LEGACY_BOUND``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from service.store import LoadedModel
from service.training.limits import clip

LEGACY_BOUND = 1e12  # the largest |target| of a version whose manifest records no range


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def accepted_range(manifest: Mapping[str, Any]) -> tuple[float, float]:
    """The [low, high] a regressor's targets must be in (see the module's rule)."""
    given = (manifest.get("monitoring") or {}).get("target_range")
    if given:
        return float(given[0]), float(given[1])
    seen = manifest.get("target_range")
    if not seen:
        return -LEGACY_BOUND, LEGACY_BOUND
    low, high = float(seen[0]), float(seen[1])
    span = max(high - low, 1.0)  # one value seen: still some room around it
    return low - span, high + span


def first_bad_target(base: LoadedModel, targets: Sequence[Any], known_classes: bool) -> tuple[int, str] | None:
    """(row, why) of the first target ``base`` cannot take, or None when all can.

    Classifiers take labels of their classes' type (integers or non-empty strings) and, with
    ``known_classes``, only their classes (feedback: ground truth for a class the model does not have cannot
    be scored); regressors take finite numbers in ``accepted_range``, or lists of ``n_outputs`` of them.
    """
    est: Any = base.estimator
    classes = getattr(est, "classes_", None)
    if classes is not None:
        integers = classes.dtype.kind in "iu"
        known = set(classes.tolist())
        for i, target in enumerate(targets):
            if integers and (isinstance(target, bool) or not isinstance(target, int)):
                return i, f"class labels of model {base.name!r} are integers; got {clip(repr(target))}"
            if not integers and not (isinstance(target, str) and target):
                return i, f"class labels of model {base.name!r} are non-empty strings; got {clip(repr(target))}"
            if known_classes and target not in known:
                shown = ", ".join(clip(c) for c in classes.tolist()[:20])
                return i, f"unknown class {clip(repr(target))}; the classes of model {base.name!r}: {shown}"
        return None
    outputs = int(base.manifest.get("target_ndim", 1))
    width = int(getattr(est, "n_outputs_", 1))
    low, high = accepted_range(base.manifest)
    for i, target in enumerate(targets):
        if outputs == 1 and not _number(target):
            return i, f"targets of model {base.name!r} are finite numbers; got {clip(repr(target))}"
        if outputs == 2 and not (isinstance(target, list) and len(target) == width and all(map(_number, target))):
            return i, f"targets of model {base.name!r} are lists of {width} finite numbers; got {clip(repr(target))}"
        if not all(low <= v <= high for v in (target if outputs == 2 else [target])):
            return i, f"targets of model {base.name!r} are from {low:.6g} to {high:.6g}; got {clip(repr(target))}"
    return None
