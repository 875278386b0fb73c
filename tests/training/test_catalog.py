"""Model specs (TOML + marshmallow validation) and CSV reading of the catalog."""

import numpy as np
import pytest
from helpers import REPO

from service.training.catalog import SpecError, catalog_specs, estimator_params, load_spec
from service.training.csvdata import CSVError, read_csv_dataset, read_csv_features

MODELS = REPO / "models"

GOOD = """\
task = "classification"
dataset = "data.csv"
target = "kind"
"""
CSV = "a,b,kind\n1,2,x\n3,4,y\n5,6,x\n7,8,y\n"


def write(tmp_path, spec=GOOD, csv=CSV, name="toy"):
    (tmp_path / "data.csv").write_text(csv)
    path = tmp_path / f"{name}.toml"
    path.write_text(spec)
    return path


def spec_error(tmp_path, spec, csv=CSV, name="toy"):
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, spec, csv, name))
    message = str(info.value)
    assert "\n" not in message
    assert f"{name}.toml" in message
    return message


# -- the catalog ----------------------------------------------------------------
def test_catalog_has_the_five_models_and_each_loads():
    specs = catalog_specs(MODELS)
    assert [s.name for s in specs] == ["breast_cancer", "diabetes", "digits", "iris", "wine"]
    for spec in specs:
        assert spec.data_path.is_file()
        assert spec.test_size == 0.25 and spec.split_seed == 0
        params = estimator_params(spec)
        assert params["max_iter"] >= 1 and isinstance(params["hidden_layer_sizes"], tuple)
    assert {s.name: s.task for s in specs}["diabetes"] == "regression"


def test_defaults_fill_every_key(tmp_path):
    spec = load_spec(write(tmp_path))
    assert spec.name == "toy" and spec.description == "" and spec.target == "kind"
    assert spec.data_path == (tmp_path / "data.csv").resolve()
    assert spec.network == {"hidden_sizes": [32], "activation": "relu", "dropout": 0.0}
    assert spec.training["epochs"] == 200 and spec.training["early_stopping"] is False
    assert spec.monitoring == {"sample_rate": 0.0, "trusted_labels": ["key"]}
    assert spec.retrain is None and "retrain" not in spec.stored_sections()


def test_the_retrain_policy_is_validated_with_its_defaults(tmp_path):
    text = (
        GOOD
        + '[retrain]\non_drift_psi = 0.3\nschedule = "6h"\n'
        + 'on_live_metric_below = { metric = "accuracy", threshold = 0.9 }\n'
    )
    spec = load_spec(write(tmp_path, text))
    assert spec.retrain == {
        "on_drift_psi": 0.3,
        "drift_min_rows": 100,
        "schedule": 6 * 3600.0,
        "on_live_metric_below": {"metric": "accuracy", "threshold": 0.9, "min_rows": 50},
        "promote": "if_better",
        "cooldown": 3600.0,
    }
    assert spec.stored_sections()["retrain"] == spec.retrain
    canary = (
        GOOD
        + '[retrain]\nschedule = "1d"\npromote = "canary"\ncanary_fraction = 0.2\nmax_duration = "10m"\n'
        + 'cooldown = "2h"\n'
    )
    assert load_spec(write(tmp_path, canary)).retrain == {
        "schedule": 86400.0,
        "drift_min_rows": 100,
        "promote": "canary",
        "canary_fraction": 0.2,
        "max_duration": 600.0,
        "cooldown": 7200.0,
    }
    message = spec_error(
        tmp_path, GOOD + '[retrain]\non_live_metric_below = { metric = "accuracy", threshold = 1, rows = 3 }\n'
    )
    assert (
        "retrain.on_live_metric_below.rows: unknown key (known keys of [retrain.on_live_metric_below]: metric"
        in message
    )


