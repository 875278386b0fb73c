"""``nnserve remote ...`` through click's CliRunner against ``nnserve serve``; ``nnserve openapi``."""

import json
import time

import pytest
from click.testing import CliRunner
from client_support import TOKEN
from helpers import free_port

from service.cli import main
from service.client import Client, Rollout
from service.store import FileKeyStore

IRIS_CSV = "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n"


@pytest.fixture
def run(live):
    """``run(*args, input=None, token=TOKEN)``: the CLI with NNSERVE_URL (and the token) from the environment."""

    def invoke(*args, input=None, token=TOKEN):
        env = {"NNSERVE_URL": live.url, "NNSERVE_ADMIN_TOKEN": token}
        return CliRunner().invoke(main, ["remote", *args], input=input, env=env, catch_exceptions=False)

    return invoke


def test_predict_csv_table_and_json_from_stdin(run, live):
    expected = Client(live.url).predict("iris", [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])
    table = run("predict", "iris", "-", input=IRIS_CSV)
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0] == f"iris version {expected.version}"
    assert lines[1].split() == ["row", "prediction", "probability"]
    assert [line.split()[1] for line in lines[2:]] == expected.predictions
    as_json = run("predict", "iris", "-", "--json", input=json.dumps([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]))
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output)["predictions"] == expected.predictions


def test_predict_from_a_file_without_header(run, tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("5.1,3.5,1.4,0.2\n")
    result = run("predict", "iris", str(path), "--json")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)["predictions"]) == 1


def test_server_errors_print_its_message_and_exit_1(run):
    bad = run("predict", "iris", "-", input="1,2\n")
    assert bad.exit_code == 1
    assert "rows have 2 values" in bad.output and "Traceback" not in bad.output
    unknown = run("models", "no_such_model")
    assert unknown.exit_code == 1 and "no_such_model" in unknown.output


def test_models_and_one_model(run):
    listing = run("models")
    assert listing.exit_code == 0
    assert listing.output.splitlines()[0].split() == ["model", "active", "task", "features"]
    assert {line.split()[0] for line in listing.output.splitlines()[1:]} == {"iris", "diabetes"}
    detail = json.loads(run("models", "iris", "--json").output)
    assert detail["name"] == "iris" and detail["feature_names"][0] == "sepal_length"


def test_activate_needs_the_token_and_never_prints_it(run):
    wrong = "a-wrong-token-that-must-not-be-printed"
    refused = run("activate", "iris", "1", token=wrong)
    assert (
        refused.exit_code == 1
        and "401: missing or invalid bearer token" in refused.output
        and wrong not in refused.output
    )
    done = run("activate", "iris", "1")
    assert done.exit_code == 0, done.output
    assert done.output.strip() == "iris: version 1 active (was 1)" and TOKEN not in done.output


def test_remote_and_feedback_send_the_key_from_nnserve_key(live, store_root):
    keys = FileKeyStore(store_root)
    _, admin = keys.create("ops", ["admin"])
    _, predictor = keys.create("app", ["predict"])

    def invoke(*args, key, input=None):
        env = {"NNSERVE_URL": live.url, "NNSERVE_KEY": key, "NNSERVE_ADMIN_TOKEN": None}
        return CliRunner().invoke(main, list(args), input=input, env=env, catch_exceptions=False)

    done = invoke("remote", "activate", "iris", "1", key=admin)
    assert done.exit_code == 0 and "version 1 active" in done.output and admin not in done.output
    refused = invoke("remote", "activate", "iris", "1", key=predictor)
    assert refused.exit_code == 1 and "403" in refused.output and "'admin' scope" in refused.output
    labels = invoke("feedback", "iris", "-", key=predictor, input="request_id,target\nr1,setosa\n")
    assert labels.exit_code == 1 and "403" in labels.output and predictor not in labels.output
    client = Client(live.url, key=predictor)
    assert client.predict("iris", [[5.1, 3.5, 1.4, 0.2]]).version == 1
    assert predictor not in repr(client)


def test_retrain_wait_and_jobs_watch(run):
    done = run("retrain", "iris", "-p", "epochs=2", "--promote", "never", "--wait", "120", "--json")
    assert done.exit_code == 0, done.output
    job = json.loads(done.output)
    assert job["status"] == "succeeded" and job["result"]["promoted"] is False
    assert 1 <= job["result"]["epochs"] <= 2  # -p epochs=2 reached the trainer (the catalog says more)
    watched = run("jobs", "--model", "iris", "--watch", "--interval", "0.1")
    assert watched.exit_code == 0
    assert job["id"] in watched.output and "succeeded" in watched.output
    listed = json.loads(run("jobs", "--json").output)
    assert job["id"] in [j["id"] for j in listed["jobs"]]


def test_cancel_a_running_retrain(run, live):
    queued = json.loads(run("retrain", "iris", "-p", "epochs=100000", "-p", "patience=100000", "--json").output)
    client = Client(live.url, token=TOKEN)
    deadline = time.monotonic() + 60
    while client.job(queued["id"]).status != "running":
        assert time.monotonic() < deadline, "the retrain never started"
        time.sleep(0.05)
    refused = run("cancel", queued["id"], token="not-the-token")
    assert refused.exit_code == 1 and "401" in refused.output
    cancelled = run("cancel", queued["id"])
    assert cancelled.exit_code == 0 and queued["id"] in cancelled.output, cancelled.output
    assert client.wait(queued["id"], timeout=60).status == "cancelled"
    unknown = run("cancel", "0" * 32)
    assert unknown.exit_code == 1 and "404" in unknown.output


