"""Every error the v1 API answers: status, the common body shape and a message naming the problem."""

import gzip
import json
import zlib

import pytest

IRIS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
ROW = [5.1, 3.5, 1.4, 0.2]
PREDICT = "/v1/models/iris/predict"


def named(row, names=IRIS):
    return dict(zip(names, row, strict=True))


def columns(row=ROW, names=IRIS, repeat=1):
    return {n: [v] * repeat for n, v in zip(names, row, strict=True)}


# -- 422: schema, shape and value errors -------------------------------------------------------------------------

INVALID_BODIES = {
    # name: (body, field named in errors or None, fragments of the message)
    "string_value": ({"instances": [[5.1, 3.5, "1.4", 0.2]]}, "instances", ["row 0, column 2", "string"]),
    "string_row": ({"instances": ["5.1, 3.5, 1.4, 0.2"]}, "instances", ["row 0", "string"]),
    "strings_only": ({"instances": [["a", "b", "c", "d"]]}, "instances", ["row 0, column 0", "string"]),
    "instances_a_string": ({"instances": "5.1,3.5,1.4,0.2"}, "instances", ["list of rows", "string"]),
    "booleans_only": ({"instances": [[True, False, True, True]]}, "instances", ["row 0, column 0", "boolean"]),
    "boolean_among_numbers": ({"instances": [[5.1, True, 1.4, 0.2]]}, "instances", ["row 0, column 1", "boolean"]),
    "boolean_in_later_row": ({"instances": [ROW, [5.1, 3.5, 1.4, False]]}, "instances", ["row 1, column 3", "boolean"]),
    "boolean_in_single_row": ({"instances": [5.1, 3.5, 1.4, True]}, "instances", ["column 3", "boolean"]),
    "boolean_first_in_single_row": ({"instances": [True, 3.5, 1.4, 0.2]}, "instances", ["row 0", "boolean"]),
    "instances_a_boolean": ({"instances": True}, "instances", ["boolean"]),
    "null_value": ({"instances": [[5.1, None, 1.4, 0.2]]}, "instances", ["row 0, column 1", "null"]),
    "null_row": ({"instances": [ROW, None]}, "instances", ["row 1", "null"]),
    "instances_null": ({"instances": None}, "instances", ["null"]),
    "nested_too_deep": ({"instances": [[ROW]]}, "instances", ["row 0, column 0", "nested too deep"]),
    "nested_value": ({"instances": [[5.1, [3.5], 1.4, 0.2]]}, "instances", ["column 1", "nested too deep"]),
    "ragged": ({"instances": [ROW, [5.1, 3.5, 1.4]]}, "instances", ["row 1 has 3 values", "equal length"]),
    "too_wide": ({"instances": [[*ROW, 1.0]]}, "instances", ["rows have 5 values, model 'iris' expects 4"]),
    "too_narrow": ({"instances": [ROW[:3]]}, "instances", ["rows have 3 values, model 'iris' expects 4"]),
    "empty_row": ({"instances": [[]]}, "instances", ["model 'iris' expects 4"]),
    "empty_list": ({"instances": []}, "instances", ["empty"]),
    "instances_an_object": ({"instances": named(ROW)}, "instances", ["list of rows", "object"]),
    "both_forms": ({"instances": [ROW], "inputs": columns()}, "_schema", ["exactly one"]),
    "neither_form": ({}, "_schema", ["exactly one", "instances", "inputs"]),
    "unknown_key": ({"instances": [ROW], "model": "iris"}, "model", ["model", "Unknown field"]),
    "object_row_missing_key": ({"instances": [named(ROW[:3], IRIS[:3])]}, "instances", ["missing ['petal_width']"]),
    "object_row_unknown_key": (
        {"instances": [{**named(ROW), "petal_area": 1.0}]},
        "instances",
        ["row 0", "unknown ['petal_area']"],
    ),
    "object_row_renamed_key": (
        {"instances": [named(ROW), {**named(ROW[:3], IRIS[:3]), "petal_size": 0.2}]},
        "instances",
        ["row 1", "missing ['petal_width']", "unknown ['petal_size']"],
    ),
    "object_row_string_value": ({"instances": [{**named(ROW), "sepal_width": "wide"}]}, "instances", ["string"]),
    "object_row_boolean_value": ({"instances": [{**named(ROW), "sepal_width": True}]}, "instances", ["boolean"]),
    "object_then_list_row": ({"instances": [named(ROW), ROW]}, "instances", ["row 1", "every row must be one"]),
    "list_then_object_row": ({"instances": [ROW, named(ROW)]}, "instances", ["row 1", "object"]),
    "columns_unequal_lengths": (
        {"inputs": {"sepal_length": [5.1, 6.0], "sepal_width": [3.5], "petal_length": [1.4], "petal_width": [0.2]}},
        "inputs",
        ["different lengths"],
    ),
    "columns_missing_feature": ({"inputs": columns(ROW[:3], IRIS[:3])}, "inputs", ["missing"]),
    "columns_unknown_feature": (
        {"inputs": {**columns(), "colour": [1.0]}},
        "inputs",
        ["unknown ['colour']"],
    ),
    "column_not_a_list": ({"inputs": {**columns(), "petal_width": 0.2}}, "inputs", ["list"]),
    "column_string_value": (
        # the position is the client's: row 1 of column petal_width (column 3), not the transposed one
        {"inputs": {**columns(repeat=2), "petal_width": [0.2, "x"]}},
        "inputs",
        ["row 1, column 3", "string"],
    ),
    "columns_empty": ({"inputs": {n: [] for n in IRIS}}, "inputs", ["empty"]),
    "inputs_a_list": ({"inputs": [ROW]}, "inputs", ["mapping"]),
}


