"""The nnserve CLI through click's CliRunner, and once as a real process."""

import csv
import io
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
from importlib.metadata import version as package_version

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import REPO

import nn
from service.cli.main import main
from service.cli.model_commands import spreadsheet_safe
from service.store import FileModelStore

MODELS = REPO / "models"
IRIS_CSV = MODELS / "data" / "iris.csv"
FLOORS = {"iris": 0.95, "wine": 0.95, "breast_cancer": 0.95, "digits": 0.96, "diabetes": 0.30}


@pytest.fixture
def store(tmp_path):
    return tmp_path / "store"


@pytest.fixture
def run(store, monkeypatch):
    """``run(*args)`` invokes nnserve with ``--store`` from the environment; returns click's Result."""
    monkeypatch.setenv("NNSERVE_STORE", str(store))
    monkeypatch.delenv("NNSERVE_MODELS", raising=False)
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)

    return invoke


@pytest.fixture
def trained(run):
    """A store with iris versions 1 and 2 (5 epochs each), version 2 active."""
    for _ in range(2):
        result = run("train", MODELS / "iris.toml", "--epochs", 5)
        assert result.exit_code == 0, result.output
    return run


def read_csv_text(text):
    return list(csv.reader(io.StringIO(text, newline="")))


def assert_user_error(result, *fragments):
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


# -- train -----------------------------------------------------------------------------
def test_train_prints_progress_version_and_metrics(run, store):
    result = run("train", MODELS / "iris.toml", "--epochs", 5)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "iris: epoch 1/5 loss " in out and "iris: epoch 5/5 loss " in out  # plain lines: not a TTY
    assert "iris: version 1 (active)  accuracy " in out and "log_loss " in out and "38 held-out rows" in out
    assert FileModelStore(store).active_version("iris") == 1


def test_train_by_name_with_seed_and_no_activate(run, store):
    assert run("train", MODELS / "iris.toml", "--epochs", 2).exit_code == 0
    result = run("train", "iris", "--models-dir", MODELS, "--epochs", 2, "--seed", 7, "--no-activate")
    assert result.exit_code == 0, result.output
    assert "iris: version 2 (not activated)" in result.stdout
    s = FileModelStore(store)
    assert s.active_version("iris") == 1
    assert s.manifest("iris", 2)["training"]["params"]["random_state"] == 7


def test_train_all_meets_every_floor(run, store):
    """The whole catalog through the CLI, with the specs' own settings."""
    result = run("train", "--all", "--models-dir", MODELS)
    assert result.exit_code == 0, result.output
    listing = json.loads(run("models", "--json").stdout)
    assert [m["name"] for m in listing] == sorted(FLOORS)
    for m in listing:
        metrics = m["versions"][0]["metrics"]
        assert metrics[m["primary_metric"]] >= FLOORS[m["name"]], (m["name"], metrics)


def test_train_all_uses_nnserve_models(run, tmp_path, monkeypatch):
    models = tmp_path / "catalog"
    (models / "data").mkdir(parents=True)
    shutil.copy(MODELS / "iris.toml", models / "flowers.toml")
    shutil.copy(IRIS_CSV, models / "data" / "iris.csv")
    monkeypatch.setenv("NNSERVE_MODELS", str(models))
    result = run("train", "--all", "--epochs", 2)
    assert result.exit_code == 0, result.output
    assert "flowers: version 1 (active)" in result.stdout


def test_train_checks_every_spec_before_training_any(run, tmp_path, store):
    bad = tmp_path / "bad.toml"
    bad.write_text('task = "classification"\ndataset = "x.csv"\ntarget = "y"\n[training]\nepoch = 3\n')
    result = run("train", MODELS / "iris.toml", bad)
    assert_user_error(result, "bad.toml", "training.epoch: unknown key")
    assert not (store / "iris").exists()


def test_train_user_errors(run, tmp_path):
    assert_user_error(run("train", tmp_path / "missing.toml"), "missing.toml", "no such spec file")
    spec = tmp_path / "nodata.toml"
    spec.write_text('task = "regression"\ndataset = "gone.csv"\ntarget = "y"\n')
    assert_user_error(run("train", spec), "dataset:", "gone.csv")
    (tmp_path / "bad.csv").write_text("a,y\n1,2\nx,3\n")
    spec.write_text('task = "regression"\ndataset = "bad.csv"\ntarget = "y"\n')
    assert_user_error(run("train", spec), "bad.csv", "line 3, column 'a'")
    (tmp_path / "one.csv").write_text("a,y\n1,k\n2,k\n3,k\n4,k\n")
    spec.write_text('task = "classification"\ndataset = "one.csv"\ntarget = "y"\n')
    assert_user_error(run("train", spec), "nodata.toml")


