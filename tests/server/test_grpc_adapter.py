"""The gRPC adapter's own parts, in process: how a request's tensors become HTTP v2's request (``codec``), and how
every failure becomes a status code with its message (``calls.status_of``).

Requests are built with tritonclient's generated messages, which are the protocol's (nnserve's own generated
modules cannot share a process with them: service/server/grpc/__init__.py).
"""

from __future__ import annotations

import logging

import grpc
import numpy as np
import pytest
from tritonclient.grpc import service_pb2

from service.server import errors
from service.server.callers import PermissionDeniedError, UnauthenticatedError
from service.server.dataplane import Call, InputError, UnanswerableInputError
from service.server.grpc import calls, codec
from service.server.v2.tensors import TensorError
from service.store import CorruptVersionError, InvalidNameError, NotFoundError, StoreError, StoreUnavailableError

BUDGET = 1000  # typed values a request may hold


def infer_request(*tensors, raw=False, **fields):
    request = service_pb2.ModelInferRequest(model_name="iris", **fields)
    for name, datatype, values in tensors:
        values = np.asarray(values)
        tensor = request.inputs.add(name=name, datatype=datatype, shape=list(values.shape))
        if raw:
            request.raw_input_contents.append(values.tobytes())
        else:
            getattr(tensor.contents, codec.CONTENTS[datatype]).extend(values.reshape(-1).tolist())
    return request


def test_typed_contents_become_json_data_and_raw_contents_binary_tensor_data():
    rows = np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)
    typed = codec.inference_request(infer_request(("input", "FP32", rows)), BUDGET)
    (obj,) = typed.json["inputs"]
    assert obj["data"] == rows.reshape(-1).tolist() and obj["shape"] == [1, 4] and typed.binary == b""
    raw = codec.inference_request(infer_request(("input", "FP32", rows), ("b", "INT64", [[1, 2]]), raw=True), BUDGET)
    assert [o["parameters"]["binary_data_size"] for o in raw.json["inputs"]] == [16, 16]
    assert raw.binary == rows.tobytes() + np.array([1, 2]).tobytes() and raw.header_given
    assert all("data" not in o for o in raw.json["inputs"])


def test_outputs_and_parameters_become_the_json_requests():
    request = infer_request(("input", "FP64", [[1.0, 2.0, 3.0, 4.0]]))
    request.outputs.add(name="labels").parameters["binary_data"].bool_param = True
    request.parameters["binary_data_output"].bool_param = False
    request.parameters["unset"].CopyFrom(service_pb2.InferParameter())
    body = codec.inference_request(request, BUDGET).json
    assert body["outputs"] == [{"name": "labels", "parameters": {"binary_data": True}}]
    assert body["parameters"] == {"binary_data_output": False, "unset": None}


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (
            lambda: _mixed(),
            "input 'b' has typed contents, but the request has raw_input_contents: "
            "send every input one way or the other",
        ),
        (
            lambda: _one_raw_for_two(),
            "the request has 1 raw_input_contents for 2 inputs: send one per input, in the order of the inputs",
        ),
        (
            lambda: _other_field(),
            "input 'input' has datatype 'FP32', whose values go in contents.fp32_contents, but it has "
            "contents.fp64_contents",
        ),
    ],
)
def test_what_only_grpc_can_get_wrong_is_refused_with_a_sentence(request_, message):
    with pytest.raises(TensorError) as caught:
        codec.inference_request(request_(), BUDGET)
    assert caught.value.message == message


def _mixed():
    request = infer_request(("input", "FP32", np.zeros((1, 4), np.float32)), raw=True)
    request.inputs.add(name="b", datatype="FP32", shape=[1]).contents.fp32_contents.append(1.0)
    request.raw_input_contents.append(b"\0\0\0\0")
    return request


def _one_raw_for_two():
    request = infer_request(("input", "FP32", np.zeros((1, 4), np.float32)), raw=True)
    request.inputs.add(name="b", datatype="FP32", shape=[1])
    return request


def _other_field():
    request = service_pb2.ModelInferRequest(model_name="iris")
    request.inputs.add(name="input", datatype="FP32", shape=[1, 1]).contents.fp64_contents.append(1.0)
    return request


