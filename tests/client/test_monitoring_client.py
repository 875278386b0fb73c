"""Feedback and monitoring from Python (``Client``) and from the shell (``nnserve feedback``, ``nnserve monitoring``),
through the Flask test client on a store trained by the CLI (whose versions carry reference statistics)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from client_support import TOKEN, FlaskClient
from helpers import monitoring_pass

from service import create_app
from service.cli import main, monitoring_commands
from service.client import Drift, FeatureDrift, LabelCount, Monitoring, NnserveError

IRIS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
TRUTH = ["setosa", "virginica", "versicolor"]


@pytest.fixture
def client(trained_store, store_copy):
    root = store_copy(trained_store("iris", "diabetes", epochs=5))
    app = create_app(
        {"TESTING": True, "NNSERVE_STORE": str(root), "NNSERVE_LOG_SAMPLE_RATE": 1.0, "NNSERVE_ADMIN_TOKEN": TOKEN}
    )
    return FlaskClient(app, token=TOKEN)


@pytest.fixture
def cli(client, monkeypatch):
    """``cli(*args, input=None)``: nnserve's CLI, its HTTP client talking to the same app."""
    monkeypatch.setattr(monitoring_commands, "make_client", lambda url, timeout, key=None: client)
    return lambda *args, input=None: CliRunner().invoke(main, [*args], input=input, catch_exceptions=False)


def test_client_feedback_then_monitoring(client):
    ids = [client.predict("iris", [row]).request_id for row in IRIS]
    assert all(ids)
    result = client.feedback("iris", [{"request_id": i, "target": t} for i, t in zip(ids, TRUTH, strict=True)])
    assert (result.model, result.accepted, result.unlogged) == ("iris", 3, [])
    late = client.feedback("iris", [{"request_id": "nobody", "target": "setosa"}])
    assert late.accepted == 0 and late.unlogged == [{"request_id": "nobody", "row": 0}]
    early = client.monitoring("iris")
    assert (early.versions, early.computed_at) == ([], None) and "retraining worker" in early.reason
    client.monitoring("iris", window=1)  # asked for: computed by the next pass
    monitoring_pass(client._flask.application)
    found = client.monitoring("iris")
    assert found.labels == [LabelCount(source="key", key="bootstrap", rows=3)]
    assert found.computed_at is not None and found.reason is None
    assert set(found.dropped) == {"per_request", "buffer_rows", "buffer_bytes", "error", "disk"}
    (version,) = found.versions
    assert (found.model, found.window, version.active, version.rows, version.labelled) == ("iris", 1000, True, 3, 3)
    assert set(version.metrics) == {"accuracy", "log_loss"}
    assert version.drift == Drift(  # PSI on 3 rows would be noise
        available=False,
        rows=3,
        features=[],
        reason="not enough rows: 3 logged, drift needs 100 (NNSERVE_DRIFT_MIN_ROWS)",
    )
    assert client.monitoring("iris", window=1).versions[0].rows == 1
    with pytest.raises(NnserveError) as info:
        client.feedback("iris", [{"request_id": ids[0], "target": "rose"}])
    assert info.value.status == 422 and "feedback[0].target" in info.value.message


def test_cli_feedback_from_csv_and_the_monitoring_report(client, cli, tmp_path):
    ids = [client.predict("iris", [row]).request_id for row in IRIS]
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "request_id,target\n" + "".join(f"{i},{t}\n" for i, t in zip(ids, TRUTH, strict=True)) + "gone,setosa\n"
    )
    sent = cli("feedback", "iris", str(labels))
    assert sent.exit_code == 0, sent.output
    assert sent.output.splitlines() == ["iris: 3 labels joined to logged predictions", "not in the log: gone (row 0)"]

    waiting = cli("monitoring", "iris")
    assert waiting.exit_code == 0, waiting.output
    assert waiting.output.startswith("iris: no figures over the newest 1000 logged rows per version: not computed yet")
    cli("monitoring", "iris", "--window", "2", "--json")  # asked for: computed by the next pass
    monitoring_pass(client._flask.application)
    shown = cli("monitoring", "iris")
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[0].startswith("iris: newest 1000 logged rows per version, computed at ")
    assert lines[0].endswith(" s ago) by the retraining worker")
    assert lines[1].split() == ["version", "active", "rows", "labelled", "accuracy", "log_loss"]
    assert lines[2].split()[1:4] == ["*", "3", "3"]
    assert lines[-1] == "labelled rows by who gave them: bootstrap 3"  # the admin token's key id
    assert (
        lines[4]
        == "drift of version 1: unavailable (not enough rows: 3 logged, drift needs 100 (NNSERVE_DRIFT_MIN_ROWS))"
    )
    client._flask.application.config["NNSERVE_DRIFT_MIN_ROWS"] = 3  # lowered: the table of every feature's PSI
    monitoring_pass(client._flask.application)
    lines = cli("monitoring", "iris").output.splitlines()
    assert lines[4].startswith("drift of version 1 over 3 rows")
    table = {line.split()[0]: line.split()[1:] for line in lines[6:-2]}
    assert set(table) == {"sepal_length", "sepal_width", "petal_length", "petal_width", "(predictions)"}
    assert all(band in ("stable", "moderate", "major") for _, band in table.values())
    drift = client.monitoring("iris").versions[0].drift
    assert drift.available and drift.rows == 3 and isinstance(drift.predictions, float)
    assert all(isinstance(f, FeatureDrift) for f in drift.features)
    assert [f.name for f in drift.features] == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert all(float(table[f.name][0]) == pytest.approx(f.psi, abs=5e-5) for f in drift.features)
    as_json = json.loads(cli("monitoring", "iris", "--window", "2", "--json").output)
    assert as_json["versions"][0]["rows"] == 2
    assert set(as_json["versions"][0]["drift"]) == {"available", "rows", "features", "reason", "predictions"}


