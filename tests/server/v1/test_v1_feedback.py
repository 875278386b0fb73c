"""POST /v1/models/{name}/feedback: targets checked per row, joined to logged predictions, the rest reported."""

from __future__ import annotations

import pytest

from service.server.predlog import recorder
from service.store.monitoring import SqlitePredictionLog


@pytest.fixture
def logging_app(make_app, tiny_catalog_copy):
    return make_app(tiny_catalog_copy, NNSERVE_LOG_SAMPLE_RATE=1.0)


def predict(client, model, rows, request_id=None):
    headers = {"X-Request-ID": request_id} if request_id else {}
    response = client.post(f"/v1/models/{model}/predict", json={"instances": rows}, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_feedback_joins_logged_predictions_and_reports_the_rest(logging_app, tiny_catalog_copy, tiny_catalog_store):
    client = logging_app.test_client()
    rows = tiny_catalog_store.models["iris"].rows[:2].tolist()
    one = predict(client, "iris", rows[:1])["request_id"]
    two = predict(client, "iris", rows, request_id="batch-7")["request_id"]
    body = {
        "feedback": [
            {"request_id": one, "target": "setosa"},
            {"request_id": two, "target": "virginica", "row": 1},
            {"request_id": "never-seen", "target": "setosa"},
            {"request_id": two, "target": "setosa", "row": 5},
        ]
    }
    response = client.post("/v1/models/iris/feedback", json=body)  # no token: like predict
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {
        "model": "iris",
        "accepted": 2,
        "unlogged": [{"request_id": "never-seen", "row": 0}, {"request_id": "batch-7", "row": 5}],
    }
    labelled = SqlitePredictionLog(tiny_catalog_copy).recent("iris", 10, labelled=True)
    assert {(r.request_id, r.row, r.target) for r in labelled} == {(one, 0, "setosa"), ("batch-7", 1, "virginica")}


@pytest.mark.parametrize(
    ("model", "targets", "row", "fragment"),
    [
        ("iris", ["setosa", "rose"], 1, "unknown class 'rose'; the classes of model 'iris': setosa, versicolor"),
        ("iris", ["setosa", "setosa", 3], 2, "class labels of model 'iris' are non-empty strings; got 3"),
        ("digits", [1, "7"], 1, "class labels of model 'digits' are integers; got '7'"),
        ("digits", [True], 0, "are integers; got True"),
        ("digits", [42], 0, "unknown class 42"),
        ("diabetes", [150.0, "high"], 1, "targets of model 'diabetes' are finite numbers; got 'high'"),
        ("diabetes", [[1.0]], 0, "finite numbers; got [1.0]"),
    ],
)
def test_a_bad_target_is_422_naming_its_row(logging_app, assert_error, model, targets, row, fragment):
    body = {"feedback": [{"request_id": f"r{i}", "target": t} for i, t in enumerate(targets)]}
    response = logging_app.test_client().post(f"/v1/models/{model}/feedback", json=body)
    assert_error(response, 422, f"invalid feedback[{row}].target:", fragment)
    assert fragment in response.get_json()["errors"][f"feedback[{row}].target"][0]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"feedback": []},
        {"feedback": [{"target": "setosa"}]},
        {"feedback": [{"request_id": "a"}]},
        {"feedback": [{"request_id": "a b", "target": "setosa"}]},
        {"feedback": [{"request_id": "a", "target": "setosa", "row": -1}]},
        {"feedback": [{"request_id": "a", "target": "setosa", "weight": 2}]},
        {"feedback": [{"request_id": "a", "target": None}]},
    ],
)
def test_a_malformed_body_is_422(logging_app, body):
    response = logging_app.test_client().post("/v1/models/iris/feedback", json=body)
    assert response.status_code == 422, response.get_json()


def test_feedback_for_an_unknown_model_is_404(logging_app, assert_error):
    body = {"feedback": [{"request_id": "a", "target": "setosa"}]}
    assert_error(logging_app.test_client().post("/v1/models/nope/feedback", json=body), 404, "nope")


def test_feedback_right_after_predicting_is_joined(logging_app):
    """The worker writes its own pending predictions before joining: no race with the writer thread."""
    client = logging_app.test_client()
    for i in range(20):
        rid = predict(client, "iris", [[5.0, 3.0, 1.5, 0.2]])["request_id"]
        answer = client.post("/v1/models/iris/feedback", json={"feedback": [{"request_id": rid, "target": "setosa"}]})
        assert answer.get_json()["accepted"] == 1, (i, answer.get_json())
    with logging_app.app_context():
        assert len(recorder().log.recent("iris", 100, labelled=True)) == 20
