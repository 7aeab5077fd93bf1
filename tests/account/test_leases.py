"""Admission leases (issue 16): job service replicas admit limited creates from blocks leased from
account (``services/kit/jobs/leases.py``, ``services/account/leases.py``). Limits hold exactly
across replicas; a block left by a replica that went away is settled from the job database, so the
admissions of jobs never created are released after the bound and those of created jobs kept.
Real auth, account servers and job services (SQLite job databases; PostgreSQL where marked)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from services.kit.account_client import AccountClient
from services.kit.auth import Principal, PrincipalKind
from services.kit.config import ServiceConfig
from services.kit.db import make_engine, upgrade
from services.kit.errors import ServiceError
from services.kit.jobs import HandlerExecutor, JobConfig, JobService
from services.kit.jobs.leases import Leases
from services.kit.jobs.metering import Metering
from services.kit.limits import Limits
from services.kit.prices import PriceList
from tests.account.test_metering import GEN, MIGRATIONS, _caller, _describe, _steps, _until
from tests.fixtures.account import AccountService, running_account, test_account_config
from viarte.account.v1 import account_pb2


@asynccontextmanager
async def _replica(folder: Path, auth: Any, account_address: str, ttl: float = 30.0) -> AsyncIterator[JobService]:
    """A job service replica (its own SQLite job database) metering through ``account_address``."""
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    client = AccountClient(_caller(auth, account_address))
    engine = make_engine(f"sqlite:///{folder / 'jobs.db'}")
    upgrade(engine, MIGRATIONS)
    metering = Metering(client, _describe, PriceList.from_config(ServiceConfig()), {"demo": GEN},
                        retry_seconds=0.2, poll_seconds=0.2, lease_ttl_seconds=ttl)  # fmt: skip
    jobs = JobService(engine, HandlerExecutor({"demo": _steps}, slots=2), JobConfig(replica_id=folder.name),
                      metering=metering)  # fmt: skip
    await jobs.start()
    try:
        yield jobs
    finally:
        await jobs.stop(0.5)
        await client.close()
        engine.dispose()


def _principal(user_id: str, key: Limits = Limits(), user: Limits = Limits()) -> Principal:
    """The user's API key (one per user) carrying ``key`` and ``user`` limits."""
    return Principal(subject=user_id, kind=PrincipalKind.API_KEY, api_key_id=f"key-{user_id[:8]}", key_limits=key,
                     user_limits=user)  # fmt: skip


async def _burst(replicas: list[JobService], user_id: str, caller: Principal, n: int) -> Counter[str]:
    """``n`` concurrent creates spread over ``replicas``: how many were created, refused (by reason)."""
    answers = await asyncio.gather(*(
        replicas[i % len(replicas)].create(user_id, "demo", b"wait", caller=caller, estimated_credits=50)
        for i in range(n)), return_exceptions=True)  # fmt: skip
    out: Counter[str] = Counter()
    for a in answers:
        if isinstance(a, ServiceError):
            out[a.reason] += 1
        elif isinstance(a, BaseException):
            raise a
        else:
            out["created"] += 1
    return out


@pytest.mark.postgres
async def test_two_replicas_leasing_blocks_admit_exactly_the_limits(
    tmp_path: Path, auth_service: Any, user_factory: Any, postgres_database: Any
) -> None:
    """Two job service replicas, each through its own account replica (one PostgreSQL): 60
    concurrent creates against a budget for 10 create exactly 10, a 5/minute key exactly 5, a cap of
    4 concurrent jobs exactly 4; once idle every block is settled (no lease row left)."""
    url = postgres_database()
    configs = [test_account_config(tmp_path / f"a{i}", auth_service, database_url=url, replica_id=f"account-{i}")
               for i in (1, 2)]  # fmt: skip
    async with AsyncExitStack() as stack:
        accounts = [await stack.enter_async_context(running_account(c)) for c in configs]
        replicas = [await stack.enter_async_context(_replica(tmp_path / f"r{i}", auth_service, a.address))
                    for i, a in enumerate(accounts)]  # fmt: skip
        user = await user_factory()
        budget = _principal(user.id, user=Limits(monthly_credit_budget=500))
        assert await _burst(replicas, user.id, budget, 60) == {"created": 10, "QUOTA_EXCEEDED": 50}
        rate = _principal((await user_factory()).id, key=Limits(creates_per_minute=5))
        assert await _burst(replicas, rate.user_id, rate, 20) == {"created": 5, "RATE_LIMITED": 15}
        cap = _principal((await user_factory()).id, key=Limits(max_concurrent_jobs=4))
        assert await _burst(replicas, cap.user_id, cap, 30) == {"created": 4, "RATE_LIMITED": 26}
        engine = sa.create_engine(url)
        try:
            def leases() -> int:
                with engine.connect() as conn:
                    return int(conn.execute(sa.text(
                        "SELECT count(*) FROM account_admission WHERE expire_time IS NOT NULL")).scalar_one())

            await _until(lambda: asyncio.to_thread(lambda: leases() == 0))  # idle blocks settle (1 s)
            with engine.connect() as conn:
                open_jobs = conn.execute(sa.text(
                    "SELECT user_id, count(*) FROM account_admission WHERE open GROUP BY user_id")).all()
        finally:
            engine.dispose()
        assert dict(open_jobs) == {budget.user_id: 10, rate.user_id: 5, cap.user_id: 4}  # one row per created job


