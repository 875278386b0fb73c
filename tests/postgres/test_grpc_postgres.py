"""gRPC on the PostgreSQL store, with the database stopped: what needs it is UNAVAILABLE with HTTP's 503 message,
what is loaded keeps answering (tritonclient.grpc and .http against one ``nnserve serve``)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from helpers import REPO, service_env, wait_for
from servers import start_serve
from tritonclient.utils import InferenceServerException

from postgres.server import PostgresServer

ROWS = np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)


def infer(module, client, version=""):
    tensor = module.InferInput("input", list(ROWS.shape), "FP32")
    tensor.set_data_from_numpy(ROWS)
    return client.infer("iris", [tensor], model_version=version)


def test_a_version_the_database_must_give_is_unavailable_while_it_is_down(
    tmp_path, database_url: str, pg_server: PostgresServer
) -> None:
    env = {"NNSERVE_DATABASE_URL": database_url, "NNSERVE_DB_RETRY_INTERVAL": "1"}
    for _ in range(2):  # versions 1 and 2, the second active
        argv = [sys.executable, "-m", "service.cli", "train", "iris", "--epochs", "2", "--store", str(tmp_path / "cli")]
        subprocess.run(argv, cwd=REPO, env=service_env(**env), check=True, capture_output=True, timeout=120)
    server = start_serve(tmp_path / "cache", env, log_dir=tmp_path)
    grpc_client = grpcclient.InferenceServerClient(server.grpc)
    http_client = httpclient.InferenceServerClient(server.host_port, network_timeout=30.0)
    try:
        # both workers' models loaded before the outage: a worker still starting when it began has none to serve
        wait_for(lambda: server.log.read_text().count("gRPC: serving") == 2, 60, "both workers to serve gRPC")
        pg_server.stop()
        try:
            with pytest.raises(InferenceServerException) as g:
                infer(grpcclient, grpc_client, "1")
            with pytest.raises(InferenceServerException) as h:
                infer(httpclient, http_client, "1")
            assert g.value.status() == "StatusCode.UNAVAILABLE" and h.value.status() == "503"
            assert g.value.message() == h.value.message() and "database" in g.value.message()
            assert infer(grpcclient, grpc_client).get_response().model_version == "2"  # loaded: still answers
        finally:
            pg_server.start()
    finally:
        grpc_client.close()
        http_client.close()
        server.stop()
