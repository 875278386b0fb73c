"""Array type aliases shared by the modules of ``nn``.

Annotations only: nothing here runs a check. Shapes are stated in each
function's docstring, since numpy's stubs do not track them.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

Array: TypeAlias = npt.NDArray[np.floating[Any]]
"""A float32 or float64 array: features, weights, gradients, logits, predictions."""

IndexArray: TypeAlias = npt.NDArray[np.intp]
"""Integer positions: sample indices, class indices."""

AnyArray: TypeAlias = npt.NDArray[Any]
"""An array of any dtype: targets (class indices or floats), labels (ints or strings)."""

FloatDType: TypeAlias = np.dtype[np.floating[Any]]
"""The dtype of a network: float32 or float64."""
