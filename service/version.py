"""nnserve's version: defined once in pyproject.toml, read here once from the installed package metadata.

``nnserve --version`` (click reads the same metadata), ``GET /v2`` and every
manifest's ``nnserve_version`` report this value.
"""

from __future__ import annotations

import importlib.metadata

__all__ = ["__version__"]


def _installed_version() -> str:
    try:
        return importlib.metadata.version("nnserve")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


__version__: str = _installed_version()
