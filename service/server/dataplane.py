"""The data plane: what every transport (HTTP v1, HTTP v2, gRPC, the dashboard) asks of the served models.

Each rule of a prediction is written here once: which version answers (a name, a pinned version, or a
running rollout's route by routing key or request id), what input a model takes (rows, width, the finite
range of its dtype), the inference itself with its labels and probabilities, the prediction log, the rows
counted in the metrics; an explanation's rules and budgets (``explain``: rows, steps, time); and what a model
looks like from outside (its tensors, its readiness). Adapters
decode their own request shapes into calls of ``DataPlane`` and encode its answers and errors into theirs.
Errors are ``InputError`` (the client's input) and the store's ``NotFoundError``, ``CorruptVersionError``
and ``StoreUnavailableError``; each adapter maps them to its own status with the same message.

An unpinned request is routed by the model's running rollout (``ModelRegistry.route``). A canary candidate
that fails to answer is replaced by the active version, so the client never sees the failure, and the
failure is logged against the candidate: its error rate is part of the rollout's verdict. A logged
prediction's answer names the request id it was logged under and a feedback token for it.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import sys
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from nn import MLPClassifier
from service import telemetry, tracing
from service.datatypes import DATATYPES, INPUT_NAME, datatype_of  # the protocol's, shared with the client
from service.server.callers import Caller
from service.server.feedback_tokens import FeedbackTokens
from service.server.predlog import Budget, PredictionRecorder
from service.server.registry import ModelRegistry, Route
from service.server.settings import ServerSettings
from service.store import (
    CorruptVersionError,
    ExplainError,
    Explanation,
    LoadedModel,
    ModelStore,
    NonFiniteOutputError,
    NotFoundError,
    Prediction,
    StoreError,
    StoreUnavailableError,
    explain,
    predict,
    validate_name,
    validate_version,
    width_problem,
)
from service.store.monitoring import open_prediction_log
from service.version import __version__

log = logging.getLogger(__name__)

__all__ = [
    "DATATYPES",
    "INPUT_NAME",
    "NUMERIC_INPUTS",
    "Call",
    "DataPlane",
    "Inference",
    "InputError",
    "Logged",
    "ModelMetadata",
    "ModelReadiness",
    "Readiness",
    "Route",
    "TensorSpec",
    "UnanswerableInputError",
    "datatype_of",
    "first_beyond",
    "too_many_rows",
]

PLATFORM = "nnserve_numpy"

# The datatypes a model input accepts: numbers that convert to float64 without surprises.
NUMERIC_INPUTS = ("FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")


# -- what a call is, and how it fails ------------------------------------------------------------------------------


@dataclass(slots=True)
class Call:
    """One request's facts, as its transport read them, and what the data plane resolved for it.

    ``request_id`` is the transport's (a client's well-formed one when ``id_given``); ``routing_key`` keeps a
    canary's split sticky (default: the request id); ``caller`` the authenticated caller, if any.
    ``resolved`` (name, version) is set by the data plane when it resolves a version: the metrics label it.
    """

    request_id: str
    id_given: bool = False
    routing_key: str | None = None
    caller: Caller | None = None
    resolved: tuple[str, int] | None = None


class InputError(Exception):
    """The client's input breaks a model's rule: ``message`` says which, ``field`` names the input at fault
    (v1's ``instances`` or ``inputs``, v2's tensor name)."""

    def __init__(self, message: str, field: str = INPUT_NAME) -> None:
        super().__init__(message)
        self.message, self.field = message, field


class UnanswerableInputError(InputError):
    """Well-formed rows the model cannot answer (its outputs for them are not finite)."""


# -- the rules on rows -----------------------------------------------------------------------------------------------


def too_many_rows(n: int, limit: int | None) -> str | None:
    """The complaint about ``n`` rows against ``NNSERVE_MAX_ROWS`` (``limit``), or None when they fit."""
    if limit is None or n <= limit:
        return None
    return f"has {n} rows; at most {limit} are accepted per request"


def first_beyond(X: np.ndarray, dtype: np.dtype) -> tuple[int, ...] | None:
    """Index of the first value of float64 ``X`` outside the finite range of ``dtype`` (NaN too), or None.

    A model computes in its own dtype (float32 by default), where such a value
    would become infinite. Two reductions decide the usual case without
    allocating a copy of the payload (NaN fails both comparisons, as infinity does).
    """
    limit = _finite_max(dtype)
    if not X.size or (_maximum(X, axis=None) <= limit and _minimum(X, axis=None) >= -limit):
        return None
    return tuple(int(i) for i in np.argwhere(~(np.abs(X) <= limit))[0])


# X.max and X.min's own reductions, without the methods' Python wrappers (they cost more than a one-row reduction)
_maximum, _minimum = np.maximum.reduce, np.minimum.reduce


@functools.cache
def _finite_max(dtype: np.dtype) -> float:
    return float(np.finfo(dtype).max)


# -- answers -------------------------------------------------------------------------------------------------------


class Logged(NamedTuple):
    """How a logged prediction is quoted in feedback: the request id it was logged under, and its token (None
    while the log cannot give the tokens' secret)."""

    request_id: str
    feedback_token: str | None


@dataclass(frozen=True)
class TensorSpec:
    """One input or output tensor of a model: its name, protocol datatype and shape (-1: the batch)."""

    name: str
    datatype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Inference:
    """What one prediction answered: the version that answered, its prediction, how feedback quotes it."""

    model: LoadedModel
    prediction: Prediction
    logged: Logged | None

    def outputs(self) -> dict[str, Any]:
        """Every output tensor's values by name, in ``DataPlane.output_specs`` order."""
        p = self.prediction
        if p.index is not None:
            return {
                "predictions": p.index.astype(np.int64),
                "labels": [str(label) for label in p.values.tolist()],
                "probabilities": p.probabilities,
            }
        return {"predictions": p.values}


@dataclass(frozen=True)
class ModelMetadata:
    """A version's description as the Open Inference Protocol gives it."""

    name: str
    versions: tuple[str, ...]  # every version that loads
    platform: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


@dataclass(frozen=True)
class ModelReadiness:
    """Whether a model (or a pinned version) can serve; ``error`` says why not."""

    name: str
    version: int | None
    ready: bool
    error: str | None = None


@dataclass(frozen=True)
class Readiness:
    """Whether this worker serves: the store is readable and every model with an active version has it loaded."""

    ready: bool
    models: dict[str, dict[str, object]]
    reasons: list[str]


# -- the data plane --------------------------------------------------------------------------------------------------


class DataPlane:
    """Resolution, input rules, inference, logging and metadata of one worker's models, for every transport."""

    def __init__(
        self,
        registry: ModelRegistry,
        recorder: PredictionRecorder,
        tokens: FeedbackTokens,
        settings: ServerSettings,
    ) -> None:
        self.registry = registry
        self.recorder = recorder
        self.tokens = tokens
        self.settings = settings

    @classmethod
    def offline(
        cls, store: ModelStore, root: str | os.PathLike[str], explain_max_steps: int | None = None
    ) -> DataPlane:
        """A data plane over ``store`` (at ``root``) for a process that answers no requests (``nnserve predict``,
        ``nnserve explain``): the same rules and inference, no row or time limit, only ``explain_max_steps``
        (a memory bound: by default the server's default), nothing sampled into the prediction log."""
        recorder = PredictionRecorder(lambda: open_prediction_log(root), Budget(0, 0, 0), override=0.0)
        settings = ServerSettings(
            max_rows=sys.maxsize,
            max_body_bytes=0,
            auth="closed",
            admin_token=None,
            explain_max_rows=sys.maxsize,
            explain_max_steps=ServerSettings.explain_max_steps if explain_max_steps is None else explain_max_steps,
            explain_max_seconds=math.inf,
        )
        return cls(ModelRegistry(store), recorder, FeedbackTokens(lambda: recorder.log, 0.0), settings)

    # -- which version ---------------------------------------------------------------------------------------------

    def model(self, name: str, version: str | int | None, call: Call) -> LoadedModel:
        """The active version of ``name``, or the pinned ``version``; ``StoreError`` (404/409/503) otherwise."""
        name = validate_name(name)
        reg = self.registry
        loaded = reg.active(name) if version is None else reg.version(name, _version(version))
        call.resolved = (loaded.name, loaded.version)
        return loaded

    def route(self, name: str, version: str | int | None, call: Call) -> Route:
        """Who answers a prediction of ``name``: the pinned ``version``, or for an unpinned one the route of
        its running rollout (a canary may answer, a shadow may see it), keyed by ``call``'s routing key."""
        if version is not None:
            return Route(self.model(name, version, call))
        chosen = self.registry.route(validate_name(name), call.routing_key or call.request_id)
        call.resolved = (chosen.model.name, chosen.model.version)
        return chosen

    # -- the input rules -------------------------------------------------------------------------------------------

    def check_shape(self, loaded: LoadedModel, rows: int, width: int, field: str = INPUT_NAME) -> None:
        """``InputError`` unless ``rows`` x ``width`` is what ``loaded`` takes (a transport that knows the shape
        before it decodes the values asks first; ``predict`` asks again)."""
        if rows <= 0:
            raise InputError("the input has no rows: send at least one row", field)
        problem = too_many_rows(rows, self.settings.max_rows)
        if problem is not None:
            raise InputError(f"the input {problem}", field)
        problem = width_problem(loaded, width)
        if problem is not None:
            raise InputError(problem, field)

    def check_values(
        self, loaded: LoadedModel, X: np.ndarray, field: str = INPUT_NAME, what: str = "the input"
    ) -> None:
        """``InputError`` for a value of float64 ``X`` that is not finite, or beyond the finite range of the numbers
        ``loaded`` computes with."""
        dtype = loaded.estimator.network_.dtype
        beyond = first_beyond(X, dtype)
        if beyond is not None:
            value, where = float(X[beyond]), list(beyond)
            if not np.isfinite(value):
                raise InputError(f"{what} holds {value} at index {where}; every value must be a finite number", field)
            raise InputError(
                f"{what} holds {value} at index {where}, beyond the range of the "
                f"{datatype_of(dtype)} numbers model {loaded.name!r} computes with",
                field,
            )

    # -- inference ---------------------------------------------------------------------------------------------

    def predict(self, chosen: Route, X: np.ndarray, call: Call, field: str = INPUT_NAME) -> Inference:
        """Predict float64 ``X`` (n, n_features) as ``chosen`` says, after every input rule; the log rows queued.

        The estimator refusing the rows, or outputs that are not finite, are the client's input
        (``InputError``), whichever version it reached; unless a canary candidate fails: the active version then
        answers.
        """
        loaded = chosen.model
        self.check_shape(loaded, X.shape[0], X.shape[1] if X.ndim == 2 else 0, field)
        self.check_values(loaded, X, field)
        try:
            return self._answer(chosen, X, call)
        except NonFiniteOutputError as exc:
            raise UnanswerableInputError(str(exc), field) from None
        except ValueError as exc:  # the estimator's own input checks
            raise InputError(f"model {loaded.name!r} refused the input: {exc}", field) from None

    def _answer(self, chosen: Route, X: np.ndarray, call: Call) -> Inference:
        loaded, rec = chosen.model, self.recorder
        logging_it = chosen.logged or rec.sampled(loaded)  # a rollout logs every prediction, and only then its copies
        request_id = rec.log_id(loaded.name, call.request_id, call.id_given) if logging_it else call.request_id
        with tracing.span("infer", {"nnserve.model": loaded.name, "nnserve.rows": len(X)}) as inferring:
            # X passed this version's input rules (predict): its estimator need not check it again, but for a
            # canary candidate, whose own refusal (a ValueError) tells the client's fault from its failure
            try:
                prediction = predict(loaded.estimator, X, check_input=chosen.fallback is not None)
            except Exception as exc:  # only a canary candidate fails over; anything else is raised as it is
                refused = isinstance(exc, ValueError) and not isinstance(exc, NonFiniteOutputError)
                if chosen.fallback is None or refused:
                    raise
                why = f"{type(exc).__name__}: {exc}"
                log.error("model %s: canary version %s failed, answered by %s: %s", loaded.name, loaded.version,
                          chosen.fallback.version, why)  # fmt: skip
                rec.offer_failure(loaded.name, loaded.version, request_id, X, why)
                loaded = chosen.fallback
                prediction = predict(loaded.estimator, X)  # its own checks: the rules applied were the candidate's
            inferring.set_attribute("nnserve.version", loaded.version)
        call.resolved = (loaded.name, loaded.version)
        telemetry.rows_predicted(loaded.name, loaded.version, len(X))
        if not (logging_it or chosen.shadow is not None or chosen.missed is not None):
            return Inference(loaded, prediction, None)
        with tracing.span("log", {"nnserve.request_id": request_id}):  # rows queued for the log's writer thread
            if chosen.missed is not None:
                rec.offer_failure(loaded.name, chosen.missed[0], request_id, X, chosen.missed[1])
            queued = logging_it and rec.offer(loaded, request_id, X, prediction, always=True)
            if chosen.shadow is not None:
                rec.offer_shadow(chosen.shadow, request_id, X)
            token = self.tokens.issue(loaded.name, loaded.version, request_id) if queued else None
        return Inference(loaded, prediction, None if not queued else Logged(request_id, token))

    # -- explanations ----------------------------------------------------------------------------------------------

    def explain(
        self,
        loaded: LoadedModel,
        X: np.ndarray,
        *,
        method: str,
        target: Any,
        steps: int | None,
        baseline: str | list[float],
        field: str = INPUT_NAME,
    ) -> Explanation:
        """Explain float64 ``X`` (n, n_features) with ``loaded`` (``model``'s answer: the active or a pinned
        version; a rollout's candidate never explains), after the input rules, at most ``explain_max_rows``
        rows and ``explain_max_steps`` steps (``store.explain``'s rule), within
        ``explain_max_seconds``. A regressor ignores ``target``.

        ``InputError`` names the field at fault (``steps``, ``target``, ``baseline``, ``method`` or the rows').
        """
        limits = self.settings
        problem = too_many_rows(X.shape[0], limits.explain_max_rows)
        if problem is not None:
            raise InputError(f"the input {problem} for an explanation", field)
        self.check_shape(loaded, X.shape[0], X.shape[1] if X.ndim == 2 else 0, field)
        self.check_values(loaded, X, field)
        if not isinstance(baseline, str):  # a row: its values are the input's
            self.check_values(loaded, np.asarray(baseline, dtype=np.float64), "baseline", "the baseline")
        if not isinstance(loaded.estimator, MLPClassifier):
            target = None
        try:
            explained = explain(
                loaded,
                X,
                method=method,
                target=target,
                steps=steps,
                baseline=baseline,
                max_steps=limits.explain_max_steps,
                max_seconds=limits.explain_max_seconds,
            )
        except ExplainError as exc:
            raise InputError(str(exc), exc.field) from None
        except NonFiniteOutputError as exc:
            raise UnanswerableInputError(str(exc), field) from None
        except ValueError as exc:  # the estimator's own input checks
            raise InputError(f"model {loaded.name!r} refused the input: {exc}", field) from None
        return explained

    # -- what a model looks like -----------------------------------------------------------------------------------

    @staticmethod
    def input_spec(loaded: LoadedModel) -> TensorSpec:
        """The one input tensor: the model's width, in the numbers its network computes with."""
        return TensorSpec(INPUT_NAME, _float_type(loaded), (-1, int(loaded.estimator.n_features_in_)))

    @staticmethod
    def output_specs(loaded: LoadedModel) -> dict[str, TensorSpec]:
        """Output name -> its spec, in response order: a classifier's class index, labels and probabilities, or
        a regressor's values."""
        estimator = loaded.estimator
        if isinstance(estimator, MLPClassifier):
            specs = [
                TensorSpec("predictions", "INT64", (-1,)),
                TensorSpec("labels", "BYTES", (-1,)),
                TensorSpec("probabilities", _float_type(loaded), (-1, len(estimator.classes_))),
            ]
        else:
            n_outputs = int(loaded.manifest.get("n_outputs", 1))
            one_d = int(loaded.manifest.get("target_ndim", 1)) == 1
            specs = [TensorSpec("predictions", _float_type(loaded), (-1,) if one_d else (-1, n_outputs))]
        return {spec.name: spec for spec in specs}

    def metadata(self, name: str, version: str | int | None, call: Call) -> ModelMetadata:
        """The model's (version's) tensors and its serving versions."""
        loaded = self.model(name, version, call)
        versions = tuple(str(info.version) for info in self.registry.store.version_info(loaded.name) if info.ok)
        outputs = tuple(self.output_specs(loaded).values())
        return ModelMetadata(loaded.name, versions, PLATFORM, (self.input_spec(loaded),), outputs)

    def model_ready(self, name: str, version: str | int | None, call: Call) -> ModelReadiness:
        """Whether the model (version) can serve; ``NotFoundError`` when there is no such model or version."""
        try:
            loaded = self.model(name, version, call)
        except (NotFoundError, CorruptVersionError, StoreUnavailableError) as exc:
            wanted = self.registry.store.versions(validate_name(name))  # unknown model: NotFoundError
            if version is not None and _version(version) not in wanted:
                raise
            return ModelReadiness(name, None if version is None else _version(version), False, str(exc))
        return ModelReadiness(loaded.name, loaded.version, True)

    def readiness(self) -> Readiness:
        """Ready = the store is readable and every model with an active version has one loaded here."""
        registry = self.registry
        reasons: list[str] = []
        try:
            registry.store.ping()
        except StoreError as exc:
            return Readiness(False, {}, [str(exc)])
        models = registry.status()
        for name, info in models.items():
            if info["error"]:
                reasons.append(f"model {name!r}: {info['error']}")
            if info["active_version"] is not None and info["loaded_version"] is None:
                reasons.append(f"model {name!r}: active version {info['active_version']} is not loaded")
        # not ready while a model that should serve has nothing loaded here: its active version is known, or
        # it cannot be known (ACTIVE or the model's directory unreadable); a loaded model keeps it ready
        ready = not any(
            info["loaded_version"] is None and (info["active_version"] is not None or info["error"])
            for info in models.values()
        )
        return Readiness(ready, models, reasons)

    @staticmethod
    def server_metadata() -> tuple[str, str]:
        """(server name, its version)."""
        return "nnserve", __version__


def _version(version: str | int) -> int:
    return version if isinstance(version, int) else validate_version(version)


def _float_type(loaded: LoadedModel) -> str:
    return datatype_of(np.dtype(loaded.manifest.get("dtype", "float32")))
