"""Closed-loop load over HTTP/2 (gRPC) and HTTP/1.1 with one C client, h2load (Debian's nghttp2-client).

The gRPC benchmarks compare servers and protocols: gRPC ``ModelInfer`` against MLServer's, and against
nnserve's own HTTP v2. One client drives every case (the same connections, one stream each, one thread),
so its own CPU, which competes with the servers' on a small machine, weighs alike on each side of every
ratio. ``ghz`` is not packaged by Debian; h2load is, and sends gRPC's framing as a plain HTTP/2 POST.

The request is built once with tritonclient's protobuf classes (``raw_input_contents``, as
``tritonclient.grpc`` sends it) and checked once with grpcio (``call_once``, ``decode_reply``). Under load,
answers are counted, not decoded: gRPC reports a failed call in trailers under HTTP status 200, so a call
counts as answered only by the bytes of its reply message.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from common import percentile
from tritonclient.grpc import service_pb2

METHOD = "/inference.GRPCInferenceService/ModelInfer"
DATATYPE = {np.dtype(np.float32): "FP32", np.dtype(np.float64): "FP64"}
LARGE = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]  # 10,000 rows' probabilities


def infer_request(model: str, rows: np.ndarray, input_name: str, outputs: list[str]) -> bytes:
    """A serialized ``ModelInferRequest`` of ``rows`` as raw contents, asking for ``outputs``."""
    request = service_pb2.ModelInferRequest(model_name=model)
    tensor = request.inputs.add(name=input_name, datatype=DATATYPE[rows.dtype])
    tensor.shape.extend(rows.shape)
    request.raw_input_contents.append(np.ascontiguousarray(rows).tobytes())
    for name in outputs:
        request.outputs.add(name=name)
    return request.SerializeToString()


def decode_reply(reply: bytes) -> dict[str, np.ndarray]:
    """Each output of a serialized ``ModelInferResponse`` as an array (raw or typed contents; numbers only)."""
    response = service_pb2.ModelInferResponse.FromString(reply)
    dtypes = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32}
    fields = {"FP32": "fp32_contents", "FP64": "fp64_contents", "INT64": "int64_contents", "INT32": "int_contents"}
    out = {}
    for i, tensor in enumerate(response.outputs):
        if response.raw_output_contents:
            values = np.frombuffer(response.raw_output_contents[i], dtype=dtypes[tensor.datatype])
        else:
            values = np.asarray(getattr(tensor.contents, fields[tensor.datatype]), dtype=dtypes[tensor.datatype])
        out[tensor.name] = values.reshape(list(tensor.shape))
    return out


def call_once(target: str, request: bytes, timeout: float = 30.0) -> bytes:
    """One ``ModelInfer`` with ``request`` on a fresh channel to ``target``; the answer's bytes."""
    with grpc.insecure_channel(target, options=LARGE) as channel:
        return channel.unary_unary(METHOD)(request, timeout=timeout)


def require_h2load() -> None:
    """Exit with a hint when ``h2load`` is not on PATH."""
    if shutil.which("h2load") is None:
        sys.exit("h2load is not installed: apt-get install nghttp2-client")


def h2load(url: str, body: bytes, seconds: int, connections: int, headers: dict[str, str], h1: bool = False) -> dict:
    """``connections`` closed-loop callers (one request in flight each) POSTing ``body`` to ``url`` for
    ``seconds``: requests (answered with a 2xx), rps, p50 and p99 (ms), non2xx, and data_bytes (the bodies
    received). HTTP/2 without TLS (as gRPC's insecure channels), or HTTP/1.1 keep-alive with ``h1``."""
    with tempfile.TemporaryDirectory(prefix="nnserve-h2load-") as work:
        request, log = Path(work) / "body", Path(work) / "requests.tsv"
        request.write_bytes(body)
        argv = ["h2load", "-D", str(seconds), "-c", str(connections), "-m", "1", "-t", "1", "-d", str(request)]
        argv += [f"--log-file={log}", *(["--h1"] if h1 else []), url]
        for name, value in headers.items():
            argv += ["-H", f"{name}: {value}"]
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        # one row per request: start (us since the epoch), HTTP status, microseconds to the end of the answer
        calls = [line.split("\t") for line in log.read_text().splitlines()]
    ok = [int(us) / 1000 for _, status, us in calls if status.startswith("2")]
    data = re.search(r"^traffic: .*?, ([\d.]+)(B|KB|MB|GB) \((\d+)\) data", out, re.M)
    return {
        "requests": len(ok),
        "rps": len(ok) / seconds,
        "p50": percentile(ok, 50),
        "p99": percentile(ok, 99),
        "non2xx": len(calls) - len(ok),
        "data_bytes": int(data.group(3)) if data else 0,
    }


def load(target: str, request: bytes, reply: bytes, seconds: int, connections: int) -> dict[str, Any]:
    """``connections`` closed-loop ``ModelInfer`` callers of ``request`` on ``target`` for ``seconds``, each
    answer expected to be ``reply``'s size (a sample answer): ``h2load``'s figures, with requests counting the
    calls that got a reply message and failed the others (a gRPC error status has no message)."""
    run = h2load(
        f"http://{target}{METHOD}",
        len(request).to_bytes(5, "big") + request,  # gRPC's frame: not compressed (0), then the length
        seconds,
        connections,
        {"content-type": "application/grpc", "te": "trailers"},
    )
    answered = min(run["requests"], round(run["data_bytes"] / (5 + len(reply))))
    failed = run["non2xx"] + run["requests"] - answered
    return {**run, "requests": answered, "rps": answered / seconds, "failed": failed}