def test_a_datatype_without_a_contents_field_is_left_to_the_datatype_rule():
    request = service_pb2.ModelInferRequest(model_name="iris")
    request.inputs.add(name="input", datatype="FP16", shape=[1, 4]).contents.fp32_contents.append(1.0)
    assert codec.inference_request(request, BUDGET).json["inputs"][0]["data"] == []


def test_typed_and_raw_outputs():
    response = service_pb2.ModelInferResponse()
    codec.add_output(response, "labels", ["setosa", "virginica"], "BYTES", [2], raw=False)
    codec.add_output(response, "p", np.array([[0.25, 0.75]], np.float32), "FP32", [1, 2], raw=False)
    assert list(response.outputs[0].contents.bytes_contents) == [b"setosa", b"virginica"]
    assert list(response.outputs[1].contents.fp32_contents) == [0.25, 0.75] and not response.raw_output_contents
    raw = service_pb2.ModelInferResponse()
    codec.add_output(raw, "labels", ["ab"], "BYTES", [1], raw=True)
    codec.add_output(raw, "i", np.array([3], np.int64), "INT64", [1], raw=True)
    assert list(raw.raw_output_contents) == [b"\x02\0\0\0ab", np.array([3], "<i8").tobytes()]
    assert not raw.outputs[0].HasField("contents") and [list(o.shape) for o in raw.outputs] == [[1], [1]]


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (calls.RefusedError(404, "unknown service"), grpc.StatusCode.NOT_FOUND),
        (calls.RefusedError(413, "too large"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (UnauthenticatedError("missing or invalid bearer token"), grpc.StatusCode.UNAUTHENTICATED),
        (PermissionDeniedError("key 'k' lacks the 'predict' scope"), grpc.StatusCode.PERMISSION_DENIED),
        (InputError("the input has 3 rows"), grpc.StatusCode.INVALID_ARGUMENT),
        (UnanswerableInputError("row 0: not finite"), grpc.StatusCode.INVALID_ARGUMENT),
        (TensorError("input 'x' has shape [1]"), grpc.StatusCode.INVALID_ARGUMENT),
        (NotFoundError("no model 'nope'"), grpc.StatusCode.NOT_FOUND),
        (InvalidNameError("'../x' is not a model name"), grpc.StatusCode.NOT_FOUND),
        (CorruptVersionError("version 2 of 'iris' is broken"), grpc.StatusCode.FAILED_PRECONDITION),
        (StoreUnavailableError("the store cannot be read"), grpc.StatusCode.UNAVAILABLE),
        (StoreError("something of the store"), grpc.StatusCode.FAILED_PRECONDITION),
    ],
)
def test_every_refusal_has_the_code_of_its_http_status_and_its_message(error, code):
    assert calls.status_of(error, Call("rid")) == (code, str(getattr(error, "message", error)))


def test_a_refusal_asking_for_a_key_names_metadata_where_http_names_a_header():
    code, message = calls.status_of(UnauthenticatedError("this call needs any key", send=True), Call("rid"))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert message == "send exactly one 'authorization: Bearer <token>' metadata entry: this call needs any key"
    assert "header" not in calls.status_of(UnauthenticatedError(send=True), Call("rid"))[1]


def test_the_http_statuses_of_store_errors_all_have_a_code():
    for error in (NotFoundError("x"), CorruptVersionError("x"), StoreUnavailableError("x"), StoreError("x")):
        assert errors.handle_store_error(error)[1] in calls.CODES


def test_anything_else_is_internal_quoting_the_request_id_and_logged(caplog):
    with caplog.at_level(logging.ERROR):
        code, message = calls.status_of(RuntimeError("a bug"), Call("req-7"))
    assert code == grpc.StatusCode.INTERNAL
    assert message == "internal error; quote request id req-7 when reporting it"
    assert "req-7" in caplog.text and "a bug" in caplog.text


def test_typed_values_beyond_the_models_budget_are_refused_before_they_are_read():
    request = infer_request(("input", "FP64", np.zeros((250, 4))), ("b", "INT32", [[1]]))
    with pytest.raises(TensorError) as caught:
        codec.inference_request(request, BUDGET)
    assert caught.value.message.startswith("the request holds 1001 typed values; a request for this model may hold at")
    assert codec.inference_request(infer_request(("input", "FP64", np.zeros((250, 4)))), BUDGET).json["inputs"]
