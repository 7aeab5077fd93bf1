"""Usage records over a real account server: RecordJobOutcome prices each kind with the price
function and is idempotent; GetUsage, ListUsageRecords and ExportUsage reconcile exactly; scopes and
cross-user isolation."""

from __future__ import annotations

import csv
import io
import json
import uuid
from typing import Any

import grpc
import pytest

from services.account.prices import PriceList, Usage
from tests.account.conftest import record
from tests.auth.helpers import expect_failure
from tests.fixtures.account import AccountService
from viarte.account.v1 import account_pb2
from viarte.auth.v1 import auth_pb2, auth_pb2_grpc
from viarte.type.v1 import job_pb2

K = account_pb2
# One job of each kind with the quantities a tiny job measures.
JOBS: list[tuple[int, dict[str, Any]]] = [
    (K.JOB_KIND_GENERATION, {"width": 640, "height": 640, "frames": 16, "steps": 4, "video_seconds": 2.0, "gpu_seconds": 3.5}),
    (K.JOB_KIND_FACE_SWAP, {"frames": 9, "video_seconds": 1.125, "gpu_seconds": 0.5}),
    (K.JOB_KIND_UPSCALE, {"frames": 24, "width": 256, "height": 256, "video_seconds": 1.0}),
    (K.JOB_KIND_RENDER, {"frames": 75, "video_seconds": 3.0, "width": 320, "height": 240}),
]


async def _read_all(account: AccountService, user: Any, fmt: int, **period: Any) -> str:
    stream = account.usage.ExportUsage(account_pb2.ExportUsageRequest(format=fmt, **period), metadata=user.metadata, timeout=30)
    return b"".join([m.data async for m in stream]).decode("utf-8")


async def test_record_job_outcome_prices_every_kind_and_is_idempotent(account: AccountService, user_factory: Any) -> None:
    user = await user_factory()
    prices = PriceList.from_config(account.config)
    for kind, quantities in JOBS:
        answer = await record(account, user.id, kind=kind, **quantities)
        assert answer.created
        expected = prices.price(kind, "tiny-wan", Usage(**quantities)).credits
        assert answer.record.credits == expected > 0
    # The documented rates by hand: 0.05 * 0.4096 MP * 16 * 4 = 1.31 -> 2; 0.5 * 9 = 4.5 -> 5;
    # 0.25 * 24 = 6; 2 * 3 s = 6.
    assert [prices.price(k, "tiny-wan", Usage(**q)).credits for k, q in JOBS] == [2, 5, 6, 6]

    job_id = str(uuid.uuid4())
    first = await record(account, user.id, job_id=job_id, kind=K.JOB_KIND_FACE_SWAP, frames=10)
    again = await record(account, user.id, job_id=job_id, kind=K.JOB_KIND_FACE_SWAP, frames=999)
    assert first.created and not again.created
    assert again.record == first.record and again.record.credits == 5
    listed = await account.usage.ListUsageRecords(account_pb2.ListUsageRecordsRequest(), metadata=user.metadata)
    assert [r.job_id for r in listed.records].count(job_id) == 1

    # The outcome rule: failed is refunded, cancelled pays for the work done.
    failed = await record(account, user.id, kind=K.JOB_KIND_UPSCALE, state=job_pb2.JOB_STATE_FAILED, frames=40)
    cancelled = await record(account, user.id, kind=K.JOB_KIND_UPSCALE, state=job_pb2.JOB_STATE_CANCELLED, frames=10)
    assert failed.record.credits == 0 and failed.record.quantities.frames == 40
    assert cancelled.record.credits == 3  # ceil(0.25 * 10)


