"""Usage (``viarte.account.v1.UsageService``) and webhook endpoints (``WebhookService``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from google.protobuf import timestamp_pb2

from viarte.account.v1 import account_pb2, account_pb2_grpc
from viarte.client._base import Page, SyncResource, _Resource, sync

__all__ = ["JOB_KINDS", "AsyncUsage", "AsyncWebhooks", "Usage", "Webhooks"]

# CLI/SDK names of the account's job kinds.
JOB_KINDS: dict[str, int] = {
    "generation": account_pb2.JOB_KIND_GENERATION,
    "face_swap": account_pb2.JOB_KIND_FACE_SWAP,
    "upscale": account_pb2.JOB_KIND_UPSCALE,
    "render": account_pb2.JOB_KIND_RENDER,
    "training": account_pb2.JOB_KIND_TRAINING,
}
_FORMATS = {"csv": account_pb2.EXPORT_FORMAT_CSV, "jsonl": account_pb2.EXPORT_FORMAT_JSONL}


def _period(start: datetime | None, end: datetime | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in (("start_time", start), ("end_time", end)):
        if value is not None:
            stamp = timestamp_pb2.Timestamp()
            stamp.FromDatetime(value)
            out[name] = stamp
    return out


class AsyncUsage(_Resource):
    """What your jobs cost: totals, one record per finished job, exports, price estimates."""

    @property
    def _stub(self) -> account_pb2_grpc.UsageServiceStub:
        return self._t.stub(account_pb2_grpc.UsageServiceStub, "account")

    async def get(
        self, *, start: datetime | None = None, end: datetime | None = None, api_key_id: str = ""
    ) -> account_pb2.GetUsageResponse:
        """Totals over [start, end) (default: this calendar month, UTC, until now)."""
        req = account_pb2.GetUsageRequest(api_key_id=api_key_id, **_period(start, end))
        resp: account_pb2.GetUsageResponse = await self._t.unary(self._stub.GetUsage, req, retry=True)
        return resp

    async def records(
        self, *, start: datetime | None = None, end: datetime | None = None, api_key_id: str = "", kind: str = "",
        page_size: int = 50, page_token: str = "",
    ) -> Page[account_pb2.UsageRecord]:  # fmt: skip
        req = account_pb2.ListUsageRecordsRequest(
            api_key_id=api_key_id, kind=JOB_KINDS[kind] if kind else 0, page_size=page_size, page_token=page_token,  # type: ignore[arg-type]
            **_period(start, end),
        )
        resp = await self._t.unary(self._stub.ListUsageRecords, req, retry=True)
        return Page(list(resp.records), resp.next_page_token)

    async def export(
        self, *, format: str = "csv", start: datetime | None = None, end: datetime | None = None, api_key_id: str = ""
    ) -> AsyncIterator[bytes]:
        """The records as CSV (with a header line) or JSONL, in chunks of whole lines."""
        req = account_pb2.ExportUsageRequest(format=_FORMATS[format], api_key_id=api_key_id, **_period(start, end))
        async for msg in self._t.unary_stream(self._stub.ExportUsage, req):
            yield msg.data

    async def estimate(
        self, kind: str, *, model: str = "", width: int = 0, height: int = 0, frames: int = 0, steps: int = 0,
        video_seconds: float = 0.0,
    ) -> account_pb2.GetPriceEstimateResponse:  # fmt: skip
        """Credits a job would cost: ``estimate("generation", model="tiny-wan", width=512, height=512,
        frames=16, steps=4)``, ``estimate("render", video_seconds=30)``."""
        quantities = account_pb2.Quantities(
            width=width, height=height, frames=frames, steps=steps, video_seconds=video_seconds
        )
        req = account_pb2.GetPriceEstimateRequest(kind=JOB_KINDS[kind], model=model, quantities=quantities)  # type: ignore[arg-type]
        resp: account_pb2.GetPriceEstimateResponse = await self._t.unary(self._stub.GetPriceEstimate, req, retry=True)
        return resp


class AsyncWebhooks(_Resource):
    """Webhook endpoints (job.succeeded / job.failed / job.cancelled) and their delivery logs."""

    @property
    def _stub(self) -> account_pb2_grpc.WebhookServiceStub:
        return self._t.stub(account_pb2_grpc.WebhookServiceStub, "account")

    async def create(self, url: str, event_types: Sequence[str] = ()) -> account_pb2.WebhookEndpoint:
        """The endpoint with its ``secret`` (shown only now). Not retried: a retry could make two."""
        req = account_pb2.CreateWebhookEndpointRequest(url=url, event_types=list(event_types))
        resp: account_pb2.CreateWebhookEndpointResponse = await self._t.unary(
            self._stub.CreateWebhookEndpoint, req, retry=False
        )
        return resp.endpoint

    async def list(self, *, page_size: int = 50, page_token: str = "") -> Page[account_pb2.WebhookEndpoint]:
        req = account_pb2.ListWebhookEndpointsRequest(page_size=page_size, page_token=page_token)
        resp = await self._t.unary(self._stub.ListWebhookEndpoints, req, retry=True)
        return Page(list(resp.endpoints), resp.next_page_token)

    async def delete(self, endpoint_id: str) -> None:
        req = account_pb2.DeleteWebhookEndpointRequest(id=endpoint_id)
        await self._t.unary(self._stub.DeleteWebhookEndpoint, req, retry=True)

    async def rotate(self, endpoint_id: str) -> account_pb2.RotateWebhookSecretResponse:
        """A new secret; the previous one keeps signing until ``previous_secret_expire_time``."""
        req = account_pb2.RotateWebhookSecretRequest(id=endpoint_id)
        resp: account_pb2.RotateWebhookSecretResponse = await self._t.unary(
            self._stub.RotateWebhookSecret, req, retry=False
        )
        return resp

    async def enable(self, endpoint_id: str) -> account_pb2.WebhookEndpoint:
        """Re-enables an endpoint disabled by a 410 (failed deliveries stay failed: ``redeliver``)."""
        req = account_pb2.EnableWebhookEndpointRequest(id=endpoint_id)
        resp: account_pb2.EnableWebhookEndpointResponse = await self._t.unary(
            self._stub.EnableWebhookEndpoint, req, retry=True
        )
        return resp.endpoint

    async def deliveries(
        self, endpoint_id: str, *, page_size: int = 50, page_token: str = ""
    ) -> Page[account_pb2.WebhookDelivery]:
        req = account_pb2.ListWebhookDeliveriesRequest(endpoint_id=endpoint_id, page_size=page_size, page_token=page_token)
        resp = await self._t.unary(self._stub.ListWebhookDeliveries, req, retry=True)
        return Page(list(resp.deliveries), resp.next_page_token)

    async def redeliver(self, delivery_id: str) -> account_pb2.WebhookDelivery:
        req = account_pb2.RedeliverWebhookRequest(delivery_id=delivery_id)
        resp: account_pb2.RedeliverWebhookResponse = await self._t.unary(self._stub.RedeliverWebhook, req, retry=True)
        return resp.delivery

    async def send_test(self, endpoint_id: str) -> account_pb2.WebhookDelivery:
        """Queues a signed ``webhook.test`` event to the endpoint, logged as one more delivery."""
        req = account_pb2.SendTestWebhookRequest(endpoint_id=endpoint_id)
        # Not retried: each call queues a new delivery.
        resp: account_pb2.SendTestWebhookResponse = await self._t.unary(self._stub.SendTestWebhook, req, retry=False)
        return resp.delivery


class Usage(SyncResource[AsyncUsage]):
    """The sync :class:`AsyncUsage`."""

    get = sync(AsyncUsage.get)
    records = sync(AsyncUsage.records)
    export = sync(AsyncUsage.export)
    estimate = sync(AsyncUsage.estimate)


class Webhooks(SyncResource[AsyncWebhooks]):
    """The sync :class:`AsyncWebhooks`."""

    create = sync(AsyncWebhooks.create)
    list = sync(AsyncWebhooks.list)
    delete = sync(AsyncWebhooks.delete)
    rotate = sync(AsyncWebhooks.rotate)
    enable = sync(AsyncWebhooks.enable)
    deliveries = sync(AsyncWebhooks.deliveries)
    redeliver = sync(AsyncWebhooks.redeliver)
    send_test = sync(AsyncWebhooks.send_test)