def test_retrain_with_a_data_file(run, tmp_path):
    data = tmp_path / "new.csv"
    data.write_text("sepal_length,sepal_width,petal_length,petal_width,species\n5.1,3.5,1.4,0.2,setosa\n")
    done = run("retrain", "iris", "--data", str(data), "-p", "epochs=2", "--promote", "never", "--wait", "120")
    assert done.exit_code == 0, done.output
    assert "succeeded" in done.output and "not promoted" in done.output


def test_retrain_on_feedback_is_sent_as_asked(run):
    refused = run("retrain", "iris", "--feedback", "train")  # the store logs no prediction: none to train on
    assert refused.exit_code == 1 and "422" in refused.output and "no trusted labelled predictions" in refused.output


def test_unreachable_server_is_one_line_and_exit_1():

    result = CliRunner().invoke(
        main, ["remote", "--url", f"http://127.0.0.1:{free_port()}", "models"], env={"NNSERVE_ADMIN_TOKEN": TOKEN}
    )
    assert result.exit_code == 1
    assert "cannot reach" in result.output and "Traceback" not in result.output and TOKEN not in result.output


@pytest.mark.parametrize("command", ["predict", "explain"])
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_rows_json_cannot_carry_are_one_line_and_exit_1(command, value):
    """The client refuses to send NaN or infinity (JSON has neither): the command says so, no traceback."""
    result = CliRunner().invoke(
        main,
        ["remote", "--url", f"http://127.0.0.1:{free_port()}", command, "iris", "-"],
        input=IRIS_CSV.replace("5.1", value),
        catch_exceptions=False,
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert (
        result.output.strip()
        == "Error: the values hold NaN or infinity, which JSON cannot carry: drop or fill them first"
    )


def test_help_discourages_the_token_flag():
    text = " ".join(CliRunner().invoke(main, ["remote", "--help"]).output.split())
    assert "Prefer the environment variable: a flag is visible in `ps`. [env var: NNSERVE_ADMIN_TOKEN]" in text


def test_a_canary_retrain_shows_in_monitoring_and_an_admin_stops_it(run, live):
    started = run("retrain", "iris", "-p", "epochs=2", "--promote", "canary", "--canary-fraction", "0.3",
                  "--min-requests", "40", "--max-duration", "600", "--wait", "120", "--json")  # fmt: skip
    assert started.exit_code == 0, started.output
    job = json.loads(started.output)
    candidate = job["result"]["version"]
    assert job["request"]["canary_fraction"] == 0.3 and job["request"]["min_requests"] == 40
    assert job["result"]["reason"].startswith(f"canary started: version {candidate} gets 30% of unpinned requests")
    client = Client(live.url, token=TOKEN)
    running = client.rollout("iris")
    assert (
        isinstance(running, Rollout) and running.running and (running.mode, running.candidate) == ("canary", candidate)
    )
    assert (running.fraction, running.min_requests, running.reason) == (0.3, 40, None)
    shown = CliRunner().invoke(main, ["monitoring", "iris", "--url", live.url], catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    assert f"canary of version {candidate} against " in shown.output and "(30% of requests): running, " in shown.output
    stopped = client.stop_rollout("iris")
    assert (stopped.state, stopped.reason, stopped.candidate) == ("rolled_back", "stopped by an admin", candidate)
    assert stopped.ended_at is not None and not stopped.running
    assert client.monitoring("iris").rollout == client.rollout("iris") == stopped
    refused = run("retrain", "iris", "--min-requests", "40")
    assert refused.exit_code == 1 and "need promote 'canary' or 'shadow'" in refused.output


def test_audit_shows_the_servers_entries_to_an_admin(run):
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
    assert run("activate", "iris", "1", token="not-the-token").exit_code == 1
    assert run("activate", "iris", "1").exit_code == 0
    shown = run("audit", "--model", "iris", "--since", since, "--json")
    assert shown.exit_code == 0, shown.output
    entries = json.loads(shown.output)["entries"]
    activations = [(e["actor"], e["outcome"], e["status"]) for e in entries if e["action"] == "activate"]
    assert activations[:2] == [("bootstrap", "ok", 200), (None, "refused", 401)]
    table = run("audit", "--limit", "1")
    assert table.exit_code == 0 and table.output.splitlines()[0].split()[:3] == ["at", "actor", "action"]
    refused = run("audit", token="not-the-token")
    assert refused.exit_code == 1 and "401" in refused.output


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--canary-fraction", "0", "'--canary-fraction': must be in (0, 1], got 0.0"),
        ("--min-requests", "2000000", "'--min-requests': must be from 1 to 1000000, got 2000000"),
        ("--max-duration", "nan", "'--max-duration': must be from 1 to 2592000 seconds, got nan"),
    ],
)
def test_the_rollout_options_are_the_servers_rule_checked_before_sending(option, value, message):
    """Nothing listens on port 1: the server's own range (retrain.ROLLOUT_RANGES) refuses these first."""
    args = ["remote", "--url", "http://127.0.0.1:1", "retrain", "iris", "--promote", "canary", option, value]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert f"Error: Invalid value for {message}" in result.stderr
