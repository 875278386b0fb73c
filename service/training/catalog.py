"""The model catalog: TOML specs in ``models/``, their validation, and their estimator parameters.

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

    [monitoring]
    sample_rate = 0.1                  # fraction of predictions kept in the prediction log (default 0: none)
    trusted_labels = ["key"]           # label sources live metrics, policies and rollouts count ("key", "token")
    target_range = [0.0, 500.0]        # regression: the targets feedback and retrain data may have

    [retrain]                          # optional: the retraining worker retrains on its own when a rule fires
    on_drift_psi = 0.25                # a feature's PSI over the newest logged rows (at least drift_min_rows)
    on_live_metric_below = { metric = "accuracy", threshold = 0.8, min_rows = 50 }
    every_n_feedback = 500             # labels received since the last retrain
    schedule = "1d"                    # at most this long between retrains
    promote = "if_better"
    cooldown = "1h"                    # after a candidate that was not promoted, the wait before a rule fires again

Every key, its type and its range are checked with marshmallow before any
training starts, and errors name the file and the key (``training.epochs``),
so a typo fails in milliseconds instead of after a run.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from nn.activations import ACTIVATIONS
from nn.estimators import SOLVERS
from service.store import InvalidNameError, validate_name
from service.store.monitoring import LABEL_SOURCES
from service.training.csvdata import TASKS, read_csv_header
from service.training.jobs import COOLDOWN, PROMOTE_CHOICES
from service.training.retrain import ROLLOUT_RANGES


class SpecError(ValueError):
    """A model spec that cannot be used; the message names the file and the key."""


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
    """The ``[network]`` table: hidden layer widths, activation, dropout."""

    hidden_sizes = _Sizes(load_default=lambda: [32])
    activation = _Typed("string", load_default="relu", validate=validate.OneOf(["identity", *sorted(ACTIVATIONS)]))
    dropout = _Typed("number", load_default=0.0, validate=validate.Range(0, 1, max_inclusive=False))


class TrainingSchema(_Strict):
    """The ``[training]`` table: epochs, batch, optimizer and its settings, early stopping, seed."""

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


class _Range(fields.Field):
    """``[lo, hi]``: two finite numbers, ``lo < hi``."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Any:
        number = _Typed("number")
        if not isinstance(value, list) or len(value) != 2:
            raise ValidationError(f"must be [low, high], two numbers, got {value!r}")
        low, high = (number._deserialize(v, attr, data) for v in value)
        if not low < high:
            raise ValidationError(f"low must be below high, got {value!r}")
        return [low, high]


class _Sources(fields.Field):
    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Any:
        if not isinstance(value, list) or not value or any(v not in LABEL_SOURCES for v in value):
            raise ValidationError(f"must be a non-empty list of {', '.join(map(repr, LABEL_SOURCES))}, got {value!r}")
        return sorted(set(value))


class MonitoringSchema(_Strict):
    """The ``[monitoring]`` table: the fraction of predictions written to the prediction log (0: none),
    which labels count (those sent with a key; with ``"token"`` too, those sent with a feedback token), and a
    regressor's accepted target range (default: the training targets' range widened by its span each side)."""

    sample_rate = _Typed("number", load_default=0.0, validate=validate.Range(0, 1))
    trusted_labels = _Sources(load_default=lambda: ["key"])
    target_range = _Range()


INTERVAL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class _Interval(fields.Field):
    """A duration: seconds as a number, or a string such as ``"90s"``, ``"30m"``, ``"6h"``, ``"1d"``."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Any:
        return interval_seconds(value)


def interval_seconds(value: Any) -> float:
    """Seconds of an interval as a spec writes it (``_Interval``); ``ValidationError`` when it is not one."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        return float(value)
    if isinstance(value, str) and value[-1:] in INTERVAL_UNITS:
        try:
            number = float(value[:-1])
        except ValueError:
            number = -1.0
        if math.isfinite(number) and number > 0:
            return number * INTERVAL_UNITS[value[-1]]
    raise ValidationError(
        f'must be a positive number of seconds or a duration such as "30m", "6h", "1d"; got {value!r}'
    )


class LiveMetricRuleSchema(_Strict):
    """``on_live_metric_below``: retrain when a live metric (higher is better) falls below a threshold."""

    metric = _Typed("string", required=True, validate=validate.OneOf(["accuracy", "r2"]))
    threshold = _Typed("number", required=True)
    min_rows = _Typed("integer", load_default=50, validate=validate.Range(1, None))


