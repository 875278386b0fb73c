"""Validation of the names the store builds paths from: model names, version numbers, dataset hashes.

Each is checked before any path is built from it, so no client-supplied text
can reach outside the store root.
"""

from __future__ import annotations

import re

import numpy as np

from service.store.exceptions import InvalidNameError

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
MAX_VERSION = 2**31 - 1
VERSION_TEXT = re.compile(r"[1-9][0-9]{0,9}")  # canonical spelling only: no sign, no leading zero, ASCII
SHA256_TEXT = re.compile(r"[0-9a-f]{64}")


def validate_name(name: object) -> str:
    """``name`` if it is a valid model name; checked before any path is built from it."""
    if not isinstance(name, str):
        raise InvalidNameError(f"a model name must be a string, not {type(name).__name__}")
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidNameError(
            f"invalid model name {name!r}: use 1 to 64 lowercase letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return name


def validate_version(version: object) -> int:
    """``version`` as an int if it is a positive version number (int or canonical decimal string)."""
    if isinstance(version, bool | np.bool_) or not isinstance(version, int | np.integer | str):
        raise InvalidNameError(f"a version must be a positive integer, not {type(version).__name__}")
    if isinstance(version, str):
        if not VERSION_TEXT.fullmatch(version):
            if version.isascii() and version.isdigit() and version[0] != "0":  # canonical, but too many digits
                shown = version if len(version) <= 40 else f"of {len(version)} digits"
                raise InvalidNameError(f"invalid version {shown}: versions run from 1 to {MAX_VERSION}")
            raise InvalidNameError(f"invalid version {version!r}: write digits only, without sign or leading zeros")
        version = int(version)
    if not 1 <= version <= MAX_VERSION:
        raise InvalidNameError(f"invalid version {version}: versions run from 1 to {MAX_VERSION}")
    return int(version)


def validate_sha256(digest: object) -> str:
    """``digest`` if it is a dataset hash: 64 lowercase hex digits."""
    if not isinstance(digest, str) or not SHA256_TEXT.fullmatch(digest):
        raise InvalidNameError(f"invalid dataset hash {digest!r}: expected 64 lowercase hex digits")
    return digest
