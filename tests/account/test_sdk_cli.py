"""The SDK's usage and webhook resources, ``viarte.webhooks.verify`` and the ``viarte usage`` /
``viarte webhooks`` commands against a real account server (an API key holding the scopes)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path
from typing import Any

import grpc
import pytest
from typer.testing import CliRunner

from tests.account.conftest import record
from tests.fixtures.account import AccountService, WebhookReceiver
from viarte import AsyncClient, webhooks
from viarte.account.v1 import account_pb2
from viarte.auth.v1 import auth_pb2, auth_pb2_grpc
from viarte.cli import _hoist_json, app
from viarte.errors import MissingScope

runner = CliRunner()
SCOPES = ["usage:read", "webhooks:read", "webhooks:write"]


async def _api_key(auth: Any, user: Any, scopes: list[str]) -> str:
    channel = grpc.aio.insecure_channel(auth.address)
    try:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        created = await stub.CreateApiKey(auth_pb2.CreateApiKeyRequest(name="partner", scopes=scopes), metadata=user.metadata)
        return str(created.secret)
    finally:
        await channel.close()


async def test_sdk_usage_webhooks_and_verify(account: AccountService, auth_service: Any, user_factory: Any) -> None:
    user = await user_factory()
    key = await _api_key(auth_service, user, SCOPES)
    endpoints = {"auth": auth_service.address, "account": account.address}
    async with AsyncClient(endpoints, api_key=key) as client:
        with WebhookReceiver() as receiver:
            endpoint = await client.webhooks.create(receiver.url, ["job.succeeded"])
            job = await record(account, user.id, kind=account_pb2.JOB_KIND_RENDER, video_seconds=1.5)
            (request,) = await receiver.wait(1)
        event = webhooks.verify(request.body, request.headers, endpoint.secret)
        assert event["data"]["job_id"] == job.record.job_id and event["data"]["cost"]["credits"] == 3
        with pytest.raises(webhooks.InvalidWebhook):
            webhooks.verify(request.body.replace(b"render", b"upscale"), request.headers, endpoint.secret)

        totals = await client.usage.get()
        assert (totals.jobs, totals.credits) == (1, 3)
        page = await client.usage.records(kind="render")
        assert [r.job_id for r in page.items] == [job.record.job_id]
        exported = b"".join([chunk async for chunk in client.usage.export(format="csv")]).decode()
        assert [r["job_id"] for r in csv.DictReader(io.StringIO(exported))] == [job.record.job_id]
        estimate = await client.usage.estimate("generation", model="m", width=512, height=512, frames=16, steps=4)
        assert estimate.credits == 1  # ceil(0.05 * 0.262144 * 16 * 4) = ceil(0.8388608)

        (listed,) = (await client.webhooks.list()).items
        assert listed.id == endpoint.id and not listed.secret
        for _ in range(50):
            (delivery,) = (await client.webhooks.deliveries(endpoint.id)).items
            if delivery.state == account_pb2.DELIVERY_STATE_DELIVERED:
                break
            await asyncio.sleep(0.1)
        assert delivery.state == account_pb2.DELIVERY_STATE_DELIVERED
        rotated = await client.webhooks.rotate(endpoint.id)
        assert rotated.endpoint.secret.startswith("whsec_")
        enabled = await client.webhooks.enable(endpoint.id)  # an enabled endpoint: unchanged
        assert enabled.id == endpoint.id and not enabled.disabled and not enabled.secret
        await client.webhooks.delete(endpoint.id)
        assert (await client.webhooks.list()).items == []

    narrow = await _api_key(auth_service, user, ["webhooks:read"])
    async with AsyncClient(endpoints, api_key=narrow) as client:
        with pytest.raises(MissingScope) as denied:
            await client.usage.get()
        assert denied.value.scope == "usage:read"


async def test_cli_usage_and_webhooks_commands(
    account: AccountService, auth_service: Any, user_factory: Any, tmp_path: Path
) -> None:
    user = await user_factory()
    key = await _api_key(auth_service, user, SCOPES)
    base = ["--state-dir", str(tmp_path / "state"), "--config", str(tmp_path / "viarte.json"), "--api-key", key,
            "--auth-address", auth_service.address, "--account-address", account.address]  # fmt: skip

    async def cli(*args: str, code: int = 0) -> str:
        # In a thread: the account server shares this test's event loop.
        result = await asyncio.to_thread(runner.invoke, app, _hoist_json([*base, *args]))
        assert result.exit_code == code, f"{args}: exit {result.exit_code}\n{result.output}\n{result.exception!r}"
        return result.stdout if code == 0 else result.stderr

    with WebhookReceiver() as receiver:
        created = json.loads(await cli("--json", "webhooks", "create", receiver.url))
        assert created["secret"].startswith("whsec_")
        job = await record(account, user.id, kind=account_pb2.JOB_KIND_UPSCALE, frames=8)
        (request,) = await receiver.wait(1)
    assert webhooks.verify(request.body, request.headers, created["secret"])["type"] == "job.succeeded"

    totals = json.loads(await cli("--json", "usage"))
    assert totals["credits"] == "2" and totals["jobs"] == "1"  # int64 in proto JSON
    assert "2 credits" in await cli("usage", "--since", "2020-01-01")
    lines = (await cli("usage", "export", "--format", "jsonl")).splitlines()
    assert [json.loads(line)["job_id"] for line in lines] == [job.record.job_id]
    out_file = tmp_path / "usage.csv"
    await cli("usage", "export", "-o", str(out_file))
    assert out_file.read_text().startswith("job_id,kind,model,state")
    assert "2 credits" in await cli("usage", "estimate", "render", "--seconds", "1")

    listed = json.loads(await cli("--json", "webhooks", "list"))["endpoints"]
    assert [e["id"] for e in listed] == [created["id"]]
    deliveries = json.loads(await cli("--json", "webhooks", "deliveries", created["id"]))["deliveries"]
    assert [d["job_id"] for d in deliveries] == [job.record.job_id]
    await cli("webhooks", "redeliver", deliveries[0]["id"])
    tested = json.loads(await cli("--json", "webhooks", "test", created["id"]))
    assert tested["event_type"] == "webhook.test" and tested["endpoint_id"] == created["id"]
    deliveries = json.loads(await cli("--json", "webhooks", "deliveries", created["id"]))["deliveries"]
    assert {d["id"] for d in deliveries} == {tested["id"], deliveries[-1]["id"]} and len(deliveries) == 2
    rotated = json.loads(await cli("--json", "webhooks", "rotate", created["id"]))
    assert rotated["endpoint"]["secret"] != created["secret"]
    enabled = json.loads(await cli("--json", "webhooks", "enable", created["id"]))
    assert enabled["id"] == created["id"] and not enabled.get("disabled")
    await cli("webhooks", "delete", created["id"])
    assert "WEBHOOK_NOT_FOUND" in await cli("webhooks", "delete", created["id"], code=4)
