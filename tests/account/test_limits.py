"""Budgets and per-key limits (issue 16): set on the key in auth (CreateApiKey) or on the user by an
admin (UpdateUser), carried by the principal (VerifyApiKey), enforced by the job layer at create
and read against account's database (AdmitJob / CheckRead). Real auth, account, job database."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from google.rpc import status_pb2
from typer.testing import CliRunner

from services.kit.account_client import AccountClient
from services.kit.auth import Authenticator, Principal
from services.kit.errors import ServiceError
from services.kit.jobs import JobService
from services.kit.jobs.metering import check_read
from tests.account.conftest import AccountService, record
from tests.account.test_metering import FULL, Counting, _caller, _jobs, _until
from viarte import errors as sdk_errors
from viarte.auth.v1 import auth_pb2, auth_pb2_grpc
from viarte.cli import _hoist_json, app
from viarte.type.v1 import job_pb2, limits_pb2

SCOPES = ["jobs:read", "jobs:write"]
runner = CliRunner()


async def _key_principal(auth: Any, user: Any, limits: limits_pb2.Limits) -> Principal:
    """An API key with ``limits``, created through auth, resolved as every service resolves it."""
    async with grpc.aio.insecure_channel(auth.address) as channel:
        created = await auth_pb2_grpc.AuthServiceStub(channel).CreateApiKey(
            auth_pb2.CreateApiKeyRequest(name="partner", scopes=SCOPES, limits=limits), metadata=user.metadata)
    assert created.api_key.limits == limits  # shown on the key
    authenticator = Authenticator(_caller(auth, ""), follow_revocations=False)
    principal = await authenticator.authenticate({"x-api-key": created.secret})
    assert principal is not None and principal.api_key_id == created.api_key.id
    return principal


@pytest_asyncio.fixture(loop_scope="session")
async def jobs(tmp_path: Path, auth_service: Any, account: AccountService) -> AsyncIterator[JobService]:
    """A job service (its own SQLite) that admits through the test's account server."""
    client = AccountClient(_caller(auth_service, account.address))
    service = _jobs(tmp_path, Counting(client))
    await service.start()
    try:
        yield service
    finally:
        await service.stop(0.5)
        await client.close()


def _sdk(err: ServiceError) -> sdk_errors.ViarteError:
    """The exception the SDK raises for this status (as it arrives over gRPC)."""
    trailer = dict(err.to_status("viarte.account").trailing_metadata)["grpc-status-details-bin"]
    return sdk_errors.from_status(err.code, err.message, status_pb2.Status.FromString(trailer))


async def _refused(coro: Any) -> ServiceError:
    with pytest.raises(ServiceError) as refused:
        await coro
    return refused.value


async def test_a_key_with_2_creates_a_minute_is_rate_limited_on_the_third(
    jobs: JobService, auth_service: Any, user_factory: Any
) -> None:
    user = await user_factory()
    key = await _key_principal(auth_service, user, limits_pb2.Limits(creates_per_minute=2, reads_per_minute=2))
    for _ in range(2):
        await jobs.create(user.id, "demo", b"ok", caller=key, estimated_credits=1)
    err = await _refused(jobs.create(user.id, "demo", b"ok", caller=key, estimated_credits=1))
    assert err.code == grpc.StatusCode.RESOURCE_EXHAUSTED and err.reason == "RATE_LIMITED"
    assert err.retry_after is not None and 20 < err.retry_after <= 30  # one token per 30 s
    sdk = _sdk(err)
    assert isinstance(sdk, sdk_errors.RateLimited) and sdk.retry_after == pytest.approx(err.retry_after, abs=1)
    assert len((await jobs.list(user.id, "demo"))[0]) == 2  # nothing queued
    # The signed-in user (no limits) is not held back by the key's limit.
    await jobs.create(user.id, "demo", b"ok", caller=None)
    # Reads: two a minute for this key.
    await check_read(jobs.metering, key)
    await check_read(jobs.metering, key)
    read = await _refused(check_read(jobs.metering, key))
    assert read.reason == "RATE_LIMITED" and read.retry_after is not None and read.retry_after > 0


