"""A closed-loop gRPC load generator for the Open Inference Protocol's ``ModelInfer``, in Python with grpcio.

``ghz`` is not packaged by Debian, so the gRPC benchmarks drive every server with this one client: the
same request bytes, the same processes, threads and connections, so ratios between servers are fair
(the client's own CPU competes with the server's on a small machine, alike for every server).

The request is built once with tritonclient's protobuf classes (``raw_input_contents``, as
``tritonclient.grpc`` sends it) and sent as bytes; answers are counted, not decoded, except once
per connection to check that the server understood it.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from typing import Any

import grpc
import numpy as np
from common import percentile
from tritonclient.grpc import service_pb2

METHOD = "/inference.GRPCInferenceService/ModelInfer"
DATATYPE = {np.dtype(np.float32): "FP32", np.dtype(np.float64): "FP64"}
# every channel its own TCP connection: grpcio would otherwise share one per target within a process, and
# servers that spread connections over processes (SO_REUSEPORT) would see fewer connections than threads
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1), ("grpc.max_receive_message_length", 64 * 1024 * 1024)]


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
    with grpc.insecure_channel(target, options=OWN_CONNECTION) as channel:
        return channel.unary_unary(METHOD)(request, timeout=timeout)


def _process(target: str, request: bytes, threads: int, start_at: float, seconds: float) -> dict[str, Any]:
    """One client process: ``threads`` threads, each with its own connection, calling in a closed loop from
    ``start_at`` (or when connected, if later) until ``start_at + seconds``: {latencies (s) of the calls that
    succeeded, errors: {code: count}, window: the seconds it called}."""
    channels = [grpc.insecure_channel(target, options=OWN_CONNECTION) for _ in range(threads)]
    calls = [channel.unary_unary(METHOD) for channel in channels]
    for call in calls:  # connect and warm each connection before the clock starts
        call(request, timeout=30)
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors: dict[str, int] = {}
    lock = threading.Lock()

    def loop(i: int) -> None:
        end = start_at + seconds
        while (now := time.perf_counter()) < end:
            try:
                calls[i](request, timeout=30)
            except grpc.RpcError as exc:
                with lock:
                    errors[exc.code().name] = errors.get(exc.code().name, 0) + 1
                continue
            latencies[i].append(time.perf_counter() - now)

    time.sleep(max(0.0, start_at - time.perf_counter()))
    window = start_at + seconds - max(start_at, time.perf_counter())
    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for channel in channels:
        channel.close()
    return {"latencies": [x for per in latencies for x in per], "errors": errors, "window": window}


def load(target: str, request: bytes, seconds: float, processes: int = 2, threads: int = 8) -> dict[str, Any]:
    """``processes`` x ``threads`` closed-loop callers of ``request`` on ``target`` for ``seconds``:
    requests (calls that succeeded), rps, p50 and p99 (ms), errors ({status code: count}). Each process's rate
    counts over the time it called (a process that connected late called for less)."""
    ctx = multiprocessing.get_context("spawn")  # no grpcio state forked from this process
    # time.perf_counter is CLOCK_MONOTONIC on Linux: one clock for every process, so one start for all
    with ctx.Pool(processes) as pool:
        start_at = time.perf_counter() + 4.0  # when the spawned processes have connected
        parts = pool.starmap(_process, [(target, request, threads, start_at, seconds)] * processes)
    latencies = [x for part in parts for x in part["latencies"]]
    errors: dict[str, int] = {}
    for part in parts:
        for code, n in part["errors"].items():
            errors[code] = errors.get(code, 0) + n
    ms = [x * 1000 for x in latencies]
    return {
        "requests": len(latencies),
        "rps": sum(len(part["latencies"]) / part["window"] for part in parts),
        "p50": percentile(ms, 50),
        "p99": percentile(ms, 99),
        "errors": errors,
    }
