"""The committed openapi.json is the one the server serves, and every operation has a unique operationId."""

import json
from pathlib import Path

from click.testing import CliRunner

from service.cli import main

COMMITTED = Path(__file__).resolve().parents[2] / "openapi.json"
REGENERATE = "regenerate it with: python -m service.cli openapi > openapi.json   (or: make openapi)"
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def served(flask_app) -> dict:
    response = flask_app.test_client().get("/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def test_committed_document_matches_the_served_one(flask_app):
    assert json.loads(COMMITTED.read_text()) == served(flask_app), f"openapi.json is out of date: {REGENERATE}"


def test_committed_document_is_pretty_sorted_and_ends_with_a_newline():
    text = COMMITTED.read_text()
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n", REGENERATE


def test_the_regeneration_command_prints_the_served_document(flask_app):
    result = CliRunner().invoke(main, ["openapi"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == served(flask_app)


def test_every_operation_has_a_unique_operation_id(flask_app):
    ids = [
        operation.get("operationId")
        for item in served(flask_app)["paths"].values()
        for method, operation in item.items()
        if method in METHODS
    ]
    assert ids and None not in ids
    assert len(ids) == len(set(ids)), sorted(ids)
    assert {"getModels", "getModelDetail", "predict", "predictVersion", "activate", "retrain", "getJobs"} <= set(ids)
    assert {"getJob", "deleteJob"} <= set(ids)
