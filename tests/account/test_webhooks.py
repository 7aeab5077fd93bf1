"""Webhooks over a real account server and a real HTTP receiver on loopback: signatures verified by
the standardwebhooks library, retries, 410, a restart between attempts (the outbox), secret
rotation, URL validation, cross-user isolation."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from services.account.config import AccountConfig
from services.account.dispatcher import next_attempt
from tests.account.conftest import record
from tests.auth.helpers import expect_failure
from tests.fixtures.account import AccountService, WebhookReceiver, running_account, test_account_config
from viarte.account.v1 import account_pb2
from viarte.type.v1 import job_pb2


async def _endpoint(account: AccountService, user: Any, url: str, *events: str) -> account_pb2.WebhookEndpoint:
    answer = await account.webhooks.CreateWebhookEndpoint(
        account_pb2.CreateWebhookEndpointRequest(url=url, event_types=list(events)), metadata=user.metadata
    )
    return answer.endpoint


async def _deliveries(account: AccountService, user: Any, endpoint_id: str) -> list[account_pb2.WebhookDelivery]:
    answer = await account.webhooks.ListWebhookDeliveries(
        account_pb2.ListWebhookDeliveriesRequest(endpoint_id=endpoint_id), metadata=user.metadata
    )
    return list(answer.deliveries)


async def _settled(account: AccountService, user: Any, endpoint_id: str, attempts: int) -> account_pb2.WebhookDelivery:
    """The endpoint's one delivery once it has ``attempts`` logged attempts and left PENDING."""
    deadline = time.monotonic() + 30
    while True:
        (delivery,) = await _deliveries(account, user, endpoint_id)
        if delivery.attempt_count >= attempts and delivery.state != account_pb2.DELIVERY_STATE_PENDING:
            return delivery
        assert time.monotonic() < deadline, f"delivery still {delivery}"
        await asyncio.sleep(0.1)


async def test_a_succeeded_job_reaches_the_receiver_signed_per_standard_webhooks(account: AccountService, user_factory: Any) -> None:
    user = await user_factory()
    with WebhookReceiver() as receiver:
        endpoint = await _endpoint(account, user, receiver.url)
        assert endpoint.secret.startswith("whsec_") and endpoint.id
        job = await record(account, user.id, kind=account_pb2.JOB_KIND_GENERATION, width=64, height=64, frames=8, steps=2)
        (request,) = await receiver.wait(1)
    payload = Webhook(endpoint.secret).verify(request.body, request.headers)
    assert payload["type"] == "job.succeeded"
    assert payload["data"]["job_id"] == job.record.job_id
    assert payload["data"]["kind"] == "generation"
    assert payload["data"]["result_asset_ids"] == ["asset-1"]
    assert payload["data"]["cost"] == {"credits": job.record.credits}
    assert request.headers["webhook-id"].startswith("msg_")
    with pytest.raises(WebhookVerificationError):  # another secret does not verify
        Webhook("whsec_" + "QUJD" * 8).verify(request.body, request.headers)
    delivery = await _settled(account, user, endpoint.id, 1)
    assert delivery.state == account_pb2.DELIVERY_STATE_DELIVERED and delivery.attempts[0].status_code == 200
    # Listing never shows the secret again; an unsubscribed event type is not delivered.
    (listed,) = (await account.webhooks.ListWebhookEndpoints(account_pb2.ListWebhookEndpointsRequest(),
                                                             metadata=user.metadata)).endpoints
    assert listed.id == endpoint.id and listed.secret == ""


