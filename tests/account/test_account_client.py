"""services.kit.account_client: the hook the job services call when a job ends, against a real
account server (and against none: UNAVAILABLE ACCOUNT_UNAVAILABLE)."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import pytest

from services.kit.account_client import AccountClient, JobOutcome
from services.kit.config import ServiceConfig
from services.kit.errors import ServiceError
from tests.fixtures.account import AccountService, WebhookReceiver
from tests.fixtures.postgres import free_port
from viarte.account.v1 import account_pb2
from viarte.type.v1 import job_pb2


def _caller(auth: Any, account_address: str) -> ServiceConfig:
    return ServiceConfig(auth_address=auth.address, internal_secret=auth.config.internal_secret,
                         account_address=account_address)  # fmt: skip


async def test_record_outcome_writes_the_record_and_queues_the_webhook(
    account: AccountService, auth_service: Any, user_factory: Any
) -> None:
    user = await user_factory()
    client = AccountClient(_caller(auth_service, account.address))
    try:
        with WebhookReceiver() as receiver:
            await account.webhooks.CreateWebhookEndpoint(
                account_pb2.CreateWebhookEndpointRequest(url=receiver.url), metadata=user.metadata
            )
            outcome = JobOutcome(
                job_id=str(uuid.uuid4()), kind=account_pb2.JOB_KIND_GENERATION, user_id=user.id,
                state=job_pb2.JOB_STATE_CANCELLED, model="tiny-wan", api_key_id="key-1",
                quantities=account_pb2.Quantities(width=320, height=320, frames=8, steps=3),
            )  # fmt: skip
            first = await client.record_outcome(outcome)
            again = await client.record_outcome(outcome)  # a retry after an unknown result is safe
            (request,) = await receiver.wait(1)
        assert first.created and not again.created and again.record == first.record
        assert first.record.credits == 1  # ceil(0.05 * 0.1024 * 8 * 3) = ceil(0.12288)
        assert b'"type":"job.cancelled"' in request.body
        with pytest.raises(ServiceError) as bad:
            await client.record_outcome(JobOutcome(job_id="x", kind=account_pb2.JOB_KIND_RENDER, user_id=user.id,
                                                   state=job_pb2.JOB_STATE_RUNNING))  # fmt: skip
        assert bad.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert [v.field for v in bad.value.field_violations] == ["state"]
    finally:
        await client.close()


async def test_account_down_is_unavailable(auth_service: Any) -> None:
    client = AccountClient(_caller(auth_service, f"127.0.0.1:{free_port()}"), rpc_timeout=2.0)
    try:
        with pytest.raises(ServiceError) as down:
            await client.record_outcome(JobOutcome(job_id="x", kind=account_pb2.JOB_KIND_RENDER, user_id="u",
                                                   state=job_pb2.JOB_STATE_SUCCEEDED))  # fmt: skip
        assert down.value.code == grpc.StatusCode.UNAVAILABLE and down.value.reason == "ACCOUNT_UNAVAILABLE"
    finally:
        await client.close()
