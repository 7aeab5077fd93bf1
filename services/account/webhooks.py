"""WebhookService: the caller's endpoints, secrets and delivery log."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta

import grpc

from services.account.common import caller, database, to_ts
from services.account.config import AccountConfig
from services.account.models import (
    DeliveryState,
    WebhookAttemptRow,
    WebhookDeliveryRow,
    WebhookEndpointRow,
    as_utc,
    new_id,
    utcnow,
)  # fmt: skip
from services.account.reasons import Reason
from services.account.secretbox import SecretBox, new_secret
from services.account.store import AccountStore
from services.account.urls import validate_url
from services.account.usage import EVENT_TYPES
from services.kit.errors import ServiceError, Violations
from services.kit.pagination import PageTokens, page_size
from viarte.account.v1 import account_pb2, account_pb2_grpc

__all__ = ["TEST_EVENT", "WebhookServicer", "delivery_to_proto", "endpoint_to_proto"]

# SendTestWebhook's event type (never a subscription filter: sent only when asked for).
TEST_EVENT = "webhook.test"

_STATES = {
    DeliveryState.PENDING: account_pb2.DELIVERY_STATE_PENDING,
    DeliveryState.DELIVERED: account_pb2.DELIVERY_STATE_DELIVERED,
    DeliveryState.FAILED: account_pb2.DELIVERY_STATE_FAILED,
}


def endpoint_to_proto(row: WebhookEndpointRow, secret: str = "") -> account_pb2.WebhookEndpoint:
    return account_pb2.WebhookEndpoint(
        id=row.id, url=row.url, event_types=[t for t in row.event_types.split(",") if t], disabled=row.disabled,
        secret=secret, create_time=to_ts(row.create_time), disabled_reason=row.disabled_reason,
    )  # fmt: skip


def delivery_to_proto(row: WebhookDeliveryRow, attempts: list[WebhookAttemptRow]) -> account_pb2.WebhookDelivery:
    out = account_pb2.WebhookDelivery(
        id=row.id, endpoint_id=row.endpoint_id, event_type=row.event_type, job_id=row.job_id,
        state=_STATES[DeliveryState(row.state)], attempt_count=row.attempt_count,
        last_status_code=row.last_status_code, create_time=to_ts(row.create_time),
    )  # fmt: skip
    if row.state == DeliveryState.PENDING and row.next_attempt_time is not None:
        out.next_attempt_time.CopyFrom(to_ts(row.next_attempt_time))
    for a in attempts:
        out.attempts.add(attempt=a.attempt, time=to_ts(a.time), status_code=a.status_code, error=a.error,
                         duration_ms=a.duration_ms)  # fmt: skip
    return out


def _not_found(endpoint_id: str) -> ServiceError:
    return ServiceError.not_found(Reason.WEBHOOK_NOT_FOUND, "webhook endpoint not found",
                                  metadata={"endpoint_id": endpoint_id[:64]})  # fmt: skip


class WebhookServicer(account_pb2_grpc.WebhookServiceServicer):  # type: ignore[misc]
    def __init__(
        self, config: AccountConfig, store: AccountStore, box: SecretBox, page_tokens: PageTokens,
        on_enqueued: Callable[[], None],
    ) -> None:  # fmt: skip
        self.config = config
        self.store = store
        self.box = box
        self.page_tokens = page_tokens
        self.on_enqueued = on_enqueued

    async def CreateWebhookEndpoint(
        self, request: account_pb2.CreateWebhookEndpointRequest, context: grpc.aio.ServicerContext
    ) -> account_pb2.CreateWebhookEndpointResponse:
        user = caller()
        v = Violations()
        known = set(EVENT_TYPES.values())
        for i, event_type in enumerate(request.event_types):
            v.check(event_type in known, f"event_types[{i}]", f"must be one of {', '.join(sorted(known))}")
        v.raise_if_any(Reason.INVALID_ARGUMENT, "invalid webhook endpoint")
        await validate_url(request.url, max_length=self.config.webhook_max_url_length,
                           allow_private=self.config.webhook_allow_private)  # fmt: skip
        # A soft cap (two concurrent creates may both pass): it bounds fan-out, not billing.
        if await database(self.store.count_endpoints, user) >= self.config.webhook_max_endpoints:
            raise ServiceError.resource_exhausted(
                Reason.TOO_MANY_WEBHOOKS, f"at most {self.config.webhook_max_endpoints} webhook endpoints per user"
            )
        secret = new_secret()
        endpoint_id = new_id("ep_")
        row = WebhookEndpointRow(
            id=endpoint_id, user_id=user, url=request.url, event_types=",".join(dict.fromkeys(request.event_types)),
            secret_box=self.box.seal(secret, endpoint_id),
        )  # fmt: skip
        await database(self.store.add_endpoint, row)
        return account_pb2.CreateWebhookEndpointResponse(endpoint=endpoint_to_proto(row, secret))

    async def ListWebhookEndpoints(
        self, request: account_pb2.ListWebhookEndpointsRequest, context: grpc.aio.ServicerContext
    ) -> account_pb2.ListWebhookEndpointsResponse:
        user = caller()
        filters = {"u": user, "what": "endpoints"}
        cursor = self.page_tokens.decode(request.page_token, filters, {"t": datetime, "id": str})
        limit = page_size(request.page_size)
        rows = await database(self.store.list_endpoints, user, (cursor["t"], cursor["id"]) if cursor else None, limit + 1)
        response = account_pb2.ListWebhookEndpointsResponse(endpoints=[endpoint_to_proto(r) for r in rows[:limit]])
        if len(rows) > limit:
            last = rows[limit - 1]
            response.next_page_token = self.page_tokens.encode({"t": as_utc(last.create_time), "id": last.id}, filters)
        return response

    async def DeleteWebhookEndpoint(
        self, request: account_pb2.DeleteWebhookEndpointRequest, context: grpc.aio.ServicerContext
    ) -> account_pb2.DeleteWebhookEndpointResponse:
        if not await database(self.store.delete_endpoint, caller(), request.id):
            raise _not_found(request.id)
        return account_pb2.DeleteWebhookEndpointResponse()

    async def RotateWebhookSecret(
        self, request: account_pb2.RotateWebhookSecretRequest, context: grpc.aio.ServicerContext
    ) -> account_pb2.RotateWebhookSecretResponse:
        secret = new_secret()
        expire = utcnow() + timedelta(seconds=self.config.webhook_secret_overlap_seconds)
        row = await database(
            self.store.rotate_secret, caller(), request.id,
            lambda endpoint_id: self.box.seal(secret, endpoint_id), expire,
        )  # fmt: skip
        if row is None:
            raise _not_found(request.id)
        return account_pb2.RotateWebhookSecretResponse(
            endpoint=endpoint_to_proto(row, secret), previous_secret_expire_time=to_ts(expire)
        )

    async def EnableWebhookEndpoint(
        self, request: account_pb2.EnableWebhookEndpointRequest, context: grpc.aio.ServicerContext
    ) -> account_pb2.EnableWebhookEndpointResponse:
        user = caller()
        row = await database(self.store.get_endpoint, user, request.id)
        if row is None:
            raise _not_found(request.id)
        # The receiver said "gone" once; what it resolves to now is checked like a new endpoint's.
        await validate_url(row.url, max_length=self.config.webhook_max_url_length,
                           allow_private=self.config.webhook_allow_private)  # fmt: skip
        row = await database(self.store.enable_endpoint, user, request.id)
        if row is None:  # deleted meanwhile
            raise _not_found(request.id)
        return account_pb2.EnableWebhookEndpointResponse(endpoint=endpoint_to_proto(row))

    async def ListWebhookDeliveries(
        self, request: account_pb2.ListWebhookDeliveriesRequest, context: grpc.aio.ServicerContext
    ) -> account_pb2.ListWebhookDeliveriesResponse:
        user = caller()
        if await database(self.store.get_endpoint, user, request.endpoint_id) is None:
            raise _not_found(request.endpoint_id)
        filters = {"u": user, "endpoint": request.endpoint_id}
        cursor = self.page_tokens.decode(request.page_token, filters, {"t": datetime, "id": str})
        limit = page_size(request.page_size)
        after = (cursor["t"], cursor["id"]) if cursor else None
        rows = await database(self.store.list_deliveries, request.endpoint_id, after, limit + 1)
        response = account_pb2.ListWebhookDeliveriesResponse(
            deliveries=[delivery_to_proto(r, a) for r, a in rows[:limit]]
        )
        if len(rows) > limit:
            last = rows[limit - 1][0]
            response.next_page_token = self.page_tokens.encode({"t": as_utc(last.create_time), "id": last.id}, filters)
        return response

    async def RedeliverWebhook(
        self, request: account_pb2.RedeliverWebhookRequest, context: grpc.aio.ServicerContext
    ) -> account_pb2.RedeliverWebhookResponse:
        user = caller()
        found = await database(self.store.get_delivery, user, request.delivery_id)
        if found is None:
            raise ServiceError.not_found(Reason.DELIVERY_NOT_FOUND, "webhook delivery not found",
                                         metadata={"delivery_id": request.delivery_id[:64]})  # fmt: skip
        endpoint = await database(self.store.get_endpoint, user, found[0].endpoint_id)
        if endpoint is None or endpoint.disabled:
            raise ServiceError.failed_precondition(Reason.WEBHOOK_DISABLED, "the delivery's endpoint is disabled")
        row = await database(self.store.redeliver, user, request.delivery_id, utcnow())
        if row is None:
            raise ServiceError.not_found(Reason.DELIVERY_NOT_FOUND, "webhook delivery not found")
        self.on_enqueued()
        return account_pb2.RedeliverWebhookResponse(delivery=delivery_to_proto(row, found[1]))

    async def SendTestWebhook(
        self, request: account_pb2.SendTestWebhookRequest, context: grpc.aio.ServicerContext
    ) -> account_pb2.SendTestWebhookResponse:
        """A signed ``webhook.test`` event queued as one more delivery of the endpoint: the
        dispatcher signs, sends, logs and retries it like a job's event, so what the partner sees
        (headers, signature, the delivery log) is exactly what a job's end will produce."""
        user = caller()
        endpoint = await database(self.store.get_endpoint, user, request.endpoint_id)
        if endpoint is None:
            raise _not_found(request.endpoint_id)
        if endpoint.disabled:
            raise ServiceError.failed_precondition(Reason.WEBHOOK_DISABLED, "the endpoint is disabled (enable it first)",
                                                   metadata={"endpoint_id": endpoint.id})  # fmt: skip
        now = utcnow()
        delivery_id = new_id("msg_")
        event = {"type": TEST_EVENT, "timestamp": now.isoformat().replace("+00:00", "Z"),
                 "data": {"endpoint_id": endpoint.id}}  # fmt: skip
        row = WebhookDeliveryRow(
            id=delivery_id, endpoint_id=endpoint.id, user_id=user, event_type=TEST_EVENT, job_id="",
            event_key=f"{TEST_EVENT}:{delivery_id}", payload=json.dumps(event, separators=(",", ":")),
            create_time=now, window_start_time=now, next_attempt_time=now,
        )  # fmt: skip
        await database(self.store.add_delivery, row)
        self.on_enqueued()
        return account_pb2.SendTestWebhookResponse(delivery=delivery_to_proto(row, []))
