"""TrainingService (kind "training" on the shared job pattern) and LoraService."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import grpc

from services.inference.metering import training_usage
from services.inference.models.registry import ModelRegistry
from services.inference.reasons import Reason
from services.inference.training.checks import check_dataset, check_training
from services.inference.training.handler import KIND
from services.inference.training.store import LoraStore
from services.kit.auth import current_principal
from services.kit.db import run_db
from services.kit.errors import ServiceError
from services.kit.jobs import JobRpc, JobService, Prepared
from services.kit.pagination import PageTokens, page_size
from services.kit.storage_client import StorageClient
from viarte.training.v1 import training_pb2 as T
from viarte.training.v1 import training_pb2_grpc

__all__ = ["LoraServicer", "TrainingServicer"]


class TrainingServicer(training_pb2_grpc.TrainingServiceServicer):  # type: ignore[misc]
    def __init__(self, registry: ModelRegistry, jobs: JobService, store: StorageClient,
                 executor_ready: Callable[[], None] = lambda: None) -> None:
        self.registry = registry
        self.jobs = jobs
        self.store = store
        self._ready = executor_ready
        self.rpc = JobRpc(jobs, KIND, T.TrainingJob, T.TrainingParameters, T.TrainingResult)

    async def CreateTrainingJob(
        self, request: T.CreateTrainingJobRequest, context: grpc.aio.ServicerContext
    ) -> T.CreateTrainingJobResponse:
        async def prepare(owner: str) -> Prepared:
            self._ready()
            spec, params = check_training(request.parameters, self.registry)
            # Every dataset problem is found here, before the job takes a device.
            await check_dataset(self.store, owner, params, spec)
            return Prepared(params, params.base_model, training_usage(params))

        return await self.rpc.create(request, T.CreateTrainingJobResponse, prepare)

    async def GetTrainingJob(self, request: T.GetTrainingJobRequest,
                             context: grpc.aio.ServicerContext) -> T.GetTrainingJobResponse:
        return await self.rpc.get(request, T.GetTrainingJobResponse)

    async def ListTrainingJobs(self, request: T.ListTrainingJobsRequest,
                               context: grpc.aio.ServicerContext) -> T.ListTrainingJobsResponse:
        return await self.rpc.list(request, T.ListTrainingJobsResponse)

    async def CancelTrainingJob(self, request: T.CancelTrainingJobRequest,
                                context: grpc.aio.ServicerContext) -> T.CancelTrainingJobResponse:
        return await self.rpc.cancel(request, T.CancelTrainingJobResponse)

    async def WatchTrainingJob(
        self, request: T.WatchTrainingJobRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[T.WatchTrainingJobResponse]:
        async for response in self.rpc.watch(request, T.WatchTrainingJobResponse):
            yield response


_CURSOR = {"create_us": int, "id": str}


class LoraServicer(training_pb2_grpc.LoraServiceServicer):  # type: ignore[misc]
    def __init__(self, loras: LoraStore, tokens: PageTokens) -> None:
        self.loras = loras
        self.tokens = tokens

    async def ListLoras(self, request: T.ListLorasRequest, context: grpc.aio.ServicerContext) -> T.ListLorasResponse:
        owner = current_principal().user_id
        filters = {"owner": owner, "base_model": request.base_model}
        cursor = self.tokens.decode(request.page_token, filters, _CURSOR)
        size = page_size(request.page_size)
        before = (cursor["create_us"], cursor["id"]) if cursor else None
        rows = await run_db(self.loras.page, owner, request.base_model, size + 1, before)
        token = ""
        if len(rows) > size:
            rows = rows[:size]
            token = self.tokens.encode({"create_us": rows[-1].create_us, "id": rows[-1].id}, filters)
        return T.ListLorasResponse(loras=[r.to_proto() for r in rows], next_page_token=token)

    async def GetLora(self, request: T.GetLoraRequest, context: grpc.aio.ServicerContext) -> T.GetLoraResponse:
        row = await run_db(self.loras.get, request.id, current_principal().user_id)
        if row is None:
            raise _not_found(request.id)
        return T.GetLoraResponse(lora=row.to_proto())

    async def DeleteLora(self, request: T.DeleteLoraRequest,
                         context: grpc.aio.ServicerContext) -> T.DeleteLoraResponse:
        if not await run_db(self.loras.delete, request.id, current_principal().user_id):
            raise _not_found(request.id)
        return T.DeleteLoraResponse()


def _not_found(lora_id: str) -> ServiceError:
    return ServiceError.not_found(Reason.LORA_NOT_FOUND, f"no LoRA {lora_id!r} of yours", metadata={"lora_id": lora_id})