class RetrainPolicySchema(_Strict):
    """The ``[retrain]`` table: when the retraining worker retrains on its own (every rule is optional)."""

    on_drift_psi = _Typed("number", validate=validate.Range(0, None, min_inclusive=False))
    drift_min_rows = _Typed("integer", load_default=100, validate=validate.Range(1, None))
    on_live_metric_below = fields.Nested(LiveMetricRuleSchema, error_messages={"type": "must be a table"})
    every_n_feedback = _Typed("integer", validate=validate.Range(1, None))
    schedule = _Interval()
    promote = _Typed("string", load_default="if_better", validate=validate.OneOf(PROMOTE_CHOICES))
    canary_fraction = _Typed("number", validate=ROLLOUT_RANGES["canary_fraction"])
    min_requests = _Typed("integer", validate=ROLLOUT_RANGES["min_requests"])
    max_duration = _Interval(validate=ROLLOUT_RANGES["max_duration"])
    cooldown = _Interval(load_default=COOLDOWN)


class SpecSchema(_Strict):
    """A whole spec file: the top-level keys and the tables."""

    task = _required("string", validate=validate.OneOf(TASKS))
    description = _Typed("string", load_default="")
    dataset = _required("string")
    target = _required("string")
    test_size = _Typed("number", load_default=0.25, validate=_open(0, 1))
    split_seed = _Typed("integer", load_default=0, validate=validate.Range(0, 2**32 - 1))
    network = fields.Nested(NetworkSchema, error_messages={"type": "must be a table"})
    training = fields.Nested(TrainingSchema, error_messages={"type": "must be a table"})
    monitoring = fields.Nested(MonitoringSchema, error_messages={"type": "must be a table"})
    retrain = fields.Nested(RetrainPolicySchema, error_messages={"type": "must be a table"})


# Tables kept in every version's manifest as the spec said them, and carried to the versions retrains publish:
# the server and the retraining worker read them from the version they serve.
STORED_SECTIONS = ("monitoring", "retrain")
SECTIONS: dict[str, Schema] = {"network": NetworkSchema(), "training": TrainingSchema()}
TABLES: dict[str, Schema] = {  # every table a spec may have
    **SECTIONS,
    "monitoring": MonitoringSchema(),
    "retrain": RetrainPolicySchema(),
    "retrain.on_live_metric_below": LiveMetricRuleSchema(),
}
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


SPEC_NAMES = {param: key for key, param in PARAM_NAMES.items()}


def spec_hyperparameters(params: Mapping[str, Any]) -> dict[str, Any]:
    """Estimator parameters back under the spec's key names: a job echoes what its caller sent."""
    return {SPEC_NAMES.get(param, param): value for param, value in params.items()}


# Parameters that shape the network: a warm start keeps the active network's, so overriding them is refused.
ARCHITECTURE_KEYS = ("hidden_sizes", "activation", "dropout")


def validate_hyperparameters(given: Mapping[str, Any]) -> dict[str, Any]:
    """Hyperparameters under the spec's key names, checked by the spec's own schemas, as estimator parameters.

    What a retrain request may change is exactly what a spec file may say, with
    the same ranges. Raises marshmallow's ``ValidationError`` keyed by the
    spec's name of the offending hyperparameter.
    """
    out: dict[str, Any] = {}
    for key, value in given.items():
        section = next((s for s in SECTIONS.values() if key in s.fields), None)
        if section is None:
            known = ", ".join(sorted(PARAM_NAMES))
            raise ValidationError({key: [f"unknown hyperparameter {key!r}; known: {known}"]})
        try:
            loaded = section.load({key: value}, partial=True)
        except ValidationError as exc:
            messages = exc.messages if isinstance(exc.messages, dict) else {key: exc.messages}
            raise ValidationError({key: messages.get(key, messages)}) from None
        out[PARAM_NAMES[key]] = loaded[key]
    if "hidden_layer_sizes" in out:
        out["hidden_layer_sizes"] = list(out["hidden_layer_sizes"])
    return out


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
                section = TABLES.get(prefix)
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
    monitoring: dict[str, Any]
    retrain: dict[str, Any] | None = None  # the [retrain] policy; None: the worker never retrains on its own

    def stored_sections(self) -> dict[str, dict[str, Any]]:
        """The tables a version of this spec keeps in its manifest (``STORED_SECTIONS``)."""
        sections = {"monitoring": dict(self.monitoring)}
        if self.retrain is not None:
            sections["retrain"] = dict(self.retrain)
        return sections


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
    raw.setdefault("monitoring", {})
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
    if "target_range" in data["monitoring"] and data["task"] != "regression":
        raise SpecError(f"{path}: monitoring.target_range: only a regression spec has a target range")
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
        monitoring=data["monitoring"],
        retrain=data.get("retrain"),
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
