"""Request ids, security headers, the OpenAPI document and the bundled Swagger UI."""

import re

import pytest
from openapi_spec_validator import validate

ROW = [5.1, 3.5, 1.4, 0.2]
V1_OPERATIONS = {
    ("/healthz", "get"),
    ("/readyz", "get"),
    ("/v1/models", "get"),
    ("/v1/models/{name}", "get"),
    ("/v1/models/{name}/predict", "post"),
    ("/v1/models/{name}:predict", "post"),
    ("/v1/models/{name}/versions/{version}/predict", "post"),
    ("/v1/models/{name}/versions/{version}/activate", "post"),
}

# -- request ids and headers -----------------------------------------------------------------------------------------

REQUESTS = {
    "health": ("GET", "/healthz", None),
    "models": ("GET", "/v1/models", None),
    "predict": ("POST", "/v1/models/iris/predict", {"instances": [ROW]}),
    "error_404": ("GET", "/v1/models/nope", None),
    "error_422": ("POST", "/v1/models/iris/predict", {"instances": []}),
    "error_405": ("DELETE", "/v1/models", None),
    "docs": ("GET", "/docs", None),
    "openapi": ("GET", "/openapi.json", None),
}


@pytest.mark.parametrize("case", sorted(REQUESTS))
def test_a_well_formed_request_id_is_echoed(client, case):
    method, path, body = REQUESTS[case]
    request_id = f"trace-{case}:01.AB_x"
    response = client.open(path, method=method, json=body, headers={"X-Request-ID": request_id})
    assert response.headers["X-Request-ID"] == request_id
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        *REQUESTS.values(),
        ("GET", "/metrics", None),
        ("GET", "/docs/assets/swagger-ui-bundle.js", None),
        (
            "POST",
            "/v2/models/iris/infer",
            {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": ROW}]},
        ),
        ("GET", "/v2/nope", None),
        ("GET", "/ui/", None),
    ],
)
def test_every_answer_carries_its_request_id_and_nosniff_once(client, method, path, body):
    """The after-request hook adds them to whatever a view answered (none sets either): never a second copy."""
    response = client.open(path, method=method, json=body)
    assert len(response.headers.getlist("X-Request-ID")) == 1
    assert response.headers.getlist("X-Content-Type-Options") == ["nosniff"]


@pytest.mark.parametrize("case", sorted(REQUESTS))
def test_a_request_id_is_generated_otherwise(client, case):
    method, path, body = REQUESTS[case]
    first = client.open(path, method=method, json=body).headers["X-Request-ID"]
    second = client.open(path, method=method, json=body).headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", first), first
    assert first != second


@pytest.mark.parametrize(
    "given",
    ["", "has space", "a" * 129, "semi;colon", "<script>", 'quote"d', "caf\u00e9".encode().decode("latin-1")],
)
def test_a_malformed_request_id_is_replaced(client, given):
    response = client.get("/healthz", headers={"X-Request-ID": given})
    returned = response.headers["X-Request-ID"]
    assert returned != given
    assert re.fullmatch(r"[0-9a-f]{32}", returned), returned


def test_a_128_character_request_id_is_accepted(client):
    given = "r" * 128
    assert client.get("/healthz", headers={"X-Request-ID": given}).headers["X-Request-ID"] == given


def test_docs_assets_carry_nosniff(client):
    response = client.get("/docs/assets/swagger-ui-bundle.js")
    assert response.headers["X-Content-Type-Options"] == "nosniff"


# -- OpenAPI ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def spec(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def test_openapi_document_is_valid(spec):
    validate(spec)
    assert spec["openapi"].startswith("3.")
    assert spec["info"]["title"] == "nnserve"


def test_openapi_lists_every_v1_operation(spec):
    operations = {(path, method) for path, item in spec["paths"].items() for method in item if method != "parameters"}
    missing = V1_OPERATIONS - operations
    assert not missing, f"missing from the OpenAPI document: {sorted(missing)}"


def test_openapi_activate_requires_the_bearer_scheme(spec):
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {"type": "http", "scheme": "bearer"}
    activate = spec["paths"]["/v1/models/{name}/versions/{version}/activate"]["post"]
    assert activate["security"] == [{"bearerAuth": []}]
    # feedback takes a key or feedback tokens; predictions a key (NNSERVE_AUTH=closed) or none; reads document none
    assert spec["paths"]["/v1/models/{name}/feedback"]["post"]["security"] == [{"bearerAuth": []}, {}]
    predictions = {
        (p, "post")
        for p in (
            "/v1/models/{name}/predict",
            "/v1/models/{name}:predict",
            "/v1/models/{name}/versions/{version}/predict",
        )
    }
    for path, method in predictions:
        assert spec["paths"][path][method]["security"] == [{}, {"bearerAuth": []}], path
    assert "security" not in spec
    for path, method in V1_OPERATIONS - predictions:
        if method == "get":
            assert "security" not in spec["paths"][path][method], (path, method)


def resolve(spec, node):
    while "$ref" in node:
        *_, section, name = node["$ref"].split("/")
        node = spec["components"][section][name]
    return node


@pytest.mark.parametrize(
    "path", ["/v1/models/{name}/predict", "/v1/models/{name}:predict", "/v1/models/{name}/versions/{version}/predict"]
)
def test_openapi_predict_operations_describe_their_body(spec, path):
    operation = spec["paths"][path]["post"]
    request = resolve(spec, operation["requestBody"]["content"]["application/json"]["schema"])
    assert {"instances", "inputs"} <= set(request["properties"])
    response = resolve(spec, operation["responses"]["200"]["content"]["application/json"]["schema"])
    assert {"model", "version", "predictions", "probabilities"} <= set(response["properties"])


# -- Swagger UI ------------------------------------------------------------------------------------------------------


def test_docs_page_uses_local_assets(client):
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    references = re.findall(r'(?:src|href)="([^"]+)"', html)
    assets = [r for r in references if r.startswith("/docs/assets/")]
    assert assets == references, f"non-local references: {sorted(set(references) - set(assets))}"
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets), assets
    assert "/openapi.json" in html
    for asset in assets:
        served = client.get(asset)
        assert served.status_code == 200, asset
        assert len(served.data) > 1000, asset
        assert served.mimetype in ("text/javascript", "application/javascript", "text/css"), (asset, served.mimetype)
