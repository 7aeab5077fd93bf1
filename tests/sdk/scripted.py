"""A tiny, real gRPC GenerationService whose failures are scripted, for the SDK's transport tests.

It is not the inference service: it answers with the exact failures the SDK must survive
(UNAVAILABLE with RetryInfo, slow answers, dropped watch streams, expired tokens) and records
what the SDK sent (attempts, request ids, metadata, after_sequence), so the tests can assert on
the SDK's behaviour over a real loopback HTTP/2 connection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from viarte.inference.v1 import generation_pb2, generation_pb2_grpc
from viarte.storage.v1 import storage_pb2, storage_pb2_grpc
from viarte.type.v1 import job_pb2


def rich_status(
    code: grpc.StatusCode,
    message: str,
    *,
    reason: str = "",
    domain: str = "viarte.inference",
    violations: tuple[tuple[str, str], ...] = (),
    retry_after: float | None = None,
) -> grpc.Status:
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message)
    if reason:
        status.details.add().Pack(error_details_pb2.ErrorInfo(reason=reason, domain=domain, metadata={"k": "v"}))
    if violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[error_details_pb2.BadRequest.FieldViolation(field=f, description=d) for f, d in violations]
        )
        status.details.add().Pack(bad)
    if retry_after is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(retry_after * 1e9))
        status.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    return rpc_status.to_status(status)


@dataclass
class Script:
    # ListModels answers UNAVAILABLE this many times (with RetryInfo retry_after) before succeeding.
    unavailable_times: int = 0
    retry_after: float | None = None
    # CreateGenerationJob answers UNAVAILABLE this many times first.
    create_unavailable_times: int = 0
    # GetGenerationJob sleeps this long before answering.
    get_delay: float = 0.0
    # The first CreateGenerationJob makes its job, then sleeps this long before answering.
    create_delay: float = 0.0
    # WatchGenerationJob: the events of the job, and after how many events the FIRST stream drops.
    total_steps: int = 6
    drop_after: int | None = None
    drop_with_error: bool = True
    # Watch streams are held open (no events) until cancelled, for cancellation tests.
    hang_watch: bool = False
    # Tokens the server rejects as expired.
    expired_tokens: set[str] = field(default_factory=set)
    final_state: int = job_pb2.JOB_STATE_SUCCEEDED


@dataclass
class Record:
    attempts: dict[str, list[float]] = field(default_factory=dict)
    request_ids: list[str] = field(default_factory=list)
    metadata: list[dict[str, str]] = field(default_factory=list)
    after_sequences: list[int] = field(default_factory=list)
    cancels: list[str] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)

    def hit(self, method: str, context: grpc.aio.ServicerContext) -> dict[str, str]:
        self.attempts.setdefault(method, []).append(time.monotonic())
        md = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        self.metadata.append(md)
        return md


class ScriptedGeneration(generation_pb2_grpc.GenerationServiceServicer):
    def __init__(self, script: Script) -> None:
        self.script = script
        self.record = Record()
        self.jobs: dict[str, generation_pb2.GenerationJob] = {}
        self._watch_calls = 0

    async def _auth(self, context: grpc.aio.ServicerContext, md: dict[str, str]) -> None:
        token = md.get("authorization", "").removeprefix("Bearer ")
        self.record.tokens.append(token)
        if token in self.script.expired_tokens:
            await context.abort_with_status(
                rich_status(grpc.StatusCode.UNAUTHENTICATED, "token expired", reason="TOKEN_EXPIRED", domain="viarte.auth")
            )

    async def ListModels(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        md = self.record.hit("ListModels", context)
        await self._auth(context, md)
        if len(self.record.attempts["ListModels"]) <= self.script.unavailable_times:
            await context.abort_with_status(
                rich_status(grpc.StatusCode.UNAVAILABLE, "warming up", reason="WARMING_UP", retry_after=self.script.retry_after)
            )
        return generation_pb2.ListModelsResponse(models=[generation_pb2.Model(id="tiny-wan-t2v", tiny=True)])

    async def CreateGenerationJob(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        self.record.hit("CreateGenerationJob", context)
        self.record.request_ids.append(request.request_id)
        p = request.parameters
        if p.width and p.width % 16:
            await context.abort_with_status(
                rich_status(
                    grpc.StatusCode.INVALID_ARGUMENT, "invalid generation parameters", reason="INVALID_PARAMETERS",
                    violations=(("parameters.width", "must be a multiple of 16"), ("parameters.prompt", "must not be empty")),
                )
            )
        if len(self.record.attempts["CreateGenerationJob"]) <= self.script.create_unavailable_times:
            await context.abort_with_status(rich_status(grpc.StatusCode.UNAVAILABLE, "busy"))
        for job in self.jobs.values():
            if request.request_id and job.request_id == request.request_id:
                return generation_pb2.CreateGenerationJobResponse(job=job)
        job = generation_pb2.GenerationJob(
            id=f"job-{len(self.jobs) + 1}", request_id=request.request_id, parameters=p,
            status=job_pb2.JobStatus(state=job_pb2.JOB_STATE_QUEUED, last_sequence=1),
        )
        self.jobs[job.id] = job
        if len(self.jobs) == 1 and self.script.create_delay:
            await asyncio.sleep(self.script.create_delay)
        return generation_pb2.CreateGenerationJobResponse(job=job)

    async def _job(self, job_id: str, context: grpc.aio.ServicerContext) -> generation_pb2.GenerationJob:
        job = self.jobs.get(job_id)
        if job is None:
            await context.abort_with_status(rich_status(grpc.StatusCode.NOT_FOUND, "job not found", reason="JOB_NOT_FOUND"))
        assert job is not None
        return job

    async def GetGenerationJob(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        self.record.hit("GetGenerationJob", context)
        if self.script.get_delay:
            await asyncio.sleep(self.script.get_delay)
        return generation_pb2.GetGenerationJobResponse(job=await self._job(request.id, context))

    async def CancelGenerationJob(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        self.record.hit("CancelGenerationJob", context)
        self.record.cancels.append(request.id)
        job = await self._job(request.id, context)
        job.status.state = job_pb2.JOB_STATE_CANCELLED
        return generation_pb2.CancelGenerationJobResponse(job=job)

    def events(self) -> list[job_pb2.JobEvent]:
        n = self.script.total_steps
        out = [job_pb2.JobEvent(sequence=1, state=job_pb2.JOB_STATE_QUEUED, progress=job_pb2.Progress(stage=job_pb2.STAGE_QUEUED, queue_position=1))]
        for step in range(1, n + 1):
            out.append(job_pb2.JobEvent(
                sequence=step + 1, state=job_pb2.JOB_STATE_RUNNING,
                progress=job_pb2.Progress(stage=job_pb2.STAGE_DENOISING, step=step, total_steps=n, fraction=step / (n + 1)),
            ))
        final = job_pb2.JobEvent(sequence=n + 2, state=self.script.final_state, progress=job_pb2.Progress(fraction=1.0))
        if self.script.final_state == job_pb2.JOB_STATE_FAILED:
            final.error.CopyFrom(job_pb2.JobError(code="RESOURCE_EXHAUSTED", reason="OUT_OF_MEMORY", message="device out of memory"))
        out.append(final)
        return out

    async def WatchGenerationJob(self, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        self.record.hit("WatchGenerationJob", context)
        self.record.after_sequences.append(request.after_sequence)
        job = await self._job(request.id, context)
        self._watch_calls += 1
        first_call = self._watch_calls == 1
        yield generation_pb2.WatchGenerationJobResponse(job=job)
        if self.script.hang_watch:
            await asyncio.sleep(3600)
        sent = 0
        for event in self.events():
            if event.sequence <= request.after_sequence:
                continue
            if first_call and self.script.drop_after is not None and sent >= self.script.drop_after:
                if self.script.drop_with_error:
                    await context.abort(grpc.StatusCode.UNAVAILABLE, "stream dropped")
                return  # a clean end before the terminal state is a drop too
            job.status.state = event.state
            job.status.last_sequence = event.sequence
            if event.state == job_pb2.JOB_STATE_SUCCEEDED:
                job.result.video_asset_id = "asset-result"
            if event.HasField("error"):
                job.status.error.CopyFrom(event.error)
            yield generation_pb2.WatchGenerationJobResponse(event=event)
            sent += 1
            await asyncio.sleep(0)


async def start_scripted(script: Script) -> tuple[grpc.aio.Server, int, ScriptedGeneration]:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    servicer = ScriptedGeneration(script)
    generation_pb2_grpc.add_GenerationServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port, servicer


class ScriptedStorage(storage_pb2_grpc.StorageServiceServicer):
    """DownloadAsset drops the first stream after ``drop_after`` chunks; UploadAsset fails the first
    ``upload_unavailable_times`` attempts after reading the whole body. Records offsets and uploads."""

    def __init__(self, data: bytes, *, chunk: int = 1000, drop_after: int = 3, upload_unavailable_times: int = 0) -> None:
        self.data, self.chunk, self.drop_after = data, chunk, drop_after
        self.upload_unavailable_times = upload_unavailable_times
        self.offsets: list[int] = []
        self.uploads: list[tuple[str, bytes]] = []  # (request_id, body) per attempt

    async def DownloadAsset(self, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        self.offsets.append(request.offset)
        first = len(self.offsets) == 1
        asset = storage_pb2.Asset(id=request.asset_id, name="clip.bin", size_bytes=len(self.data))
        yield storage_pb2.DownloadAssetResponse(asset=asset)
        for n, start in enumerate(range(request.offset, len(self.data), self.chunk)):
            if first and n == self.drop_after:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "connection reset")
            yield storage_pb2.DownloadAssetResponse(chunk=self.data[start : start + self.chunk])

    async def UploadAsset(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        meta, body = None, b""
        async for message in request_iterator:
            if message.HasField("metadata"):
                meta = message.metadata
            else:
                body += message.chunk
        assert meta is not None
        self.uploads.append((meta.request_id, body))
        if len(self.uploads) <= self.upload_unavailable_times:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "storage restarting")
        return storage_pb2.UploadAssetResponse(asset=storage_pb2.Asset(id="a1", name=meta.name, size_bytes=len(body), sha256=meta.sha256))


async def start_storage(servicer: ScriptedStorage) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    storage_pb2_grpc.add_StorageServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


class LossyProxy(grpc.GenericRpcHandler):
    """A loopback gRPC proxy that forwards every unary call to ``target`` byte for byte, and loses
    the first ``lose`` answers of ``method`` after the upstream produced them: the upstream did the
    work (e.g. rotated a refresh token), the client sees UNAVAILABLE, as on a reset connection."""

    def __init__(self, target: str, method: str, *, lose: int = 1) -> None:
        self.upstream = grpc.aio.insecure_channel(target)
        self.method, self.lose = method, lose
        self.calls: list[str] = []  # full method names, in order

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        forward = self.upstream.unary_unary(method)

        async def handle(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            self.calls.append(method)
            md = tuple((k, v) for k, v in context.invocation_metadata() if k != "user-agent")  # type: ignore[union-attr]
            try:
                answer: bytes = await forward(request, metadata=md, timeout=context.time_remaining())
            except grpc.aio.AioRpcError as exc:
                await context.abort(exc.code(), exc.details() or "", tuple(exc.trailing_metadata() or ()))
            if method.endswith(f"/{self.method}") and self.lose > 0:
                self.lose -= 1
                await context.abort(grpc.StatusCode.UNAVAILABLE, "connection reset by peer")
            return answer

        return grpc.unary_unary_rpc_method_handler(handle)


async def start_lossy_proxy(proxy: LossyProxy) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((proxy,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port