def test_the_monitoring_table_is_validated_and_kept_for_the_manifest(tmp_path):
    spec = load_spec(write(tmp_path, GOOD + "[monitoring]\nsample_rate = 0.25\n"))
    assert spec.stored_sections() == {"monitoring": {"sample_rate": 0.25, "trusted_labels": ["key"]}}
    spec = load_spec(write(tmp_path, GOOD + '[monitoring]\ntrusted_labels = ["token", "key", "token"]\n'))
    assert spec.monitoring["trusted_labels"] == ["key", "token"]
    message = spec_error(tmp_path, GOOD + "[monitoring]\nrate = 1\n")
    known = "sample_rate, target_range, trusted_labels"
    assert f"monitoring.rate: unknown key (known keys of [monitoring]: {known})" in message


def test_a_regression_spec_may_name_its_target_range(tmp_path):
    regression = GOOD.replace("classification", "regression").replace('"kind"', '"b"')
    spec = load_spec(write(tmp_path, regression + "[monitoring]\ntarget_range = [0, 500.5]\n"))
    assert spec.stored_sections() == {
        "monitoring": {"sample_rate": 0.0, "target_range": [0.0, 500.5], "trusted_labels": ["key"]}
    }
    for bad, why in [
        ("[5, 1]", "low must be below high"),
        ("[1]", "must be [low, high]"),
        ('[0, "9"]', "must be a number"),
        ("[0, inf]", "must be a finite number"),
    ]:
        message = spec_error(tmp_path, regression + f"[monitoring]\ntarget_range = {bad}\n")
        assert "monitoring.target_range: " + why in message
    message = spec_error(tmp_path, GOOD + "[monitoring]\ntarget_range = [0, 1]\n")
    assert "monitoring.target_range: only a regression spec has a target range" in message


# -- spec errors name the key -----------------------------------------------------
def test_unknown_top_level_key(tmp_path):
    message = spec_error(tmp_path, GOOD + 'colour = "red"\n')
    assert "colour: unknown key" in message


def test_unknown_key_in_a_section_lists_the_known_ones(tmp_path):
    message = spec_error(tmp_path, GOOD + "[training]\nepoch = 5\n")
    assert "training.epoch: unknown key" in message and "epochs" in message


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ('[training]\nepochs = "10"\n', "training.epochs"),
        ("[training]\nepochs = 2.5\n", "training.epochs"),
        ("[training]\nepochs = 0\n", "training.epochs"),
        ("[training]\nearly_stopping = 1\n", "training.early_stopping"),
        ("[training]\nlearning_rate = true\n", "training.learning_rate"),
        ('[training]\noptimizer = "adagrad"\n', "training.optimizer"),
        ("[network]\ndropout = 1.0\n", "network.dropout"),
        ("[network]\nhidden_sizes = 16\n", "network.hidden_sizes"),
        ("[network]\nhidden_sizes = [16, 0]\n", "network.hidden_sizes"),
        ('[network]\nactivation = "swish"\n', "network.activation"),
        ("test_size = 1.5\n", "test_size"),
        ("[monitoring]\nsample_rate = 1.5\n", "monitoring.sample_rate"),
        ('[monitoring]\nsample_rate = "all"\n', "monitoring.sample_rate"),
        ('[monitoring]\ntrusted_labels = ["anyone"]\n', "monitoring.trusted_labels"),
        ("[monitoring]\ntrusted_labels = []\n", "monitoring.trusted_labels"),
        ('[monitoring]\ntrusted_labels = "key"\n', "monitoring.trusted_labels"),
        ("[retrain]\non_drift_psi = 0\n", "retrain.on_drift_psi"),
        ("[retrain]\nevery_n_feedback = 0\n", "retrain.every_n_feedback"),
        ('[retrain]\nschedule = "soon"\n', "retrain.schedule"),
        ('[retrain]\nschedule = "-1h"\n', "retrain.schedule"),
        ('[retrain]\npromote = "maybe"\n', "retrain.promote"),
        ('[retrain]\npromote = "canary"\ncanary_fraction = 0\n', "retrain.canary_fraction"),
        ('[retrain]\npromote = "canary"\nmin_requests = 0\n', "retrain.min_requests"),
        ('[retrain]\npromote = "canary"\nmax_duration = "forever"\n', "retrain.max_duration"),
        (
            '[retrain]\non_live_metric_below = { metric = "log_loss", threshold = 1 }\n',
            "retrain.on_live_metric_below.metric",
        ),
        ('[retrain]\non_live_metric_below = { metric = "accuracy" }\n', "retrain.on_live_metric_below.threshold"),
    ],
)
def test_wrong_type_or_value_names_the_key(tmp_path, extra, key):
    assert f"{key}:" in spec_error(tmp_path, GOOD + extra)


