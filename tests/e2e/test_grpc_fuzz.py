"""Malformed gRPC messages against ``nnserve serve``: each gets a status code, none crashes or wedges the server.

Generated ``ModelInferRequest``s (tritonclient's messages, which are the protocol's) with wrong shapes, datatypes,
sizes, typed and raw contents mixed, values in another datatype's field, odd names, versions and parameters; and
bytes that are no message at all. Every answer is OK or a refusal the protocol names (INVALID_ARGUMENT,
NOT_FOUND, RESOURCE_EXHAUSTED), undecodable bytes too (INVALID_ARGUMENT, not gRPC's own INTERNAL). Afterwards the
server still answers, and its log holds no unhandled error.
"""

from __future__ import annotations

import math

import grpc
import pytest
from helpers import copy_store
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servers import start_serve
from tritonclient.grpc import service_pb2, service_pb2_grpc

pytestmark = pytest.mark.slow

INFER = "/inference.GRPCInferenceService/ModelInfer"
REFUSALS = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.RESOURCE_EXHAUSTED}
DATATYPES = ["FP32", "FP64", "FP16", "BF16", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT64", "BOOL", "BYTES"]
FIELDS = {  # InferTensorContents field -> values it holds
    "fp32_contents": st.floats(width=32),
    "fp64_contents": st.floats(),
    "int_contents": st.integers(-(2**31), 2**31 - 1),
    "int64_contents": st.integers(-(2**63), 2**63 - 1),
    "uint_contents": st.integers(0, 2**32 - 1),
    "uint64_contents": st.integers(0, 2**64 - 1),
    "bool_contents": st.booleans(),
    "bytes_contents": st.binary(max_size=8),
}
SETTINGS = settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def server(trained_store, tmp_path_factory):
    root = copy_store(trained_store("iris", "diabetes", epochs=2), tmp_path_factory.mktemp("grpc-fuzz"))
    server = start_serve(root, {"NNSERVE_MAX_ROWS": "100", "NNSERVE_MAX_BODY_BYTES": "65536"})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def channel(server):
    with grpc.insecure_channel(server.grpc) as channel:
        yield channel


parameter = st.one_of(
    st.builds(lambda v: service_pb2.InferParameter(bool_param=v), st.booleans()),
    st.builds(lambda v: service_pb2.InferParameter(int64_param=v), st.integers(-(2**63), 2**63 - 1)),
    st.builds(lambda v: service_pb2.InferParameter(string_param=v), st.text(max_size=8)),
    st.builds(lambda v: service_pb2.InferParameter(double_param=v), st.floats()),
    st.just(service_pb2.InferParameter()),
)
parameters = st.dictionaries(
    st.sampled_from(["binary_data", "binary_data_size", "shared_memory_region", "classification", "x"]),
    parameter,
    max_size=2,
)


@st.composite
def tensor(draw, width):
    """An input tensor near what a model takes: its datatype, shape and contents each possibly wrong."""
    datatype = draw(st.sampled_from(DATATYPES) | st.text(max_size=6))
    rows = draw(st.integers(0, 4) | st.sampled_from([-1, 101, 2**40]))
    shape = draw(st.just([rows, width]) | st.lists(st.integers(-2, 6) | st.just(2**62), max_size=4))
    made = service_pb2.ModelInferRequest.InferInputTensor(
        name=draw(st.sampled_from(["input", "x", ""])), datatype=datatype, shape=shape
    )
    for key, value in draw(parameters).items():
        made.parameters[key].CopyFrom(value)
    return made


@st.composite
def infer_request(draw):
    width = draw(st.sampled_from([4, 10, 3]))  # iris takes 4, diabetes 10
    request = service_pb2.ModelInferRequest(
        model_name=draw(st.sampled_from(["iris", "diabetes", "nope", "", "../iris", "iris\x00", "a" * 200])),
        model_version=draw(st.sampled_from(["", "", "1", "0", "-1", "99", "x", "9" * 30])),
        id=draw(st.text(max_size=10)),
    )
    tensors = draw(st.lists(tensor(width), min_size=0, max_size=3))
    request.inputs.extend(tensors)
    for made in request.inputs:  # typed contents, in the datatype's field or another one
        if draw(st.booleans()):
            field = draw(st.sampled_from(sorted(FIELDS)))
            count = math.prod(max(d, 0) for d in made.shape[:3])
            getattr(made.contents, field).extend(draw(st.lists(FIELDS[field], min_size=min(count, 8), max_size=8)))
    if draw(st.booleans()):  # raw contents: right-sized, wrong-sized, one too few or too many
        for made in request.inputs[: len(request.inputs) + draw(st.integers(-1, 1))]:
            count = math.prod(max(d, 0) for d in made.shape) if len(made.shape) <= 2 else 1
            size = min(count, 64) * 4 + draw(st.sampled_from([0, 0, -1, 4, 8]))
            request.raw_input_contents.append(draw(st.binary(min_size=max(size, 0), max_size=max(size, 0))))
    for name in draw(st.lists(st.sampled_from(["predictions", "labels", "probabilities", "nope"]), max_size=3)):
        out = request.outputs.add(name=name)
        for key, value in draw(parameters).items():
            out.parameters[key].CopyFrom(value)
    for key, value in draw(parameters).items():
        request.parameters[key].CopyFrom(value)
    return request


def test_malformed_inference_requests_get_status_codes(channel, server):
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
    codes = set()

    @SETTINGS
    @given(infer_request())
    def check(request):
        try:
            stub.ModelInfer(request, timeout=30)
            codes.add(grpc.StatusCode.OK)
        except grpc.RpcError as exc:
            assert exc.code() in REFUSALS, (exc.code(), exc.details(), request)
            assert exc.details(), request
            codes.add(exc.code())

    check()
    assert grpc.StatusCode.INVALID_ARGUMENT in codes and grpc.StatusCode.NOT_FOUND in codes
    assert_still_serving(channel, server)


def test_bytes_that_are_no_message_get_status_codes(channel, server):
    raw = channel.unary_unary(INFER)  # no serializers: bytes in, bytes out

    @SETTINGS
    @given(st.binary(max_size=512))
    def check(data):
        try:
            raw(data, timeout=30)
        except grpc.RpcError as exc:
            assert exc.code() in REFUSALS, (exc.code(), exc.details(), data)

    check()
    for data in (b"\xff\xff\xff\xff", b"\x0a\x80"):  # a field number 0 and more; a length beyond the end
        with pytest.raises(grpc.RpcError) as refused:
            raw(data, timeout=30)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert refused.value.details() == "the request's bytes are no inference.ModelInferRequest message"
    assert_still_serving(channel, server)


@pytest.mark.parametrize("method", ["ModelMetadata", "ModelReady"])
def test_model_names_and_versions_that_are_no_model_get_status_codes(channel, server, method):
    call = getattr(service_pb2_grpc.GRPCInferenceServiceStub(channel), method)
    message = getattr(service_pb2, f"{method}Request")

    @SETTINGS
    @given(st.text(max_size=40), st.text(max_size=12))
    def check(name, version):
        try:
            call(message(name=name, version=version), timeout=30)
        except grpc.RpcError as exc:
            assert exc.code() in REFUSALS, (exc.code(), exc.details(), name, version)

    check()
    assert_still_serving(channel, server)


def assert_still_serving(channel, server):
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
    assert stub.ServerLive(service_pb2.ServerLiveRequest(), timeout=30).live
    request = service_pb2.ModelInferRequest(model_name="iris")
    request.inputs.add(name="input", datatype="FP64", shape=[1, 4]).contents.fp64_contents.extend([5.1, 3.5, 1.4, 0.2])
    assert stub.ModelInfer(request, timeout=30).model_name == "iris"
    log = server.log.read_text(errors="replace")
    assert "unhandled error" not in log and "Traceback" not in log, log[-5000:]