async def test_record_job_outcome_is_for_services_only_and_validates(account: AccountService, user_factory: Any) -> None:
    user = await user_factory()
    request = account_pb2.RecordJobOutcomeRequest(job_id="j", kind=K.JOB_KIND_RENDER, user_id=user.id,
                                                  state=job_pb2.JOB_STATE_SUCCEEDED)
    denied = await expect_failure(account.internal.RecordJobOutcome(request, metadata=user.metadata))
    assert denied.code == grpc.StatusCode.PERMISSION_DENIED
    bad = account_pb2.RecordJobOutcomeRequest(job_id="j", kind=K.JOB_KIND_RENDER, user_id=user.id,
                                              state=job_pb2.JOB_STATE_RUNNING,
                                              quantities=account_pb2.Quantities(video_seconds=-1))
    invalid = await expect_failure(account.internal.RecordJobOutcome(bad, metadata=await account.service_metadata()))
    assert invalid.code == grpc.StatusCode.INVALID_ARGUMENT
    assert {f for f, _ in invalid.field_violations} == {"state", "quantities.video_seconds"}


async def test_usage_totals_records_and_exports_reconcile(account: AccountService, user_factory: Any) -> None:
    user, other = await user_factory(), await user_factory()
    for kind, quantities in JOBS * 2:
        await record(account, user.id, kind=kind, api_key_id="key-a" if kind == K.JOB_KIND_RENDER else "", **quantities)
    await record(account, user.id, kind=K.JOB_KIND_UPSCALE, state=job_pb2.JOB_STATE_FAILED, frames=5)
    await record(account, other.id, kind=K.JOB_KIND_RENDER, video_seconds=100.0)

    records: list[account_pb2.UsageRecord] = []
    token = ""
    while True:
        page = await account.usage.ListUsageRecords(
            account_pb2.ListUsageRecordsRequest(page_size=3, page_token=token), metadata=user.metadata
        )
        records += page.records
        token = page.next_page_token
        if not token:
            break
    assert len(records) == 9 == len({r.job_id for r in records})
    assert all(r.user_id == user.id for r in records)
    ends = [r.end_time.ToDatetime() for r in records]
    assert ends == sorted(ends, reverse=True)

    totals = await account.usage.GetUsage(account_pb2.GetUsageRequest(), metadata=user.metadata)
    assert totals.credits == sum(r.credits for r in records)
    assert totals.jobs == 9
    assert totals.frames == sum(r.quantities.frames for r in records)
    assert totals.video_seconds == pytest.approx(sum(r.quantities.video_seconds for r in records))
    assert totals.gpu_seconds == pytest.approx(sum(r.quantities.gpu_seconds for r in records))
    by_kind = {k.kind: (k.jobs, k.credits) for k in totals.by_kind}
    assert by_kind[K.JOB_KIND_UPSCALE] == (3, sum(r.credits for r in records if r.kind == K.JOB_KIND_UPSCALE))
    keyed = await account.usage.GetUsage(account_pb2.GetUsageRequest(api_key_id="key-a"), metadata=user.metadata)
    assert keyed.jobs == 2 and keyed.credits == sum(r.credits for r in records if r.api_key_id == "key-a")

    rows = list(csv.DictReader(io.StringIO(await _read_all(account, user, account_pb2.EXPORT_FORMAT_CSV))))
    assert {r["job_id"] for r in rows} == {r.job_id for r in records}
    assert sum(int(r["credits"]) for r in rows) == totals.credits
    assert sum(int(r["frames"]) for r in rows) == totals.frames
    lines = (await _read_all(account, user, account_pb2.EXPORT_FORMAT_JSONL)).splitlines()
    assert sum(json.loads(line)["credits"] for line in lines) == totals.credits and len(lines) == 9
    assert {json.loads(line)["kind"] for line in lines} == {"generation", "face_swap", "upscale", "render"}

    # A period before the records holds nothing; an inverted period is refused.
    empty = await account.usage.GetUsage(
        account_pb2.GetUsageRequest(start_time={"seconds": 0}, end_time={"seconds": 1000}), metadata=user.metadata
    )
    assert empty.jobs == 0 and empty.credits == 0
    inverted = await expect_failure(account.usage.GetUsage(
        account_pb2.GetUsageRequest(start_time={"seconds": 2000}, end_time={"seconds": 1000}), metadata=user.metadata
    ))
    assert inverted.reason == "INVALID_PERIOD"

    # The other user sees only their own record.
    theirs = await account.usage.GetUsage(account_pb2.GetUsageRequest(), metadata=other.metadata)
    assert theirs.jobs == 1 and theirs.credits == 200