async def test_subscriptions_filter_event_types(account: AccountService, user_factory: Any) -> None:
    user = await user_factory()
    with WebhookReceiver() as failures, WebhookReceiver() as everything:
        only_failed = await _endpoint(account, user, failures.url, "job.failed")
        await _endpoint(account, user, everything.url)
        await record(account, user.id, kind=account_pb2.JOB_KIND_RENDER, video_seconds=1.0)
        await record(account, user.id, kind=account_pb2.JOB_KIND_RENDER, state=job_pb2.JOB_STATE_FAILED)
        await everything.wait(2)
        (only,) = await failures.wait(1)
    assert json.loads(only.body)["type"] == "job.failed"
    assert {json.loads(r.body)["type"] for r in everything.requests} == {"job.succeeded", "job.failed"}
    assert len(await _deliveries(account, user, only_failed.id)) == 1


async def test_a_500_is_retried_until_the_receiver_answers_200(account: AccountService, user_factory: Any) -> None:
    user = await user_factory()
    with WebhookReceiver([500, 503]) as receiver:
        endpoint = await _endpoint(account, user, receiver.url)
        await record(account, user.id, kind=account_pb2.JOB_KIND_UPSCALE, frames=4)
        requests = await receiver.wait(3)
    assert len({r.headers["webhook-id"] for r in requests}) == 1  # one message, three attempts
    for r in requests:
        Webhook(endpoint.secret).verify(r.body, r.headers)
    delivery = await _settled(account, user, endpoint.id, 3)
    assert delivery.state == account_pb2.DELIVERY_STATE_DELIVERED
    assert [a.status_code for a in delivery.attempts] == [500, 503, 200]
    assert [a.attempt for a in delivery.attempts] == [1, 2, 3]
    assert delivery.attempts[0].error == "HTTP 500"


async def test_send_test_webhook_is_a_signed_logged_delivery_retried_like_any(
    account: AccountService, user_factory: Any
) -> None:
    user = await user_factory()
    with WebhookReceiver([500]) as receiver:
        endpoint = await _endpoint(account, user, receiver.url, "job.failed")  # sent whatever it subscribes to
        sent = (await account.webhooks.SendTestWebhook(
            account_pb2.SendTestWebhookRequest(endpoint_id=endpoint.id), metadata=user.metadata)).delivery
        assert sent.event_type == "webhook.test" and sent.state == account_pb2.DELIVERY_STATE_PENDING
        first, second = await receiver.wait(2)
        delivery = await _settled(account, user, endpoint.id, 2)
        stranger = await user_factory()
        hidden = await expect_failure(account.webhooks.SendTestWebhook(
            account_pb2.SendTestWebhookRequest(endpoint_id=endpoint.id), metadata=stranger.metadata))
    payload = Webhook(endpoint.secret).verify(second.body, second.headers)
    assert payload["type"] == "webhook.test" and payload["data"] == {"endpoint_id": endpoint.id}
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == sent.id
    assert delivery.id == sent.id and delivery.state == account_pb2.DELIVERY_STATE_DELIVERED
    assert [a.status_code for a in delivery.attempts] == [500, 200] and delivery.job_id == ""
    assert hidden.code == grpc.StatusCode.NOT_FOUND and hidden.reason == "WEBHOOK_NOT_FOUND"