def test_a_rollout_option_out_of_range_is_worded_as_the_api_and_the_worker_word_it(tmp_path):
    message = spec_error(tmp_path, GOOD + '[retrain]\npromote = "canary"\nmin_requests = 0\n')
    assert "retrain.min_requests: must be from 1 to 1000000, got 0" in message


def test_wrong_task_and_section_that_is_not_a_table(tmp_path):
    assert "task:" in spec_error(tmp_path, GOOD.replace("classification", "clustering"))
    assert "network: must be a table" in spec_error(tmp_path, GOOD + "network = 3\n")


def test_missing_required_key(tmp_path):
    assert "target: is required" in spec_error(tmp_path, GOOD.replace('target = "kind"\n', ""))


def test_missing_csv_names_the_dataset_key(tmp_path):
    message = spec_error(tmp_path, GOOD.replace("data.csv", "nope.csv"))
    assert "dataset:" in message and "nope.csv" in message


def test_missing_target_column_names_the_column(tmp_path):
    message = spec_error(tmp_path, GOOD.replace('"kind"', '"species"'))
    assert "target:" in message and "'species'" in message and "a, b, kind" in message


def test_unreadable_or_misnamed_spec_files(tmp_path):
    assert "not valid TOML" in spec_error(tmp_path, "task = \n")
    assert "model name" in spec_error(tmp_path, GOOD, name="Bad Name")
    with pytest.raises(SpecError, match="no such spec file"):
        load_spec(tmp_path / "absent.toml")
    with pytest.raises(SpecError, match="no such models directory"):
        catalog_specs(tmp_path / "absent")


# -- overrides --------------------------------------------------------------------
def test_overrides_use_spec_names_and_are_validated(tmp_path):
    spec = load_spec(write(tmp_path))
    params = estimator_params(spec, {"epochs": 5, "seed": 3, "hidden_sizes": [4, 2]})
    assert params["max_iter"] == 5 and params["random_state"] == 3 and params["hidden_layer_sizes"] == (4, 2)
    assert spec.training["epochs"] == 200  # the spec itself is unchanged
    with pytest.raises(SpecError, match="'max_iter': unknown key"):
        estimator_params(spec, {"max_iter": 5})
    with pytest.raises(SpecError, match="epochs"):
        estimator_params(spec, {"epochs": 0})


# -- reading CSV datasets ---------------------------------------------------------
def test_string_labels_stay_strings(tmp_path):
    data = read_csv_dataset(write(tmp_path).parent / "data.csv", "kind", "classification")
    assert data.X.dtype == np.float64 and data.X.shape == (4, 2)
    assert data.y.dtype.kind == "U" and data.y.tolist() == ["x", "y", "x", "y"]
    assert data.feature_names == ["a", "b"]


