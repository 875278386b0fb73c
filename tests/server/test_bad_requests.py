"""A corpus of hostile and malformed requests, v1 and v2, each with its expected status and message.

Through Flask's test client on a small trained store. v1 errors have the
common shape ``{"code", "status", "message", "errors"?}``; v2 (Open Inference
Protocol) errors are ``{"error": message}``. No request may answer 5xx, HTML,
a traceback, or an error body that echoes megabytes of the client's input.

Decisions this corpus pins down:

- Duplicate keys in a JSON object: the last one wins, in v1 and v2 alike (RFC
  8259 leaves it to the parser; orjson, Python's json and browsers keep the
  last). Rejecting them would need a second, slower parse of every body.
- v1 wants ``Content-Type: application/json`` (415 otherwise); v2 reads the
  body whatever its content type, as Triton does (tritonclient sends binary
  tensor requests as ``application/octet-stream``).
- A body over ``NNSERVE_MAX_BODY_BYTES`` is 413 with or without
  Content-Length (chunked), and the message names the limit.
- Repeated ``Authorization`` headers reach WSGI joined by ", ": 401 asking
  for exactly one.
- Query arguments: every route takes only those it declares (none, for most), each once: any other
  or a repeated one is 422, in v1 and v2 alike (the parser would otherwise keep the first silently).
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass, field
from http import HTTPStatus

import pytest
from v2_models import build_store

from service import create_app

TOKEN = "corpus-admin-token-7d41e9"
LIMIT = 1 << 20  # NNSERVE_MAX_BODY_BYTES of the corpus app
ROW = [5.1, 3.5, 1.4, 0.2]
V1 = "/v1/models/iris/predict"
V2 = "/v2/models/iris/infer"
MAX_ERROR_BYTES = 4096  # an error body quotes client input only in part


def v2_body(data=ROW, **extra) -> dict:
    return {"inputs": [{"name": "input", "datatype": "FP64", "shape": [1, len(data)], "data": data}], **extra}


@dataclass
class Req:
    method: str
    url: str
    status: int
    fragment: str  # in the message (v1) or error (v2); "" for a success
    body: bytes | None = None
    content_type: str | None = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    chunked: bool = False  # sent without Content-Length, as gunicorn passes a chunked body


def raw(obj) -> bytes:
    return json.dumps(obj).encode()


def first_value_as(literal: bytes, v1_fragment: str, v2_fragment: str | None = None) -> tuple[Req, Req]:
    """The v1 (422) and v2 (400) requests of one iris row whose first value (5.1) is written as ``literal``."""
    return (
        Req("POST", V1, 422, v1_fragment, b'{"instances": [[' + literal + b", 3.5, 1.4, 0.2]]}"),
        Req("POST", V2, 400, v2_fragment or v1_fragment, raw(v2_body()).replace(b"5.1", literal)),
    )


HUGE = "a" * 900_000  # a single string just under the body limit
DEEP = b"[" * 100_000 + b"]" * 100_000
TOO_BIG = b'{"instances": [' + b",".join([b"[5.1, 3.5, 1.4, 0.2]"] * 60_000) + b"]}"
assert len(TOO_BIG) > LIMIT

# -- bodies: (id, v1 request, v2 request) -------------------------------------------------------------------------

BODIES = {
    "invalid-utf8": (
        Req("POST", V1, 400, "not valid UTF-8", b'{"instances": [[1, 2, 3, "\xff\xfe"]]}'),
        Req("POST", V2, 400, "not valid UTF-8", b'{"inputs": [{"name": "\xc3\x28"}]}'),
    ),
    # 100,000 brackets are more objects and arrays than a request may hold: refused before parsing
    "nested-100000-deep": (
        Req("POST", V1, 422, "JSON objects and arrays", DEEP),
        Req("POST", V2, 400, "JSON objects and arrays", DEEP),
    ),
    "nested-100000-deep-in-object": (
        Req("POST", V1, 422, "JSON objects and arrays", b'{"instances": ' + DEEP + b"}"),
        Req("POST", V2, 400, "JSON objects and arrays", b'{"inputs": ' + DEEP + b"}"),
    ),
    "nested-2000-deep": (  # fewer brackets than the cap: orjson's depth limit speaks
        Req("POST", V1, 422, "nested too deeply", b"[" * 2000 + b"]" * 2000),
        Req("POST", V2, 400, "nested too deeply", b"[" * 2000 + b"]" * 2000),
    ),
    "number-1e400": first_value_as(b"1e400", "too large to represent"),
    "number-minus-1e400": first_value_as(b"-1e400", "too large to represent"),
    # finite in JSON, infinite in the float32 network
    "number-1e308-beyond-float32": first_value_as(  # one rule, one message, whichever API
        b"1e308", "holds 1e+308 at index [0, 0], beyond the range of the FP32 numbers model 'iris' computes with"
    ),
    # orjson reads integers beyond 64 bits as doubles: 400 digits overflow to infinity
    "huge-integer": first_value_as(b"9" * 400, "too large to represent"),
    "NaN-literal": first_value_as(b"NaN", "NaN is not a valid JSON number"),
    "Infinity-literal": first_value_as(b"Infinity", "Infinity is not a valid JSON number"),
    "minus-Infinity-literal": first_value_as(b"-Infinity", "-Infinity is not a valid JSON number"),
    "duplicate-keys-last-wins-valid": (
        Req("POST", V1, 200, "", b'{"instances": [[1, 2, 3]], "instances": [[5.1, 3.5, 1.4, 0.2]]}'),
        Req("POST", V2, 200, "", b'{"inputs": 7, ' + raw(v2_body())[1:]),
    ),
    "duplicate-keys-last-wins-invalid": (
        Req("POST", V1, 422, "rows have 3 values", b'{"instances": [[5.1, 3.5, 1.4, 0.2]], "instances": [[1, 2, 3]]}'),
        Req("POST", V2, 400, "needs 'inputs', an array of tensors, got 7", raw(v2_body())[:-1] + b', "inputs": 7}'),
    ),
    "too-large-with-content-length": (
        Req("POST", V1, 413, f"larger than the limit of {LIMIT} bytes", TOO_BIG),
        Req("POST", V2, 413, f"larger than the {LIMIT} bytes accepted", TOO_BIG),
    ),
    "too-large-chunked": (
        Req("POST", V1, 413, f"larger than the limit of {LIMIT} bytes", TOO_BIG, chunked=True),
        Req("POST", V2, 413, f"larger than the {LIMIT} bytes accepted", TOO_BIG, chunked=True),
    ),
    "too-large-and-malformed": (
        Req("POST", V1, 413, "larger than the limit", b"{" * (LIMIT + 1)),
        Req("POST", V2, 413, "larger than the", b"{" * (LIMIT + 1)),
    ),
    "chunked-just-under-the-limit": (
        Req("POST", V1, 200, "", raw({"instances": [ROW]}).ljust(LIMIT - 1), chunked=True),
        Req("POST", V2, 200, "", raw(v2_body()).ljust(LIMIT - 1), chunked=True),
    ),
    "wrong-content-type": (
        Req(
            "POST",
            V1,
            415,
            "Content-Type must be application/json, got 'text/plain'",
            raw({"instances": [ROW]}),
            "text/plain",
        ),
        Req("POST", V2, 200, "", raw(v2_body()), "text/plain"),
    ),
    "form-content-type": (
        Req(
            "POST",
            V1,
            415,
            "got 'application/x-www-form-urlencoded'",
            b"instances=1",
            "application/x-www-form-urlencoded",
        ),
        Req("POST", V2, 400, "malformed JSON", b"inputs=1", "application/x-www-form-urlencoded"),
    ),
    "missing-content-type": (
        Req("POST", V1, 415, "got 'none'", raw({"instances": [ROW]}), None),
        Req("POST", V2, 200, "", raw(v2_body()), None),
    ),
    "empty-body": (
        Req("POST", V1, 400, "the request body is empty", b""),
        Req("POST", V2, 400, "the request body is empty", b""),
    ),
    "gigantic-string-as-rows": (
        Req(
            "POST",
            V1,
            422,
            "must be a list of rows, got a string ('aaaaaaaaaaaaaaaaaaaa...')",
            raw({"instances": HUGE}),
        ),
        Req(
            "POST",
            V2,
            400,
            "'data' must be an array of numbers, got a string",
            raw(v2_body()).replace(b"[5.1, 3.5, 1.4, 0.2]", raw(HUGE)),
        ),
    ),
    "gigantic-string-as-value": (
        Req("POST", V1, 422, "row 0, column 3 is a string", raw({"instances": [[1, 2, 3, HUGE]]})),
        Req("POST", V2, 400, "value 3 is a string", raw(v2_body([1, 2, 3, HUGE]))),
    ),
    "gigantic-string-as-key": (
        Req("POST", V1, 422, "characters in all", raw({HUGE: [ROW]})),
        Req("POST", V2, 400, "characters in all", raw(v2_body(outputs=[{"name": HUGE}]))),
    ),
    "gigantic-string-as-feature-name": (
        Req("POST", V1, 422, "does not match the model's features", raw({"instances": [{HUGE: 1}]})),
        Req(
            "POST",
            V2,
            400,
            "unknown datatype",
            raw({"inputs": [{"name": "x", "datatype": HUGE, "shape": [1, 4], "data": ROW}]}),
        ),
    ),
    "body-not-an-object": (
        Req("POST", V1, 422, "Invalid input type", b"[[5.1, 3.5, 1.4, 0.2]]"),
        Req("POST", V2, 400, "must be a JSON object, got an array", b"[[5.1, 3.5, 1.4, 0.2]]"),
    ),
}

# -- URLs: model names and versions (v1 predict, v1 detail, v1 activate with the token, v2 infer, v2 metadata) ----

INVALID_NAME = "invalid model name"
NO_ROUTE = None  # %2f decodes to "/" before routing: no route matches, v1 and v2 each say so in their words
NAMES = {
    "percent-encoded-slash-traversal": ("..%2f..%2fetc", NO_ROUTE),
    "percent-encoded-dots": ("%2e%2e", INVALID_NAME + " '..'"),
    "percent-encoded-dots-and-slashes": ("%2e%2e%2f%2e%2e%2fetc%2fpasswd", NO_ROUTE),
    "double-encoded": ("%252e%252e%252fetc", INVALID_NAME + " '%2e%2e%2fetc'"),
    "dot-dot": ("..", INVALID_NAME),
    "unicode-e-acute": ("é", INVALID_NAME + " 'é'"),
    "percent-encoded-e-acute": ("%C3%A9", INVALID_NAME + " 'é'"),
    "fullwidth-letters": ("%EF%BD%89ris", INVALID_NAME),
    "right-to-left-override": ("iris%E2%80%AE", INVALID_NAME),
    "nul-byte": ("iris%00", INVALID_NAME),
    "invalid-utf8-percent": ("%ff%fe", INVALID_NAME),
    "uppercase": ("IRIS", INVALID_NAME + " 'IRIS'"),
    "hidden": (".iris", INVALID_NAME),
    "too-long": ("a" * 100_000, "characters in all"),
    "unknown": ("nope", "unknown model 'nope'"),
}
VERSIONS = {
    "zero": ("0", "invalid version '0'"),
    "minus-one": ("-1", "invalid version '-1'"),
    "exponent": ("1e3", "invalid version '1e3'"),
    "twenty-nines": ("99999999999999999999", "invalid version 99999999999999999999: versions run from 1 to"),
    "beyond-int32": ("2147483648", "invalid version 2147483648"),
    "leading-zero": ("01", "invalid version '01'"),
    "plus-sign": ("%2B1", "invalid version '+1'"),
    "fullwidth-digit": ("%EF%BC%91", "invalid version '１'"),
    "float": ("1.0", "invalid version '1.0'"),
    "missing": ("9", "has no version 9"),
}


def name_requests(name: str, fragment: str | None) -> list[Req]:
    body, v2 = raw({"instances": [ROW]}), raw(v2_body())
    auth = [("Authorization", f"Bearer {TOKEN}")]
    f1 = fragment or "The requested URL was not found on the server"
    f2 = fragment or "no such endpoint: /v2/models/../../etc"
    return [
        Req("POST", f"/v1/models/{name}/predict", 404, f1, body),
        Req("GET", f"/v1/models/{name}", 404, f1, None, None),
        Req("POST", f"/v1/models/{name}/versions/1/activate", 404, f1, None, None, auth),
        Req("POST", f"/v2/models/{name}/infer", 404, f2, v2),
        Req("GET", f"/v2/models/{name}", 404, f2, None, None),
    ]


def version_requests(version: str, fragment: str) -> list[Req]:
    body, v2 = raw({"instances": [ROW]}), raw(v2_body())
    auth = [("Authorization", f"Bearer {TOKEN}")]
    return [
        Req("POST", f"/v1/models/iris/versions/{version}/predict", 404, fragment, body),
        Req("POST", f"/v1/models/iris/versions/{version}/activate", 404, fragment, None, None, auth),
        Req("POST", f"/v2/models/iris/versions/{version}/infer", 404, fragment, v2),
        Req("GET", f"/v2/models/iris/versions/{version}", 404, fragment, None, None),
        Req("GET", f"/v2/models/iris/versions/{version}/ready", 404, fragment, None, None),
    ]


# -- Authorization (admin calls: v1 activate and retrain; v2 has none) -----------------------------------------------

AUTH = {
    "missing": ([], "send exactly one 'Authorization: Bearer <token>' header"),
    "empty": ([("Authorization", "")], "missing or invalid bearer token"),
    "bearer-without-token": ([("Authorization", "Bearer ")], "missing or invalid bearer token"),
    "repeated-valid": (
        [("Authorization", f"Bearer {TOKEN}"), ("Authorization", f"Bearer {TOKEN}")],
        "send exactly one 'Authorization: Bearer <token>' header",
    ),
    "repeated-one-wrong": (
        [("Authorization", "Bearer nope"), ("Authorization", f"Bearer {TOKEN}")],
        "send exactly one",
    ),
    "last-byte-differs": ([("Authorization", f"Bearer {TOKEN[:-1]}{chr(ord(TOKEN[-1]) ^ 1)}")], "missing or invalid"),
    "prefix-of-token": ([("Authorization", f"Bearer {TOKEN[:-1]}")], "missing or invalid"),
    "token-plus-byte": ([("Authorization", f"Bearer {TOKEN}x")], "missing or invalid"),
    "basic-scheme": ([("Authorization", f"Basic {TOKEN}")], "missing or invalid"),
    "no-scheme": ([("Authorization", TOKEN)], "missing or invalid"),
    "non-ascii-token": ([("Authorization", f"Bearer {TOKEN[:-1]}é")], "missing or invalid"),
}


# -- query arguments: every route, one rule --------------------------------------------------------------------------

UNKNOWN_QUERY = "unknown query argument"
REPEATED_QUERY = "given more than once"
QUERIES = {
    "models-unknown": Req("GET", "/v1/models?foo=1", 422, "query argument 'foo': " + UNKNOWN_QUERY, None, None),
    "detail-unknown": Req("GET", "/v1/models/iris?version=1", 422, UNKNOWN_QUERY + " (this endpoint takes none)"),
    "predict-unknown": Req("POST", V1 + "?debug=1", 422, UNKNOWN_QUERY, raw({"instances": [ROW]})),
    "monitoring-misspelt": Req(
        "GET",
        "/v1/models/iris/monitoring?windwo=5",
        422,
        "'windwo': unknown query argument (this endpoint takes window)",
    ),
    "monitoring-repeated": Req(
        "GET", "/v1/models/iris/monitoring?window=1&window=2", 422, "'window': " + REPEATED_QUERY
    ),
    "monitoring-declared": Req("GET", "/v1/models/iris/monitoring?window=10", 200, ""),
    "jobs-repeated": Req("GET", "/v1/jobs?limit=1&offset=0&limit=2", 422, "'limit': " + REPEATED_QUERY),
    "jobs-declared": Req("GET", "/v1/jobs?model=iris&status=queued&limit=5&offset=0", 200, ""),
    "jobs-empty-name": Req("GET", "/v1/jobs?=1", 422, "query argument '': " + UNKNOWN_QUERY),
    "v2-unknown": Req("GET", "/v2/models/iris?foo=1", 422, "query argument 'foo': " + UNKNOWN_QUERY, None, None),
    "v2-infer-unknown": Req("POST", V2 + "?binary=1", 422, UNKNOWN_QUERY, raw(v2_body())),
    "ui-unknown": Req("GET", "/ui/?page=2", 422, UNKNOWN_QUERY, None, None),
    "metrics-unknown": Req("GET", "/metrics?name[]=x", 422, UNKNOWN_QUERY, None, None),
    "healthz-unknown": Req("GET", "/healthz?verbose", 422, UNKNOWN_QUERY, None, None),
    "openapi-unknown": Req("GET", "/openapi.json?v=3", 422, UNKNOWN_QUERY, None, None),
}


def all_cases():
    for case_id, req in QUERIES.items():
        yield pytest.param(req, id=f"query-{case_id}")
    for case_id, (v1, v2) in BODIES.items():
        yield pytest.param(v1, id=f"v1-{case_id}")
        yield pytest.param(v2, id=f"v2-{case_id}")
    for case_id, (name, fragment) in NAMES.items():
        for req in name_requests(name, fragment):
            yield pytest.param(
                req, id=f"name-{case_id}-{req.method}-{req.url.split('/')[1]}-{req.url.rsplit('/')[-1][:8]}"
            )
    for case_id, (version, fragment) in VERSIONS.items():
        for req in version_requests(version, fragment):
            yield pytest.param(
                req, id=f"version-{case_id}-{req.method}-{req.url.split('/')[1]}-{req.url.rsplit('/')[-1][:8]}"
            )
    for case_id, (headers, fragment) in AUTH.items():
        yield pytest.param(
            Req("POST", "/v1/models/iris/versions/1/activate", 401, fragment, None, None, headers),
            id=f"auth-{case_id}-activate",
        )
        yield pytest.param(
            Req("POST", "/v1/models/iris/retrain", 401, fragment, raw({"mode": "bogus"}), headers=headers),
            id=f"auth-{case_id}-retrain",
        )
        yield pytest.param(
            Req("DELETE", "/v1/jobs/0123456789abcdef", 401, fragment, None, None, headers), id=f"auth-{case_id}-cancel"
        )


# -- fixtures and checks -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("corpus-store"))


def make_app(root, **config):
    settings = {
        "NNSERVE_STORE": str(root),
        "NNSERVE_ADMIN_TOKEN": TOKEN,
        "NNSERVE_MAX_BODY_BYTES": LIMIT,
        "NNSERVE_MAX_ROWS": 1000,
        "TESTING": True,
    }
    return create_app({**settings, **config})


@pytest.fixture(scope="module")
def client(catalog):
    return make_app(catalog.root).test_client()


def send(client, req: Req):
    kwargs: dict = {"headers": list(req.headers)}
    if req.content_type is not None:
        kwargs["content_type"] = req.content_type
    if req.chunked:
        kwargs["input_stream"] = io.BytesIO(req.body or b"")
        kwargs["headers"].append(("Transfer-Encoding", "chunked"))
        # what gunicorn gives a chunked body: no length, and the server says the stream ends
        kwargs["environ_overrides"] = {"wsgi.input_terminated": True, "CONTENT_LENGTH": ""}
    elif req.body is not None:
        kwargs["data"] = req.body
    return client.open(req.url, method=req.method, **kwargs)


def check(response, req: Req):
    """The expected status; an error body of the API's shape whose message holds the fragment."""
    text = response.get_data(as_text=True)
    assert response.status_code == req.status, text[:2000]
    assert response.status_code < 500
    assert response.mimetype == "application/json", text[:2000]
    body = response.get_json()
    if req.status < 400:
        return body
    assert len(response.get_data()) <= MAX_ERROR_BYTES, f"{len(response.get_data())} bytes: {text[:300]}"
    assert "Traceback" not in text and 'File "' not in text
    if req.url.startswith("/v2"):
        assert set(body) == {"error"}, body
        message = body["error"]
    else:
        assert {"code", "status", "message"} <= set(body) <= {"code", "status", "message", "errors"}, body
        assert body["code"] == req.status and body["status"] == HTTPStatus(req.status).phrase
        message = body["message"]
    assert isinstance(message, str) and "\n" not in message
    assert req.fragment.lower() in message.lower(), f"{req.fragment!r} not in {message!r}"
    if req.status == 401:
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="nnserve"'
    return body