async def test_a_410_disables_the_endpoint(account: AccountService, user_factory: Any) -> None:
    user = await user_factory()
    with WebhookReceiver([410]) as receiver:
        endpoint = await _endpoint(account, user, receiver.url)
        await record(account, user.id, kind=account_pb2.JOB_KIND_FACE_SWAP, frames=2)
        await receiver.wait(1)
        delivery = await _settled(account, user, endpoint.id, 1)
        assert delivery.state == account_pb2.DELIVERY_STATE_FAILED and delivery.last_status_code == 410
        (listed,) = (await account.webhooks.ListWebhookEndpoints(account_pb2.ListWebhookEndpointsRequest(),
                                                                 metadata=user.metadata)).endpoints
        assert listed.disabled and "410" in listed.disabled_reason
        # A disabled endpoint gets no new deliveries, and cannot be redelivered to.
        await record(account, user.id, kind=account_pb2.JOB_KIND_FACE_SWAP, frames=2)
        assert len(await _deliveries(account, user, endpoint.id)) == 1
        refused = await expect_failure(account.webhooks.RedeliverWebhook(
            account_pb2.RedeliverWebhookRequest(delivery_id=delivery.id), metadata=user.metadata
        ))
        assert refused.code == grpc.StatusCode.FAILED_PRECONDITION and refused.reason == "WEBHOOK_DISABLED"
        untested = await expect_failure(account.webhooks.SendTestWebhook(
            account_pb2.SendTestWebhookRequest(endpoint_id=endpoint.id), metadata=user.metadata))
        assert untested.code == grpc.StatusCode.FAILED_PRECONDITION and untested.reason == "WEBHOOK_DISABLED"
        await asyncio.sleep(0.5)
        assert len(receiver.requests) == 1
        # Re-enabled by its owner (another user's is NOT_FOUND): the next job end is delivered,
        # and the delivery that failed on the 410 can be sent again.
        stranger = await user_factory()
        hidden = await expect_failure(account.webhooks.EnableWebhookEndpoint(
            account_pb2.EnableWebhookEndpointRequest(id=endpoint.id), metadata=stranger.metadata))
        assert hidden.code == grpc.StatusCode.NOT_FOUND and hidden.reason == "WEBHOOK_NOT_FOUND"
        enabled = (await account.webhooks.EnableWebhookEndpoint(
            account_pb2.EnableWebhookEndpointRequest(id=endpoint.id), metadata=user.metadata)).endpoint
        assert not enabled.disabled and enabled.disabled_reason == "" and enabled.secret == ""
        job = await record(account, user.id, kind=account_pb2.JOB_KIND_FACE_SWAP, frames=2)
        requests = await receiver.wait(2)
        assert Webhook(endpoint.secret).verify(requests[1].body, requests[1].headers)["data"]["job_id"] == job.record.job_id
        await account.webhooks.RedeliverWebhook(account_pb2.RedeliverWebhookRequest(delivery_id=delivery.id),
                                                metadata=user.metadata)  # fmt: skip
        assert (await receiver.wait(3))[2].headers["webhook-id"] == requests[0].headers["webhook-id"]


async def test_a_restart_between_attempts_still_delivers(tmp_path: Path, auth_service: Any, user_factory: Any) -> None:
    user = await user_factory()
    # The retry comes 2 s after the 500: the service is down in between and a new one picks it up.
    config = test_account_config(tmp_path / "account", auth_service, webhook_retry_initial_seconds=2.0)
    with WebhookReceiver([500]) as receiver:
        async with running_account(config) as first:
            endpoint = await _endpoint(first, user, receiver.url)
            job = await record(first, user.id, kind=account_pb2.JOB_KIND_RENDER, video_seconds=2.5)
            await receiver.wait(1)
        restarted = AccountConfig(**{**config.__dict__, "replica_id": "account-test-restarted"})
        async with running_account(restarted) as second:
            requests = await receiver.wait(2)
            delivery = await _settled(second, user, endpoint.id, 2)
    assert Webhook(endpoint.secret).verify(requests[1].body, requests[1].headers)["data"]["job_id"] == job.record.job_id
    assert requests[0].headers["webhook-id"] == requests[1].headers["webhook-id"]
    assert delivery.state == account_pb2.DELIVERY_STATE_DELIVERED
    assert [a.status_code for a in delivery.attempts] == [500, 200]


async def test_a_rotated_secret_verifies_during_the_overlap(account: AccountService, user_factory: Any) -> None:
    user = await user_factory()
    with WebhookReceiver() as receiver:
        endpoint = await _endpoint(account, user, receiver.url)
        rotated = await account.webhooks.RotateWebhookSecret(
            account_pb2.RotateWebhookSecretRequest(id=endpoint.id), metadata=user.metadata
        )
        assert rotated.endpoint.secret.startswith("whsec_") and rotated.endpoint.secret != endpoint.secret
        overlap = rotated.previous_secret_expire_time.ToDatetime(tzinfo=UTC) - datetime.now(UTC)
        assert timedelta(hours=23) < overlap <= timedelta(hours=24)
        await record(account, user.id, kind=account_pb2.JOB_KIND_RENDER, video_seconds=1.0)
        (request,) = await receiver.wait(1)
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (endpoint.secret, rotated.endpoint.secret):  # a receiver on either secret accepts it
        assert Webhook(secret).verify(request.body, request.headers)["type"] == "job.succeeded"