@pytest.mark.parametrize("case", sorted(INVALID_BODIES))
def test_invalid_body_is_422(client, assert_error, case):
    body, field, fragments = INVALID_BODIES[case]
    error = assert_error(client.post(PREDICT, json=body), 422, *fragments)
    assert field in error["errors"], error
    assert any(all(f in m for f in fragments[-1:]) for m in error["errors"][field]), error


@pytest.mark.parametrize("route", ["/v1/models/iris:predict", "/v1/models/iris/versions/2/predict"])
def test_other_predict_routes_validate_the_same_way(client, assert_error, route):
    assert_error(client.post(route, json={"instances": [[*ROW, 1.0]]}), 422, "rows have 5 values")
    assert_error(client.post(route, json={"instances": [[5.1, True, 1.4, 0.2]]}), 422, "boolean")


def test_wrong_width_message_lists_the_feature_names(client, assert_error):
    error = assert_error(client.post(PREDICT, json={"instances": [[*ROW, 1.0]]}), 422)
    for name in IRIS:
        assert name in error["message"]


@pytest.mark.parametrize("body", [b"[1, 2, 3]", b'"instances"', b"null", b"42"])
def test_body_not_an_object_is_422(client, assert_error, body):
    assert_error(client.post(PREDICT, data=body, content_type="application/json"), 422, "input type")


NON_FINITE = {
    # as Python's json.dumps writes them: raw NaN / Infinity literals
    "nan": (json.dumps({"instances": [[float("nan"), 3.5, 1.4, 0.2]]}), "NaN"),
    "infinity": (json.dumps({"instances": [[5.1, float("inf"), 1.4, 0.2]]}), "Infinity"),
    "minus_infinity": (json.dumps({"instances": [[5.1, 3.5, float("-inf"), 0.2]]}), "Infinity"),
    "nan_in_object_row": (json.dumps({"instances": [{**named(ROW), "petal_width": float("nan")}]}), "NaN"),
    "nan_in_columns": (json.dumps({"inputs": {n: [1.0, float("nan")] for n in IRIS}}), "NaN"),
    "overflow": ('{"instances": [[1e400, 3.5, 1.4, 0.2]]}', "too large"),
    "negative_overflow": ('{"instances": [[-1e400, 3.5, 1.4, 0.2]]}', "too large"),
}