def test_train_usage_errors(run):
    assert run("train").exit_code == 2
    assert run("train", "--all", MODELS / "iris.toml").exit_code == 2
    assert run("train", MODELS / "iris.toml", "--epochs", 0).exit_code == 2
    assert run("train", MODELS / "iris.toml", "--bogus").exit_code == 2


# -- models ------------------------------------------------------------------------------
def test_models_table_and_json(trained, store):
    result = trained("models")
    assert result.exit_code == 0, result.output
    header, row = result.stdout.splitlines()[:2]
    assert header.split() == ["NAME", "ACTIVE", "VERSIONS", "TASK", "METRICS", "CREATED"]
    assert row.split()[:4] == ["iris", "2", "1,2", "classification"] and "accuracy" in row

    listing = json.loads(trained("models", "--json").stdout)
    (iris,) = listing
    assert iris["name"] == "iris" and iris["active_version"] == 2 and iris["task"] == "classification"
    assert [(v["version"], v["active"], v["ok"]) for v in iris["versions"]] == [(1, False, True), (2, True, True)]
    assert set(iris["versions"][1]["metrics"]) == {"accuracy", "log_loss"}
    assert iris["versions"][1]["created_at"].endswith("Z")


def test_models_flags_a_broken_version(trained, store):
    weights = store / "iris" / "1" / "weights.npz"
    weights.write_bytes(weights.read_bytes()[:-10] + b"corrupted!")
    result = trained("models")
    assert result.exit_code == 0
    assert "1!,2" in result.stdout
    assert "! iris version 1: " in result.stdout and "checksum" in result.stdout
    (iris,) = json.loads(trained("models", "--json").stdout)
    assert iris["versions"][0]["ok"] is False and "checksum" in iris["versions"][0]["error"]
    assert_user_error(trained("activate", "iris", 1), "version 1 is broken")
    assert FileModelStore(store).active_version("iris") == 2
    assert_user_error(trained("predict", "iris", "--version", 1, IRIS_CSV), "broken")


def test_models_on_an_empty_or_missing_store(run, store):
    assert "no models in" in run("models").stdout
    assert json.loads(run("models", "--json").stdout) == []
    assert not store.exists()  # listing does not create a store


# -- activate ------------------------------------------------------------------------------
def test_activate_rolls_back_and_forward(trained, store):
    result = trained("activate", "iris", 1)
    assert result.exit_code == 0 and "iris: version 1 is active (was 2)" in result.stdout
    assert FileModelStore(store).active_version("iris") == 1
    assert trained("activate", "iris", 2).exit_code == 0
    assert FileModelStore(store).active_version("iris") == 2


def test_activate_errors(trained):
    assert_user_error(trained("activate", "iris", 9), "no version 9")
    assert_user_error(trained("activate", "nope", 1), "unknown model 'nope'")
    assert_user_error(trained("activate", "../etc", 1), "invalid model name")
    assert trained("activate", "iris", "two").exit_code == 2
    assert trained("activate", "iris").exit_code == 2


# -- predict -------------------------------------------------------------------------------
def test_predict_by_name_with_shuffled_and_extra_columns(trained, store, tmp_path):
    rows = read_csv_text(IRIS_CSV.read_text())
    header, data = rows[0], rows[1:]
    order = [4, 2, 0, 3, 1]  # species first, features shuffled
    shuffled = tmp_path / "shuffled.csv"
    shuffled.write_text("\n".join(",".join(r[i] for i in order) for r in [header, *data]) + "\n")
    result = trained("predict", "iris", shuffled)
    assert result.exit_code == 0, result.output
    out = read_csv_text(result.stdout)
    model = FileModelStore(store).load("iris").estimator
    assert out[0] == ["prediction", *(f"proba_{c}" for c in model.classes_)]
    X = np.array([[float(v) for v in r[:4]] for r in data])
    assert [r[0] for r in out[1:]] == model.predict(X).tolist()
    proba = np.array([[float(v) for v in r[1:]] for r in out[1:]])
    np.testing.assert_allclose(proba, model.predict_proba(X), atol=1e-6)


def test_predict_by_position_and_pinned_version(trained, store, tmp_path):
    data = tmp_path / "plain.csv"
    data.write_text("w,x,y,z\n5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n")
    result = trained("predict", "iris", "--version", 1, data)
    assert result.exit_code == 0, result.output
    out = read_csv_text(result.stdout)
    model = FileModelStore(store).load("iris", 1).estimator
    assert [r[0] for r in out[1:]] == model.predict([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]).tolist()