async def test_after_the_overlap_only_the_new_secret_signs(tmp_path: Path, auth_service: Any, user_factory: Any) -> None:
    user = await user_factory()
    config = test_account_config(tmp_path / "account", auth_service, webhook_secret_overlap_seconds=0.5)
    with WebhookReceiver() as receiver:
        async with running_account(config) as account:
            endpoint = await _endpoint(account, user, receiver.url)
            rotated = await account.webhooks.RotateWebhookSecret(
                account_pb2.RotateWebhookSecretRequest(id=endpoint.id), metadata=user.metadata
            )
            await asyncio.sleep(1.0)
            await record(account, user.id, kind=account_pb2.JOB_KIND_RENDER, video_seconds=1.0)
            (request,) = await receiver.wait(1)
    assert len(request.headers["webhook-signature"].split(" ")) == 1
    Webhook(rotated.endpoint.secret).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint.secret).verify(request.body, request.headers)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.com/hook", "http or https"),
        ("file:///etc/passwd", "http or https"),
        ("http://127.0.0.1:8080/hook", "loopback"),
        ("http://localhost/hook", "loopback"),
        ("http://[::1]/hook", "loopback"),
        ("http://10.1.2.3/hook", "private"),
        ("http://192.168.0.10/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("https://93.184.216.34/" + "a" * 2100, "at most 2048"),
        ("https://user:pw@93.184.216.34/hook", "credentials"),
        ("", "required"),
    ],
)
async def test_webhook_urls_are_validated(tmp_path: Path, auth_service: Any, user_factory: Any, url: str, why: str) -> None:
    user = await user_factory()
    config = test_account_config(tmp_path / "account", auth_service, webhook_allow_private=False)
    async with running_account(config) as account:
        refused = await expect_failure(account.webhooks.CreateWebhookEndpoint(
            account_pb2.CreateWebhookEndpointRequest(url=url), metadata=user.metadata
        ))
        assert refused.code == grpc.StatusCode.INVALID_ARGUMENT and refused.reason == "INVALID_WEBHOOK_URL"
        ((field, description),) = refused.field_violations
        assert field == "url" and why in description, description
        # A public address literal passes (no DNS needed); an unknown event type is refused by path.
        ok = await _endpoint(account, user, "https://93.184.216.34/hook")
        assert ok.url == "https://93.184.216.34/hook"
        unknown = await expect_failure(account.webhooks.CreateWebhookEndpoint(
            account_pb2.CreateWebhookEndpointRequest(url="https://93.184.216.34/x", event_types=["job.done"]),
            metadata=user.metadata,
        ))
        assert unknown.field_violations[0][0] == "event_types[0]"