async def test_a_lease_left_by_a_replica_that_went_away_is_settled_from_the_job_database(
    tmp_path: Path, auth_service: Any, account: AccountService, user_factory: Any
) -> None:
    user = await user_factory()
    budget = Limits(monthly_credit_budget=300)  # 6 jobs of 50
    caller = _principal(user.id, user=budget)
    async with _replica(tmp_path / "live", auth_service, account.address, ttl=1.0) as jobs:
        leases, client = jobs.metering.leases, jobs.metering.sink  # type: ignore[union-attr]
        # A replica leased 5 admissions (250 credits), created 2 jobs (in the shared job database)
        # and went away: 3 admissions were never used, and nothing settles its block.
        grant = await client.lease(account_pb2.LeaseAdmissionsRequest(
            lease_id="lease:gone", user_id=user.id, api_key_id=caller.api_key_id, user_limits=budget.to_proto(), count=5,
            estimated_credits_each=50, holder=leases.holder, ttl_seconds=1.0))  # fmt: skip
        assert grant.granted == 5
        unlimited = _principal(user.id)  # inserted like the gone replica's admitted creates
        gone = [await jobs.create(user.id, "demo", b"wait", caller=unlimited, estimated_credits=50) for _ in range(2)]
        assert await _burst([jobs], user.id, caller, 2) == {"created": 1, "QUOTA_EXCEEDED": 1}  # 250 + 50 of 300
        assert await leases.reconcile(jobs._store) == 0  # not before a whole ttl past its expiry
        await _until(lambda: client.expired_leases(leases.holder, 1.0), limit_s=120)
        # Two replicas of the job service reconcile at once: one settlement, whoever ran it.
        twin = Leases(client, leases.holder, ttl_seconds=1.0)
        assert sum(await asyncio.gather(leases.reconcile(jobs._store), twin.reconcile(jobs._store))) >= 1
        assert await client.expired_leases(leases.holder, 0.0) == []
        # The 2 created jobs keep their admissions (100), the 3 never created are released:
        # 300 - 100 - 50 (the live replica's job) leaves exactly 3 more.
        assert await _burst([jobs], user.id, caller, 6) == {"created": 3, "QUOTA_EXCEEDED": 3}
        assert len(gone) == 2


async def test_an_admission_whose_job_was_not_created_is_not_kept(
    tmp_path: Path, auth_service: Any, account: AccountService, user_factory: Any
) -> None:
    """Concurrent twins of one request_id: one job is created; the other's admission is not kept
    (it returns to the block, and a block's settlement keeps only the jobs created under it), as
    for any create that fails or is cancelled after its admission. A regression guard: the old
    per-job path (ReleaseJob) passed it too."""
    user = await user_factory()
    caller = _principal(user.id, user=Limits(monthly_credit_budget=100))  # 2 jobs of 50
    async with _replica(tmp_path / "r", auth_service, account.address) as jobs:
        twins = await asyncio.gather(*(jobs.create(user.id, "demo", b"wait", request_id="same", caller=caller,
                                                   estimated_credits=50) for _ in range(2)))  # fmt: skip
        assert twins[0].id == twins[1].id
        assert await _burst([jobs], user.id, caller, 3) == {"created": 1, "QUOTA_EXCEEDED": 2}