def test_predict_regression_outputs_numbers(run, tmp_path):
    assert run("train", MODELS / "diabetes.toml", "--epochs", 3).exit_code == 0
    result = run("predict", "diabetes", MODELS / "data" / "diabetes.csv")
    assert result.exit_code == 0, result.output
    out = read_csv_text(result.stdout)
    assert out[0] == ["prediction"] and len(out) == 443
    assert all(np.isfinite(float(r[0])) for r in out[1:])


HOSTILE = ['=HYPERLINK("http://x")', "+SUM(A1)", "@cmd", "-2+3", "-x", "-1", "plain"]  # (the csv reader strips tabs)


@pytest.fixture
def hostile(run, tmp_path):
    """A classifier whose class labels are spreadsheet formulas (and ``plain``)."""
    models = tmp_path / "models"
    (models / "data").mkdir(parents=True)
    with open(models / "data" / "h.csv", "w", newline="") as f:  # csv quotes the labels' commas and quotes
        csv.writer(f).writerows([["x", "label"], *([i % 7, HOSTILE[i % 7]] for i in range(140))])
    spec = (MODELS / "iris.toml").read_text().replace("data/iris.csv", "data/h.csv").replace('"species"', '"label"')
    (models / "h.toml").write_text(spec)
    assert run("train", models / "h.toml").exit_code == 0
    data = tmp_path / "in.csv"
    data.write_text("x\n" + "\n".join(str(i % 7) for i in range(70)) + "\n")
    return data


def test_predict_neutralizes_formulas_in_labels(run, hostile, store):
    result = run("predict", "h", hostile)
    assert result.exit_code == 0, result.output
    out = read_csv_text(result.stdout)
    classes = FileModelStore(store).load("h").estimator.classes_.tolist()
    assert sorted(classes) == sorted(HOSTILE)
    safe = {c: ("'" + c if c[0] in "=+-@\t" else c) for c in classes}  # "-1" is a text label here
    assert out[0] == ["prediction", *(f"proba_{c}" for c in classes)]  # "proba_" already makes them text
    labels = [r[0] for r in out[1:]]
    assert set(labels) <= set(safe.values()) and len({c for c in labels if c.startswith("'")}) >= 3
    assert not any(c[0] in "=+-@\t" for c in labels)
    raw = read_csv_text(run("predict", "h", hostile, "--raw").stdout)
    assert [r[0] for r in raw[1:]] == [c.removeprefix("'") for c in labels]


def test_predict_errors(trained, tmp_path, store):
    assert_user_error(trained("predict", "nope", IRIS_CSV), "unknown model 'nope'", str(store))
    assert_user_error(trained("predict", "iris", tmp_path / "none.csv"), "none.csv", "no such file")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,c\n1,2,3\n")
    assert_user_error(trained("predict", "iris", bad), "sepal_length")
    bad.write_text("sepal_length,sepal_width,petal_length,petal_width\n1,2,x,4\n")
    assert_user_error(trained("predict", "iris", bad), "line 2, column 'petal_length'")
    bad.write_text("sepal_length,sepal_width,petal_length,petal_width\n1,2,3,4\n5,6,1e300,8\n")  # the data plane's rule
    assert_user_error(trained("predict", "iris", bad), "bad.csv: the input holds 1e+300 at index [1, 2], beyond")
    assert_user_error(trained("predict", "iris", IRIS_CSV, "--store", tmp_path / "elsewhere"), "no model store")
    assert trained("predict", "iris").exit_code == 2


# -- help and version ------------------------------------------------------------------------
def test_help_and_version(run):
    top = run("--help")
    assert top.exit_code == 0
    for command in ("train", "models", "activate", "predict"):
        assert command in top.stdout
    assert "Examples:" in top.stdout and "nnserve train --all" in top.stdout
    for command in ("train", "models", "activate", "predict"):
        sub = run(command, "--help")
        assert sub.exit_code == 0 and "Examples:" in sub.stdout and "--store" in sub.stdout
    assert "NNSERVE_STORE" in run("train", "--help").stdout
    assert run("--version").stdout.strip() == f"nnserve, version {package_version('nnserve')}"
    assert run("no-such-command").exit_code == 2


