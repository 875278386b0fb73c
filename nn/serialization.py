"""Save and load a fitted estimator as a directory: ``manifest.json`` + ``weights.npz``.

Nothing is unpickled and no code named in a file is imported: layers and
estimators are rebuilt from closed registries of names, arrays are read with
``allow_pickle=False``, and every file is checked against the sha256 the
manifest records. Any fault raises ``ArtifactError``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .activations import GELU, LeakyReLU, ReLU, Sigmoid, Tanh
from .estimators import BaseMLP, MLPClassifier, MLPRegressor
from .layers import Dense, Dropout, Layer
from .network import Network

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
WEIGHTS = "weights.npz"

LAYERS: dict[str, type[Layer]] = {cls.__name__: cls for cls in (Dense, Dropout, ReLU, LeakyReLU, Tanh, Sigmoid, GELU)}
ESTIMATORS: dict[str, type[BaseMLP]] = {"MLPClassifier": MLPClassifier, "MLPRegressor": MLPRegressor}
_RESERVED = {
    "format_version",
    "estimator",
    "params",
    "architecture",
    "n_features",
    "n_outputs",
    "dtype",
    "feature_names",
    "classes",
    "target_ndim",
    "history",
    "files",
}
_PLAIN_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
# Callables and objects in params are runtime-only; the manifest keeps what JSON can.
_RUNTIME_PARAMS = ("callbacks", "lr_schedule")


class ArtifactError(Exception):
    """A saved model is missing, corrupt, of an unknown format or inconsistent."""


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 digest of ``data``, as recorded under the manifest's ``files``."""
    return hashlib.sha256(data).hexdigest()


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    return value


def save(estimator: BaseMLP, path: str | os.PathLike[str], metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write a fitted ``estimator`` into directory ``path`` (created if needed).

    ``metadata`` (metrics, dataset sha256, names, ...) is merged into the
    manifest's top level; it may not override the keys nn writes. Files are
    fsynced. Returns the manifest.
    """
    if not hasattr(estimator, "network_"):
        raise ValueError(f"cannot save an unfitted {type(estimator).__name__}")
    clash = _RESERVED.intersection(metadata or {})
    if clash:
        raise ValueError(f"metadata may not override {sorted(clash)}")
    net = estimator.network_
    if net.n_features is None or net.n_outputs is None:
        raise ValueError(f"cannot save a {type(estimator).__name__} whose network is not built")
    arrays = {f"layer.{k}": v for k, v in net.get_weights().items()}
    arrays["x_mean"], arrays["x_scale"] = estimator.x_mean_, estimator.x_scale_
    if isinstance(estimator, MLPRegressor):
        arrays["y_mean"], arrays["y_scale"] = estimator.y_mean_, estimator.y_scale_
    buffer = io.BytesIO()
    # numpy's stub for savez types **kwds and the allow_pickle keyword together, so a dict of
    # arrays "could" fill allow_pickle; our keys are 'layer.*', 'x_*' and 'y_*' only.
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    weights = buffer.getvalue()

    params = {k: _jsonable(v) for k, v in estimator.get_params().items() if k not in _RUNTIME_PARAMS}
    names = getattr(estimator, "feature_names_in_", None)
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "estimator": type(estimator).__name__,
        "params": params,
        "architecture": [{"type": type(layer).__name__, "config": layer.get_config()} for layer in net.layers],
        "n_features": int(net.n_features),
        "n_outputs": int(net.n_outputs),
        "dtype": net.dtype.name,
        "feature_names": None if names is None else [str(n) for n in names],
        "history": estimator.history_.summary() if hasattr(estimator, "history_") else None,
        "files": {WEIGHTS: sha256_bytes(weights)},
    }
    if isinstance(estimator, MLPClassifier):
        manifest["classes"] = [_jsonable(c) for c in estimator.classes_]
    elif isinstance(estimator, MLPRegressor):
        manifest["target_ndim"] = estimator._y_ndim
    manifest.update(metadata or {})
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    _write_synced(root / WEIGHTS, weights)
    _write_synced(root / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode())
    return manifest


def read_manifest(path: str | os.PathLike[str], verify: bool = True) -> dict[str, Any]:
    """The manifest of the artifact at ``path``; with ``verify``, every listed file's sha256 is checked."""
    manifest, _ = _read_verified(Path(path), verify)
    return manifest


def _read_verified(root: Path, verify: bool) -> tuple[dict[str, Any], dict[str, bytes]]:
    try:
        raw = (root / MANIFEST).read_bytes()
    except FileNotFoundError:
        raise ArtifactError(f"{root}: {MANIFEST} is missing") from None
    except OSError as exc:
        raise ArtifactError(f"{root}: cannot read {MANIFEST}: {exc.strerror}") from None
    try:
        manifest = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{root}: {MANIFEST} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{root}: {MANIFEST} must hold a JSON object")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"{root}: unknown format_version {manifest.get('format_version')!r}; this nn reads {FORMAT_VERSION}"
        )
    files = manifest.get("files")
    if not isinstance(files, dict) or WEIGHTS not in files:
        raise ArtifactError(f"{root}: manifest lists no checksum for {WEIGHTS}")
    contents: dict[str, bytes] = {}
    for name, digest in files.items():
        if not isinstance(name, str) or not _PLAIN_FILE.match(name) or not isinstance(digest, str):
            raise ArtifactError(f"{root}: manifest names an invalid file entry {name!r}")
        if not verify and name != WEIGHTS:
            continue
        target = root / name
        if target.is_symlink():
            raise ArtifactError(f"{root}: {name} is a symbolic link; artifacts hold regular files only")
        try:
            data = target.read_bytes()
        except FileNotFoundError:
            raise ArtifactError(f"{root}: {name} is missing") from None
        except OSError as exc:
            raise ArtifactError(f"{root}: cannot read {name}: {exc.strerror}") from None
        if verify and sha256_bytes(data) != digest:
            raise ArtifactError(f"{root}: checksum mismatch for {name}: the file was modified or is corrupt")
        contents[name] = data
    return manifest, contents


