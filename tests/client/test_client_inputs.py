"""What ``Client.predict`` takes (lists, numpy arrays, DataFrames by column name) and ``Client.infer`` (v2, JSON and
binary tensor data), through the Flask test client and over HTTP to ``nnserve serve``."""

import numpy as np
import pandas as pd
import pytest

from service.client import InferResult, NnserveError

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
IRIS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]])
DIABETES = [[59, 2, 32.1, 101, 157, 93.2, 38, 4, 4.8598, 87], [48, 1, 21.6, 87, 183, 103.2, 70, 3, 3.8918, 69]]


def test_a_dataframe_goes_by_column_name_whatever_its_order(any_client):
    expected = any_client.predict("iris", IRIS.tolist())
    shuffled = pd.DataFrame(IRIS, columns=FEATURES)[["petal_width", "sepal_length", "petal_length", "sepal_width"]]
    assert any_client.predict("iris", shuffled) == expected
    assert any_client.predict("iris", shuffled.astype(np.float32)).predictions == expected.predictions
    typed = pd.DataFrame({"petal_width": [0.2], "sepal_length": [5], "petal_length": [1.4], "sepal_width": [3.5]})
    assert any_client.predict("iris", typed).model == "iris"  # an int64 column beside float64 ones


def test_a_dataframe_missing_a_feature_is_a_422_naming_it(any_client):
    frame = pd.DataFrame(IRIS, columns=FEATURES).drop(columns="petal_width")
    with pytest.raises(NnserveError) as caught:
        any_client.predict("iris", frame)
    assert caught.value.status == 422 and "petal_width" in caught.value.message


def test_numpy_arrays_and_rows_of_numpy_numbers(any_client):
    expected = any_client.predict("iris", IRIS.tolist())
    assert any_client.predict("iris", IRIS) == expected
    assert any_client.predict("iris", IRIS.astype(np.float32)).predictions == expected.predictions
    assert any_client.predict("iris", list(IRIS)) == expected  # a list of 1-D arrays
    assert any_client.predict("iris", [[np.float64(v) for v in row] for row in IRIS]) == expected
    with pytest.raises(ValueError, match="NaN or infinity"):
        any_client.predict("iris", np.array([[np.nan, 3.5, 1.4, 0.2]]))


@pytest.mark.parametrize("binary", [False, True])
def test_infer_answers_what_predict_answers(any_client, binary):
    predicted = any_client.predict("iris", IRIS)
    inferred = any_client.infer("iris", IRIS, binary=binary)
    assert isinstance(inferred, InferResult)
    assert (inferred.model_name, inferred.model_version) == ("iris", "1")
    assert list(inferred.outputs) == ["predictions", "labels", "probabilities"]
    assert inferred.outputs["labels"].tolist() == predicted.predictions
    assert inferred.outputs["predictions"].dtype == np.int64 and inferred.outputs["predictions"].shape == (3,)
    probabilities = inferred.outputs["probabilities"]
    assert probabilities.shape == (3, 3) and np.issubdtype(probabilities.dtype, np.floating)
    np.testing.assert_allclose(probabilities, predicted.probabilities, rtol=1e-6)
    classes = any_client.model("iris").classes
    assert [classes[i] for i in inferred.outputs["predictions"]] == predicted.predictions

    regression = any_client.infer("diabetes", DIABETES, binary=binary)
    np.testing.assert_allclose(
        regression.outputs["predictions"], any_client.predict("diabetes", DIABETES).predictions, rtol=1e-6
    )


def test_infer_one_row_chosen_outputs_and_a_pinned_version(any_client):
    one = any_client.infer("iris", IRIS[0], outputs=["labels"], version=1)
    assert list(one.outputs) == ["labels"] and one.outputs["labels"].shape == (1,)
    assert one.outputs["labels"].tolist() == any_client.predict("iris", IRIS[:1]).predictions
    ints = any_client.infer("iris", [[5, 3, 1, 0]], binary=True)  # INT64 input
    assert ints.outputs["labels"].tolist() == any_client.predict("iris", [[5, 3, 1, 0]]).predictions


def test_infer_errors_are_nnserve_errors_with_the_v2_message(any_client):
    with pytest.raises(NnserveError) as caught:
        any_client.infer("iris", IRIS[:, :3])
    assert caught.value.status == 400 and "rows have 3 values, model 'iris' expects 4" in caught.value.message
    with pytest.raises(NnserveError) as caught:
        any_client.infer("no_such_model", IRIS)
    assert caught.value.status == 404
    with pytest.raises(NnserveError) as caught:
        any_client.infer("iris", IRIS, outputs=["scores"])
    assert caught.value.status == 400 and "scores" in caught.value.message
    with pytest.raises(TypeError, match="DataFrame"):
        any_client.infer("iris", pd.DataFrame(IRIS, columns=FEATURES))
    with pytest.raises(TypeError, match="numbers"):
        any_client.infer("iris", [["a", "b", "c", "d"]])


def test_retrain_takes_a_dataframe_and_a_series(any_client):
    frame = pd.DataFrame(IRIS, columns=FEATURES)[FEATURES[::-1]]
    targets = pd.Series(["setosa", "virginica", "versicolor"])
    job = any_client.retrain("iris", frame, targets, promote="never")  # the active version stays 1
    assert job.model == "iris" and job.request["n_new_rows"] == 3, job.request


def test_explain_takes_a_dataframe_by_column_name(any_client):
    frame = pd.DataFrame(IRIS[:2], columns=FEATURES)[FEATURES[::-1]]
    assert any_client.explain("iris", frame) == any_client.explain("iris", IRIS[:2])
