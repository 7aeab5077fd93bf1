"""UsageService (the caller's records, totals, export, price estimates) and AccountInternalService
(RecordJobOutcomes: the job services' meters record what ended, a batch per call)."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import orjson
from google.rpc import code_pb2

from services.account.common import caller, database, from_ts, to_ts
from services.account.leases import LeaseRequest, LeaseStore, Settlement
from services.account.limits import PRUNE_BATCH, Admission, Admissions, Caller, LimitStore
from services.account.models import UsageRecordRow, as_utc, utcnow
from services.account.prices import KIND_NAMES, MAX_CREDITS, PriceList, Usage
from services.account.reasons import Reason
from services.account.store import AccountStore, NewRecord, Period
from services.kit.errors import FieldViolation, ServiceError, Violations
from services.kit.limits import Limits
from services.kit.pagination import PageTokens, page_size
from viarte.account.v1 import account_pb2, account_pb2_grpc
from viarte.type.v1 import job_pb2

__all__ = ["EVENT_TYPES", "AccountInternalServicer", "UsageServicer", "record_to_proto"]

# Terminal job state -> webhook event type.
EVENT_TYPES: dict[int, str] = {
    job_pb2.JOB_STATE_SUCCEEDED: "job.succeeded",
    job_pb2.JOB_STATE_FAILED: "job.failed",
    job_pb2.JOB_STATE_CANCELLED: "job.cancelled",
}
CSV_COLUMNS = (
    "job_id", "kind", "model", "state", "api_key_id", "credits", "width", "height", "frames", "steps",
    "video_seconds", "gpu_seconds", "end_time",
)  # fmt: skip
_STATE_NAMES: dict[int, str] = {job_pb2.JOB_STATE_SUCCEEDED: "succeeded", job_pb2.JOB_STATE_FAILED: "failed",
                job_pb2.JOB_STATE_CANCELLED: "cancelled"}  # fmt: skip
_EXPORT_CHUNK = 64 * 1024


def record_to_proto(row: UsageRecordRow | Any) -> account_pb2.UsageRecord:  # a row, or its columns as attributes
    return account_pb2.UsageRecord(
        job_id=row.job_id, kind=row.kind, model=row.model, user_id=row.user_id, api_key_id=row.api_key_id,  # type: ignore[arg-type]
        state=row.state, credits=row.credits, end_time=to_ts(row.end_time),  # type: ignore[arg-type]
        quantities=Usage(row.width, row.height, row.frames, row.steps, row.video_seconds, row.gpu_seconds).to_proto(),
    )  # fmt: skip


def _row_dict(row: UsageRecordRow) -> dict[str, object]:
    return {
        "job_id": row.job_id, "kind": KIND_NAMES.get(row.kind, str(row.kind)), "model": row.model,
        "state": _STATE_NAMES.get(row.state, str(row.state)), "api_key_id": row.api_key_id, "credits": row.credits,
        "width": row.width, "height": row.height, "frames": row.frames, "steps": row.steps,
        "video_seconds": row.video_seconds, "gpu_seconds": row.gpu_seconds,
        "end_time": as_utc(row.end_time).isoformat().replace("+00:00", "Z"),
    }  # fmt: skip


def _period(user_id: str, start: object, end: object, has_start: bool, has_end: bool, **filters: object) -> Period:
    now = utcnow()
    begin = from_ts(start) if has_start else now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    until = from_ts(end) if has_end else now
    if until < begin:
        raise ServiceError.invalid_argument(
            Reason.INVALID_PERIOD, "end_time is before start_time",
            violations=(FieldViolation("end_time", "must not be before start_time"),),
        )  # fmt: skip
    return Period(user_id, begin, until, **filters)  # type: ignore[arg-type]


def _request_period(request: account_pb2.GetUsageRequest | account_pb2.ListUsageRecordsRequest
                    | account_pb2.ExportUsageRequest, **filters: object) -> Period:  # fmt: skip
    return _period(
        caller(), request.start_time, request.end_time, request.HasField("start_time"),
        request.HasField("end_time"), api_key_id=request.api_key_id, **filters,
    )  # fmt: skip


def _check_usage(usage: Usage, field: str, v: Violations) -> None:
    for name in usage.invalid_fields():
        v.check(False, f"{field}.{name}", "must be a finite number, not negative")


def _check_price(credits: int) -> None:
    if credits > MAX_CREDITS:
        raise ServiceError.invalid_argument(
            Reason.INVALID_ARGUMENT, "the quantities price beyond the credit range",
            violations=(FieldViolation("quantities", "too large to price"),),
        )  # fmt: skip


class UsageServicer(account_pb2_grpc.UsageServiceServicer):  # type: ignore[misc]
    def __init__(self, store: AccountStore, prices: PriceList, page_tokens: PageTokens) -> None:
        self.store = store
        self.prices = prices
        self.page_tokens = page_tokens

    async def GetUsage(
        self, request: account_pb2.GetUsageRequest, context: grpc.aio.ServicerContext
    ) -> account_pb2.GetUsageResponse:
        period = _request_period(request)
        totals = await database(self.store.totals, period)
        response = account_pb2.GetUsageResponse(start_time=to_ts(period.start), end_time=to_ts(period.end))
        for t in totals:
            response.by_kind.add(kind=t.kind, jobs=t.jobs, credits=t.credits)
            response.credits += t.credits
            response.jobs += t.jobs
            response.video_seconds += t.video_seconds
            response.frames += t.frames
            response.gpu_seconds += t.gpu_seconds
        return response

    async def ListUsageRecords(
        self, request: account_pb2.ListUsageRecordsRequest, context: grpc.aio.ServicerContext
    ) -> account_pb2.ListUsageRecordsResponse:
        period = _request_period(request, kind=request.kind)
        filters = {"u": period.user_id, "s": period.start.isoformat(), "e": period.end.isoformat(),
                   "k": period.api_key_id, "kind": period.kind}  # fmt: skip
        # An unset end is "now", which moves: bind the token to the filters the first page resolved.
        cursor = self.page_tokens.decode(request.page_token, {**filters, "e": ""}, {"t": datetime, "id": str, "e": datetime})
        if cursor is not None:
            period = Period(period.user_id, period.start, cursor["e"], period.api_key_id, period.kind)
        limit = page_size(request.page_size)
        after = (cursor["t"], cursor["id"]) if cursor is not None else None
        rows = await database(self.store.list_records, period, after, limit + 1)
        response = account_pb2.ListUsageRecordsResponse(records=[record_to_proto(r) for r in rows[:limit]])
        if len(rows) > limit:
            last = rows[limit - 1]
            response.next_page_token = self.page_tokens.encode(
                {"t": as_utc(last.end_time), "id": last.job_id, "e": period.end}, {**filters, "e": ""}
            )
        return response

    async def ExportUsage(
        self, request: account_pb2.ExportUsageRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[account_pb2.ExportUsageResponse]:
        period = _request_period(request)
        jsonl = request.format == account_pb2.EXPORT_FORMAT_JSONL
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
        if not jsonl:
            writer.writeheader()
        batches = self.store.iter_records(period)
        while True:
            batch = await database(next, batches, None)
            if batch is None:
                break
            for row in batch:
                if jsonl:
                    buffer.write(orjson.dumps(_row_dict(row)).decode("utf-8") + "\n")
                else:
                    writer.writerow(_row_dict(row))
                if buffer.tell() >= _EXPORT_CHUNK:
                    yield account_pb2.ExportUsageResponse(data=buffer.getvalue().encode("utf-8"))
                    buffer.seek(0)
                    buffer.truncate()
        if buffer.tell():
            yield account_pb2.ExportUsageResponse(data=buffer.getvalue().encode("utf-8"))

    async def GetPriceEstimate(
        self, request: account_pb2.GetPriceEstimateRequest, context: grpc.aio.ServicerContext
    ) -> account_pb2.GetPriceEstimateResponse:
        usage = Usage.from_proto(request.quantities)
        v = Violations()
        v.check(request.kind in KIND_NAMES, "kind", "must be a job kind")
        v.check(request.kind != account_pb2.JOB_KIND_GENERATION or bool(request.model), "model", "is required for a generation")
        _check_usage(usage, "quantities", v)
        v.raise_if_any(Reason.INVALID_ARGUMENT, "invalid price estimate request")
        price = self.prices.price(request.kind, request.model, usage)
        _check_price(price.credits)
        return account_pb2.GetPriceEstimateResponse(credits=price.credits, formula=price.formula)


class AccountInternalServicer(account_pb2_grpc.AccountInternalServiceServicer):  # type: ignore[misc]
    def __init__(self, store: AccountStore, prices: PriceList, on_enqueued: Callable[[], None],
                 limits: LimitStore | None = None, *, retention_seconds: float = 60.0) -> None:
        self.limits = limits or LimitStore(store.engine)
        self.admissions = Admissions(self.limits)
        self.leases = LeaseStore(self.limits)
        self.store = store
        self.prices = prices
        self.on_enqueued = on_enqueued
        # Closed admission rows are kept this long after their job's record (``limits.prune_closed``).
        self.retention_seconds = retention_seconds
        self._next_prune = 0.0

    async def RecordJobOutcome(
        self, request: account_pb2.RecordJobOutcomeRequest, context: grpc.aio.ServicerContext
    ) -> account_pb2.RecordJobOutcomeResponse:
        new = self._new_record(request)
        if isinstance(new, ServiceError):
            raise new
        ((stored, created),) = await self._record([new])
        return account_pb2.RecordJobOutcomeResponse(record=record_to_proto(stored), created=created)

    async def RecordJobOutcomes(
        self, request: account_pb2.RecordJobOutcomesRequest, context: grpc.aio.ServicerContext
    ) -> account_pb2.RecordJobOutcomesResponse:
        v = Violations()
        v.check(len(request.outcomes) <= _MAX_OUTCOMES, "outcomes", f"at most {_MAX_OUTCOMES} per call")
        v.raise_if_any(Reason.INVALID_ARGUMENT, "too many outcomes")
        checked = [self._new_record(r) for r in request.outcomes]
        valid = [c for c in checked if isinstance(c, NewRecord)]
        stored = iter(await self._record(valid) if valid else [])
        response = account_pb2.RecordJobOutcomesResponse()
        for c in checked:  # an invalid outcome is refused alone: the others are recorded
            if isinstance(c, ServiceError):
                result = response.results.add(code=c.code.value[0], reason=c.reason, message=c.message)
                for violation in c.field_violations:
                    result.violations.add(field=violation.field, description=violation.description)
            else:
                row, created = next(stored)
                response.results.add(record=record_to_proto(row), created=created)
        return response

    async def _record(self, batch: list[NewRecord]) -> list[tuple[Any, bool]]:
        out = await database(self.store.record_outcomes, batch)
        if any(created for _, created in out):
            self.on_enqueued()
        if time.monotonic() >= self._next_prune:  # closed admissions past the retention (limits.prune_closed)
            self._next_prune = time.monotonic() + min(self.retention_seconds, 10.0)
            with contextlib.suppress(ServiceError):  # the database went away: the next batch prunes
                pruned = await database(self.store.prune_admissions, utcnow() - timedelta(seconds=self.retention_seconds))
                if pruned >= PRUNE_BATCH:  # more are due: the next batch prunes again
                    self._next_prune = 0.0
        return out

    def _new_record(self, request: account_pb2.RecordJobOutcomeRequest) -> NewRecord | ServiceError:
        """The usage record (priced here) and webhook event of one outcome, or why it is refused."""
        usage = Usage.from_proto(request.quantities)
        v = Violations()
        v.check(bool(request.job_id) and len(request.job_id) <= 64, "job_id", "is required (at most 64 characters)")
        v.check(bool(request.user_id) and len(request.user_id) <= 64, "user_id", "is required (at most 64 characters)")
        v.check(request.kind in KIND_NAMES, "kind", "must be a job kind")
        v.check(request.state in EVENT_TYPES, "state", "must be SUCCEEDED, FAILED or CANCELLED")
        v.check(len(request.model) <= 200, "model", "at most 200 characters")
        v.check(len(request.api_key_id) <= 64, "api_key_id", "at most 64 characters")
        _check_usage(usage, "quantities", v)
        try:
            v.raise_if_any(Reason.INVALID_ARGUMENT, "invalid job outcome")
            credits = self.prices.charge(request.kind, request.model, request.state, usage)
            _check_price(credits)
        except ServiceError as refused:
            return refused
        end = from_ts(request.end_time) if request.HasField("end_time") else utcnow()
        values = {
            "job_id": request.job_id, "kind": request.kind, "model": request.model, "user_id": request.user_id,
            "api_key_id": request.api_key_id, "state": request.state, "credits": credits, "width": usage.width,
            "height": usage.height, "frames": usage.frames, "steps": usage.steps, "video_seconds": usage.video_seconds,
            "gpu_seconds": usage.gpu_seconds, "end_time": end, "record_time": utcnow(),
        }  # fmt: skip
        event = {
            "type": EVENT_TYPES[request.state],
            "timestamp": end.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "data": {
                "job_id": request.job_id, "kind": KIND_NAMES[request.kind], "state": _STATE_NAMES[request.state],
                "model": request.model, "result_asset_ids": list(request.result_asset_ids),
                "cost": {"credits": credits}, "error_reason": request.error_reason,
            },
        }  # fmt: skip
        return NewRecord(values, str(event["type"]), json.dumps(event, separators=(",", ":")))

    async def AdmitJob(
        self, request: account_pb2.AdmitJobRequest, context: grpc.aio.ServicerContext
    ) -> account_pb2.AdmitJobResponse:
        await self.admissions.admit(_admission(request))
        return account_pb2.AdmitJobResponse()

    async def AdmitJobs(
        self, request: account_pb2.AdmitJobsRequest, context: grpc.aio.ServicerContext
    ) -> account_pb2.AdmitJobsResponse:
        items = [_admission(r, f"admissions[{i}].") for i, r in enumerate(request.admissions)]
        # Queued together before any decision runs: one batch (one transaction) per user.
        results = await asyncio.gather(*(self.admissions.admit(a) for a in items), return_exceptions=True)
        response = account_pb2.AdmitJobsResponse()
        for result in results:
            if isinstance(result, ServiceError) and result.code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                response.outcomes.add(code=code_pb2.RESOURCE_EXHAUSTED, reason=result.reason, message=result.message,
                                      metadata=dict(result.metadata), retry_after_seconds=result.retry_after or 0.0)
            elif isinstance(result, BaseException):
                raise result  # the database is down: the whole call fails (UNAVAILABLE)
            else:
                response.outcomes.add(code=code_pb2.OK)
        return response

    async def ReleaseJob(
        self, request: account_pb2.ReleaseJobRequest, context: grpc.aio.ServicerContext
    ) -> account_pb2.ReleaseJobResponse:
        await database(self.limits.release, request.job_id)
        return account_pb2.ReleaseJobResponse()

    async def CheckRead(
        self, request: account_pb2.CheckReadRequest, context: grpc.aio.ServicerContext
    ) -> account_pb2.CheckReadResponse:
        async with self.limits.turn(request.user_id):
            await database(self.limits.check_read, _caller(request))
        return account_pb2.CheckReadResponse()


    async def LeaseAdmissions(
        self, request: account_pb2.LeaseAdmissionsRequest, context: grpc.aio.ServicerContext
    ) -> account_pb2.LeaseAdmissionsResponse:
        v = Violations()
        _ids(v, request.lease_id, request.user_id, request.api_key_id)
        v.check(1 <= request.count <= 10_000, "count", "must be within 1..10000")
        v.check(0 <= request.estimated_credits_each <= MAX_CREDITS, "estimated_credits_each", "must not be negative")
        v.check(0 < request.ttl_seconds <= 3600, "ttl_seconds", "must be within (0, 3600]")
        v.check(len(request.holder) <= 120, "holder", "at most 120 characters")
        previous = _settlement(request.previous, v, "previous.") if request.HasField("previous") else None
        v.raise_if_any(Reason.INVALID_ARGUMENT, "invalid lease")
        lease = LeaseRequest(request.lease_id, _caller(request), request.count, request.estimated_credits_each,
                             request.holder, request.ttl_seconds, previous)  # fmt: skip
        async with self.limits.turn(request.user_id):  # one decision per user at a time here (limits.turn)
            grant = await database(self.leases.lease, lease)
        return account_pb2.LeaseAdmissionsResponse(granted=grant.granted, expire_time=to_ts(grant.expire_time))

    async def SettleLease(
        self, request: account_pb2.SettleLeaseRequest, context: grpc.aio.ServicerContext
    ) -> account_pb2.SettleLeaseResponse:
        v = Violations()
        settlement = _settlement(request, v)
        v.raise_if_any(Reason.INVALID_ARGUMENT, "invalid settlement")
        async with self.limits.turn(request.user_id):
            await database(self.leases.settle, settlement)
        return account_pb2.SettleLeaseResponse()

    async def ListExpiredLeases(
        self, request: account_pb2.ListExpiredLeasesRequest, context: grpc.aio.ServicerContext
    ) -> account_pb2.ListExpiredLeasesResponse:
        older = request.older_than_seconds
        v = Violations()  # the range also refuses NaN and inf (timedelta would overflow)
        v.check(0.0 <= older <= _MAX_LEASE_AGE_SECONDS, "older_than_seconds", f"must be within 0..{_MAX_LEASE_AGE_SECONDS:g}")
        v.raise_if_any(Reason.INVALID_ARGUMENT, "invalid older_than_seconds")
        rows = await database(self.leases.expired, request.holder, older, min(max(request.page_size, 1), 500))
        return account_pb2.ListExpiredLeasesResponse(leases=[
            account_pb2.ExpiredLease(lease_id=r[0], user_id=r[1], api_key_id=r[2], create_time=to_ts(r[3]))
            for r in rows])  # fmt: skip


_MAX_LEASE_AGE_SECONDS = 30 * 86400.0
_MAX_OUTCOMES = 500


def _ids(v: Violations, lease_id: str, user_id: str, api_key_id: str, path: str = "") -> None:
    v.check(bool(lease_id) and len(lease_id) <= 64, f"{path}lease_id", "is required (at most 64 characters)")
    v.check(bool(user_id) and len(user_id) <= 64, f"{path}user_id", "is required (at most 64 characters)")
    v.check(len(api_key_id) <= 64, f"{path}api_key_id", "at most 64 characters")


def _settlement(request: account_pb2.SettleLeaseRequest, v: Violations, path: str = "") -> Settlement:
    _ids(v, request.lease_id, request.user_id, request.api_key_id, path)
    for i, job in enumerate(request.jobs):
        v.check(bool(job.job_id) and len(job.job_id) <= 64, f"{path}jobs[{i}].job_id", "is required (at most 64 characters)")
        v.check(0 <= job.estimated_credits <= MAX_CREDITS, f"{path}jobs[{i}].estimated_credits", "must not be negative")
    limited = request.HasField("key_limits") or request.HasField("user_limits")
    return Settlement(request.lease_id, request.user_id, request.api_key_id,
                      [(j.job_id, j.estimated_credits) for j in request.jobs],
                      _caller(request) if limited else None)  # fmt: skip


def _admission(request: account_pb2.AdmitJobRequest, path: str = "") -> Admission:
    v = Violations()
    v.check(bool(request.job_id) and len(request.job_id) <= 64, f"{path}job_id", "is required (at most 64 characters)")
    v.check(bool(request.user_id) and len(request.user_id) <= 64, f"{path}user_id", "is required (at most 64 characters)")
    v.check(len(request.api_key_id) <= 64, f"{path}api_key_id", "at most 64 characters")
    v.check(0 <= request.estimated_credits <= MAX_CREDITS, f"{path}estimated_credits", "must not be negative")
    v.raise_if_any(Reason.INVALID_ARGUMENT, "invalid admission")
    return Admission(request.job_id, _caller(request), request.estimated_credits)


def _caller(request: Any) -> Caller:  # any request with user_id, api_key_id, key_limits, user_limits
    return Caller(request.user_id, request.api_key_id, Limits.from_proto(request.key_limits),
                  Limits.from_proto(request.user_limits))  # fmt: skip
