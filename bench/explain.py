"""Explanations: nn's input gradients against PyTorch's autograd on the same weights, and one-row explain latency
against one-row predict latency over HTTP, in the same run.

    .venv/bin/python bench/explain.py [--seconds 5] [--rounds 3]

Needs ``torch`` (the ``bench`` extra) and ``wrk``. Part 1 trains every catalog model as its spec says, rebuilds
each network in PyTorch (float64, the same weights, standardisation and output function) and compares, on the
held-out rows and on every point of their integrated-gradients paths, nn's gradient of the explained output
with autograd's, and the integrated-gradients attributions integrated from each (same nodes): the largest
absolute difference per model (target <= 1e-5). Part 2 serves the catalog (``nnserve serve``, one web worker)
and runs wrk with one connection, interleaved, on one row of iris and of digits: predict, and explain with
integrated gradients at 32 steps; the ratio explain p50 / predict p50 per round (target <= 5).
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import (
    bench_env,
    free_port,
    rows,
    serve_argv,
    start,
    stop,
    timed_rounds_args,
    train_store,
    wait_ready,
    write_body,
    write_result,
    wrk,
)

from nn import GELU, Dense, Dropout, LeakyReLU, MLPClassifier, ReLU, Sigmoid, Tanh
from nn.attribution import integrated_gradients, path_quadrature
from nn.estimators import BaseMLP
from service.training.catalog import catalog_specs
from service.training.fitting import train_spec

ROOT = Path(__file__).resolve().parent.parent
TOLERANCE = 1e-5


def torch_output(estimator: BaseMLP, X: torch.Tensor, target: np.ndarray) -> torch.Tensor:
    """The estimator's explained output per row, written again in PyTorch from its weights (float64)."""
    h = (X - torch.from_numpy(estimator.x_mean_.astype(np.float64))) / torch.from_numpy(
        estimator.x_scale_.astype(np.float64)
    )
    for layer in estimator.network_.layers:
        if isinstance(layer, Dense):
            W, b = (torch.from_numpy(layer.params[k].astype(np.float64)) for k in ("W", "b"))
            h = h @ W + b
        elif isinstance(layer, ReLU):
            h = torch.relu(h)
        elif isinstance(layer, LeakyReLU):
            h = torch.nn.functional.leaky_relu(h, layer.negative_slope)
        elif isinstance(layer, Tanh):
            h = torch.tanh(h)
        elif isinstance(layer, Sigmoid):
            h = torch.sigmoid(h)
        elif isinstance(layer, GELU):
            h = torch.nn.functional.gelu(h, approximate="tanh")
        elif not isinstance(layer, Dropout):  # dropout is the identity at inference
            raise TypeError(f"no PyTorch twin for {layer!r}")
    rows_ = torch.arange(len(target))
    picked = torch.from_numpy(target)
    if isinstance(estimator, MLPClassifier):
        if h.shape[1] == 1:  # one logit: P(class 1) = sigmoid, P(class 0) = 1 - it
            p = torch.sigmoid(h[:, 0])
            return torch.where(picked == 1, p, 1 - p)
        return torch.softmax(h, dim=1)[rows_, picked]
    scale = torch.from_numpy(estimator.y_scale_.astype(np.float64))[picked]
    mean = torch.from_numpy(estimator.y_mean_.astype(np.float64))[picked]
    return h[rows_, picked] * scale + mean


def autograd_gradient(estimator: BaseMLP, X: np.ndarray, target: np.ndarray) -> np.ndarray:
    x = torch.tensor(X, dtype=torch.float64, requires_grad=True)
    torch_output(estimator, x, target).sum().backward()
    assert x.grad is not None
    return x.grad.numpy()


def compare(estimator: BaseMLP, X: np.ndarray, baseline: np.ndarray, steps: int) -> tuple[float, float, int]:
    """(max |nn gradient - autograd gradient| over the rows and their path points, max |IG(nn) - IG(autograd)|,
    points compared)."""
    target = estimator.target_index(X)
    worst_gradient, points = 0.0, 0
    ig_torch = np.empty_like(X)
    kinks = estimator.kinks_on_path(np.broadcast_to(baseline, X.shape), X)
    for i, row in enumerate(X):
        t, w = path_quadrature(kinks[i], steps)
        path = baseline + np.concatenate([t, [1.0]])[:, None] * (row - baseline)
        chosen = np.full(len(path), target[i])
        ours = estimator.input_gradient(path, chosen, dtype=np.float64)
        theirs = autograd_gradient(estimator, path, chosen)
        worst_gradient = max(worst_gradient, float(np.abs(ours - theirs).max()))
        points += len(path)
        ig_torch[i] = (row - baseline) * (w[:, None] * theirs[:-1]).sum(axis=0)
    ig_nn = integrated_gradients(estimator, X, baseline, target, steps).values
    return worst_gradient, float(np.abs(ig_nn - ig_torch).max()), points


