"""Two account replicas on one PostgreSQL: RecordJobOutcome is idempotent across them, and their
dispatchers claim disjoint deliveries (FOR UPDATE SKIP LOCKED + lease), so every event reaches the
receiver exactly once, whichever replica sent it."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.account.conftest import record
from tests.fixtures.account import WebhookReceiver, running_account, test_account_config
from viarte.account.v1 import account_pb2

pytestmark = pytest.mark.postgres


async def test_two_replicas_deliver_each_event_once(
    tmp_path: Path, auth_service: Any, user_factory: Any, postgres_database: Any
) -> None:
    url = postgres_database()
    user = await user_factory()
    configs = [
        test_account_config(tmp_path / f"r{i}", auth_service, database_url=url, replica_id=f"account-{i}")
        for i in (1, 2)
    ]
    with WebhookReceiver() as receiver:
        async with running_account(configs[0]) as one, running_account(configs[1]) as two:
            await one.webhooks.CreateWebhookEndpoint(
                account_pb2.CreateWebhookEndpointRequest(url=receiver.url), metadata=user.metadata
            )
            jobs = [str(uuid.uuid4()) for _ in range(20)]
            # Every job recorded on both replicas at once: one record and one delivery each.
            answers = await asyncio.gather(*(
                record(replica, user.id, job_id=job, kind=account_pb2.JOB_KIND_RENDER, video_seconds=1.0)
                for job in jobs for replica in (one, two)
            ))  # fmt: skip
            assert sum(a.created for a in answers) == 20
            await receiver.wait(20)
            await asyncio.sleep(1.0)  # a duplicate would arrive meanwhile
            totals = await two.usage.GetUsage(account_pb2.GetUsageRequest(), metadata=user.metadata)
    ids = Counter(r.headers["webhook-id"] for r in receiver.requests)
    assert len(ids) == 20 and set(ids.values()) == {1}
    assert totals.jobs == 20 and totals.credits == 40


async def test_admissions_hold_a_budget_and_a_rate_across_two_replicas(
    tmp_path: Path, auth_service: Any, user_factory: Any, postgres_database: Any
) -> None:
    """Issue 16: 50 concurrent AdmitJob calls spread over two replicas against a user budget for
    10 jobs admit exactly 10 (the user's advisory lock); a key's 5/minute create rate admits 5."""
    import grpc

    from viarte.type.v1 import limits_pb2

    url = postgres_database()
    user = await user_factory()
    configs = [
        test_account_config(tmp_path / f"r{i}", auth_service, database_url=url, replica_id=f"account-{i}")
        for i in (1, 2)
    ]

    async def admit(replica: Any, **limits: Any) -> str:
        request = account_pb2.AdmitJobRequest(
            job_id=str(uuid.uuid4()), user_id=user.id, api_key_id="key-1", estimated_credits=50,
            user_limits=limits_pb2.Limits(**limits.get("user", {})), key_limits=limits_pb2.Limits(**limits.get("key", {})),
        )  # fmt: skip
        try:
            await replica.internal.AdmitJob(request, metadata=await replica.service_metadata(), timeout=60)
        except grpc.aio.AioRpcError as err:
            return err.code().name
        return "OK"

    async with running_account(configs[0]) as one, running_account(configs[1]) as two:
        budget = {"user": {"monthly_credit_budget": 500}}
        answers = await asyncio.gather(*(admit((one, two)[i % 2], **budget) for i in range(50)))
        assert Counter(answers) == {"OK": 10, "RESOURCE_EXHAUSTED": 40}
        rate = {"key": {"creates_per_minute": 5}}
        user = await user_factory()  # a fresh user: no budget, only the key's rate
        answers = await asyncio.gather(*(admit((one, two)[i % 2], **rate) for i in range(20)))
        assert Counter(answers) == {"OK": 5, "RESOURCE_EXHAUSTED": 15}