def test_integer_labels_become_ints_and_regression_floats(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("\ufefflabel,f\n3,0.5\n-1,1e3\n+2,7\n\n")  # BOM, target first, blank line at the end
    data = read_csv_dataset(path, "label", "classification")
    assert data.y.dtype == np.int64 and data.y.tolist() == [3, -1, 2]
    assert data.X[:, 0].tolist() == [0.5, 1000.0, 7.0] and data.feature_names == ["f"]
    assert read_csv_dataset(path, "label", "regression").y.dtype == np.float64
    path.write_text("label,f\n3,0.5\n3.0,1\n")
    assert read_csv_dataset(path, "label", "classification").y.tolist() == ["3", "3.0"]


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (["7", "07"], ["7", "07"]),  # two classes in the file stay two classes
        (["1", "99999999999999999999"], ["1", "99999999999999999999"]),  # beyond int64: no OverflowError
        (["1", "+1", "2"], ["1", "+1", "2"]),
        (["-3", "3"], [-3, 3]),
    ],
)
def test_integer_labels_become_ints_only_when_nothing_is_lost(tmp_path, labels, expected):
    path = tmp_path / "d.csv"
    path.write_text("label,f\n" + "".join(f"{label},1\n" for label in labels))
    assert read_csv_dataset(path, "label", "classification").y.tolist() == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a,b,kind\n1,2,x\n3,oops,y\n", "line 3, column 'b': 'oops' is not a number"),
        ("a,b,kind\n1,,x\n", "line 2, column 'b': an empty cell"),
        ("a,b,kind\n1,inf,x\n", "line 2, column 'b': 'inf' is not a finite number"),
        ("a,b,kind\n1,2\n", "line 2: 2 cells, but the header has 3 columns"),
        ("a,b,kind\n1,2,\n", "line 2, column 'kind': an empty label"),
        ("a,b,b\n1,2,3\n", "column 'b' appears twice"),
        ("a,b,label\n1,2,x\n", "target column 'kind' is not in the header"),
        ("", "the file is empty"),
        ("a,b,kind\n", "no data rows"),
    ],
)
def test_bad_csv_names_line_and_column(tmp_path, text, expected):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(CSVError) as info:
        read_csv_dataset(path, "kind", "classification")
    assert expected in str(info.value) and "bad.csv" in str(info.value)


def test_regression_target_must_be_numeric(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("a,y\n1,2.5\n2,high\n")
    with pytest.raises(CSVError, match="line 3, column 'y': 'high' is not a number"):
        read_csv_dataset(path, "y", "regression")


def test_missing_csv_file(tmp_path):
    with pytest.raises(CSVError, match="no such file"):
        read_csv_dataset(tmp_path / "none.csv", "kind", "classification")


# -- reading feature rows for prediction ------------------------------------------
def test_features_by_name_any_order_extra_columns_ignored(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("kind,b,note,a\nx,2,9,1\ny,4,9,3\n")
    X = read_csv_features(path, ["a", "b"], 2)
    assert X.tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_features_by_position_when_the_header_does_not_name_them(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("first,second\n1,2\n3,4\n")
    assert read_csv_features(path, ["a", "b"], 2).tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert read_csv_features(path, None, 2).tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_features_errors(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("a,c,d\n1,2,3\n")
    with pytest.raises(CSVError, match=r"needs the columns a, b .* or 2 columns by position"):
        read_csv_features(path, ["a", "b"], 2)
    path.write_text("1,2\n3,4\n")
    with pytest.raises(CSVError, match="line 1 looks like data"):
        read_csv_features(path, ["a", "b"], 2)
    path.write_text("a,b\n1,x\n")
    with pytest.raises(CSVError, match="line 2, column 'b'"):
        read_csv_features(path, ["a", "b"], 2)


@pytest.mark.parametrize("line", [2, 3, 40])
def test_a_byte_that_is_not_utf8_is_reported_on_its_own_line(tmp_path, line):
    rows = [b"a,b,label"] + [b"1,2,x"] * 50
    rows[line - 1] = b"1,2,caf\xe9"  # latin-1, not UTF-8
    path = tmp_path / "data.csv"
    path.write_bytes(b"\n".join(rows) + b"\n")
    with pytest.raises(CSVError, match=rf"line {line}: byte 0xe9 is not UTF-8"):
        read_csv_dataset(path, "label", "classification")


def test_a_csv_label_past_the_limit_is_a_clear_error(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("a,label\n1,x\n2," + "y" * 300 + "\n")
    with pytest.raises(CSVError, match=r"label 1 \(y{40}\.\.\. \(300 characters\)\) is longer than 256"):
        read_csv_dataset(path, "label", "classification")
