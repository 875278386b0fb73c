"""The model catalog: TOML specs in ``models/``, their validation, and reading CSV data.

A spec is ``models/<name>.toml`` (the file name is the model name)::

    task = "classification"            # or "regression"
    description = "Iris species from flower measurements"
    dataset = "data/iris.csv"          # relative to the spec file
    target = "species"                 # the column to predict; every other column is a feature
    test_size = 0.25                   # held-out fraction for the published metrics
    split_seed = 0                     # which rows are held out: fixed, so versions compare on the same rows

    [network]
    hidden_sizes = [16]
    activation = "tanh"
    dropout = 0.0

    [training]
    epochs = 200
    batch_size = 16
    optimizer = "adam"
    learning_rate = 0.01
    seed = 0

Every key, its type and its range are checked with marshmallow before any
training starts, and errors name the file and the key (``training.epochs``),
so a typo fails in milliseconds instead of after a run.
"""

from __future__ import annotations

import csv
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from marshmallow import RAISE, Schema, ValidationError, fields, validate

from nn.activations import ACTIVATIONS
from nn.estimators import SOLVERS

from .store import Dataset, InvalidNameError, validate_name

TASKS = ("classification", "regression")
_INT_LABEL = re.compile(r"[+-]?[0-9]+")


class SpecError(ValueError):
    """A model spec that cannot be used; the message names the file and the key."""


class CSVError(ValueError):
    """A CSV file that cannot be read as a dataset; the message names the file, line and column."""


# -- schema ----------------------------------------------------------------------
class _Typed(fields.Field):
    """A TOML value of exactly one kind: TOML is typed, so ``epochs = "10"`` or ``dropout = true`` is a mistake."""

    def __init__(self, kind: str, **kwargs: Any) -> None:
        self.kind = kind
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Any:
        ok = {
            "integer": isinstance(value, int) and not isinstance(value, bool),
            "number": isinstance(value, int | float) and not isinstance(value, bool),
            "string": isinstance(value, str),
            "boolean": isinstance(value, bool),
        }[self.kind]
        if not ok:
            raise ValidationError(f"must be a{'n' if self.kind[0] in 'aeiou' else ''} {self.kind}, got {value!r}")
        if self.kind == "number":
            if not math.isfinite(value):
                raise ValidationError(f"must be a finite number, got {value!r}")
            return float(value)
        return value


class _Sizes(fields.Field):
    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Any:
        if not isinstance(value, list) or not value:
            raise ValidationError(f"must be a non-empty list of layer widths such as [32] or [64, 32], got {value!r}")
        if any(isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 4096 for v in value):
            raise ValidationError(f"every layer width must be an integer from 1 to 4096, got {value!r}")
        return list(value)


def _required(kind: str, **kwargs: Any) -> _Typed:
    return _Typed(kind, required=True, error_messages={"required": "is required"}, **kwargs)


def _open(low: float, high: float) -> validate.Range:
    return validate.Range(low, high, min_inclusive=False, max_inclusive=False, error="must be > {min} and < {max}")


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class NetworkSchema(_Strict):
    hidden_sizes = _Sizes(load_default=lambda: [32])
    activation = _Typed("string", load_default="relu", validate=validate.OneOf(["identity", *sorted(ACTIVATIONS)]))
    dropout = _Typed("number", load_default=0.0, validate=validate.Range(0, 1, max_inclusive=False))


class TrainingSchema(_Strict):
    epochs = _Typed("integer", load_default=200, validate=validate.Range(1, 100_000))
    batch_size = _Typed("integer", load_default=32, validate=validate.Range(1, None))
    optimizer = _Typed("string", load_default="adam", validate=validate.OneOf(SOLVERS))
    learning_rate = _Typed("number", load_default=0.001, validate=_open(0, 10))
    weight_decay = _Typed("number", load_default=0.01, validate=validate.Range(0, None))
    l2 = _Typed("number", load_default=0.0001, validate=validate.Range(0, None))
    early_stopping = _Typed("boolean", load_default=False)
    validation_split = _Typed("number", load_default=0.1, validate=_open(0, 1))
    patience = _Typed("integer", load_default=10, validate=validate.Range(1, None))
    min_delta = _Typed("number", load_default=1e-4, validate=validate.Range(0, None))
    seed = _Typed("integer", load_default=0, validate=validate.Range(0, 2**32 - 1))


class SpecSchema(_Strict):
    task = _required("string", validate=validate.OneOf(TASKS))
    description = _Typed("string", load_default="")
    dataset = _required("string")
    target = _required("string")
    test_size = _Typed("number", load_default=0.25, validate=_open(0, 1))
    split_seed = _Typed("integer", load_default=0, validate=validate.Range(0, 2**32 - 1))
    network = fields.Nested(NetworkSchema, error_messages={"type": "must be a table"})
    training = fields.Nested(TrainingSchema, error_messages={"type": "must be a table"})