def test_cli_feedback_converts_regression_targets_and_refuses_a_bad_file(client, cli, tmp_path):
    request_id = client.predict("diabetes", [[0.0] * 10]).request_id
    good = tmp_path / "d.csv"
    good.write_text(f"request_id,target\n{request_id},151.5\n")
    assert cli("feedback", "diabetes", str(good)).exit_code == 0
    monitoring_pass(client._flask.application)
    assert client.monitoring("diabetes").versions[0].labelled == 1
    bad = tmp_path / "bad.csv"
    bad.write_text("id,label\nx,1\n")
    result = cli("feedback", "diabetes", str(bad))
    assert result.exit_code == 1 and "request_id and target" in result.output
    wrong = tmp_path / "wrong.csv"
    wrong.write_text(f"request_id,target\n{request_id},high\n")
    result = cli("feedback", "diabetes", str(wrong))
    assert result.exit_code == 1 and "feedback[0].target" in result.output


def test_monitoring_prune_is_still_the_subcommand(cli, tmp_path):
    result = cli("monitoring", "prune", "--store", str(tmp_path / "none"))
    assert result.exit_code == 1 and "no such store" in result.output


def test_a_client_without_a_key_labels_its_predictions_with_their_feedback_tokens(client, cli, tmp_path):
    anonymous = FlaskClient(client._flask.application)  # the same app, no key
    first, second = (anonymous.predict("iris", [row]) for row in IRIS[:2])
    assert first.feedback_token and second.feedback_token
    result = anonymous.feedback("iris", [{"request_id": first.request_id, "target": "setosa",
                                          "feedback_token": first.feedback_token}])  # fmt: skip
    assert (result.accepted, result.unlogged, result.conflicts) == (1, [], [])
    with pytest.raises(NnserveError) as info:
        anonymous.feedback("iris", [{"request_id": second.request_id, "target": "setosa"}])
    assert info.value.status == 401
    again = client.feedback("iris", [{"request_id": first.request_id, "target": "virginica"}])
    assert again.conflicts == [{"request_id": first.request_id, "row": 0}]
    assert (
        client.feedback("iris", [{"request_id": first.request_id, "target": "virginica"}], replace=True).accepted == 1
    )
    labels = tmp_path / "labels.csv"
    labels.write_text(f"request_id,target,feedback_token\n{second.request_id},setosa,{second.feedback_token}\n"
                      f"{first.request_id},setosa,\n")  # fmt: skip
    sent = cli("feedback", "iris", str(labels))  # the CLI's client holds the admin token here
    assert sent.exit_code == 0, sent.output
    assert sent.output.splitlines() == [
        "iris: 1 labels joined to logged predictions",
        f"already labelled, kept: {first.request_id} (row 0)",
    ]


def test_the_monitoring_report_names_the_rows_not_logged_by_reason():
    found = Monitoring("iris", 1000, 1, [], dropped={"per_request": 9900, "buffer_rows": 0, "disk": 12})
    assert monitoring_commands._report(found).splitlines()[-1] == (
        "rows not logged (since the server started): per_request 9900, disk 12"
    )
    assert "not logged" not in monitoring_commands._report(Monitoring("iris", 1000, 1, [], dropped={"error": 0}))
