"""``nnserve explain``: a version's attributions for the rows of a CSV file, from the store, as a table."""

import re

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import REPO

from nn.attribution import gradient_x_input, integrated_gradients
from service.cli.main import main
from service.store import FileModelStore

IRIS_CSV = REPO / "models" / "data" / "iris.csv"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("explain") / "store"
    result = CliRunner().invoke(
        main, ["train", str(REPO / "models" / "iris.toml"), "--epochs", "20", "--store", str(root)]
    )
    assert result.exit_code == 0, result.output
    return root


def explain(store, *args):
    return CliRunner().invoke(main, ["explain", *map(str, args), "--store", str(store)], catch_exceptions=False)


def rows_of(out):
    """Per row: its header line and the (feature, attribution) lines under it."""
    blocks = re.split(r"\n(?=row \d+: )", out.strip())[1:]
    return [
        (
            block.splitlines()[0],
            [(line.split()[0], float(line.split()[1])) for line in block.splitlines()[2:] if not line.startswith("(")],
        )
        for block in blocks
    ]


def test_explain_prints_each_rows_attributions_largest_first(store, tmp_path):
    data = tmp_path / "rows.csv"
    data.write_text("sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n")
    result = explain(store, "iris", data, "--top", 0)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("iris version 1: integrated_gradients, 32 steps, baseline mean\n")
    loaded = FileModelStore(store).load("iris")
    X = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])
    means = loaded.manifest["explanations"]["baseline_mean"]
    expected = integrated_gradients(loaded.estimator, X, means, steps=32)
    printed = rows_of(result.stdout)
    for i, (header, features) in enumerate(printed):
        label = loaded.estimator.predict(X[i : i + 1])[0]
        assert header.startswith(f"row {i + 1}: prediction {label}; explained output ({label}) ")
        assert "completeness gap" in header
        names = loaded.manifest["feature_names"]
        by_name = dict(zip(names, expected.values[i], strict=True))
        assert [name for name, _ in features] == sorted(names, key=lambda n: -abs(by_name[n]))
        assert [value for _, value in features] == pytest.approx([by_name[n] for n, _ in features], rel=1e-5)


def test_explain_takes_a_target_a_method_a_baseline_row_and_a_top(store, tmp_path):
    data = tmp_path / "rows.csv"
    data.write_text("a,b,c,d\n5.1,3.5,1.4,0.2\n")
    result = explain(store, "iris", data, "--target", "virginica", "--method", "gradient_x_input",
                     "--baseline", "5,3,4,1", "--top", 2)  # fmt: skip
    assert result.exit_code == 0, result.output
    ((header, features),) = rows_of(result.stdout)
    assert "explained output (virginica)" in header and "completeness gap" not in header
    assert "(2 more; --top 0 shows every feature)" in result.stdout
    loaded = FileModelStore(store).load("iris")
    expected = gradient_x_input(loaded.estimator, [[5.1, 3.5, 1.4, 0.2]], [5, 3, 4, 1], target=2).values[0]
    names = loaded.manifest["feature_names"]
    top = sorted(zip(names, expected, strict=True), key=lambda kv: -abs(kv[1]))[:2]
    assert [n for n, _ in features] == [n for n, _ in top]
    assert [v for _, v in features] == pytest.approx([v for _, v in top], rel=1e-5)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--target", "rose"), "--target: unknown class 'rose'; the classes are 'setosa', 'versicolor', 'virginica'"),
        (("--baseline", "1,2"), "--baseline: a baseline row has 4 numbers"),
        # the server's budget holds here too: 10^5 nodes would ask numpy for a 75 GiB matrix
        (("--steps", "100000"), "--steps: steps is 100000; at most 256 are accepted (NNSERVE_EXPLAIN_MAX_STEPS)"),
        (("--steps", "99999999999999999999999"), "--steps: steps is 99999999999999999999999; at most 256 are"),
    ],
)
def test_explain_errors_are_one_line(store, args, fragment):
    result = explain(store, "iris", IRIS_CSV, *args)
    assert result.exit_code == 1
    assert result.stderr.strip() == f"Error: {fragment}" or result.stderr.startswith(f"Error: {fragment}")
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_explain_runs_the_input_rules_nnserve_predict_and_the_api_run(store, tmp_path):
    """The data plane's rules (here: values within the FP32 numbers the model computes with), worded as for
    ``nnserve predict`` and the API, naming the file."""
    data = tmp_path / "huge.csv"
    data.write_text("sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n6.7,1e300,5.2,2.3\n")
    message = f"Error: {data}: the input holds 1e+300 at index [1, 1], beyond the range of the FP32 numbers"
    for command in ("explain", "predict"):
        result = (
            explain(store, "iris", data)
            if command == "explain"
            else CliRunner().invoke(main, ["predict", "iris", str(data), "--store", str(store)], catch_exceptions=False)
        )
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith(message), result.stderr


def test_the_steps_cap_caps_the_default_too(store):
    capped = CliRunner(env={"NNSERVE_EXPLAIN_MAX_STEPS": "8"}).invoke(
        main, ["explain", "iris", str(IRIS_CSV), "--store", str(store)], catch_exceptions=False
    )
    assert capped.exit_code == 0, capped.output
    assert capped.stdout.startswith("iris version 1: integrated_gradients, 8 steps, baseline mean\n")


def test_a_bad_baseline_option_is_a_usage_error(store):
    result = explain(store, "iris", IRIS_CSV, "--baseline", "middle")
    assert result.exit_code == 2 and "give 'mean', 'zeros' or a row" in result.stderr