def part_autograd(steps: int = 32, rows_per_model: int = 40) -> list[str]:
    lines = [
        f"Autograd: nn's input gradients (float64) and PyTorch {torch.__version__}'s on the same weights, each catalog "
        f"model trained as its spec says; the first {rows_per_model} held-out rows and every point of their "
        f"integrated-gradients paths ({steps} steps, from the training means).",
        "",
        "| model | points | max abs diff, gradients | max abs diff, IG attributions | <= 1e-5 |",
        "|---|---:|---:|---:|---|",
    ]
    for spec in catalog_specs(ROOT / "models"):
        _, result = train_spec(spec)
        X = np.asarray(result.evaluation.X, np.float64)[:rows_per_model]
        means = np.asarray(result.training.X, np.float64).mean(axis=0)
        gradient, ig, points = compare(result.estimator, X, means, steps)
        ok = "yes" if max(gradient, ig) <= TOLERANCE else "**no**"
        lines.append(f"| {spec.name} | {points} | {gradient:.2e} | {ig:.2e} | {ok} |")
    return lines


def part_http(seconds: int, rounds: int) -> list[str]:
    work = Path(tempfile.mkdtemp(prefix="nnserve-bench-explain-"))
    store = work / "store"
    env = bench_env(NNSERVE_STORE=str(store), NNSERVE_LOG_LEVEL="warning")
    train_store(store, ["iris", "digits"], env)
    port = free_port()
    serve = start(serve_argv(port, store, 1, ["--no-retrain-worker"]), env)
    base = f"http://127.0.0.1:{port}/v1/models"
    cases = {}
    for name in ("iris", "digits"):
        row = rows(name)[0]
        cases[(name, "predict")] = (f"{base}/{name}/predict", write_body(work / f"{name}-p.json", {"instances": [row]}))
        body = {"instances": [row], "method": "integrated_gradients", "steps": 32}
        cases[(name, "explain")] = (f"{base}/{name}/explain", write_body(work / f"{name}-e.json", body))
    results: dict[tuple[str, str], list[dict]] = {case: [] for case in cases}
    load = [os.getloadavg()[0]]
    try:
        wait_ready(f"http://127.0.0.1:{port}")
        for url, body in cases.values():  # warm-up
            wrk(url, body, 2, 1, 1)
        order = list(cases)
        for round_ in range(rounds):
            shift = round_ % len(order)
            for case in order[shift:] + order[:shift]:
                url, body = cases[case]
                results[case].append(wrk(url, body, seconds, 1, 1))
        load.append(os.getloadavg()[0])
    finally:
        stop(serve)
        shutil.rmtree(work, ignore_errors=True)
    lines = [
        f"HTTP: `nnserve serve` with one web worker, wrk with one connection, {rounds} interleaved rounds of "
        f"{seconds} s per case; one row; explain = integrated gradients at 32 steps from the training means. Load "
        f"average (1 min) at the start and end: {load[0]:.1f} and {load[1]:.1f}.",
        "",
        "| model | predict p50 ms | explain p50 ms | explain / predict (median of rounds) | rounds | <= 5 |",
        "|---|---:|---:|---:|---|---|",
    ]
    for name in ("iris", "digits"):
        predict, explain = results[(name, "predict")], results[(name, "explain")]
        if any(r["non2xx"] for r in predict + explain):
            raise RuntimeError(f"{name}: non-2xx answers during the run")
        ratios = [e["p50"] / p["p50"] for p, e in zip(predict, explain, strict=True)]
        ratio = statistics.median(ratios)
        lines.append(
            f"| {name} | {statistics.median(r['p50'] for r in predict):.2f} | "
            f"{statistics.median(r['p50'] for r in explain):.2f} | **{ratio:.2f}x** | "
            f"{', '.join(f'{r:.2f}' for r in ratios)} | {'yes' if ratio <= 5 else '**no**'} |"
        )
    return lines


def main() -> None:
    args = timed_rounds_args(__doc__, seconds=5, rounds=3)
    lines = [
        f"# Explanations benchmark ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores)",
        "",
        *part_autograd(),
        "",
        *part_http(args.seconds, args.rounds),
    ]
    write_result("explain", "\n".join(lines))


if __name__ == "__main__":
    main()