@pytest.mark.parametrize("case", sorted(NON_FINITE))
def test_non_finite_numbers_are_422_and_named(client, assert_error, case):
    text, named_literal = NON_FINITE[case]
    assert_error(client.post(PREDICT, data=text, content_type="application/json"), 422, named_literal)


def test_nan_message_is_not_malformed_json(client, assert_error):
    text = json.dumps({"instances": [[float("nan"), 3.5, 1.4, 0.2]]})
    error = assert_error(client.post(PREDICT, data=text, content_type="application/json"), 422)
    assert "malformed" not in error["message"].lower()


def test_deep_nesting_is_422(client, assert_error):
    text = '{"instances": ' + "[" * 2000 + "]" * 2000 + "}"
    assert_error(client.post(PREDICT, data=text, content_type="application/json"), 422, "nested too deep")


@pytest.fixture
def limited_client(make_app):
    """An app accepting at most 3 rows per prediction."""
    return make_app(NNSERVE_MAX_ROWS=3).test_client()


def test_too_many_rows_is_422(limited_client, assert_error):
    error = assert_error(limited_client.post(PREDICT, json={"instances": [ROW] * 4}), 422, "4 rows", "at most 3")
    assert "instances" in error["errors"]
    assert limited_client.post(PREDICT, json={"instances": [ROW] * 3}).status_code == 200


def test_too_many_object_rows_is_422(limited_client, assert_error):
    assert_error(limited_client.post(PREDICT, json={"instances": [named(ROW)] * 4}), 422, "at most 3")


def test_too_many_column_values_is_422(limited_client, assert_error):
    body = {"inputs": columns(repeat=4)}
    assert_error(limited_client.post(PREDICT, json=body), 422, "4 rows", "at most 3")
    body = {"inputs": columns(repeat=3)}
    assert limited_client.post(PREDICT, json=body).status_code == 200


def test_one_row_wider_than_the_row_limit_is_one_row(limited_client):
    # a single row without the outer list has 4 values: that is its width, not 4 rows
    response = limited_client.post(PREDICT, json={"instances": ROW})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert len(response.get_json()["predictions"]) == 1


# -- 400: not JSON ---------------------------------------------------------------------------------------------------

MALFORMED = {
    "truncated": (b'{"instances": [[5.1, 3.5, 1.4, 0.2]]', "malformed JSON"),
    "open_brace": (b"{", "malformed JSON"),
    "single_quotes": (b"{'instances': [[5.1, 3.5, 1.4, 0.2]]}", "malformed JSON"),
    "trailing_garbage": (b'{"instances": [[5.1, 3.5, 1.4, 0.2]]} x', "malformed JSON"),
    "trailing_comma": (b'{"instances": [[5.1, 3.5, 1.4, 0.2],]}', "malformed JSON"),
    "not_json": (b"instances=5.1,3.5,1.4,0.2", "malformed JSON"),
    "empty": (b"", "empty"),
    "invalid_utf8": (b'{"instances": [["\xff\xfe"]]}', "UTF-8"),
    "latin1": ('{"instances": [["été"]]}'.encode("latin-1"), "UTF-8"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_body_is_400(client, assert_error, case):
    data, fragment = MALFORMED[case]
    assert_error(client.post(PREDICT, data=data, content_type="application/json"), 400, fragment)


# -- 404: unknown route, model or version ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/nope"),
        ("GET", "/v1"),
        ("GET", "/v1/models/iris/versions"),
        ("GET", "/v1/models/iris/versions/1"),
        ("POST", "/v1/models/iris/predictions"),
        ("POST", "/v1/models/..%2f..%2fetc/predict"),
        ("GET", "/v1/models/..%2f..%2fetc"),
        ("GET", "/v1/models/..%2f..%2fetc%2fpasswd"),
        ("GET", "/docs/assets/nope.js"),
        ("GET", "/docs/assets/../../../etc/passwd"),
        ("GET", "/docs/assets/%2e%2e/%2e%2e/etc/passwd"),
    ],
)
def test_unknown_route_is_404(client, assert_error, method, path):
    assert_error(client.open(path, method=method, json={"instances": [ROW]}), 404)


