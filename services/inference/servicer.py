"""GenerationService on the shared job pattern (kind "generation")."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from services.inference.generation import KIND
from services.inference.metering import generation_usage
from services.inference.models.registry import ModelRegistry, ModelSpec
from services.inference.reasons import Reason
from services.inference.training.checks import lora_model
from services.inference.training.store import LoraStore
from services.inference.validation import check_generation
from services.kit.auth import current_principal
from services.kit.db import run_db
from services.kit.errors import FieldViolation, ServiceError, Violations
from services.kit.jobs import JobRpc, JobService, Prepared
from viarte.inference.v1 import generation_pb2 as G
from viarte.inference.v1 import generation_pb2_grpc
from viarte.type.v1 import asset_pb2

__all__ = ["GenerationServicer"]


class GenerationServicer(generation_pb2_grpc.GenerationServiceServicer):  # type: ignore[misc]
    def __init__(
        self, registry: ModelRegistry, jobs: JobService, store: Any, *,
        loaded_models: Callable[[], set[str]] = set, face_swap_available: bool = True,
        executor_ready: Callable[[], None] = lambda: None, loras: LoraStore | None = None,
        max_devices: Callable[[], int] = lambda: 1,
    ) -> None:
        # How many devices the executor can give one job now (`devices`; Ray: 2 with 2 live actors).
        self._max_devices = max_devices
        self.loras = loras
        self.registry = registry
        self.jobs = jobs
        self.store = store
        self._loaded = loaded_models
        self._face_swap = face_swap_available
        # Raises UNAVAILABLE while the executor cannot run jobs (the Ray cluster unreachable):
        # nothing is queued that could not start.
        self._ready = executor_ready
        self.rpc = JobRpc(jobs, KIND, G.GenerationJob, G.GenerationParameters, G.GenerationResult)

    async def ListModels(self, request: G.ListModelsRequest, context: grpc.aio.ServicerContext) -> G.ListModelsResponse:
        current_principal()
        loaded = self._loaded()
        return G.ListModelsResponse(models=[m.to_proto(loaded=m.id in loaded) for m in self.registry])

    async def CreateGenerationJob(
        self, request: G.CreateGenerationJobRequest, context: grpc.aio.ServicerContext
    ) -> G.CreateGenerationJobResponse:
        async def prepare(owner: str) -> Prepared:
            self._ready()
            spec, params = check_generation(request.parameters, self.registry, face_swap_available=self._face_swap)
            self._check_devices(params)
            await self._check_loras(owner, params, spec)
            await self._check_assets(owner, params)
            return Prepared(params, params.model, generation_usage(params))

        return await self.rpc.create(request, G.CreateGenerationJobResponse, prepare)

    def _check_devices(self, params: G.GenerationParameters) -> None:
        available = self._max_devices()
        if params.devices > max(1, available):
            raise ServiceError.failed_precondition(
                Reason.DEVICES_UNAVAILABLE,
                f"devices: {params.devices} asks for more devices than this deployment can give one job ({available}; "
                "2 needs the Ray executor with at least 2 GPUs)",
                metadata={"devices": str(params.devices), "available": str(available)})

    async def _check_loras(self, owner: str, params: G.GenerationParameters, spec: ModelSpec) -> None:
        """The LoRAs are the caller's, for this model, on a family that loads LoRAs."""
        if not params.loras:
            return
        lora_model(spec.id, self.registry, "parameters.model")  # LORA_UNSUPPORTED for other families
        v = Violations()
        for i, item in enumerate(params.loras):
            v.check(-4.0 <= item.weight <= 4.0, f"parameters.loras[{i}].weight", "must be in [-4, 4]")
        v.check(len(params.loras) <= 8, "parameters.loras", "at most 8 LoRAs")
        v.check(len({x.lora_id for x in params.loras}) == len(params.loras), "parameters.loras", "a LoRA twice")
        v.raise_if_any(Reason.INVALID_PARAMETERS)
        for item in params.loras:
            row = await run_db(self.loras.get, item.lora_id, owner) if self.loras is not None else None
            if row is None:
                raise ServiceError.not_found(Reason.LORA_NOT_FOUND, f"no LoRA {item.lora_id!r} of yours",
                                             metadata={"lora_id": item.lora_id})
            if row.base_model != spec.id:
                raise ServiceError.failed_precondition(
                    Reason.LORA_BASE_MISMATCH, f"LoRA {row.id} was trained on {row.base_model}, not {spec.id}",
                    metadata={"lora_id": row.id, "base_model": row.base_model, "model": spec.id},
                )

    async def _check_assets(self, owner: str, params: G.GenerationParameters) -> None:
        """Input images exist, are the caller's and are images (nothing is queued otherwise)."""
        wanted = [("parameters.image_asset_id", params.image_asset_id)]
        if params.HasField("face_swap"):
            wanted += [("parameters.face_swap.source_face_asset_id", params.face_swap.source_face_asset_id),
                       ("parameters.face_swap.reference_face_asset_id", params.face_swap.reference_face_asset_id)]
        for field, asset_id in wanted:
            if not asset_id:
                continue
            asset = (await self.store.resolve(owner, asset_id)).asset
            if asset.kind != asset_pb2.ASSET_KIND_IMAGE:
                raise ServiceError.invalid_argument(
                    Reason.INVALID_PARAMETERS, f"{field} must be an image",
                    violations=(FieldViolation(field, f"asset is {asset.content_type}, not an image"),),
                )

    async def GetGenerationJob(
        self, request: G.GetGenerationJobRequest, context: grpc.aio.ServicerContext
    ) -> G.GetGenerationJobResponse:
        return await self.rpc.get(request, G.GetGenerationJobResponse)

    async def ListGenerationJobs(
        self, request: G.ListGenerationJobsRequest, context: grpc.aio.ServicerContext
    ) -> G.ListGenerationJobsResponse:
        return await self.rpc.list(request, G.ListGenerationJobsResponse)

    async def CancelGenerationJob(
        self, request: G.CancelGenerationJobRequest, context: grpc.aio.ServicerContext
    ) -> G.CancelGenerationJobResponse:
        return await self.rpc.cancel(request, G.CancelGenerationJobResponse)

    async def WatchGenerationJob(
        self, request: G.WatchGenerationJobRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[G.WatchGenerationJobResponse]:
        async for response in self.rpc.watch(request, G.WatchGenerationJobResponse):
            yield response