@pytest.mark.parametrize("req", list(all_cases()))
def test_bad_request(client, catalog, req):
    before = {name: (catalog.root / name / "ACTIVE").read_bytes() for name in catalog.versions}
    check(send(client, req), req)
    # nothing a refused request sends changes the store
    if req.status >= 400:
        assert {name: (catalog.root / name / "ACTIVE").read_bytes() for name in catalog.versions} == before


def test_the_valid_token_is_accepted(catalog, tmp_path):
    """The control for the Authorization corpus: the same call with the token as configured succeeds."""
    import shutil

    root = tmp_path / "store"
    shutil.copytree(catalog.root, root)
    client = make_app(root).test_client()
    response = client.post("/v1/models/iris/versions/1/activate", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"model": "iris", "version": 1, "previous_version": 2}


# -- 10 million zeros in one row -----------------------------------------------------------------------------------

ZEROS = 10_000_000
ZERO_ROW = b",".join([b"0"] * ZEROS)


@pytest.fixture(scope="module")
def roomy_client(catalog):
    """An app whose body limit lets 10 million zeros through (20 MB): the count of values stops them unparsed."""
    return make_app(catalog.root, NNSERVE_MAX_BODY_BYTES=32 << 20).test_client()


@pytest.mark.parametrize(
    ("req", "seconds"),
    [
        pytest.param(
            Req(
                "POST",
                V1,
                422,
                f"holds {ZEROS} JSON values (counting ','); a request for this model may hold at most 6024",
                b'{"instances": [[' + ZERO_ROW + b"]]}",
            ),
            10.0,
            id="v1-instances",
        ),
        pytest.param(
            Req(
                "POST",
                V1,
                422,
                f"holds {ZEROS} JSON values",
                b'{"instances": [' + ZERO_ROW + b"]}",
            ),
            10.0,
            id="v1-one-row-without-outer-list",
        ),
        pytest.param(
            Req(
                "POST",
                V2,
                400,
                "JSON values (counting ',')",
                b'{"inputs": [{"name": "input", "datatype": "FP64", "shape": [1, %d], "data": [' % ZEROS
                + ZERO_ROW
                + b"]}]}",
            ),
            10.0,
            id="v2-json-tensor",
        ),
    ],
)
def test_ten_million_zeros_in_one_row_is_refused_fast(roomy_client, req, seconds):
    start = time.perf_counter()
    response = send(roomy_client, req)
    elapsed = time.perf_counter() - start
    check(response, req)
    assert elapsed < seconds, f"{elapsed:.1f} s to refuse one over-wide row"