async def test_another_users_endpoints_and_deliveries_are_not_found(account: AccountService, user_factory: Any) -> None:
    owner, other = await user_factory(), await user_factory()
    with WebhookReceiver() as receiver:
        endpoint = await _endpoint(account, owner, receiver.url)
        await record(account, owner.id, kind=account_pb2.JOB_KIND_RENDER, video_seconds=1.0)
        await receiver.wait(1)
    (delivery,) = await _deliveries(account, owner, endpoint.id)
    w = account.webhooks
    calls = [
        w.ListWebhookDeliveries(account_pb2.ListWebhookDeliveriesRequest(endpoint_id=endpoint.id), metadata=other.metadata),
        w.RotateWebhookSecret(account_pb2.RotateWebhookSecretRequest(id=endpoint.id), metadata=other.metadata),
        w.DeleteWebhookEndpoint(account_pb2.DeleteWebhookEndpointRequest(id=endpoint.id), metadata=other.metadata),
        w.RedeliverWebhook(account_pb2.RedeliverWebhookRequest(delivery_id=delivery.id), metadata=other.metadata),
    ]
    reasons = [(f.code, f.reason) for f in [await expect_failure(c) for c in calls]]
    assert reasons == [(grpc.StatusCode.NOT_FOUND, "WEBHOOK_NOT_FOUND")] * 3 + [(grpc.StatusCode.NOT_FOUND, "DELIVERY_NOT_FOUND")]
    theirs = await w.ListWebhookEndpoints(account_pb2.ListWebhookEndpointsRequest(), metadata=other.metadata)
    assert list(theirs.endpoints) == []
    # The owner still has everything, can redeliver (same message id) and delete.
    with WebhookReceiver() as again:
        await w.DeleteWebhookEndpoint(account_pb2.DeleteWebhookEndpointRequest(id=endpoint.id), metadata=owner.metadata)
        gone = await expect_failure(w.ListWebhookDeliveries(
            account_pb2.ListWebhookDeliveriesRequest(endpoint_id=endpoint.id), metadata=owner.metadata))
        assert gone.reason == "WEBHOOK_NOT_FOUND"
        assert not again.requests


async def test_redeliver_sends_the_same_message_again(account: AccountService, user_factory: Any) -> None:
    user = await user_factory()
    with WebhookReceiver() as receiver:
        endpoint = await _endpoint(account, user, receiver.url)
        await record(account, user.id, kind=account_pb2.JOB_KIND_RENDER, video_seconds=1.0)
        (first,) = await receiver.wait(1)
        delivery = await _settled(account, user, endpoint.id, 1)
        await account.webhooks.RedeliverWebhook(account_pb2.RedeliverWebhookRequest(delivery_id=delivery.id),
                                                metadata=user.metadata)
        second = (await receiver.wait(2))[1]
    assert second.headers["webhook-id"] == first.headers["webhook-id"] == delivery.id
    assert second.body == first.body
    assert (await _settled(account, user, endpoint.id, 2)).state == account_pb2.DELIVERY_STATE_DELIVERED


def test_the_default_retry_schedule_spans_at_least_72_hours() -> None:
    config = AccountConfig()
    start = now = datetime(2026, 1, 1, tzinfo=UTC)
    attempts, gaps = 1, []
    while (following := next_attempt(config, attempts, start, now)) is not None:
        gaps.append(following - now)
        now, attempts = following, attempts + 1
    assert now - start >= timedelta(hours=72)
    assert gaps[:3] == [timedelta(seconds=30), timedelta(seconds=60), timedelta(seconds=120)]  # exponential
    assert max(gaps) == timedelta(hours=6) and attempts < 30


async def test_a_hanging_receiver_does_not_hold_up_other_deliveries(
    tmp_path: Path, auth_service: Any, user_factory: Any
) -> None:
    slow_user, fast_user = await user_factory(), await user_factory()
    # The attempt timeout outlasts the test: only a dispatcher that claims while an attempt is in
    # flight delivers the second user's event while the first receiver hangs.
    config = test_account_config(tmp_path / "account", auth_service, webhook_timeout_seconds=300.0)
    gate = threading.Event()
    with WebhookReceiver(gate=gate) as slow, WebhookReceiver() as fast:
        try:
            async with running_account(config) as account:
                await _endpoint(account, slow_user, slow.url)
                await _endpoint(account, fast_user, fast.url)
                await record(account, slow_user.id, kind=account_pb2.JOB_KIND_RENDER, video_seconds=1.0)
                await slow.wait(1)  # the slow receiver holds its request from here on
                await record(account, fast_user.id, kind=account_pb2.JOB_KIND_RENDER, video_seconds=1.0)
                await fast.wait(1)
                assert not gate.is_set() and len(slow.requests) == 1
        finally:
            gate.set()
