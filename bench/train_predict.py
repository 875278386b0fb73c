"""Training and inference speed of ``nn`` against a plain-numpy floor, scikit-learn and PyTorch.

Run as ``.venv/bin/python bench/train_predict.py`` (``make bench`` does). One process:

* training: digits (``models/data/digits.csv``), 25% stratified held-out split
  (random_state=0), 64-128-64-10 ReLU MLP, batch 32, Adam lr 1e-3, 30 epochs,
  float32, shuffled every epoch, no early stopping; reported as time per epoch
  (whole ``fit`` / 30, so preprocessing is included for every contender);
* inference: ``predict_proba`` on 10,000 x 64 raw rows (the digits rows tiled),
  standardisation included for every contender.

Contenders: (n) ``nn.MLPClassifier``; (a) the floor, a plain numpy loop written
out below by hand; (b) scikit-learn's ``MLPClassifier``; (c) PyTorch eager on CPU.
Every timing is the median of several interleaved repeats after a warm-up.
The table is printed and written as Markdown to ``bench/results/train_predict.md``.

Targets: nn training per epoch <= 1.3x the floor and <= 0.5x scikit-learn;
nn ``predict_proba`` <= 1.2x PyTorch; nn accuracy >= scikit-learn's - 0.01.

On this workplace OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE may be set (older OpenBLAS
builds misbehave on the CPU without them); they pin current numpy to a slower
kernel. By default the benchmark re-executes itself once without both, in its own
process only, and reports the kernel it then runs; ``--keep-openblas-env`` keeps them.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

_OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
_UNSET_MARK = "NNSERVE_BENCH_UNSET_OPENBLAS"


def _reexec_without_openblas_pins() -> None:
    """Re-run this script once with the OpenBLAS pins removed (this process only)."""
    if "--keep-openblas-env" in sys.argv or _UNSET_MARK in os.environ:
        return
    pinned = {k: os.environ[k] for k in _OPENBLAS_VARS if k in os.environ}
    if not pinned:
        return
    env = {k: v for k, v in os.environ.items() if k not in _OPENBLAS_VARS}
    env[_UNSET_MARK] = " ".join(f"{k}={v}" for k, v in pinned.items())
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


_reexec_without_openblas_pins()

import numpy as np  # noqa: E402
import sklearn  # noqa: E402
import threadpoolctl  # noqa: E402
import torch  # noqa: E402
from common import cpu_model  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkMLP  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import nn  # noqa: E402

HIDDEN = (128, 64)
BATCH = 32
LR = 1e-3
EPOCHS = 30
SEED = 0
N_PREDICT = 10_000
F32 = np.float32

TARGET_FLOOR = 1.3
TARGET_SKLEARN = 0.5
TARGET_TORCH_PREDICT = 1.2
TARGET_ACCURACY_GAP = 0.01


# -- data ----------------------------------------------------------------------
def load_digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    data = np.loadtxt(ROOT / "models" / "data" / "digits.csv", delimiter=",", skiprows=1, dtype=np.float64)
    X, y = data[:, :-1].astype(F32), data[:, -1].astype(np.int64)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y, random_state=SEED)
    return X_train, X_test, y_train, y_test


# -- (n) nnserve ----------------------------------------------------------------
def nn_fit(X: np.ndarray, y: np.ndarray) -> nn.MLPClassifier:
    model = nn.MLPClassifier(
        hidden_layer_sizes=HIDDEN,
        batch_size=BATCH,
        learning_rate_init=LR,
        max_iter=EPOCHS,
        alpha=0.0,
        tol=0.0,
        n_iter_no_change=EPOCHS,
        random_state=SEED,
        dtype="float32",
    )
    model.fit(X, y)
    assert model.n_iter_ == EPOCHS, model.n_iter_
    return model


# -- (a) the floor: a straightforward numpy loop --------------------------------
class Floor:
    """Standardise, He init, forward/backward/Adam by hand in float32 with a fused softmax-CE gradient."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> Floor:
        rng = np.random.default_rng(SEED)
        self.mean = X.mean(axis=0)
        scale = X.std(axis=0)
        scale[scale == 0] = 1.0
        self.scale = scale
        Xs = ((X - self.mean) / self.scale).astype(F32)
        sizes = [X.shape[1], *HIDDEN, int(y.max()) + 1]
        self.W = [(rng.standard_normal((a, b)) * math.sqrt(2.0 / a)).astype(F32) for a, b in itertools.pairwise(sizes)]
        self.b = [np.zeros(b, F32) for b in sizes[1:]]
        params = [p for pair in zip(self.W, self.b, strict=False) for p in pair]
        m = [np.zeros_like(p) for p in params]
        v = [np.zeros_like(p) for p in params]
        b1, b2, eps = 0.9, 0.999, 1e-8
        n, t = len(Xs), 0
        self.loss_curve = []
        for _ in range(EPOCHS):
            order = rng.permutation(n)
            total = 0.0
            for start in range(0, n, BATCH):
                idx = order[start : start + BATCH]
                xb, yb = Xs[idx], y[idx]
                k = len(idx)
                # forward
                a1 = np.maximum(xb @ self.W[0] + self.b[0], 0)
                a2 = np.maximum(a1 @ self.W[1] + self.b[1], 0)
                z = a2 @ self.W[2] + self.b[2]
                z -= z.max(axis=1, keepdims=True)
                p = np.exp(z)
                s = p.sum(axis=1, keepdims=True)
                total += float(np.sum(np.log(s[:, 0]) - z[np.arange(k), yb]))
                # backward: fused softmax-CE gradient (p - onehot) / k
                p /= s
                p[np.arange(k), yb] -= 1
                p *= F32(1.0 / k)
                d2 = p @ self.W[2].T
                d2 *= a2 > 0
                d1 = d2 @ self.W[1].T
                d1 *= a1 > 0
                grads = [xb.T @ d1, d1.sum(axis=0), a1.T @ d2, d2.sum(axis=0), a2.T @ p, p.sum(axis=0)]
                # Adam
                t += 1
                lr_t = F32(LR * math.sqrt(1.0 - b2**t) / (1.0 - b1**t))
                for param, g, mi, vi in zip(params, grads, m, v, strict=False):
                    mi *= F32(b1)
                    mi += F32(1 - b1) * g
                    vi *= F32(b2)
                    vi += F32(1 - b2) * (g * g)
                    param -= lr_t * mi / (np.sqrt(vi) + F32(eps))
            self.loss_curve.append(total / n)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        h = ((X - self.mean) / self.scale).astype(F32)
        for W, b in zip(self.W[:-1], self.b[:-1], strict=False):
            h = np.maximum(h @ W + b, 0)
        z = h @ self.W[-1] + self.b[-1]
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        return p