def test_ten_million_zeros_over_the_default_limit_is_413(client):
    req = Req("POST", V1, 413, f"larger than the limit of {LIMIT} bytes", b'{"instances": [[' + ZERO_ROW + b"]]}")
    check(send(client, req), req)


# -- JSON amplification: many tiny objects are refused before they are parsed -------------------------------------

EMPTIES = b",".join([b"{}"] * (2 * 10_000 + 1025))  # one more than a request may hold at NNSERVE_MAX_ROWS=10000


@pytest.fixture(scope="module")
def default_rows_client(catalog):
    return make_app(catalog.root, NNSERVE_MAX_BODY_BYTES=16 << 20, NNSERVE_MAX_ROWS=10_000).test_client()


@pytest.mark.parametrize(
    "req",
    [
        pytest.param(
            Req("POST", V1, 422, "a request may hold at most 21024", b'{"instances": [' + EMPTIES + b"]}"), id="v1"
        ),
        pytest.param(
            Req("POST", V1, 422, "holds 21025 JSON objects and arrays", b"[" + EMPTIES[3:] + b"]"), id="v1-bare"
        ),
        pytest.param(
            Req(
                "POST",
                V2,
                400,
                "a request may hold at most 21024",
                b'{"inputs": [{"name": "input", "datatype": "FP64", "shape": [1, 4], "data": [' + EMPTIES + b"]}]}",
            ),
            id="v2",
        ),
    ],
)
def test_too_many_objects_are_refused_before_parsing(default_rows_client, req):
    check(send(default_rows_client, req), req)


