"""The store's errors: one base class, one subclass per way a store operation can fail.

The HTTP layers map them to statuses (``service/server/errors.py``): invalid name 400,
not found 404, corrupt 409, unavailable 503.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base of every store error; ``str(exc)`` is one human sentence."""


class InvalidNameError(StoreError):
    """A model name, version or dataset hash that could not be a store entry."""


class NotFoundError(StoreError):
    """An unknown model, version or dataset, or a model with no active version."""


class CorruptVersionError(StoreError):
    """An artifact, dataset or ACTIVE file that fails verification."""


class ActiveVersionChangedError(StoreError):
    """A compare-and-swap activation found another version active than the one it expected."""


class RolloutConflictError(StoreError):
    """A rollout cannot start or end as asked: another one runs, or the one named is not running."""


class StoreUnavailableError(StoreError):
    """The store, or a model's directory or ACTIVE file, cannot be read (permissions, I/O): not the request's fault."""


def unavailable(name: str, exc: OSError) -> StoreUnavailableError:
    """The error for model ``name`` whose store entry could not be read because of ``exc``."""
    return StoreUnavailableError(f"model {name!r} cannot be read from the store ({exc.strerror})")


def broken(name: str, version: int, why: str) -> CorruptVersionError:
    """The error for a version of model ``name`` that fails verification, ``why`` saying how."""
    return CorruptVersionError(f"model {name!r} version {version} is broken: {why}")