# -- (b) scikit-learn ------------------------------------------------------------
def sklearn_fit(X: np.ndarray, y: np.ndarray):
    mlp = SkMLP(
        hidden_layer_sizes=HIDDEN,
        activation="relu",
        solver="adam",
        alpha=0.0,
        batch_size=BATCH,
        learning_rate_init=LR,
        max_iter=EPOCHS,
        shuffle=True,
        tol=0.0,
        n_iter_no_change=EPOCHS,
        random_state=SEED,
    )
    model = make_pipeline(StandardScaler(), mlp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    assert mlp.n_iter_ == EPOCHS, mlp.n_iter_
    assert all(c.dtype == F32 for c in mlp.coefs_), [c.dtype for c in mlp.coefs_]
    return model


# -- (c) PyTorch eager -------------------------------------------------------------
class Torch:
    """nn.Sequential of Linear/ReLU, CrossEntropyLoss, Adam, manual batching with randperm."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> Torch:
        torch.manual_seed(SEED)
        gen = torch.Generator().manual_seed(SEED)
        self.mean = torch.from_numpy(X.mean(axis=0))
        scale = X.std(axis=0)
        scale[scale == 0] = 1.0
        self.scale = torch.from_numpy(scale)
        Xt = (torch.from_numpy(X) - self.mean) / self.scale
        yt = torch.from_numpy(y)
        sizes = [X.shape[1], *HIDDEN, int(y.max()) + 1]
        layers: list[torch.nn.Module] = []
        for a, b in itertools.pairwise(sizes):
            layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
        self.model = torch.nn.Sequential(*layers[:-1])
        loss_fn = torch.nn.CrossEntropyLoss()
        opt = torch.optim.Adam(self.model.parameters(), lr=LR)
        n = len(Xt)
        self.loss_curve = []
        self.model.train()
        for _ in range(EPOCHS):
            perm = torch.randperm(n, generator=gen)
            total = 0.0
            for start in range(0, n, BATCH):
                idx = perm[start : start + BATCH]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(self.model(Xt[idx]), yt[idx])
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
            self.loss_curve.append(total / n)
        self.model.eval()
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            z = self.model((torch.from_numpy(X) - self.mean) / self.scale)
            return torch.softmax(z, dim=1).numpy()


# -- timing ----------------------------------------------------------------------
def interleaved(tasks: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Run each task once to warm up, then ``repeats`` rounds, rotating the order every round."""
    for fn in tasks.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in tasks}
    names = list(tasks)
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            started = time.perf_counter()
            tasks[name]()
            times[name].append(time.perf_counter() - started)
    return times