@pytest.mark.parametrize("item", [b"1e1", b'"ab"'])
@pytest.mark.parametrize("url", [V1, "/v1/models/iris/versions/1/predict", "/v1/models/iris/retrain"])
def test_more_values_than_the_model_can_take_are_refused_before_parsing(default_rows_client, url, item):
    body = b'{"instances": [[' + b",".join([item] * (10_000 * 5 + 1025)) + b"]]}"
    req = Req("POST", url, 401 if url.endswith("retrain") else 422, "", body)
    if req.status == 422:  # one more than 10,000 rows of 4 inputs and a target (and 1024) may hold
        req = Req(
            "POST",
            url,
            422,
            "holds 51025 JSON values (counting ','); a request for this model may hold at most 51024",
            body,
        )
    check(send(default_rows_client, req), req)


def test_ten_thousand_rows_of_every_shape_are_not_refused(default_rows_client):
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    bodies = {
        V1: [
            {"instances": [ROW] * 10_000},
            {"instances": [dict(zip(names, ROW, strict=True))] * 10_000},
            {"inputs": {n: [v] * 10_000 for n, v in zip(names, ROW, strict=True)}},
        ],
        V2: [
            {"inputs": [{"name": "input", "datatype": "FP64", "shape": [10_000, 4], "data": data}]}
            for data in ([ROW] * 10_000, ROW * 10_000)
        ],
    }
    for url, cases in bodies.items():
        for body in cases:
            response = default_rows_client.post(url, data=json.dumps(body), content_type="application/json")
            assert response.status_code == 200, response.get_data(as_text=True)[:500]
