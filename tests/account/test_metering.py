"""Metering (issue 16, second increment): every job the shared job layer ends reaches a real
account server through ``services.kit.jobs.metering``; "outcome not yet recorded" survives account
being down and the job service restarting; the cost shows on the job's status."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from services.kit.account_client import AccountClient, JobOutcome
from services.kit.auth import Principal, PrincipalKind
from services.kit.config import ServiceConfig
from services.kit.db import make_engine, upgrade
from services.kit.jobs import HandlerExecutor, JobConfig, JobRecord, JobService, RunningJob
from services.kit.jobs.metering import Metering, outcome_of
from services.kit.prices import PriceList, Usage
from tests.account.conftest import AccountService
from tests.fixtures.account import running_account, test_account_config
from tests.fixtures.postgres import free_port
from viarte.account.v1 import account_pb2
from viarte.type.v1 import job_pb2

MIGRATIONS = Path(__file__).parents[1] / "kit" / "jobs" / "migrations"
GEN = account_pb2.JOB_KIND_GENERATION
# 2000 x 1000, 10 frames, 50 steps at 0.05 credits per megapixel-frame-step: 50 credits.
FULL = Usage(width=2000, height=1000, frames=10, steps=50)


def _describe(record: JobRecord) -> JobOutcome:
    """Like inference's: the requested size, and for a cancelled job the steps done before the cancel."""
    steps = FULL.steps if record.state == job_pb2.JOB_STATE_SUCCEEDED else record.progress.step
    usage = Usage(width=FULL.width, height=FULL.height, frames=FULL.frames, steps=steps)
    return outcome_of(record, GEN, model="tiny-wan", quantities=usage, result_asset_ids=["asset-" + record.id[:8]])


class Counting:
    """The real client, counting the calls that went through (a job is recorded by one replica)."""

    def __init__(self, client: AccountClient) -> None:
        self.client = client
        self.recorded: list[str] = []

    async def record_outcomes(self, outcomes: list[JobOutcome]) -> list[account_pb2.RecordJobOutcomeResult]:
        answer = await self.client.record_outcomes(outcomes)
        self.recorded.extend(o.job_id for o in outcomes)
        return answer

    def __getattr__(self, name: str) -> Any:  # admit, release, check_read: the client's own
        return getattr(self.client, name)


def _caller(auth: Any, account_address: str) -> ServiceConfig:
    return ServiceConfig(auth_address=auth.address, internal_secret=auth.config.internal_secret,
                         account_address=account_address)  # fmt: skip


async def _steps(job: RunningJob) -> bytes:
    """Two denoising steps, then waits for a cancel (or finishes when asked to via parameters)."""
    for i in (1, 2):
        job.emit(job_pb2.Progress(stage=job_pb2.STAGE_DENOISING, step=i, total_steps=FULL.steps))
    await job.flush()
    if job.parameters == b"fail":
        raise RuntimeError("boom")
    if job.parameters == b"wait":
        await job.wait_cancelled()
        job.raise_if_cancelled()
    return b"done"


def _jobs(tmp_path: Path, sink: Any, *, replica: str = "r1", retry: float = 0.2) -> JobService:
    engine = make_engine(f"sqlite:///{tmp_path / 'jobs.db'}")
    upgrade(engine, MIGRATIONS)
    metering = Metering(sink, _describe, PriceList.from_config(ServiceConfig()), {"demo": GEN},
                        retry_seconds=retry, poll_seconds=retry)
    return JobService(engine, HandlerExecutor({"demo": _steps}, slots=2), JobConfig(replica_id=replica),
                      metering=metering)


async def _until(what: Callable[[], Any], limit_s: float = 60.0) -> Any:
    deadline = asyncio.get_running_loop().time() + limit_s
    while True:
        got = await what()
        if got:
            return got
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def _final(jobs: JobService, owner: str, job_id: str) -> JobRecord:
    async def charged() -> JobRecord | None:
        rec = await jobs.get(owner, "demo", job_id)
        return rec if rec.credits is not None else None

    return await _until(charged)  # type: ignore[no-any-return]


async def _records(account: AccountService, user: Any) -> dict[str, account_pb2.UsageRecord]:
    page = await account.usage.ListUsageRecords(account_pb2.ListUsageRecordsRequest(page_size=100),
                                                metadata=user.metadata)
    return {r.job_id: r for r in page.records}


