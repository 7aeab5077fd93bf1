"""Create / Get / List / Cancel / Watch of one job resource: the gRPC glue every job servicer shares.

A servicer answers each method with one call. Create's checks differ per resource, so the servicer
hands ``create`` a ``prepare`` coroutine (validate, check assets, return the parameters to store
and what the job would consume); everything around it is here, once: the request_id checks and the
idempotent replay, the price estimate, admission under the caller's budget and limits (issue 16)
and the insert::

    self.rpc = JobRpc(jobs, "render", render_pb2.RenderJob, render_pb2.RenderParameters, render_pb2.RenderResult)

    async def CreateRenderJob(self, request, context):
        return await self.rpc.create(request, render_pb2.CreateRenderJobResponse, self._prepare)

    async def GetRenderJob(self, request, context):
        return await self.rpc.get(request, render_pb2.GetRenderJobResponse)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from google.protobuf.message import Message

from services.kit.auth import current_principal
from services.kit.errors import FieldViolation, ServiceError
from services.kit.jobs.metering import check_read
from services.kit.jobs.record import JobRecord, build_job_message
from services.kit.jobs.service import JobService
from services.kit.prices import Usage

__all__ = ["MAX_REQUEST_ID", "JobRpc", "Prepared"]

MAX_REQUEST_ID = 128

J = TypeVar("J", bound=Message)  # the resource message (GenerationJob, RenderJob, ...)
R = TypeVar("R")  # a response message


class _ByIdRequest(Protocol):
    id: str


class _CreateRequest(Protocol):
    request_id: str
    priority: int


@dataclass(frozen=True)
class Prepared:
    """A create request as the servicer's checks resolved it: the parameters to store, and the
    model and quantities the job would consume (priced into ``JobStatus.cost.estimated_credits``)."""

    parameters: Message
    model: str = ""
    usage: Usage = field(default_factory=Usage)


class _ListRequest(Protocol):
    state: int
    page_size: int
    page_token: str


class _WatchRequest(Protocol):
    id: str
    after_sequence: int


@dataclass(frozen=True)
class JobRpc(Generic[J]):
    """One job resource of kind ``kind``: stored parameters/result bytes decode with the
    ``parameters`` / ``result`` message classes into a ``job`` message. Every call acts for the
    current principal (another user's job is NOT_FOUND, like a missing one)."""

    jobs: JobService
    kind: str
    job: Callable[..., J]
    parameters: type[Message]
    result: type[Message]

    def to_proto(self, record: JobRecord, queue_position: int = 0) -> J:
        """``queue_position`` 0: the one the job's row last announced (Create's answer has it)."""
        return build_job_message(
            self.job, record,
            parameters=self.parameters.FromString(record.parameters),
            result=self.result.FromString(record.result) if record.result else None,
            queue_position=queue_position,
        )

    async def _protos(self, records: list[JobRecord]) -> list[J]:
        # Positions are counted in the database: the queue is every replica's.
        positions = await self.jobs.queue_positions(records)
        return [self.to_proto(r, positions.get(r.id, 0)) for r in records]

    async def _reader(self) -> str:
        """The caller's user id, once its read is within its read rate (issue 16; free without one)."""
        principal = current_principal()
        await check_read(self.jobs.metering, principal)
        return principal.user_id

    async def create(self, request: _CreateRequest, response: Callable[..., R],
                     prepare: Callable[[str], Awaitable[Prepared]]) -> R:
        """``response(job=...)`` for a new job, or for the caller's job of the same request_id
        (returned unchecked: a retried create must not fail on what has changed since).
        ``prepare(owner)`` raises the request's errors; nothing is admitted or queued before it
        returned. The job is admitted (QUOTA_EXCEEDED / RATE_LIMITED, nothing queued) at its
        estimate, and created with it."""
        principal = current_principal()
        owner = principal.user_id
        if len(request.request_id) > MAX_REQUEST_ID:
            raise ServiceError.invalid_argument(
                "INVALID_PARAMETERS", "request_id is too long",
                violations=(FieldViolation("request_id", f"at most {MAX_REQUEST_ID} characters"),),
            )
        existing = await self.jobs.find(owner, self.kind, request.request_id)
        if existing is not None:
            return response(job=self.to_proto(existing))
        job = await prepare(owner)
        record = await self.jobs.create(
            owner, self.kind, job.parameters.SerializeToString(), request_id=request.request_id,
            priority=request.priority, caller=principal,
            estimated_credits=self.jobs.estimate(self.kind, job.model, job.usage),
        )
        return response(job=self.to_proto(record))

    async def get(self, request: _ByIdRequest, response: Callable[..., R]) -> R:
        record = await self.jobs.get(await self._reader(), self.kind, request.id)
        return response(job=(await self._protos([record]))[0])

    async def list(self, request: _ListRequest, response: Callable[..., R]) -> R:
        records, token = await self.jobs.list(
            await self._reader(), self.kind, state=request.state,
            page_size_requested=request.page_size, page_token=request.page_token,
        )
        return response(jobs=await self._protos(records), next_page_token=token)

    async def cancel(self, request: _ByIdRequest, response: Callable[..., R]) -> R:
        record = await self.jobs.cancel(current_principal().user_id, self.kind, request.id)
        return response(job=(await self._protos([record]))[0])

    async def watch(self, request: _WatchRequest, response: Callable[..., R]) -> AsyncIterator[R]:
        """``response(job=...)`` with the current state first, then ``response(event=...)`` per event
        until the job is terminal."""
        owner = await self._reader()
        async for item in self.jobs.watch(owner, self.kind, request.id, after_sequence=request.after_sequence):
            if isinstance(item, JobRecord):
                yield response(job=(await self._protos([item]))[0])
            else:
                yield response(event=item)
