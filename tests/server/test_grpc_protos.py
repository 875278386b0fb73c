"""The gRPC API's definition: its generated modules are what the pinned grpcio-tools makes of its .proto (so they
cannot drift), and its messages are the protocol's, field for field, as tritonclient.grpc has them.

Nothing here imports nnserve's generated modules: they and tritonclient's register the same ``inference.*``
names in protobuf's default pool, and one process can hold only one of them (service/server/grpc/__init__.py).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2
from helpers import REPO
from tritonclient.grpc import service_pb2 as triton

PROTO = Path("service/server/grpc/grpc_predict_v2.proto")
GENERATED = ["grpc_predict_v2_pb2.py", "grpc_predict_v2_pb2.pyi", "grpc_predict_v2_pb2_grpc.py"]


def test_the_generated_modules_are_what_make_protos_makes_of_the_proto(tmp_path):
    subprocess.run(["make", "-s", "protos", f"PY={sys.executable}", f"OUT={tmp_path}"], cwd=REPO, check=True)
    for name in GENERATED:
        made = (tmp_path / PROTO.parent / name).read_text()
        assert made == (REPO / PROTO.parent / name).read_text(), f"{name} is stale: run `make protos`"


def test_the_proto_keeps_its_license_header():
    text = (REPO / PROTO).read_text()
    assert text.startswith("// Copyright 2020 The KServe Authors.") and "Apache License, Version 2.0" in text


@pytest.fixture(scope="module")
def ours(tmp_path_factory) -> descriptor_pb2.FileDescriptorProto:
    """The .proto compiled by protoc, read as a descriptor (a plain message: nothing is registered)."""
    out = tmp_path_factory.mktemp("descriptor") / "set.pb"
    argv = [sys.executable, "-m", "grpc_tools.protoc", "-I", ".", f"--descriptor_set_out={out}", str(PROTO)]
    subprocess.run(argv, cwd=REPO, check=True)
    files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    (proto,) = files.file
    return proto


def _fields(message: descriptor_pb2.DescriptorProto, prefix: str = "") -> dict[str, tuple]:
    fields = {f"{prefix}{message.name}.{f.name}": (f.number, f.type, f.label, f.type_name) for f in message.field}
    for nested in message.nested_type:
        fields.update(_fields(nested, f"{prefix}{message.name}."))
    return fields


def test_every_message_and_method_is_tritons_field_for_field(ours):
    theirs = descriptor_pb2.FileDescriptorProto()
    triton.DESCRIPTOR.CopyToProto(theirs)
    assert ours.package == theirs.package == "inference"
    their_messages = {m.name: m for m in theirs.message_type}
    for message in ours.message_type:
        assert _fields(message) == _fields(their_messages[message.name]), message.name
    (service,) = ours.service
    (their_service,) = theirs.service
    their_methods = {m.name: m for m in their_service.method}
    assert service.name == their_service.name == "GRPCInferenceService"
    for method in service.method:
        their = their_methods[method.name]
        assert (method.input_type, method.output_type, method.client_streaming, method.server_streaming) == (
            their.input_type,
            their.output_type,
            their.client_streaming,
            their.server_streaming,
        )
    assert [m.name for m in service.method] == [
        "ServerLive",
        "ServerReady",
        "ModelReady",
        "ServerMetadata",
        "ModelMetadata",
        "ModelInfer",
        "RepositoryIndex",
    ]