async def test_every_ending_is_recorded_once_with_its_charge_and_shown_as_cost(
    tmp_path: Path, account: AccountService, auth_service: Any, user_factory: Any
) -> None:
    user = await user_factory()
    client = AccountClient(_caller(auth_service, account.address))
    sink = Counting(client)
    jobs = _jobs(tmp_path, sink)
    await jobs.start()
    try:
        estimate = jobs.estimate("demo", "tiny-wan", FULL)
        assert estimate == 50
        key = Principal(subject=user.id, kind=PrincipalKind.API_KEY, api_key_id="key-1")  # no limits: no admission
        ok = await jobs.create(user.id, "demo", b"ok", caller=key, estimated_credits=estimate)
        assert ok.status().cost == job_pb2.JobCost(estimated_credits=50, credits=0, final=False)
        failed = await jobs.create(user.id, "demo", b"fail", estimated_credits=estimate)
        waiting = await jobs.create(user.id, "demo", b"wait", estimated_credits=estimate)
        blocker = await jobs.create(user.id, "demo", b"wait", estimated_credits=estimate)

        async def two_steps() -> bool:
            return all([(await jobs.get(user.id, "demo", j.id)).progress.step == 2 for j in (waiting, blocker)])

        await _until(two_steps)  # both slots busy
        queued = await jobs.create(user.id, "demo", b"wait", estimated_credits=estimate)  # no slot: stays queued
        await jobs.cancel(user.id, "demo", queued.id)
        await jobs.cancel(user.id, "demo", waiting.id)
        await jobs.cancel(user.id, "demo", blocker.id)

        done = {j.id: await _final(jobs, user.id, j.id) for j in (ok, failed, waiting, queued, blocker)}
        # SUCCEEDED pays its price, a cancel the 2 steps done (2), a failure and a queued cancel 0.
        assert [done[j.id].credits for j in (ok, failed, waiting, queued)] == [50, 0, 2, 0]
        cancelled = done[waiting.id]
        # It keeps the counters it stopped at (not the stage: it is not at work any more).
        assert cancelled.progress.step == 2 and cancelled.progress.stage == job_pb2.STAGE_UNSPECIFIED
        assert done[ok.id].status().cost == job_pb2.JobCost(estimated_credits=50, credits=50, final=True)
        assert not any(r.meter_pending for r in done.values())
        records = await _records(account, user)
        assert {k: r.credits for k, r in records.items()} == {ok.id: 50, failed.id: 0, waiting.id: 2, queued.id: 0,
                                                               blocker.id: 2}
        assert records[ok.id].api_key_id == "key-1" and records[ok.id].state == job_pb2.JOB_STATE_SUCCEEDED
        assert sorted(sink.recorded) == sorted(done)  # once each
    finally:
        await jobs.stop(0.5)
        await client.close()


async def test_outcomes_wait_out_account_down_and_a_restart(
    tmp_path: Path, auth_service: Any, user_factory: Any
) -> None:
    user = await user_factory()
    port = free_port()
    client = AccountClient(_caller(auth_service, f"127.0.0.1:{port}"), rpc_timeout=2.0)
    jobs = _jobs(tmp_path, client)
    await jobs.start()
    try:
        job = await jobs.create(user.id, "demo", b"ok")

        async def ended() -> JobRecord | None:
            rec = await jobs.get(user.id, "demo", job.id)
            return rec if rec.terminal else None

        rec = await _until(ended)
        assert rec.state == job_pb2.JOB_STATE_SUCCEEDED  # the job never waited for account
        await asyncio.sleep(0.5)  # a few failed tries
        rec = await jobs.get(user.id, "demo", job.id)
        assert rec.meter_pending and rec.credits is None
    finally:
        await jobs.stop(0.5)
        await client.close()
    # Account comes up; a new life of the job service (another replica id) records what was pending.
    config = test_account_config(tmp_path / "account", auth_service, port=port)
    async with running_account(config) as account:
        client = AccountClient(_caller(auth_service, account.address))
        again = _jobs(tmp_path, client, replica="r2")
        await again.start()
        try:
            final = await _final(again, user.id, job.id)
            assert final.credits == 50 and not final.meter_pending
            assert (await _records(account, user))[job.id].credits == 50
        finally:
            await again.stop(0.5)
            await client.close()