SECTIONS: dict[str, Schema] = {"network": NetworkSchema(), "training": TrainingSchema()}
# spec key -> MLPClassifier/MLPRegressor parameter
PARAM_NAMES = {
    "hidden_sizes": "hidden_layer_sizes",
    "activation": "activation",
    "dropout": "dropout",
    "epochs": "max_iter",
    "batch_size": "batch_size",
    "optimizer": "solver",
    "learning_rate": "learning_rate_init",
    "weight_decay": "weight_decay",
    "l2": "alpha",
    "early_stopping": "early_stopping",
    "validation_split": "validation_fraction",
    "patience": "n_iter_no_change",
    "min_delta": "tol",
    "seed": "random_state",
}


def _flatten(messages: Any, prefix: str = "") -> list[str]:
    """marshmallow's nested error dict as ``key.path: message`` lines."""
    if isinstance(messages, dict):
        out = []
        for key, value in messages.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if key == "_schema":
                path = prefix
                value = ["must be a table" if v == "Invalid input type." else v for v in value]
            if value == ["Unknown field."]:
                section = SECTIONS.get(prefix)
                known = sorted((section or SpecSchema()).fields)
                out.append(
                    f"{path}: unknown key (known keys{' of [' + prefix + ']' if prefix else ''}: {', '.join(known)})"
                )
            else:
                out.extend(_flatten(value, path))
        return out
    if isinstance(messages, list):
        return [m for item in messages for m in _flatten(item, prefix)]
    text = str(messages).rstrip(".")
    text = text[:1].lower() + text[1:]  # marshmallow's "Must be one of: ..." reads as a clause after the key
    return [f"{prefix}: {text}" if prefix else text]


def _errors(source: str, exc: ValidationError) -> SpecError:
    return SpecError(f"{source}: {'; '.join(_flatten(exc.messages))}")


# -- specs -----------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSpec:
    """A validated spec; ``network`` and ``training`` hold every key, defaults filled in."""

    name: str
    task: str
    description: str
    path: Path
    data_path: Path
    target: str
    test_size: float
    split_seed: int
    network: dict[str, Any]
    training: dict[str, Any]


def load_spec(path: str | os.PathLike[str]) -> ModelSpec:
    """Parse and validate ``path``; the dataset must exist and have the target column."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise SpecError(f"{path}: no such spec file") from None
    except IsADirectoryError:
        raise SpecError(f"{path}: is a directory, not a spec file") from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}") from None
    try:
        name = validate_name(path.stem)
    except InvalidNameError as exc:
        raise SpecError(f"{path}: the file name is the model name, and {exc}") from None
    raw.setdefault("network", {})
    raw.setdefault("training", {})
    try:
        data = SpecSchema().load(raw)
    except ValidationError as exc:
        raise _errors(str(path), exc) from None
    data_path = (path.parent / data["dataset"]).resolve()
    if not data_path.is_file():
        raise SpecError(f"{path}: dataset: no such file {data_path}")
    columns = read_csv_header(data_path)
    if data["target"] not in columns:
        raise SpecError(
            f"{path}: target: column {data['target']!r} is not in {data_path.name} (columns: {', '.join(columns)})"
        )
    if len(columns) < 2:
        raise SpecError(f"{path}: dataset: {data_path.name} has no feature columns besides the target")
    return ModelSpec(
        name=name,
        task=data["task"],
        description=data["description"],
        path=path,
        data_path=data_path,
        target=data["target"],
        test_size=data["test_size"],
        split_seed=data["split_seed"],
        network=data["network"],
        training=data["training"],
    )


def catalog_specs(models_dir: str | os.PathLike[str]) -> list[ModelSpec]:
    """Every ``*.toml`` in ``models_dir``, validated, sorted by name."""
    root = Path(models_dir)
    if not root.is_dir():
        raise SpecError(f"{root}: no such models directory")
    return [load_spec(p) for p in sorted(root.glob("*.toml"))]


def estimator_params(spec: ModelSpec, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``MLPClassifier``/``MLPRegressor`` keyword arguments for ``spec``.

    ``overrides`` use the spec's own key names (``{"epochs": 5, "seed": 1}``) and
    go through the same validation, so the CLI and the retraining worker cannot
    pass what a spec file could not.
    """
    sections = {"network": dict(spec.network), "training": dict(spec.training)}
    for key, value in (overrides or {}).items():
        owner = next((s for s, schema in SECTIONS.items() if key in schema.fields), None)
        if owner is None:
            raise SpecError(
                f"{spec.path}: override {key!r}: unknown key (known keys: {', '.join(sorted(PARAM_NAMES))})"
            )
        sections[owner][key] = value
    merged: dict[str, Any] = {}
    for section, values in sections.items():
        try:
            merged.update(SECTIONS[section].load(values))
        except ValidationError as exc:
            raise SpecError(f"{spec.path}: override {'; '.join(_flatten(exc.messages))}") from None
    params = {PARAM_NAMES[key]: value for key, value in merged.items()}
    params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    return params


