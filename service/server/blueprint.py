"""flask-smorest ``Blueprint`` whose JSON bodies are read by nnserve's orjson parser."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import flask_smorest

from service.server.jsonio import JsonBodyParser

ADMIN: list[dict[str, list[str]]] = [{"bearerAuth": []}]
KEY: list[dict[str, list[str]]] = [{}, {"bearerAuth": []}]  # a key is optional (NNSERVE_AUTH=open-predict)


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = JsonBodyParser()

    def errors(self, *codes: int) -> Callable[[Any], Any]:
        """Document that a view answers each of ``codes`` with the common error body (``ErrorSchema``)."""

        def decorator(func: Any) -> Any:
            documented = func
            for code in codes:
                documented = self.alt_response(code, response=HTTPStatus(code).name)(documented)
            # Keep the documentation, not alt_response's wrappers: each would run on every request.
            func._apidoc = documented._apidoc
            return func

        return decorator
