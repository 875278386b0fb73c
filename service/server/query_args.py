"""One rule for the query string of every endpoint: only the arguments it declares, each at most once.

A view declares its query arguments with ``@blp.arguments(Schema, location="query")``; any other argument,
on any route (v1, v2, the dashboard, ``/metrics``), and any argument given twice (``?window=1&window=2``,
where the parser would silently keep the first) is a 422 in the error shape of the route's API, so a
misspelt or smuggled argument is never ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, Request
from marshmallow import Schema
from marshmallow import fields as ma_fields
from werkzeug.exceptions import UnprocessableEntity

from service.server import errors


def declared(view: Any, method: str) -> tuple[frozenset[str], frozenset[str]]:
    """(names, names that may repeat) of the query arguments the view function ``view`` declares for ``method``."""
    handler = getattr(getattr(view, "view_class", None), method.lower(), None)
    if handler is None and method == "HEAD":
        handler = getattr(getattr(view, "view_class", None), "get", None)
    parameters = getattr(handler if handler is not None else view, "_apidoc", {}).get("arguments", {})
    names: set[str] = set()
    repeatable: set[str] = set()
    for parameter in parameters.get("parameters", []):
        if parameter.get("in") != "query":
            continue
        schema = parameter["schema"]
        schema = schema() if isinstance(schema, type) and issubclass(schema, Schema) else schema
        for name, field in schema.fields.items():
            if field.dump_only:
                continue
            key = field.data_key or name
            names.add(key)
            if isinstance(field, ma_fields.List):
                repeatable.add(key)
    return frozenset(names), frozenset(repeatable)


def checker(app: Flask) -> Callable[[Request], None]:
    """The check app.py's ``before_request`` hook makes of every request of ``app``: an undeclared or a repeated
    query argument is a 422."""
    cache: dict[tuple[str, str], tuple[frozenset[str], frozenset[str]]] = {}

    def check_query(req: Request) -> None:
        if not req.environ.get("QUERY_STRING") or req.url_rule is None or req.routing_exception is not None:
            return
        key = (req.url_rule.endpoint, req.method)
        if key not in cache:
            cache[key] = declared(app.view_functions[req.url_rule.endpoint], req.method)
        names, repeatable = cache[key]
        problems: dict[str, list[str]] = {}
        for name in req.args:
            if name not in names:
                problems[name] = ["unknown query argument"]
            elif name not in repeatable and len(req.args.getlist(name)) > 1:
                problems[name] = ["given more than once"]
        if problems:
            takes = ", ".join(sorted(names)) or "none"
            first, [why] = next(iter(problems.items()))
            message = f"query argument {errors.clip(first)!r}: {why} (this endpoint takes {takes})"
            refusal = UnprocessableEntity(message)  # its description for v2's {"error"}, its data for the v1 shape
            refusal.data = {"message": message, "errors": problems}  # type: ignore[attr-defined]
            raise refusal

    return check_query
