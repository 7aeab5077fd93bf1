"""GenerationService on the shared job pattern (kind "generation")."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from services.inference.generation import KIND
from services.inference.metering import generation_usage
from services.inference.models.registry import ModelRegistry
from services.inference.reasons import Reason
from services.inference.validation import MAX_REQUEST_ID, check_generation
from services.kit.auth import current_principal
from services.kit.errors import FieldViolation, ServiceError
from services.kit.jobs import JobRpc, JobService
from viarte.inference.v1 import generation_pb2 as G
from viarte.inference.v1 import generation_pb2_grpc
from viarte.type.v1 import asset_pb2

__all__ = ["GenerationServicer"]


class GenerationServicer(generation_pb2_grpc.GenerationServiceServicer):  # type: ignore[misc]
    def __init__(
        self, registry: ModelRegistry, jobs: JobService, store: Any, *,
        loaded_models: Callable[[], set[str]] = set, face_swap_available: bool = True,
        executor_ready: Callable[[], None] = lambda: None,
    ) -> None:
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
        principal = current_principal()
        owner = principal.user_id
        if len(request.request_id) > MAX_REQUEST_ID:
            raise ServiceError.invalid_argument(
                Reason.INVALID_PARAMETERS, "request_id is too long",
                violations=(FieldViolation("request_id", f"at most {MAX_REQUEST_ID} characters"),),
            )
        if request.request_id:  # idempotent: the same request returns the same job, unchecked
            existing = await self.jobs.find(owner, KIND, request.request_id)
            if existing is not None:
                return G.CreateGenerationJobResponse(job=self.rpc.to_proto(existing))
        self._ready()
        _, params = check_generation(request.parameters, self.registry, face_swap_available=self._face_swap)
        await self._check_assets(owner, params)
        rec = await self.jobs.create(owner, KIND, params.SerializeToString(), request_id=request.request_id,
                                     priority=request.priority, caller=principal,
                                     estimated_credits=self.jobs.estimate(KIND, params.model, generation_usage(params)))
        return G.CreateGenerationJobResponse(job=self.rpc.to_proto(rec))

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
