"""RecordJobOutcomes (issue 16): a job service's meter records a batch of ended jobs in one call and
one account transaction; closed admission rows are pruned once no settlement can race them.
Real auth and account servers over loopback gRPC, real webhook receivers."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import grpc
import sqlalchemy as sa

from services.kit.account_client import AccountClient, JobOutcome
from services.kit.config import ServiceConfig
from services.kit.limits import Limits
from tests.fixtures.account import AccountService, WebhookReceiver, running_account, test_account_config
from viarte.account.v1 import account_pb2
from viarte.type.v1 import job_pb2

GEN = account_pb2.JOB_KIND_GENERATION


def _client(auth: Any, account: AccountService) -> AccountClient:
    return AccountClient(ServiceConfig(auth_address=auth.address, internal_secret=auth.config.internal_secret,
                                       account_address=account.address))  # fmt: skip


def _outcome(user_id: str, job_id: str = "", steps: int = 10, state: int = job_pb2.JOB_STATE_SUCCEEDED) -> JobOutcome:
    # 1000 x 1000, 2 frames at 0.05 credits per megapixel-frame-step: steps/10 credits.
    return JobOutcome(job_id=job_id or str(uuid.uuid4()), kind=GEN, user_id=user_id, state=state, model="tiny-wan",
                      quantities=account_pb2.Quantities(width=1000, height=1000, frames=2, steps=steps))  # fmt: skip


def _admissions(account: AccountService) -> dict[str, bool]:
    """job id → open, of every admission row in the account database."""
    engine = sa.create_engine(account.config.database)
    try:
        with engine.connect() as conn:
            return {r[0]: bool(r[1]) for r in conn.execute(sa.text("SELECT job_id, open FROM account_admission"))}
    finally:
        engine.dispose()


async def test_a_batch_records_each_job_once_and_queues_a_webhook_for_each(
    account: AccountService, auth_service: Any, user_factory: Any
) -> None:
    user = await user_factory()
    client = _client(auth_service, account)
    try:
        with WebhookReceiver() as receiver:
            await account.webhooks.CreateWebhookEndpoint(
                account_pb2.CreateWebhookEndpointRequest(url=receiver.url), metadata=user.metadata)
            (earlier,) = await client.record_outcomes([_outcome(user.id, steps=10)])  # recorded before the batch
            old, new = earlier.record.job_id, str(uuid.uuid4())
            bad = _outcome(user.id, state=job_pb2.JOB_STATE_RUNNING)  # not terminal: refused alone
            results = await client.record_outcomes([
                _outcome(user.id, old, steps=50),  # a repeat (a retry after a lost answer): the stored record
                _outcome(user.id, new, steps=20, state=job_pb2.JOB_STATE_CANCELLED),
                bad,
                _outcome(user.id, new, steps=30),  # the same job twice in one batch: the first counts
            ])  # fmt: skip
            await receiver.wait(2)
            await asyncio.sleep(0.5)  # a third (duplicate) delivery would have been sent by now
            bodies = sorted((json.loads(r.body)["data"]["job_id"], json.loads(r.body)["type"]) for r in receiver.requests)
        assert [r.code for r in results] == [0, 0, grpc.StatusCode.INVALID_ARGUMENT.value[0], 0]
        assert [r.created for r in results] == [False, True, False, False]
        assert results[0].record == earlier.record and earlier.record.credits == 1
        assert results[1].record.credits == 2 and results[3].record == results[1].record
        assert [v.field for v in results[2].violations] == ["state"]
        assert bodies == sorted([(old, "job.succeeded"), (new, "job.cancelled")])  # one delivery per job
        page = await account.usage.ListUsageRecords(account_pb2.ListUsageRecordsRequest(), metadata=user.metadata)
        assert sorted((r.job_id, r.credits) for r in page.records) == sorted([(old, 1), (new, 2)])
        closed = _admissions(account)
        assert closed[old] is False and closed[new] is False and bad.job_id not in closed
    finally:
        await client.close()


async def test_closed_admissions_are_pruned_and_a_late_settlement_does_not_reopen_them(
    tmp_path: Path, auth_service: Any, user_factory: Any
) -> None:
    """Rule: a job's closed admission row goes ``admission_retention_seconds`` after its record; a
    settlement naming the job afterwards finds the record and adds no row (the job stays closed)."""
    user = await user_factory()
    config = test_account_config(tmp_path / "account", auth_service, admission_retention_seconds=0.3)
    async with running_account(config) as account:
        client = _client(auth_service, account)
        try:
            lease = account_pb2.LeaseAdmissionsRequest(
                lease_id="lease-" + uuid.uuid4().hex, user_id=user.id, count=3, estimated_credits_each=5,
                ttl_seconds=60, holder="demo", user_limits=Limits(max_concurrent_jobs=3).to_proto())  # fmt: skip
            assert (await client.lease(lease)).granted == 3
            (first,) = await client.record_outcomes([_outcome(user.id)])  # ended before its lease settled
            ended = first.record.job_id
            assert _admissions(account)[ended] is False
            await asyncio.sleep(0.6)  # past the retention (and the prune interval)
            (second,) = await client.record_outcomes([_outcome(user.id)])  # this call prunes
            rows = _admissions(account)
            assert ended not in rows and rows[second.record.job_id] is False and rows[lease.lease_id] is True
            running = str(uuid.uuid4())
            await client.settle_lease(account_pb2.SettleLeaseRequest(
                lease_id=lease.lease_id, user_id=user.id, user_limits=lease.user_limits,
                jobs=[account_pb2.LeasedJob(job_id=ended, estimated_credits=5),
                      account_pb2.LeasedJob(job_id=running, estimated_credits=5)]))  # fmt: skip
            rows = _admissions(account)
            assert ended not in rows and rows[running] is True and lease.lease_id not in rows
            # The cap counts the one running job only: two more fit, a third does not.
            again = account_pb2.LeaseAdmissionsRequest()
            again.CopyFrom(lease)
            again.lease_id = "lease-" + uuid.uuid4().hex
            assert (await client.lease(again)).granted == 2
        finally:
            await client.close()