async def test_price_estimate_uses_the_price_function(account: AccountService, user_factory: Any) -> None:
    user = await user_factory()
    prices = PriceList.from_config(account.config)
    for kind, quantities in JOBS:
        answer = await account.usage.GetPriceEstimate(
            account_pb2.GetPriceEstimateRequest(kind=kind, model="tiny-wan", quantities=account_pb2.Quantities(**quantities)),
            metadata=user.metadata,
        )
        assert answer.credits == prices.price(kind, "tiny-wan", Usage(**quantities)).credits
        assert answer.formula.startswith("ceil(")
    bad = await expect_failure(account.usage.GetPriceEstimate(
        account_pb2.GetPriceEstimateRequest(quantities=account_pb2.Quantities(frames=-1)), metadata=user.metadata
    ))
    assert bad.code == grpc.StatusCode.INVALID_ARGUMENT
    assert {f for f, _ in bad.field_violations} == {"kind", "quantities.frames"}
    # Numbers no job measures are bad input, never INTERNAL.
    for quantities in ({"video_seconds": float("nan")}, {"video_seconds": float("inf")}, {"video_seconds": 1e300}):
        refused = await expect_failure(account.usage.GetPriceEstimate(
            account_pb2.GetPriceEstimateRequest(kind=K.JOB_KIND_RENDER, quantities=account_pb2.Quantities(**quantities)),
            metadata=user.metadata,
        ))
        assert refused.code == grpc.StatusCode.INVALID_ARGUMENT, quantities
    huge = account_pb2.Quantities(width=2**31 - 1, height=2**31 - 1, frames=2**62, steps=2**31 - 1)
    refused = await expect_failure(account.usage.GetPriceEstimate(
        account_pb2.GetPriceEstimateRequest(kind=K.JOB_KIND_GENERATION, model="m", quantities=huge), metadata=user.metadata
    ))
    assert refused.code == grpc.StatusCode.INVALID_ARGUMENT and refused.field_violations == (("quantities", "too large to price"),)


async def test_a_key_without_usage_read_is_refused(account: AccountService, user_factory: Any, auth_service: Any) -> None:
    user = await user_factory()
    await record(account, user.id, kind=K.JOB_KIND_RENDER, video_seconds=1.0)
    channel = grpc.aio.insecure_channel(auth_service.address)
    try:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        jobs_only = await stub.CreateApiKey(auth_pb2.CreateApiKeyRequest(name="jobs", scopes=["jobs:read"]), metadata=user.metadata)
        usage = await stub.CreateApiKey(auth_pb2.CreateApiKeyRequest(name="usage", scopes=["usage:read"]), metadata=user.metadata)
    finally:
        await channel.close()
    denied = await expect_failure(
        account.usage.GetUsage(account_pb2.GetUsageRequest(), metadata=(("x-api-key", jobs_only.secret),))
    )
    assert denied.code == grpc.StatusCode.PERMISSION_DENIED
    assert denied.reason == "MISSING_SCOPE" and denied.metadata["scope"] == "usage:read"
    webhooks = await expect_failure(account.webhooks.ListWebhookEndpoints(
        account_pb2.ListWebhookEndpointsRequest(), metadata=(("x-api-key", usage.secret),)
    ))
    assert webhooks.reason == "MISSING_SCOPE" and webhooks.metadata["scope"] == "webhooks:read"
    allowed = await account.usage.GetUsage(account_pb2.GetUsageRequest(), metadata=(("x-api-key", usage.secret),))
    assert allowed.jobs == 1 and allowed.credits == 2
