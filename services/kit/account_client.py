"""The job services' calls to the account service: recording jobs that ended
(``AccountInternalService.RecordJobOutcomes``, a batch per call) and admissions, with a service token.

Account prices the job (its price functions own the rates), writes the usage record and, in the
same transaction, queues the owner's webhook deliveries; it sends them itself, so a job never waits
on a partner's receiver. The call is idempotent on the job id: a caller that cannot tell whether a
call went through (timeout, account restarting) just calls again, and a job service that persists
"outcome recorded" next to the job can retry from its recovery loop after a crash.

Errors reach callers as ``ServiceError``: account down, slow or refusing the service token →
UNAVAILABLE ``ACCOUNT_UNAVAILABLE`` (retry later); INVALID_ARGUMENT keeps account's field
violations (a caller bug: a state that is not terminal, a missing user).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from services.kit.auth import Principal, ServiceCredentials
from services.kit.channels import insecure_channel
from services.kit.config import ServiceConfig
from services.kit.errors import FieldViolation, ServiceError
from viarte.account.v1 import account_pb2, account_pb2_grpc
from viarte.errors import from_rpc_error

__all__ = ["AccountClient", "JobOutcome"]

_UNAVAILABLE = frozenset({
    grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED,
})


@dataclass(frozen=True)
class JobOutcome:
    """A finished job as account prices it. ``kind`` is an ``account_pb2.JobKind``, ``state`` a
    terminal ``job_pb2.JobState``; ``quantities`` what the job did (for a cancelled job: the work
    done before the cancel; a failed job is refunded whatever it reports)."""

    job_id: str
    kind: int
    user_id: str
    state: int
    model: str = ""
    api_key_id: str = ""
    quantities: account_pb2.Quantities = field(default_factory=account_pb2.Quantities)
    result_asset_ids: Sequence[str] = ()
    error_reason: str = ""
    end_time: datetime | None = None

    def to_request(self) -> account_pb2.RecordJobOutcomeRequest:
        request = account_pb2.RecordJobOutcomeRequest(
            job_id=self.job_id, kind=self.kind, user_id=self.user_id, state=self.state, model=self.model,  # type: ignore[arg-type]
            api_key_id=self.api_key_id, quantities=self.quantities, result_asset_ids=list(self.result_asset_ids),
            error_reason=self.error_reason,
        )  # fmt: skip
        if self.end_time is not None:
            stamp = timestamp_pb2.Timestamp()
            stamp.FromDatetime(self.end_time)
            request.end_time.CopyFrom(stamp)
        return request


class AccountClient:
    """Owns its channel to account (``close()`` releases it)."""

    def __init__(
        self, config: ServiceConfig, *, credentials: ServiceCredentials | None = None, rpc_timeout: float = 10.0
    ) -> None:
        self._channel = insecure_channel(config.account_address)
        self._stub = account_pb2_grpc.AccountInternalServiceStub(self._channel)
        self._credentials = credentials or ServiceCredentials(config)
        self._rpc_timeout = rpc_timeout
        # Admissions waiting for the AdmitJobs call in flight (``admit``).
        self._admissions: list[tuple[account_pb2.AdmitJobRequest, asyncio.Future[None]]] = []
        self._admitting: asyncio.Task[None] | None = None

    async def close(self) -> None:
        await self._channel.close()

    async def record_outcome(self, outcome: JobOutcome) -> account_pb2.RecordJobOutcomeResponse:
        """The stored usage record (``created`` False when the job was recorded before)."""
        (result,) = await self.record_outcomes([outcome])
        if result.code:
            raise ServiceError(_CODES.get(result.code, grpc.StatusCode.UNKNOWN), result.reason, result.message,
                               domain="viarte.account", field_violations=[
                                   FieldViolation(v.field, v.description) for v in result.violations])  # fmt: skip
        return account_pb2.RecordJobOutcomeResponse(record=result.record, created=result.created)

    async def record_outcomes(self, outcomes: Sequence[JobOutcome]) -> list[account_pb2.RecordJobOutcomeResult]:
        """Records a batch in one call and one account transaction (RecordJobOutcomes): one result per
        outcome, in order (code 0: recorded, now or before; else account refused that outcome alone)."""
        request = account_pb2.RecordJobOutcomesRequest(outcomes=[o.to_request() for o in outcomes])
        answer: account_pb2.RecordJobOutcomesResponse = await self._call(self._stub.RecordJobOutcomes, request)
        return list(answer.results)

    async def admit(self, job_id: str, caller: Principal, estimated_credits: int) -> None:
        """Admits a job under the caller's budget and limits (AdmitJob), before it is created:
        RESOURCE_EXHAUSTED QUOTA_EXCEEDED / RATE_LIMITED (with RetryInfo) as account answered."""
        request = account_pb2.AdmitJobRequest(
            job_id=job_id, user_id=caller.user_id, api_key_id=caller.api_key_id, estimated_credits=estimated_credits,
            key_limits=caller.key_limits.to_proto(), user_limits=caller.user_limits.to_proto(),
        )  # fmt: skip
        # One call at a time: the admissions that arrive while it is in flight go together in the
        # next (AdmitJobs), so a burst of creates costs a few round trips and decisions, not one
        # each, and a lone create is sent at once (no waiting to fill a batch).
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._admissions.append((request, future))
        if self._admitting is None:
            self._admitting = asyncio.get_running_loop().create_task(self._send_admissions())
        await future

    async def _send_admissions(self) -> None:
        try:
            while self._admissions:
                batch, self._admissions = self._admissions[:_MAX_ADMISSIONS], self._admissions[_MAX_ADMISSIONS:]
                try:
                    answer = await self._call(
                        self._stub.AdmitJobs, account_pb2.AdmitJobsRequest(admissions=[r for r, _ in batch]))
                except Exception as exc:  # account down: every admission of the call fails alike
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                except BaseException:  # this task was cancelled (the loop is closing)
                    for _, future in batch + self._admissions:
                        future.cancel()
                    raise
                for (_, future), outcome in zip(batch, answer.outcomes, strict=True):
                    if future.done():  # its create went away meanwhile
                        continue
                    if outcome.code == 0:
                        future.set_result(None)
                    else:
                        future.set_exception(ServiceError(
                            _CODES.get(outcome.code, grpc.StatusCode.UNKNOWN), outcome.reason, outcome.message,
                            metadata=dict(outcome.metadata), retry_after=outcome.retry_after_seconds or None,
                            domain="viarte.account",
                        ))  # fmt: skip
        finally:
            self._admitting = None

    async def release(self, job_id: str) -> None:
        """Withdraws an admission whose job was not created (ReleaseJob)."""
        await self._call(self._stub.ReleaseJob, account_pb2.ReleaseJobRequest(job_id=job_id))

    async def lease(self, request: account_pb2.LeaseAdmissionsRequest) -> account_pb2.LeaseAdmissionsResponse:
        """A block of admissions (LeaseAdmissions): QUOTA_EXCEEDED / RATE_LIMITED when none fits."""
        answer: account_pb2.LeaseAdmissionsResponse = await self._call(self._stub.LeaseAdmissions, request)
        return answer

    async def settle_lease(self, request: account_pb2.SettleLeaseRequest) -> None:
        await self._call(self._stub.SettleLease, request)

    async def expired_leases(self, holder: str, older_than_seconds: float,
                             page_size: int = 100) -> list[account_pb2.ExpiredLease]:
        request = account_pb2.ListExpiredLeasesRequest(holder=holder, older_than_seconds=older_than_seconds,
                                                       page_size=page_size)  # fmt: skip
        return list((await self._call(self._stub.ListExpiredLeases, request)).leases)

    async def check_read(self, caller: Principal) -> None:
        """Counts one job read against the caller's read rate (CheckRead): RATE_LIMITED over it."""
        request = account_pb2.CheckReadRequest(
            user_id=caller.user_id, api_key_id=caller.api_key_id, key_limits=caller.key_limits.to_proto(),
            user_limits=caller.user_limits.to_proto(),
        )  # fmt: skip
        await self._call(self._stub.CheckRead, request)

    async def _call(self, method: Any, request: Any) -> Any:
        try:
            return await method(request, metadata=await self._credentials.metadata(), timeout=self._rpc_timeout)
        except grpc.aio.AioRpcError as exc:
            raise _map(exc) from None


_MAX_ADMISSIONS = 256
_CODES = {code.value[0]: code for code in grpc.StatusCode}


def _map(exc: grpc.aio.AioRpcError) -> ServiceError:
    code = exc.code()
    if code in _UNAVAILABLE:
        return ServiceError.unavailable("ACCOUNT_UNAVAILABLE", f"account is unavailable: {code.name}", retry_after=2.0)
    err = from_rpc_error(exc)
    return ServiceError(
        code, err.reason or "ACCOUNT_REJECTED", err.message or f"account refused: {code.name}",
        metadata=err.metadata, retry_after=err.retry_after, domain=err.domain or None,
        field_violations=[FieldViolation(v.field, v.description) for v in err.field_violations],
    )
