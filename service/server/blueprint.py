"""flask-smorest ``Blueprint`` whose JSON bodies are read by nnserve's orjson parser, and whose documentation-only
decorators add documentation without a wrapper (flask-smorest's each cost every request a look-up of the app)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

import flask_smorest

from service.server.jsonio import JsonBodyParser

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
    ARGUMENTS_PARSER = JsonBodyParser()

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