@pytest.mark.parametrize(
    "name",
    ["nope", "iris2", "IRIS", "..", "%2e%2e", ".hidden", "-iris", "%C3%A9", "ir%C3%ADs", "%EF%BD%89ris", "i" * 65],
)
@pytest.mark.parametrize("route", ["/v1/models/{name}/predict", "/v1/models/{name}:predict"])
def test_unknown_or_invalid_model_is_404(client, assert_error, name, route):
    error = assert_error(client.post(route.format(name=name), json={"instances": [ROW]}), 404, "model")
    assert "/" not in error["message"].replace("'/'", ""), "no filesystem path in the message"


@pytest.mark.parametrize(
    "version", ["0", "-1", "1e3", "1.0", "01", "+1", "abc", "99999999999999999999", "2147483648", "3"]
)
def test_unknown_or_invalid_version_is_404(client, assert_error, version):
    path = f"/v1/models/iris/versions/{version}/predict"
    assert_error(client.post(path, json={"instances": [ROW]}), 404, "version", version)


def test_pinned_version_of_unknown_model_is_404(client, assert_error):
    assert_error(client.post("/v1/models/nope/versions/1/predict", json={"instances": [ROW]}), 404, "'nope'")


# -- 405 ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path, allowed",
    [
        ("DELETE", "/v1/models", "GET"),
        ("POST", "/v1/models", "GET"),
        ("PUT", "/v1/models/iris", "GET"),
        ("GET", "/v1/models/iris/predict", "POST"),
        ("DELETE", "/v1/models/iris:predict", "POST"),
        ("GET", "/v1/models/iris/versions/1/predict", "POST"),
        ("GET", "/v1/models/iris/versions/2/activate", "POST"),
        ("POST", "/healthz", "GET"),
        ("DELETE", "/readyz", "GET"),
    ],
)
def test_wrong_method_is_405(client, assert_error, method, path, allowed):
    response = client.open(path, method=method)
    assert_error(response, 405, "method")
    assert allowed in [m.strip() for m in response.headers.get("Allow", "").split(",")], response.headers


# -- 413 ------------------------------------------------------------------------------------------------------------


def test_body_over_the_limit_is_413(make_app, assert_error):
    client = make_app(NNSERVE_MAX_BODY_BYTES=1024).test_client()
    small = json.dumps({"instances": [ROW] * 10})
    assert len(small) < 1024
    assert client.post(PREDICT, data=small, content_type="application/json").status_code == 200
    big = json.dumps({"instances": [ROW] * 100})
    assert len(big) > 1024
    assert_error(client.post(PREDICT, data=big, content_type="application/json"), 413, "limit")


def test_body_over_the_limit_is_413_even_when_malformed(make_app, assert_error):
    client = make_app(NNSERVE_MAX_BODY_BYTES=1024).test_client()
    assert_error(client.post(PREDICT, data=b"{" * 4096, content_type="application/json"), 413)


# -- 415 ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "text/json", "application/xml", "application/octet-stream"],
)
def test_wrong_content_type_is_415(client, assert_error, content_type):
    body = json.dumps({"instances": [ROW]})
    assert_error(client.post(PREDICT, data=body, content_type=content_type), 415, "Content-Type", content_type)


def test_missing_content_type_is_415(client, assert_error):
    response = client.post(PREDICT, data=json.dumps({"instances": [ROW]}))
    assert "Content-Type" not in response.request.headers
    assert_error(response, 415, "Content-Type", "application/json")


