"""``inference.GRPCInferenceService``: the Open Inference Protocol's methods as an adapter over the data plane.

Every method reads its request (``codec``), asks the data plane and the gate what HTTP v2's route would ask, and
writes the answer; it holds no rule of its own. Same answers as ``/v2`` for the same request: the same tensors,
versions and labels, the same refusals with the same messages (their gRPC codes in ``calls.CODES``). Credentials
are checked as HTTP's are: any key for every method in ``closed`` mode, the ``predict`` scope for ``ModelInfer``
(open in ``open-predict``), a key's models for the model methods; ``grpc.health.v1`` stays open like ``/healthz``.
"""

from __future__ import annotations

from typing import Any

import grpc

from service import tracing
from service.server.callers import PREDICT, READ, Gate, listed
from service.server.dataplane import DataPlane
from service.server.grpc import codec
from service.server.grpc import grpc_predict_v2_pb2 as pb2
from service.server.grpc import grpc_predict_v2_pb2_grpc as pb2_grpc
from service.server.grpc.calls import credential, current
from service.server.jsonio import max_values
from service.server.v2 import request as v2_request
from service.server.v2.routes import EXTENSIONS


class InferenceServicer(pb2_grpc.GRPCInferenceServiceServicer):
    """The protocol's methods over one worker's data plane and gate."""

    def __init__(self, dataplane: DataPlane, gate: Gate) -> None:
        self.dataplane = dataplane
        self.gate = gate

    def _authorize(self, context: grpc.ServicerContext, scope: str, model: str | None = None) -> None:
        """HTTP's checks for a call with ``scope`` on ``model``: in closed mode any key first (HTTP's gate), then
        the scope (a view's ``require``); ``UnauthenticatedError`` or ``PermissionDeniedError`` otherwise."""
        call = current()
        call.caller = self.gate.authenticate(credential(context))
        if self.gate.closed:
            self.gate.authorize(call.caller, READ, model)
        self.gate.authorize(call.caller, scope, model)

    # -- the server ----------------------------------------------------------------------------------------------

    def ServerLive(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 (the protocol's names)
        self._authorize(context, READ)
        return pb2.ServerLiveResponse(live=True)

    def ServerReady(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self._authorize(context, READ)
        return pb2.ServerReadyResponse(ready=self.dataplane.readiness().ready)

    def ServerMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self._authorize(context, READ)
        name, version = self.dataplane.server_metadata()
        return pb2.ServerMetadataResponse(name=name, version=version, extensions=EXTENSIONS)

    def RepositoryIndex(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        """Every model of the store the caller sees (``listed``) and whether this worker serves it (Triton's
        repository index)."""
        self._authorize(context, READ)
        response = pb2.RepositoryIndexResponse()
        models = self.dataplane.readiness().models
        for name in listed(current().caller, sorted(models)):
            info = models[name]
            loaded = info.get("loaded_version")
            if request.ready and loaded is None:
                continue
            response.models.add(
                name=name,
                version="" if loaded is None else str(loaded),
                state="READY" if loaded is not None else "UNAVAILABLE",
                reason=str(info.get("error") or ""),
            )
        return response

    # -- models --------------------------------------------------------------------------------------------------

    def ModelReady(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self._authorize(context, READ, request.name)
        state = self.dataplane.model_ready(request.name, request.version or None, current())
        return pb2.ModelReadyResponse(ready=state.ready)

    def ModelMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self._authorize(context, READ, request.name)
        meta = self.dataplane.metadata(request.name, request.version or None, current())
        tensor = pb2.ModelMetadataResponse.TensorMetadata
        return pb2.ModelMetadataResponse(
            name=meta.name,
            versions=meta.versions,
            platform=meta.platform,
            inputs=[tensor(name=s.name, datatype=s.datatype, shape=s.shape) for s in meta.inputs],
            outputs=[tensor(name=s.name, datatype=s.datatype, shape=s.shape) for s in meta.outputs],
        )

    # -- inference -----------------------------------------------------------------------------------------------

    def ModelInfer(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        """As ``POST /v2/models/{name}[/versions/{version}]/infer``; outputs raw when the inputs were."""
        self._authorize(context, PREDICT, request.model_name)
        plane, call = self.dataplane, current()
        chosen = plane.route(request.model_name, request.model_version or None, call)
        loaded = chosen.model
        with tracing.span("decode"):
            budget = max_values(plane.settings.max_rows, int(loaded.estimator.n_features_in_))
            inference = codec.inference_request(request, budget)
            X, input_name = v2_request.input_matrix(loaded, inference, plane)
            wanted = v2_request.requested_outputs(loaded, plane.output_specs(loaded), inference.json)
        answered = plane.predict(chosen, X, call, input_name)
        with tracing.span("encode"):
            loaded = answered.model
            response = pb2.ModelInferResponse(model_name=loaded.name, model_version=str(loaded.version), id=request.id)
            if answered.logged is not None:  # what v1 feedback quotes, in the protocol's free-form response parameters
                for key, value in answered.logged._asdict().items():
                    if value is not None:
                        response.parameters[key].string_param = value
            raw = bool(request.raw_input_contents)
            for name, values, datatype, shape, _ in v2_request.output_tensors(plane, answered, wanted):
                codec.add_output(response, name, values, datatype, shape, raw)
            return response
