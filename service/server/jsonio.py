"""JSON in and out with orjson: Flask's JSON provider and the request-body parser.

orjson is several times faster than the standard library on large numeric
payloads, serialises numpy arrays natively, and rejects NaN and Infinity
literals. Bodies it rejects are classified so clients get the right status and
a message naming the problem (see ``decode_body``).
"""

from __future__ import annotations

import json
from typing import Any

import flask
import orjson
from flask import Response
from flask.json.provider import JSONProvider
from webargs.core import is_json
from werkzeug.datastructures import Headers
from werkzeug.exceptions import RequestEntityTooLarge

from service.server.dataplane import DataPlane
from service.server.registry import ModelRegistry
from service.store import StoreError

_DUMP_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


class BodyError(Exception):
    """A request body that is not acceptable JSON; carries the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# Names the version that answered a prediction (v1 and v2), so a client or a proxy can tell without the body.
MODEL_VERSION_HEADER = "X-Model-Version"


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response serialised by orjson (numpy arrays natively, no per-element Python pass)."""
    # Headers made here (not from a dict: werkzeug's walk of a mapping costs several checks), and the Content-Type
    # werkzeug would make of mimetype="application/json", without its making it on every answer
    listed = Headers()
    for key, value in (headers or {}).items():
        listed.add(key, value)
    return Response(orjson.dumps(obj, option=_DUMP_OPTIONS), status, listed, content_type="application/json")


class OrjsonProvider(JSONProvider):
    """Flask JSON provider backed by orjson (numpy arrays serialise natively)."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return orjson.dumps(obj, option=_DUMP_OPTIONS).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return orjson.loads(s)

    def response(self, *args: Any, **kwargs: Any) -> Response:
        return json_response(self._prepare_response_obj(args, kwargs))


def max_containers(max_rows: int) -> int:
    """The most JSON objects and arrays a request may hold: two per row (a row and, in v2, its tensor) and 1024 more.

    Every valid request is far below it; ``{},{},...`` at the body limit is far above.
    """
    return 2 * max_rows + 1024


def max_values(max_rows: int, width: int) -> int:
    """The most JSON values a request for a model of ``width`` inputs may hold: a row's inputs and one more
    (a retrain target) per row of ``max_rows``, and 1024 more."""
    return max_rows * (width + 1) + 1024


def decode_body(body: bytes, containers: int | None = None, values: int | None = None) -> Any:
    """Parse a JSON request body, or raise ``BodyError`` with status and message.

    With ``containers``, a body with more ``{`` and ``[`` bytes than that is
    refused (422) before it is parsed: each becomes a Python object of ~60
    bytes, so 16 MB of ``{},`` would cost a worker ~500 MB. With ``values``,
    the same for values, counted as ``,`` bytes plus one: 16 MB of ``1e1,``
    is four million floats (~130 MB parsed) where a model of 4 inputs takes
    at most 51,024. Brackets and commas inside strings count too, which only
    ever overcounts.

    Duplicate keys in an object are accepted and the last one wins (RFC 8259
    leaves it to the parser; orjson, Python's json and browsers all keep the
    last), in every API that reads JSON through here.

    Malformed JSON is 400. Valid-looking JSON with non-finite numbers
    (``NaN``/``Infinity`` literals, which Python's ``json.dumps`` writes, or
    numbers like ``1e400``) and nesting deeper than orjson's limit are 422.
    """
    if not body:
        raise BodyError(400, "the request body is empty; send a JSON object")
    if containers is not None:
        found = body.count(b"{") + body.count(b"[")
        if found > containers:
            raise BodyError(
                422,
                f"the request body holds {found} JSON objects and arrays (counting '{{' and '['); "
                f"a request may hold at most {containers} (two per row of NNSERVE_MAX_ROWS, and 1024 more)",
            )
    if values is not None:
        found = body.count(b",") + 1
        if found > values:
            raise BodyError(
                422,
                f"the request body holds {found} JSON values (counting ','); a request for this model may hold "
                f"at most {values} (NNSERVE_MAX_ROWS rows of its inputs and a target, and 1024 more)",
            )
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        reason = str(exc)
    if "not valid UTF-8" in reason:
        raise BodyError(400, "the request body is not valid UTF-8")
    if "infinity when parsed as double" in reason:
        raise BodyError(422, f"a number is too large to represent (it overflows to infinity): {reason}")
    if "depth limit exceeded" in reason:
        raise BodyError(422, "the JSON body is nested too deeply (more than 1024 levels)")
    literal = next((w for w in ("NaN", "-Infinity", "Infinity") if w.encode() in body), None)
    if literal is not None and _parses_with_literals(body):
        raise BodyError(
            422,
            f"{literal} is not a valid JSON number; every value must be a finite number "
            "(Python's json.dumps writes NaN and Infinity unless allow_nan=False)",
        )
    raise BodyError(400, f"malformed JSON: {reason}")


def _parses_with_literals(body: bytes) -> bool:
    try:
        json.loads(body)
    except (ValueError, RecursionError):
        return False
    return True


def read_body(req: flask.Request, limit: int) -> bytes:
    """The raw body (cached on the request), or ``BodyError`` 413 when it is over ``limit``.

    werkzeug answers 413 itself when Content-Length is over the limit, but cuts
    a chunked body (no Content-Length) at the limit silently: one more byte
    on the wire means the body was too large.
    """
    try:
        body = req.get_data(cache=True)
    except RequestEntityTooLarge:  # werkzeug's own 413 (Content-Length over the limit) says nothing of the limit
        raise BodyError(413, f"the request body is larger than the limit of {limit} bytes") from None
    if len(body) >= limit and req.content_length is None and req.environ["wsgi.input"].read(1):
        raise BodyError(413, f"the request body is larger than the limit of {limit} bytes")
    return body


def json_body(req: flask.Request, plane: DataPlane) -> Any:
    """The JSON body of a request to a view of ``plane``'s app, or ``BodyError``: 415 for another content type or a
    compressed body, 413 over NNSERVE_MAX_BODY_BYTES, else as ``decode_body`` says, under the caps for
    NNSERVE_MAX_ROWS rows (of the inputs of the model the URL names, when it names one that loads)."""
    if req.environ.get("CONTENT_TYPE") != "application/json" and not is_json(req.mimetype):  # parsed if need be
        raise BodyError(415, f"Content-Type must be application/json, got {req.mimetype or 'none'!r}")
    encoding = req.environ.get("HTTP_CONTENT_ENCODING", "identity").strip().lower()  # the header, unparsed
    if encoding not in ("", "identity"):  # its bytes would only be 'not valid UTF-8'
        raise BodyError(415, f"Content-Encoding {encoding!r} is not supported here; send the JSON uncompressed")
    settings = plane.settings
    body = read_body(req, settings.max_body_bytes)
    rows = settings.max_rows
    width = _width_of_named_model(req, plane.registry)
    return decode_body(body, max_containers(rows), None if width is None else max_values(rows, width))


def _width_of_named_model(req: flask.Request, models: ModelRegistry) -> int | None:
    """Inputs per row of the model version the URL names (else its active one); None when it names none that
    loads, and the view then answers for that."""
    args = req.view_args or {}
    if "name" not in args:
        return None
    try:  # not contextlib.suppress: this runs on every prediction
        version = args.get("version")
        loaded = models.active(args["name"]) if version is None else models.version(args["name"], int(version))
        return int(loaded.estimator.n_features_in_)
    except (StoreError, ValueError, TypeError):
        return None