@pytest.mark.parametrize("path", [PREDICT, "/v1/models/iris/explain"])
@pytest.mark.parametrize(("encoding", "compress"), [("gzip", gzip.compress), ("deflate", zlib.compress)])
def test_a_compressed_json_body_is_415_naming_the_encoding(client, assert_error, path, encoding, compress):
    """v1 reads JSON as sent (v2 inflates gzip and deflate): a compressed body is refused for its encoding, not
    as 'not valid UTF-8', which is all its bytes would say."""
    body = compress(json.dumps({"instances": [ROW]}).encode())
    response = client.post(path, data=body, content_type="application/json", headers={"Content-Encoding": encoding})
    assert_error(response, 415, f"Content-Encoding {encoding!r}", "uncompressed")


# -- one reader for every JSON body -----------------------------------------------------------------------------

JSON_BODY_ROUTES = [
    PREDICT,
    "/v1/models/iris:predict",
    "/v1/models/iris/versions/1/predict",
    "/v1/models/iris/explain",
    "/v1/models/iris/versions/1/explain",
    "/v1/models/iris/feedback",
    "/v1/models/iris/retrain",
]


@pytest.fixture
def copy_client(make_app, tiny_catalog_copy):
    """A client of a copy of the catalog: feedback and retrain are audited, even when refused, in the store's log."""
    return make_app(tiny_catalog_copy).test_client()


@pytest.mark.parametrize("path", JSON_BODY_ROUTES)
def test_every_json_body_route_refuses_a_wrong_content_type_alike(copy_client, admin_headers, path):
    response = copy_client.post(path, data="{}", content_type="text/plain", headers=admin_headers)
    assert response.status_code == 415
    assert response.get_json() == {
        "code": 415,
        "status": "Unsupported Media Type",
        "message": "Content-Type must be application/json, got 'text/plain'",
    }


@pytest.mark.parametrize("path", JSON_BODY_ROUTES)
def test_every_json_body_route_answers_its_schema_refusal_per_field(copy_client, admin_headers, path):
    """The fields at fault are ``errors``' keys (not nested under a location), the first named in the message."""
    response = copy_client.post(path, json={"bogus": 1}, headers=admin_headers)
    assert response.status_code == 422
    body = response.get_json()
    assert body["errors"]["bogus"] == ["Unknown field."]
    assert body["message"].startswith("invalid request: ")
    assert set(body) == {"code", "status", "message", "errors"}


def test_a_json_body_is_declared_with_body_not_arguments():
    """``Blueprint.arguments`` would read a JSON body without nnserve's content-type, encoding and size rules."""
    from marshmallow import Schema

    from service.server.blueprint import Blueprint

    blp = Blueprint("bodies", __name__)
    with pytest.raises(TypeError, match=r"Blueprint\.body"):
        blp.arguments(Schema)
    assert callable(blp.arguments(Schema, location="query"))


# -- 500 ------------------------------------------------------------------------------------------------------------


@pytest.fixture
def failing_client(make_app):
    app = make_app()

    @app.get("/v1/boom")
    def boom():
        raise RuntimeError("secret internal detail /srv/keys")

    return app.test_client()


def test_unexpected_exception_is_500_without_details(failing_client, assert_error):
    response = failing_client.get("/v1/boom", headers={"X-Request-ID": "req-500.test"})
    error = assert_error(response, 500, "req-500.test")
    assert set(error) == {"code", "status", "message"}
    text = response.get_data(as_text=True)
    for leak in ("secret", "/srv/keys", "RuntimeError", "Traceback", "boom"):
        assert leak not in text
    assert response.headers["X-Request-ID"] == "req-500.test"


def test_unexpected_exception_names_the_generated_request_id(failing_client, assert_error):
    response = failing_client.get("/v1/boom")
    request_id = response.headers["X-Request-ID"]
    assert request_id
    assert_error(response, 500, request_id)
