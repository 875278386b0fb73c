"""flask-smorest ``Blueprint`` whose JSON bodies are read by nnserve's orjson parser."""

from __future__ import annotations

import flask_smorest

from ..jsonio import JsonBodyParser

ADMIN = [{"bearerAuth": []}]


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = JsonBodyParser()