def blas_info() -> str:
    """Every BLAS/OpenMP pool threadpoolctl sees, with the package that ships it (numpy's is the one nn uses)."""
    parts = []
    for info in threadpoolctl.threadpool_info():
        lib = Path(info["filepath"])
        owner = next((d.name.split(".")[0] for d in lib.parents if d.parent.name == "site-packages"), lib.name)
        arch = f" {info['architecture']}" if info.get("architecture") else ""
        version = f" {info['version']}" if info.get("version") else ""
        parts.append(f"{owner}: {info['internal_api']}{version}{arch}, {info['num_threads']} threads")
    return "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds after the warm-up (median is reported)")
    parser.add_argument("--keep-openblas-env", action="store_true", help="keep OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE")
    parser.add_argument("--only-nn", action="store_true", help="time only nn and the floor (for quick iterations)")
    args = parser.parse_args()

    blas_threads = max(
        (i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"), default=1
    )
    torch.set_num_threads(blas_threads)

    X_train, X_test, y_train, y_test = load_digits()
    X_predict = np.ascontiguousarray(np.resize(np.concatenate([X_train, X_test]), (N_PREDICT, X_train.shape[1])))

    fitted: dict[str, object] = {}

    def fitter(name: str, fn: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            fitted[name] = fn()
            return fitted[name]

        return run

    train_tasks = {
        "nnserve": fitter("nnserve", lambda: nn_fit(X_train, y_train)),
        "floor": fitter("floor", lambda: Floor().fit(X_train, y_train)),
    }
    if not args.only_nn:
        train_tasks["sklearn"] = fitter("sklearn", lambda: sklearn_fit(X_train, y_train))
        train_tasks["torch"] = fitter("torch", lambda: Torch().fit(X_train, y_train))
    train_times = interleaved(train_tasks, args.repeats)
    epoch = {name: statistics.median(ts) / EPOCHS for name, ts in train_times.items()}

    accuracy = {name: float(np.mean(m.predict_proba(X_test).argmax(axis=1) == y_test)) for name, m in fitted.items()}

    predict_tasks = {name: (lambda m=m: m.predict_proba(X_predict)) for name, m in fitted.items()}
    for name, m in fitted.items():
        out = m.predict_proba(X_predict)
        assert out.shape == (N_PREDICT, 10), (name, out.shape)
        assert np.allclose(out.sum(axis=1), 1, atol=1e-4), name
    predict_repeats = max(3 * args.repeats, 15)
    predict_times = interleaved(predict_tasks, predict_repeats)
    predict = {name: statistics.median(ts) for name, ts in predict_times.items()}

    unset = os.environ.get(_UNSET_MARK)
    header = [
        f"numpy {np.__version__}, scikit-learn {sklearn.__version__}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), Python {platform.python_version()}",
        f"BLAS: {blas_info()}" + (f" (benchmark process runs without {unset})" if unset else ""),
        f"CPU: {cpu_model()}, {os.cpu_count()} logical CPUs",
        f"digits: {len(X_train)} train / {len(X_test)} test rows; 64-128-64-10 ReLU, batch {BATCH}, Adam lr {LR}, "
        f"{EPOCHS} epochs, float32 for every contender; predict_proba on {N_PREDICT:,} rows; medians of "
        f"{args.repeats} (train) / {predict_repeats} (predict) interleaved repeats after a warm-up",
    ]

    labels = {
        "nnserve": "nnserve (nn.MLPClassifier)",
        "floor": "floor (plain numpy loop)",
        "sklearn": "scikit-learn MLPClassifier",
        "torch": "PyTorch eager",
    }
    rows = [
        [labels[name], f"{epoch[name] * 1e3:.2f}", f"{predict[name] * 1e3:.2f}", f"{accuracy[name]:.4f}"]
        for name in fitted
    ]
    table = [["contender", "train ms/epoch", "predict_proba 10k ms", "held-out accuracy"], *rows]

    # (label, timings, denominator, target or None)
    checks = [
        ("train: nnserve / floor", epoch, "floor", TARGET_FLOOR),
        ("train: nnserve / sklearn", epoch, "sklearn", TARGET_SKLEARN),
        ("train: nnserve / torch", epoch, "torch", None),
        ("predict_proba: nnserve / floor", predict, "floor", None),
        ("predict_proba: nnserve / sklearn", predict, "sklearn", None),
        ("predict_proba: nnserve / torch", predict, "torch", TARGET_TORCH_PREDICT),
    ]
    ratio_rows = []
    for label, d, other, limit in checks:
        if other not in d:
            continue
        value = d["nnserve"] / d[other]
        target = "" if limit is None else f"<= {limit}x"
        status = "" if limit is None else ("met" if value <= limit else "MISSED")
        ratio_rows.append([label, f"{value:.2f}x", target, status])
    if "sklearn" in accuracy:
        gap = accuracy["sklearn"] - accuracy["nnserve"]
        ratio_rows.append(
            [
                "accuracy: sklearn - nnserve",
                f"{gap:+.4f}",
                f"<= {TARGET_ACCURACY_GAP}",
                "met" if gap <= TARGET_ACCURACY_GAP else "MISSED",
            ]
        )
    ratio_table = [["ratio", "value", "target", "status"], *ratio_rows]

    def plain(t: list[list[str]]) -> str:
        widths = [max(len(r[i]) for r in t) for i in range(len(t[0]))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in t)

    def markdown(t: list[list[str]]) -> str:
        lines = ["| " + " | ".join(t[0]) + " |", "|" + "|".join("---" for _ in t[0]) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in t[1:]]
        return "\n".join(lines)

    print("\n".join(header))
    print()
    print(plain(table))
    print()
    print(plain(ratio_table))

    out = ROOT / "bench" / "results" / "train_predict.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    md = ["# nnserve train/predict benchmark", "", *(f"- {h}" for h in header), ""]
    md += [markdown(table), "", markdown(ratio_table), ""]
    out.write_text("\n".join(md))
    print(f"\nwritten to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