async def test_a_burst_decided_together_still_admits_exactly_the_rate(
    jobs: JobService, auth_service: Any, user_factory: Any
) -> None:
    """20 concurrent creates of one key reach account together and are decided in batches (one
    transaction each): exactly the 3 a minute pass, and the refused take no token."""
    user = await user_factory()
    key = await _key_principal(auth_service, user, limits_pb2.Limits(creates_per_minute=3, max_concurrent_jobs=50))
    answers = await asyncio.gather(*(jobs.create(user.id, "demo", b"wait", caller=key, estimated_credits=1)
                                     for _ in range(20)), return_exceptions=True)  # fmt: skip
    refused = [a for a in answers if isinstance(a, BaseException)]
    assert len(answers) - len(refused) == 3
    assert {getattr(e, "reason", repr(e)) for e in refused} == {"RATE_LIMITED"}
    assert len((await jobs.list(user.id, "demo", page_size_requested=100))[0]) == 3


async def test_a_spent_budget_is_quota_exceeded_and_queues_nothing(
    jobs: JobService, account: AccountService, auth_service: Any, user_factory: Any
) -> None:
    user = await user_factory()
    key = await _key_principal(auth_service, user, limits_pb2.Limits(monthly_credit_budget=100))
    # 60 credits charged this month to this key (2 MP x 10 frames x 60 steps x 0.05).
    spent = await record(account, user.id, api_key_id=key.api_key_id, width=2000, height=1000, frames=10, steps=60)
    assert spent.record.credits == 60
    estimate = jobs.estimate("demo", "tiny-wan", FULL)  # 50: 60 + 50 > 100
    err = await _refused(jobs.create(user.id, "demo", b"ok", caller=key, estimated_credits=estimate))
    assert err.code == grpc.StatusCode.RESOURCE_EXHAUSTED and err.reason == "QUOTA_EXCEEDED"
    assert err.metadata["used"] == "60" and err.metadata["budget"] == "100"
    assert isinstance(_sdk(err), sdk_errors.QuotaExceeded)
    assert (await jobs.list(user.id, "demo"))[0] == []  # no job row
    # 40 credits are left: a smaller job fits.
    await jobs.create(user.id, "demo", b"ok", caller=key, estimated_credits=40)


async def test_50_concurrent_creates_against_a_user_budget_for_10_queue_exactly_10(
    jobs: JobService, account: AccountService, auth_service: Any, user_factory: Any
) -> None:
    user = await user_factory()
    admin = await user_factory(admin=True)
    async with grpc.aio.insecure_channel(auth_service.address) as channel:  # the admin sets the user's limits
        updated = await auth_pb2_grpc.AuthServiceStub(channel).UpdateUser(
            auth_pb2.UpdateUserRequest(id=user.id, limits=limits_pb2.Limits(monthly_credit_budget=500)),
            metadata=admin.metadata)  # fmt: skip
    assert updated.user.limits.monthly_credit_budget == 500
    key = await _key_principal(auth_service, user, limits_pb2.Limits())  # no limits of its own
    assert key.user_limits.monthly_credit_budget == 500
    answers = await asyncio.gather(
        *(jobs.create(user.id, "demo", b"wait", caller=key, estimated_credits=50) for _ in range(50)),
        return_exceptions=True,
    )
    created = [a for a in answers if not isinstance(a, BaseException)]
    refused = [a for a in answers if isinstance(a, BaseException)]
    reasons = sorted({f"{type(e).__name__}:{getattr(e, 'reason', '')}:{e}" for e in refused})
    assert len(created) == 10, reasons  # a refusal other than the budget's says why here
    assert {(type(e), getattr(e, "reason", "")) for e in refused} == {(ServiceError, "QUOTA_EXCEEDED")}, reasons
    assert len((await jobs.list(user.id, "demo", page_size_requested=100))[0]) == 10
    # A cancelled job pays only the work done (here: none while queued, or 2 steps): once
    # account recorded it, its estimate no longer holds budget and another job fits.
    queued = [r for r in created if (await jobs.get(user.id, "demo", r.id)).state == job_pb2.JOB_STATE_QUEUED]
    await jobs.cancel(user.id, "demo", queued[0].id)

    async def charged() -> bool:
        return (await jobs.get(user.id, "demo", queued[0].id)).credits is not None

    await _until(charged)
    await jobs.create(user.id, "demo", b"wait", caller=key, estimated_credits=50)


