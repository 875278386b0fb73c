"""Client.explain and ``nnserve remote explain``, through the Flask test client and over HTTP to ``nnserve serve``."""

import json

import pytest
from click.testing import CliRunner
from client_support import TOKEN

from nn.attribution import integrated_gradients
from service.cli import main
from service.client import Explanation, NnserveError, RowExplanation
from service.store import FileModelStore

IRIS_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
IRIS_CSV = ",".join(NAMES) + "\n" + "\n".join(",".join(map(str, r)) for r in IRIS_ROWS) + "\n"


def test_explain_answers_typed_rows_for_lists_and_named_rows(any_client):
    result = any_client.explain("iris", IRIS_ROWS)
    assert isinstance(result, Explanation) and all(isinstance(r, RowExplanation) for r in result.explanations)
    assert (result.model, result.method, result.steps, result.baseline) == ("iris", "integrated_gradients", 32, "mean")
    predicted = any_client.predict("iris", IRIS_ROWS).predictions
    for row, label in zip(result.explanations, predicted, strict=True):
        assert row.prediction == row.target == label
        assert list(row.attributions) == NAMES
        assert abs(row.completeness_gap) <= 1e-3 * abs(row.output - row.baseline_output) + 1e-6
    named = [dict(zip(NAMES, r, strict=True)) for r in IRIS_ROWS]
    assert any_client.explain("iris", named) == result


def test_explain_sends_target_method_steps_baseline_and_version(any_client):
    result = any_client.explain(
        "iris", IRIS_ROWS[:1], target="virginica", method="gradient_x_input", baseline=[5, 3, 4, 1], version=1
    )
    (row,) = result.explanations
    assert (result.version, result.method, result.steps, result.baseline) == (1, "gradient_x_input", None, [5, 3, 4, 1])
    assert row.target == "virginica" and row.completeness_gap is None
    assert any_client.explain("iris", IRIS_ROWS[:1], steps=8, baseline="zeros").steps == 8
    with pytest.raises(NnserveError) as info:
        any_client.explain("iris", IRIS_ROWS[:1], target="rose")
    assert info.value.status == 422 and "target" in info.value.errors


def test_remote_explain_prints_a_table_or_json(live, store_root):
    env = {"NNSERVE_URL": live.url, "NNSERVE_ADMIN_TOKEN": TOKEN}

    def run(*args, input=None):
        return CliRunner().invoke(main, ["remote", *args], input=input, env=env, catch_exceptions=False)

    table = run("explain", "iris", "-", "--top", "0", input=IRIS_CSV)
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    loaded = FileModelStore(store_root).load("iris")
    assert lines[0] == f"iris version {loaded.version}: integrated_gradients, 32 steps, baseline mean"
    expected = integrated_gradients(
        loaded.estimator, IRIS_ROWS, loaded.manifest["explanations"]["baseline_mean"], steps=32
    ).values
    header = next(i for i, line in enumerate(lines) if line.startswith("row 1: prediction"))
    printed = [line.split() for line in lines[header + 2 : header + 6]]
    by_name = dict(zip(NAMES, expected[0], strict=True))
    assert [name for name, _ in printed] == sorted(NAMES, key=lambda n: -abs(by_name[n]))
    assert [float(v) for _, v in printed] == pytest.approx([by_name[n] for n, _ in printed], rel=1e-5)
    as_json = run("explain", "iris", "-", "--json", "--target", "setosa", "--method", "saliency", input=IRIS_CSV)
    assert as_json.exit_code == 0, as_json.output
    body = json.loads(as_json.output)
    assert body["method"] == "saliency" and [r["target"] for r in body["explanations"]] == ["setosa", "setosa"]
    bad = run("explain", "iris", "-", "--steps", "100000", input=IRIS_CSV)
    assert bad.exit_code == 1 and "at most 256" in bad.output
