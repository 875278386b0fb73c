"""Helpers the test modules share (fixtures built on them are in ``tests/conftest.py``).

``tests/`` is on ``sys.path`` while any part of the suite runs (pytest's default import mode puts the folder of
``tests/conftest.py`` there, and that conftest is loaded for every subset), so any test module imports these as
``from helpers import ...``. Never import from ``conftest``: which of the suite's conftest modules that name
means depends on what else was collected.
"""

from __future__ import annotations

import csv
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import nn

REPO = Path(__file__).resolve().parent.parent


def train_store(root: Path, *models: str, epochs: int) -> Path:
    """``nnserve train <models> --epochs <epochs> --store <root>`` through the real CLI; returns ``root``."""
    subprocess.run(
        [sys.executable, "-m", "service.cli", "train", *models, "--epochs", str(epochs), "--store", str(root)],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    return root


def copy_store(base: Path, parent: Path) -> Path:
    """A copy of the store ``base`` at ``parent / "store"``."""
    root = Path(parent) / "store"
    shutil.copytree(base, root)
    return root


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service_env(**extra: str) -> dict[str, str]:
    """This process's environment without any ``NNSERVE_*`` variable, plus ``extra``; gRPC off unless ``extra``
    names a port (its default port is fixed: servers the tests start side by side would share it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NNSERVE_")}
    env["NNSERVE_GRPC_PORT"] = "0"
    env.update(extra)
    return env


def start_process(argv: list[str], env: dict[str, str] | None = None, log: Path | None = None) -> subprocess.Popen:
    """``argv`` from the repository root in a process group of its own (so a teardown can kill it whole),
    stdin closed, stdout and stderr into the file ``log`` (discarded when None)."""
    out = open(log, "wb") if log is not None else subprocess.DEVNULL  # noqa: SIM115 (closed below, the child keeps its copy)
    try:
        return subprocess.Popen(
            argv,
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    finally:
        if log is not None:
            out.close()


def start_cli(*args: object, env: dict[str, str] | None = None, log: Path | None = None) -> subprocess.Popen:
    """``python -m service.cli <args>`` started by ``start_process``."""
    return start_process([sys.executable, "-m", "service.cli", *map(str, args)], env, log)


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``predicate`` every 50 ms until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def tiny_classifier(seed: int) -> nn.MLPClassifier:
    """A two-feature classifier fitted in a few milliseconds (stores that need versions, not accuracy)."""
    X = np.random.default_rng(seed).normal(size=(40, 2))
    return nn.MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, random_state=seed).fit(X, X[:, 0] > 0)


def flip_byte(path: Path) -> None:
    """Invert the byte in the middle of the file at ``path``."""
    data = bytearray(Path(path).read_bytes())
    data[len(data) // 2] ^= 0xFF
    Path(path).write_bytes(bytes(data))


def read_catalog_csv(name: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``models/data/<name>.csv``: float64 features, the target (int, else float, else str) and feature names.

    The one reader of the shipped CSVs in the tests; the target is the last column.
    """
    with open(REPO / "models" / "data" / f"{name}.csv", newline="") as f:
        header, *rows = list(csv.reader(f))
    X = np.array([[float(v) for v in row[:-1]] for row in rows], dtype=np.float64)
    raw = [row[-1] for row in rows]
    for kind in (int, float):
        try:
            return X, np.array([kind(v) for v in raw]), header[:-1]
        except ValueError:
            continue
    return X, np.array(raw), header[:-1]


def monitoring_pass(app, *names: str) -> None:
    """What the retraining worker's policy pass writes for monitoring reads: the snapshots of ``names`` (default:
    every model), from the app's own store and prediction log, its web worker's pending predictions written first."""
    from service.training.policies import PolicyRunner, Settings

    recorder = app.extensions["nnserve.dataplane"].recorder
    recorder.flush()
    store = app.extensions["nnserve.dataplane"].registry.store
    runner = PolicyRunner(
        store, app.extensions["nnserve.jobs"], recorder.log, Settings.from_settings(app.config),
        app.extensions["nnserve.snapshots"],
    )  # fmt: skip
    for name in names or store.model_names():
        runner.monitor(name)