# -- CSV -------------------------------------------------------------------------
def _open_csv(path: Path) -> Any:
    try:
        return open(path, newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise CSVError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CSVError(f"{path}: is a directory, not a CSV file") from None
    except OSError as exc:
        raise CSVError(f"{path}: cannot read: {exc.strerror}") from None


def _header(path: Path, reader: Any) -> list[str]:
    try:
        header = [c.strip() for c in next(reader)]
    except StopIteration:
        raise CSVError(f"{path}: the file is empty; a header row is required") from None
    except (csv.Error, UnicodeDecodeError) as exc:
        raise CSVError(f"{path}: line 1: not a readable CSV row: {exc}") from None
    seen: set[str] = set()
    for column in header:
        if not column:
            raise CSVError(f"{path}: line 1: the header has an empty column name")
        if column in seen:
            raise CSVError(f"{path}: line 1: column {column!r} appears twice in the header")
        seen.add(column)
    return header


def _rows(path: Path, reader: Any, width: int) -> Any:
    """(line number, cells) of every non-blank data row, each ``width`` cells wide."""
    try:
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != width:
                raise CSVError(f"{path}: line {reader.line_num}: {len(row)} cells, but the header has {width} columns")
            yield reader.line_num, row
    except (csv.Error, UnicodeDecodeError) as exc:
        raise CSVError(f"{path}: line {reader.line_num}: not a readable CSV row: {exc}") from None


def _number(path: Path, line: int, column: str, cell: str) -> float:
    text = cell.strip()
    try:
        value = float(text)
    except ValueError:
        what = "an empty cell (missing values are not supported)" if not text else f"{text!r} is not a number"
        raise CSVError(f"{path}: line {line}, column {column!r}: {what}") from None
    if not math.isfinite(value):
        raise CSVError(f"{path}: line {line}, column {column!r}: {text!r} is not a finite number")
    return value


def read_csv_header(path: str | os.PathLike[str]) -> list[str]:
    """The column names of a CSV file's header row."""
    path = Path(path)
    with _open_csv(path) as f:
        return _header(path, csv.reader(f))


def read_csv_dataset(path: str | os.PathLike[str], target: str, task: str) -> Dataset:
    """A CSV with a header row as a ``Dataset``: every column but ``target`` is a numeric feature.

    Classification labels become ints when every label is an integer literal
    (so ``predict`` answers 3, not "3"), else strings; regression targets are
    float64.
    """
    path = Path(path)
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    with _open_csv(path) as f:
        reader = csv.reader(f)
        header = _header(path, reader)
        if target not in header:
            raise CSVError(f"{path}: target column {target!r} is not in the header (columns: {', '.join(header)})")
        t = header.index(target)
        features = [c for i, c in enumerate(header) if i != t]
        if not features:
            raise CSVError(f"{path}: no feature columns besides the target {target!r}")
        X, labels = [], []
        for line, row in _rows(path, reader, len(header)):
            X.append([_number(path, line, header[i], cell) for i, cell in enumerate(row) if i != t])
            label = row[t].strip()
            if task == "regression":
                labels.append(_number(path, line, target, label))
            elif not label:
                raise CSVError(f"{path}: line {line}, column {target!r}: an empty label")
            else:
                labels.append(label)
    if not X:
        raise CSVError(f"{path}: no data rows after the header")
    if task == "regression":
        y = np.asarray(labels, dtype=np.float64)
    elif all(_INT_LABEL.fullmatch(label) for label in labels):
        y = np.asarray([int(label) for label in labels], dtype=np.int64)
    else:
        y = np.asarray(labels, dtype=str)
    return Dataset(np.asarray(X, dtype=np.float64), y, features)


def _some(names: list[str], limit: int = 8) -> str:
    """A name list short enough for a one-line message."""
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown}, ... ({len(names) - limit} more)"


def _looks_numeric(cells: list[str]) -> bool:
    try:
        [float(c) for c in cells]
    except ValueError:
        return False
    return True


def read_csv_features(path: str | os.PathLike[str], feature_names: list[str] | None, n_features: int) -> np.ndarray:
    """Feature rows of a CSV for prediction, as float64 of shape (n_rows, n_features).

    When the header names every one of ``feature_names`` the columns are taken
    by name (any order; extra columns such as the target are ignored), else
    the file must have exactly ``n_features`` columns, taken by position.
    """
    path = Path(path)
    with _open_csv(path) as f:
        reader = csv.reader(f)
        header = _header(path, reader)
        names = list(feature_names or [])
        if names and all(n in header for n in names):
            columns = [header.index(n) for n in names]
        elif len(header) == n_features:
            if _looks_numeric(header):
                raise CSVError(f"{path}: line 1 looks like data; the first row must be a header row of column names")
            columns = list(range(n_features))
        else:
            wanted = f"the columns {_some(names)} (by name, in any order) or " if names else ""
            raise CSVError(
                f"{path}: the model needs {wanted}{n_features} columns by position, "
                f"but the header has {len(header)} columns: {_some(header)}"
            )
        X = [
            [_number(path, line, header[i], row[i]) for i in columns] for line, row in _rows(path, reader, len(header))
        ]
    if not X:
        raise CSVError(f"{path}: no data rows after the header")
    return np.asarray(X, dtype=np.float64)