def _layer(spec: Any, root: Path) -> Layer:
    if not isinstance(spec, dict) or spec.get("type") not in LAYERS or not isinstance(spec.get("config"), dict):
        raise ArtifactError(f"{root}: unknown or malformed layer {spec!r}; known: {sorted(LAYERS)}")
    try:
        return LAYERS[spec["type"]](**spec["config"])
    except (TypeError, ValueError) as exc:
        raise ArtifactError(f"{root}: bad {spec['type']} layer config: {exc}") from None


def load(path: str | os.PathLike[str]) -> BaseMLP:
    """Rebuild the fitted estimator saved at ``path``; raises ``ArtifactError`` on any fault."""
    root = Path(path)
    manifest, contents = _read_verified(root, verify=True)
    try:
        return _rebuild(manifest, contents[WEIGHTS], root)
    except ArtifactError:
        raise
    except (KeyError, TypeError, ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ArtifactError(f"{root}: inconsistent artifact: {exc}") from None


def _rebuild(manifest: dict[str, Any], weights: bytes, root: Path) -> BaseMLP:
    cls = ESTIMATORS.get(manifest.get("estimator"))  # type: ignore[arg-type]
    if cls is None:
        raise ArtifactError(f"{root}: unknown estimator {manifest.get('estimator')!r}; known: {sorted(ESTIMATORS)}")
    params = manifest["params"]
    if not isinstance(params, dict) or not set(params) <= set(cls._param_names()):
        raise ArtifactError(f"{root}: params hold unknown names")
    estimator = cls(**params)
    estimator._validate_params()
    try:
        with np.load(io.BytesIO(weights), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (NotImplementedError, RuntimeError) as exc:  # zipfile: an unknown compression method, "encrypted"
        raise ArtifactError(f"{root}: weights.npz is not a plain zip of arrays: {exc}") from None
    if isinstance(estimator, MLPClassifier):
        estimator.classes_ = np.asarray(manifest["classes"])
    elif isinstance(estimator, MLPRegressor):
        estimator._y_ndim = int(manifest["target_ndim"])
        estimator.y_mean_, estimator.y_scale_ = arrays["y_mean"], arrays["y_scale"]
    layers = [_layer(spec, root) for spec in manifest["architecture"]]
    net = Network(layers, estimator._loss(), estimator._make_optimizer(), dtype=manifest["dtype"])
    n_features = manifest["n_features"]
    if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 1:
        raise ArtifactError(f"{root}: n_features must be a positive integer, got {n_features!r}")
    _check_shapes(layers, n_features, arrays, root)  # before build allocates what the manifest claims
    net.build(n_features)
    if net.n_outputs != manifest["n_outputs"]:
        raise ArtifactError(
            f"{root}: architecture gives {net.n_outputs} outputs, manifest says {manifest['n_outputs']}"
        )
    if isinstance(estimator, MLPClassifier):
        classes = estimator.classes_
        if classes.ndim != 1 or len(classes) < 2 or estimator._n_outputs(classes) != net.n_outputs:
            raise ArtifactError(f"{root}: classes {manifest['classes']!r} do not fit {net.n_outputs} outputs")
    elif isinstance(estimator, MLPRegressor) and (
        estimator._y_ndim not in (1, 2) or (estimator._y_ndim == 1 and net.n_outputs != 1)
    ):
        raise ArtifactError(f"{root}: target_ndim {estimator._y_ndim} does not fit {net.n_outputs} outputs")
    layer_arrays = {k.removeprefix("layer."): v for k, v in arrays.items() if k.startswith("layer.")}
    net.set_weights(layer_arrays)
    estimator.network_ = net
    estimator.n_features_in_ = n_features
    estimator.x_mean_, estimator.x_scale_ = _vector(arrays, "x_mean", net), _vector(arrays, "x_scale", net)
    if manifest.get("feature_names") is not None:
        estimator.feature_names_in_ = np.asarray(manifest["feature_names"], dtype=object)
    if isinstance(estimator, MLPRegressor):
        for key in ("y_mean", "y_scale"):
            if arrays[key].shape != (net.n_outputs,):
                raise ArtifactError(f"{root}: {key} has shape {arrays[key].shape}, expected ({net.n_outputs},)")
            setattr(estimator, f"{key}_", arrays[key].astype(net.dtype))
    return estimator


def _check_shapes(layers: list[Layer], n_features: int, arrays: dict[str, np.ndarray], root: Path) -> None:
    """Every Dense layer's weight matrix is in the file with the shape the manifest implies."""
    width = n_features
    for i, layer in enumerate(layers):
        if isinstance(layer, Dense):
            W = arrays.get(f"layer.{i}.W")
            if W is None or W.shape != (width, layer.units):
                found = "missing" if W is None else f"of shape {W.shape}"
                raise ArtifactError(f"{root}: layer {i} weights are {found}, expected ({width}, {layer.units})")
            width = layer.units


def _vector(arrays: dict[str, np.ndarray], key: str, net: Network) -> np.ndarray:
    value = arrays[key]
    if value.shape != (net.n_features,):
        raise ArtifactError(f"{key} has shape {value.shape}, expected ({net.n_features},)")
    return value.astype(net.dtype)
