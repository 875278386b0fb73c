"""service.client.Client: every method through the Flask test client and over HTTP to ``nnserve serve``."""

import copy

import pytest
from client_support import TOKEN, FlaskClient
from helpers import free_port

from service.client import Activation, Client, Job, JobPage, ModelDetail, ModelSummary, NnserveError, Prediction

IRIS_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
IRIS_NAMED = [
    dict(zip(["sepal_length", "sepal_width", "petal_length", "petal_width"], r, strict=True)) for r in IRIS_ROWS
]
SPECIES = {"setosa", "versicolor", "virginica"}


def test_predict_lists_and_named_rows_agree(any_client):
    result = any_client.predict("iris", IRIS_ROWS)
    assert isinstance(result, Prediction)
    assert result.model == "iris" and result.version == 1
    assert len(result.predictions) == 2 and set(result.predictions) <= SPECIES
    assert len(result.probabilities) == 2 and all(abs(sum(p) - 1) < 1e-5 for p in result.probabilities)
    assert any_client.predict("iris", IRIS_NAMED) == result
    assert any_client.predict("iris", IRIS_ROWS, version=1) == result


def test_predict_regressor_has_no_probabilities(any_client):
    result = any_client.predict("diabetes", [[59, 2, 32.1, 101, 157, 93.2, 38, 4, 4.8598, 87]])
    assert result.probabilities is None
    assert isinstance(result.predictions[0], float)


def test_models_and_model(any_client):
    summaries = any_client.models()
    assert all(isinstance(m, ModelSummary) for m in summaries)
    by_name = {m.name: m for m in summaries}
    assert set(by_name) == {"iris", "diabetes"}
    assert by_name["iris"].task == "classification" and by_name["iris"].n_features == 4
    assert set(by_name["iris"].classes) == SPECIES
    detail = any_client.model("iris")
    assert isinstance(detail, ModelDetail)
    assert detail.active_version == 1 and [v.version for v in detail.versions] == [1]
    assert detail.feature_names == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert detail.versions[0].ok and detail.versions[0].active


def test_unknown_model_is_404(any_client):
    with pytest.raises(NnserveError) as caught:
        any_client.predict("no_such_model", IRIS_ROWS)
    assert caught.value.status == 404 and "no_such_model" in caught.value.message
    with pytest.raises(NnserveError) as caught:
        any_client.model("no_such_model")
    assert caught.value.status == 404


def test_bad_rows_are_422_with_field_errors(any_client):
    with pytest.raises(NnserveError) as caught:
        any_client.predict("iris", [[1.0, 2.0]])
    err = caught.value
    assert err.status == 422
    assert "rows have 2 values" in err.message and "expects 4" in err.message
    assert "instances" in err.errors
    assert str(err) == f"422: {err.message}"


def test_a_name_cannot_change_the_path(any_client):
    """A name with a slash is sent as one percent-encoded segment: no other route is reached."""
    with pytest.raises(NnserveError) as caught:
        any_client.model("iris/versions")
    assert caught.value.status in (400, 404)


def test_admin_calls_without_or_with_a_wrong_token_are_401(any_client):
    wrong_token = "wrong-token-that-must-not-leak"
    anonymous, wrong = copy.copy(any_client), copy.copy(any_client)
    anonymous._token, wrong._token = None, wrong_token
    for client in (anonymous, wrong):
        for call in (lambda c: c.activate("iris", 1), lambda c: c.retrain("iris"), lambda c: c.cancel("x" * 32)):
            with pytest.raises(NnserveError) as caught:
                call(client)
            assert caught.value.status == 401, caught.value
            assert "bearer" in caught.value.message.lower()
            assert wrong_token not in str(caught.value) and wrong_token not in repr(caught.value)
    assert wrong_token not in repr(wrong) and TOKEN not in repr(any_client)


def test_activate_and_its_errors(any_client):
    done = any_client.activate("iris", 1)
    assert done == Activation("iris", 1, 1)
    with pytest.raises(NnserveError) as caught:
        any_client.activate("iris", 99)
    assert caught.value.status == 404


def test_retrain_job_jobs_cancel(any_client):
    job = any_client.retrain("iris", hyperparameters={"epochs": 100000, "patience": 100000}, promote="never")
    assert isinstance(job, Job) and job.model == "iris" and job.status in ("queued", "running")
    assert job.request["promote"] == "never"
    assert any_client.job(job.id).request["promote"] == "never"  # the token is sent on reads too
    anonymous = copy.copy(any_client)
    anonymous._token = None
    assert anonymous.job(job.id).request is None  # the server hides internals from callers without it
    page = any_client.jobs(model="iris")
    assert isinstance(page, JobPage) and job.id in [j.id for j in page.jobs] and page.total >= 1
    assert any_client.jobs(model="diabetes").jobs == [] or all(j.model == "diabetes" for j in page.jobs)
    cancelled = any_client.cancel(job.id)
    assert cancelled.cancel_requested or cancelled.status == "cancelled"
    if isinstance(any_client, FlaskClient):  # no worker runs beside the test client: a queued job is final at once
        assert cancelled.status == "cancelled" and any_client.wait(job, timeout=1).status == "cancelled"
    else:
        assert any_client.wait(job, timeout=60, poll=0.1).status == "cancelled"
    with pytest.raises(NnserveError) as caught:
        any_client.job("0" * 32)
    assert caught.value.status == 404


def test_retrain_rejects_bad_data_with_422(any_client):
    with pytest.raises(NnserveError) as caught:
        any_client.retrain("iris", [[1.0, 2.0, 3.0, 4.0]], ["not-a-species-but-a-string"] * 2)
    assert caught.value.status == 422 and "targets" in caught.value.errors
    with pytest.raises(ValueError):
        any_client.retrain("iris", instances=[[1.0, 2.0, 3.0, 4.0]])
    with pytest.raises(NnserveError) as caught:  # the store logs no prediction: no labelled rows to train on
        any_client.retrain("iris", feedback="evaluate")
    assert caught.value.status == 422 and "has no trusted labelled predictions" in caught.value.errors["feedback"][0]


def test_wait_follows_a_real_retrain_to_a_new_version(live):
    client = Client(live.url, token=TOKEN)
    rows = [r for r in IRIS_ROWS for _ in range(5)]
    targets = ["setosa", "virginica"] * 5
    job = client.retrain("iris", rows, targets, hyperparameters={"epochs": 3}, promote="never")
    done = client.wait(job, timeout=120, poll=0.2)
    assert done.status == "succeeded", done
    assert done.result["promoted"] is False and done.result["version"] >= 2
    assert done.result["version"] in [v.version for v in client.model("iris").versions]
    assert client.predict("iris", IRIS_ROWS, version=done.result["version"]).version == done.result["version"]


def test_wait_times_out_as_nnserve_error(flask_app):
    client = FlaskClient(flask_app, token=TOKEN)
    job = client.retrain("iris")
    with pytest.raises(NnserveError) as caught:
        client.wait(job, timeout=0.3, poll=0.1)
    assert caught.value.status == 0 and "still queued" in caught.value.message


def test_connection_refused_is_status_0():

    client = Client(f"http://127.0.0.1:{free_port()}", token=TOKEN, timeout=2)
    with pytest.raises(NnserveError) as caught:
        client.models()
    assert caught.value.status == 0 and "cannot reach" in caught.value.message
    assert TOKEN not in str(caught.value)


@pytest.mark.parametrize("url", ["ftp://host", "127.0.0.1:8000", "http://user:pw@host", "http://host/?token=x"])
def test_bad_urls_are_refused(url):
    with pytest.raises(ValueError):
        Client(url)
