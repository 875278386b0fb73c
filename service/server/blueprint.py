"""flask-smorest ``Blueprint`` whose JSON bodies are read by nnserve's own decorator (``body``), and whose
documentation-only decorators add documentation without a wrapper (flask-smorest's each cost every request a look-up
of the app)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

import flask
import flask_smorest
from marshmallow import Schema, ValidationError

from service import tracing
from service.server.current import dataplane
from service.server.errors import abort, refuse_body
from service.server.jsonio import BodyError, json_body

ADMIN: list[dict[str, list[str]]] = [{"bearerAuth": []}]
KEY: list[dict[str, list[str]]] = [{}, {"bearerAuth": []}]  # a key is optional (NNSERVE_AUTH=open-predict)


def _documentation_of(func: Any, decorators: Iterable[Callable[[Any], Any]]) -> Any:
    """``func`` with the documentation ``decorators`` add to it, not their wrappers: each would run on every request."""
    documented = func
    for decorate in decorators:
        documented = decorate(documented)
    func._apidoc = documented._apidoc
    return func


class Blueprint(flask_smorest.Blueprint):
    def arguments(self, schema: Any, *, location: str = "json", **kwargs: Any) -> Callable[[Any], Any]:  # type: ignore[override]
        """flask-smorest's ``arguments`` for the query string; a JSON body is ``body``'s (its rules in one place)."""
        if location == "json":
            raise TypeError("a JSON request body is read by Blueprint.body, not Blueprint.arguments")
        return super().arguments(schema, location=location, **kwargs)

    def body(self, schema: Schema | type[Schema]) -> Callable[[Any], Any]:
        """Pass a view the JSON request body as ``schema`` loads it, documented as flask-smorest's ``arguments``
        documents a body. 415, 413, 400 and 422 as ``json_body`` says; 422 with marshmallow's messages per field
        when ``schema`` refuses it. Its parsing and loading are the request's ``decode`` span."""
        documenting = super().arguments(schema)
        loader = schema() if isinstance(schema, type) else schema  # one for every request: its fields hold no state

        def decorate(view: Any) -> Any:
            @functools.wraps(_documentation_of(view, [documenting]))
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                with tracing.span("decode"):
                    try:
                        loaded = loader.load(json_body(flask.request._get_current_object(), dataplane()))  # type: ignore[attr-defined]
                    except BodyError as exc:
                        abort(exc.status, exc.message)
                    except ValidationError as exc:
                        refuse_body(exc.messages)
                return view(*args, loaded, **kwargs)

            return wrapper

        return decorate

    def doc(self, **kwargs: Any) -> Callable[[Any], Any]:  # type: ignore[override]
        """flask-smorest's ``doc``: documentation verbatim (its wrapper only calls the view)."""
        documenting = super().doc(**kwargs)
        return lambda func: _documentation_of(func, [documenting])

    def errors(self, *codes: int) -> Callable[[Any], Any]:
        """Document that a view answers each of ``codes`` with the common error body (``ErrorSchema``)."""
        documenting = [self.alt_response(code, response=HTTPStatus(code).name) for code in codes]
        return lambda func: _documentation_of(func, documenting)

    def answers(self, status: int, schema: Any, **kwargs: Any) -> Callable[[Any], Any]:
        """Document the success response of a view that makes its own ``Response`` (``response`` would dump a view's
        result with ``schema``; here nothing is done at runtime)."""
        documenting = self.response(status, schema, **kwargs)
        return lambda func: _documentation_of(func, [documenting])