# -- once as a real process ------------------------------------------------------------------
def test_real_process_train_list_predict_activate(tmp_path):
    env = {**os.environ, "NNSERVE_STORE": str(tmp_path / "store")}

    def nnserve(*args):
        return subprocess.run(
            [sys.executable, "-m", "service.cli", *map(str, args)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    for expected in (1, 2):
        done = nnserve("train", "models/iris.toml", "--epochs", 5)
        assert done.returncode == 0, done.stderr
        assert f"iris: version {expected} (active)" in done.stdout
    listing = nnserve("models")
    assert listing.returncode == 0 and listing.stdout.splitlines()[1].split()[:3] == ["iris", "2", "1,2"]
    predicted = nnserve("predict", "iris", "models/data/iris.csv")
    assert predicted.returncode == 0 and len(predicted.stdout.splitlines()) == 151
    rolled = nnserve("activate", "iris", "1")
    assert rolled.returncode == 0 and "version 1 is active (was 2)" in rolled.stdout
    missing = nnserve("predict", "nope", "models/data/iris.csv")
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1 and "Traceback" not in missing.stderr


FORMULAS = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tTAB", "=1", "plain"]


def test_predict_neutralises_labels_a_spreadsheet_would_run(run, store, tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(140, 2))
    y = np.array(FORMULAS)[np.arange(140) % len(FORMULAS)]
    X[:, 0] += np.arange(140) % len(FORMULAS) * 3  # separable, so every label is predicted somewhere
    est = nn.MLPClassifier(hidden_layer_sizes=(16,), max_iter=300, random_state=0).fit(X, y)
    target = FileModelStore(store)
    target.activate("hostile", target.publish("hostile", est, {"task": "classification"}))
    rows = tmp_path / "rows.csv"
    rows.write_text("a,b\n" + "\n".join(f"{a},{b}" for a, b in X) + "\n")

    safe = read_csv_text(run("predict", "hostile", rows).stdout)
    labels = {r[0] for r in safe[1:]}
    assert len(labels) > 3
    assert all(not label.startswith(("=", "+", "-", "@", "\t", "\r")) for label in labels), labels
    assert {label.lstrip("'") for label in labels} <= set(FORMULAS)
    assert all(float(v) >= 0 for r in safe[1:] for v in r[1:])  # numbers are written as numbers

    raw = read_csv_text(run("predict", "hostile", rows, "--raw").stdout)
    assert {r[0] for r in raw[1:]} == {label.lstrip("'") for label in labels}


@pytest.mark.parametrize(
    ("cell", "written"),
    [("=1+1", "'=1+1"), ("\rCR", "'\rCR"), ("\tx", "'\tx"), ("-x", "'-x"), ("plain", "plain"), (-3, -3), (2.5, 2.5)],
)
def testspreadsheet_safe_prefixes_only_text_formulas(cell, written):
    assert spreadsheet_safe(cell) == written


def _activate(store: str, version: int, barrier, out) -> None:  # type: ignore[no-untyped-def]
    barrier.wait()
    out.put((version, FileModelStore(store).activate("iris", version)))


def test_concurrent_activations_each_replace_a_different_version(trained, store):
    """Two processes activate at the same moment: each reports the version it really replaced (a chain)."""
    trained("train", MODELS / "iris.toml", "--epochs", 2)  # versions 1, 2, 3; 3 active
    ctx = multiprocessing.get_context("spawn")
    for _ in range(5):
        barrier, out = ctx.Barrier(2), ctx.Queue()
        procs = [ctx.Process(target=_activate, args=(str(store), v, barrier, out)) for v in (1, 2)]
        before = FileModelStore(store).active_version("iris")
        for p in procs:
            p.start()
        results = dict(out.get(timeout=60) for _ in procs)
        for p in procs:
            p.join(timeout=60)
        final = FileModelStore(store).active_version("iris")
        first, second = (1, 2) if final == 2 else (2, 1)
        assert results[first] == before and results[second] == first, (before, results, final)


def test_init_writes_the_catalogs_iris_and_never_overwrites(run, tmp_path):
    demo = tmp_path / "demo"
    result = run("init", demo)
    assert result.exit_code == 0, result.output
    for name in ("iris.toml", "data/iris.csv"):  # the shipped example is the catalog's own iris, byte for byte
        assert (demo / "models" / name).read_bytes() == (MODELS / name).read_bytes()
    assert "nnserve train --all && nnserve serve" in result.output
    trained = run("train", "--all", "--models-dir", demo / "models", "--epochs", 3)
    assert trained.exit_code == 0 and "iris: version 1 (active)" in trained.output, trained.output
    (demo / "models" / "iris.toml").write_text("# mine\n")
    again = run("init", demo)
    assert again.exit_code == 1 and "already exist" in again.output
    assert (demo / "models" / "iris.toml").read_text() == "# mine\n"
