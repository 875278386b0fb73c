"""How a decoded JSON value is named in an error message, for v1 and v2 alike."""

from __future__ import annotations

from typing import Any


def is_number(value: Any) -> bool:
    """A JSON number: int or float, never a boolean (which Python counts as an int)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def describe(value: Any, array: str = "an array") -> str:
    """A JSON value as a client would recognise it; ``array`` names lists (v1 says "a list")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, str):
        return f"a string ({value[:20] + '...' if len(value) > 20 else value!r})"
    if isinstance(value, list):
        return array
    if isinstance(value, dict):
        return "an object"
    return repr(value)
