"""The gRPC checks of the container tests: tritonclient.grpc against a running nnserve, or nginx in front of it.

    .venv/bin/python scripts/grpc_probe.py GRPC_TARGET HTTP_BASE [--version N] [--calls 12]

Through GRPC_TARGET (host:port), with the unmodified tritonclient.grpc and grpcio's health stubs:
the server is live and ready, grpc.health.v1 says SERVING, iris is ready; iris's metadata is what
GET HTTP_BASE/v2/models/iris says; one iris row's outputs and model version equal HTTP v2's answer
for the same row (with ``--version``: that version, pinned, over both); an unknown model is
NOT_FOUND; a message over the 16 MiB body limit is RESOURCE_EXHAUSTED; then ``--calls``
inferences, each on a connection of its own (so a proxy may send each to another replica).
Prints one line per check and exits 1 at the first that fails. Run by scripts/container-test.sh.
"""

from __future__ import annotations

import argparse
import sys

import grpc
import numpy as np
import requests
import tritonclient.grpc as triton
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.utils import InferenceServerException

ROW = [5.1, 3.5, 1.4, 0.2]
LIMIT = 16 * 1024 * 1024  # NNSERVE_MAX_BODY_BYTES's default, and deploy/nginx.conf's client_max_body_size


def fail(message: str) -> None:
    print(f"grpc probe: FAILED: {message}")
    sys.exit(1)


def check(ok: bool, message: str) -> None:
    if not ok:
        fail(message)
    print(f"grpc probe: ok: {message}")


def tensors(described: list[dict]) -> list[dict]:
    """Metadata tensors as {name, datatype, shape of ints} (tritonclient's JSON gives int64 fields as strings)."""
    return [{"name": t["name"], "datatype": t["datatype"], "shape": [int(d) for d in t["shape"]]} for t in described]


def infer(client: triton.InferenceServerClient, version: str) -> triton.InferResult:
    tensor = triton.InferInput("input", [1, len(ROW)], "FP32")
    tensor.set_data_from_numpy(np.asarray([ROW], dtype=np.float32))
    return client.infer("iris", [tensor], model_version=version)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", help="host:port of the gRPC server (or of nginx's gRPC listener)")
    parser.add_argument("http", help="base URL of the same deployment's HTTP API, e.g. http://127.0.0.1:8000")
    parser.add_argument("--version", default="", help="pin this iris version on both transports")
    parser.add_argument("--calls", type=int, default=12)
    args = parser.parse_args()

    client = triton.InferenceServerClient(args.target)
    check(client.is_server_live() and client.is_server_ready(), f"{args.target}: server live and ready")
    with grpc.insecure_channel(args.target) as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    check(status.status == health_pb2.HealthCheckResponse.SERVING, "grpc.health.v1 Check: SERVING")
    check(client.is_model_ready("iris", args.version), f"iris {args.version or '(active)'} ready")

    grpc_meta = client.get_model_metadata("iris", args.version, as_json=True)
    path = "/v2/models/iris" + (f"/versions/{args.version}" if args.version else "")
    http_meta = requests.get(args.http + path, timeout=10).json()
    same = [tensors(grpc_meta[k]) == tensors(http_meta[k]) for k in ("inputs", "outputs")]
    check(all(same), f"iris metadata over gRPC = GET {path}: {[t['name'] for t in http_meta['outputs']]}")

    answer = infer(client, args.version)
    body = {"inputs": [{"name": "input", "shape": [1, len(ROW)], "datatype": "FP32", "data": ROW}]}
    http_answer = requests.post(args.http + path + "/infer", json=body, timeout=10).json()
    got = answer.get_response(as_json=True)
    check(got["model_version"] == http_answer["model_version"], f"model_version {got['model_version']} on both")
    for out in http_answer["outputs"]:
        value = answer.as_numpy(out["name"])
        if out["datatype"] == "BYTES":
            same_values = [v.decode() for v in value.reshape(-1)] == out["data"]
        else:
            same_values = np.allclose(value.reshape(-1), np.asarray(out["data"], dtype=value.dtype), rtol=0, atol=1e-6)
        check(same_values and list(value.shape) == out["shape"], f"output {out['name']} = HTTP v2's: {out['data']}")

    try:
        client.get_model_metadata("no-such-model")
        fail("metadata of an unknown model answered")
    except InferenceServerException as exc:
        check(exc.status() == "StatusCode.NOT_FOUND", f"unknown model: {exc.status()}")

    big = triton.InferInput("input", [LIMIT // 16 + 1, 4], "FP32")  # one row over the limit in raw bytes alone
    big.set_data_from_numpy(np.zeros((LIMIT // 16 + 1, 4), dtype=np.float32))
    try:
        client.infer("iris", [big])
        fail("a message over the body limit was answered")
    except InferenceServerException as exc:
        check(exc.status() == "StatusCode.RESOURCE_EXHAUSTED", f"a {LIMIT // 2**20} MiB+ message: {exc.status()}")

    labels = set()
    for _ in range(args.calls):
        fresh = triton.InferenceServerClient(args.target)
        labels.add(infer(fresh, args.version).as_numpy("labels")[0].decode())
        fresh.close()
    check(labels == {"setosa"}, f"{args.calls} inferences on fresh connections: {sorted(labels)}")
    client.close()


if __name__ == "__main__":
    main()