async def test_concurrent_jobs_cap_frees_when_a_job_ends(
    jobs: JobService, auth_service: Any, user_factory: Any
) -> None:
    user = await user_factory()
    key = await _key_principal(auth_service, user, limits_pb2.Limits(max_concurrent_jobs=2))
    first = await jobs.create(user.id, "demo", b"wait", caller=key)
    await jobs.create(user.id, "demo", b"wait", caller=key)
    err = await _refused(jobs.create(user.id, "demo", b"wait", caller=key))
    assert err.reason == "RATE_LIMITED" and err.retry_after is not None
    assert isinstance(_sdk(err), sdk_errors.RateLimited)
    await jobs.cancel(user.id, "demo", first.id)

    async def admitted_again() -> bool:
        try:
            await jobs.create(user.id, "demo", b"wait", caller=key)
        except ServiceError as again:
            assert again.reason == "RATE_LIMITED"
            return False
        return True

    await _until(admitted_again)  # once the cancel is recorded with account


async def test_limits_are_validated_in_auth(auth_service: Any, user_factory: Any) -> None:
    user = await user_factory()
    async with grpc.aio.insecure_channel(auth_service.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await auth_pb2_grpc.AuthServiceStub(channel).CreateApiKey(
                auth_pb2.CreateApiKeyRequest(name="k", scopes=SCOPES, limits=limits_pb2.Limits(creates_per_minute=-1)),
                metadata=user.metadata)  # fmt: skip
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "limits.creates_per_minute" in str(sdk_errors.from_rpc_error(bad.value).field_violations)


async def test_cli_sets_key_limits_and_an_admin_sets_user_limits(
    auth_service: Any, user_factory: Any, tmp_path: Path
) -> None:
    user = await user_factory()
    admin = await user_factory(admin=True)

    async def cli(who: Any, *args: str) -> Any:
        base = ["--state-dir", str(tmp_path / "state"), "--config", str(tmp_path / f"{who.id}.json"),
                "--auth-address", auth_service.address, "--json"]  # fmt: skip
        result = await asyncio.to_thread(runner.invoke, app, _hoist_json([*base, *args]))
        assert result.exit_code == 0, f"{args}: {result.output}\n{result.exception!r}"
        return json.loads(result.stdout)

    await cli(user, "login", "--email", user.email, "--password", user.password)
    created = await cli(user, "api-keys", "create", "partner", "-s", "jobs:write", "--monthly-budget", "100",
                        "--creates-per-minute", "2", "--max-concurrent-jobs", "3")  # fmt: skip
    assert created["api_key"]["limits"] == {"monthly_credit_budget": "100", "creates_per_minute": 2,
                                            "max_concurrent_jobs": 3}  # fmt: skip
    await cli(admin, "login", "--email", admin.email, "--password", admin.password)
    updated = await cli(admin, "users", "update", user.id, "--limits", "500,60,600,4")
    assert updated["limits"] == {"monthly_credit_budget": "500", "creates_per_minute": 60, "reads_per_minute": 600,
                                 "max_concurrent_jobs": 4}  # fmt: skip
