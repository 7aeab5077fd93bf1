"""The webhook dispatcher: a background task on every replica that sends the outbox's deliveries.

Each round claims due deliveries with a lease (``AccountStore.claim``: ``FOR UPDATE SKIP LOCKED``
on PostgreSQL) for its free slots and sends each in its own task, which logs the attempt and
schedules the next one. Claiming never waits for a batch to finish: a receiver that hangs until
the timeout holds one slot, not everybody's webhooks. Nothing of
it runs inside a job or an RPC: RecordJobOutcome only writes rows and wakes the local dispatcher,
and a delivery interrupted by a stop or crash is claimed again once its lease expires.

Retries: after the n-th failed attempt the next comes ``min(initial * multiplier^(n-1),
max_interval)`` later, the last one exactly at the end of the retry window (72 h by default from
the first attempt, or from a RedeliverWebhook); a failure after that gives the delivery up. A 410
answer disables the endpoint and fails the delivery at once. Signing follows Standard Webhooks:
``webhook-signature`` carries ``v1,<sig>`` by the current secret, plus one by the previous secret
while a rotation's overlap lasts.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime, timedelta

import httpx
from sqlalchemy import exc as sa_exc
from standardwebhooks.webhooks import Webhook

from services.account.config import AccountConfig
from services.account.models import DeliveryState, WebhookAttemptRow, WebhookEndpointRow, as_utc, utcnow
from services.account.secretbox import SecretBox
from services.account.store import AccountStore, Claimed
from services.account.urls import UrlRefused, check_destination
from services.kit.db import run_db
from services.kit.logs import get_logger

__all__ = ["Dispatcher", "next_attempt"]

_log = get_logger("viarte.account.webhooks")
# How long stop() waits for cancelled deliveries and the HTTP client to close.
_STOP_SECONDS = 2.0
_DB_DOWN = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)
USER_AGENT = "viarte-webhooks/1"


def next_attempt(config: AccountConfig, attempts: int, window_start: datetime, now: datetime) -> datetime | None:
    """When to try again after ``attempts`` failed attempts; None = give up (the window is over)."""
    window_end = window_start + timedelta(seconds=config.webhook_retry_window_seconds)
    if now >= window_end:
        return None
    delay = min(
        config.webhook_retry_initial_seconds * config.webhook_retry_multiplier ** max(attempts - 1, 0),
        config.webhook_retry_max_interval_seconds,
    )
    return min(now + timedelta(seconds=delay), window_end)


class Dispatcher:
    def __init__(self, config: AccountConfig, store: AccountStore, box: SecretBox) -> None:
        self.config = config
        self.store = store
        self.box = box
        self.owner = config.replica
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._http = httpx.AsyncClient(timeout=config.webhook_timeout_seconds, follow_redirects=False)
        self._concurrency = max(1, config.webhook_concurrency)
        self._inflight: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="account-webhook-dispatcher")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        # Interrupted attempts keep their lease until it expires; then any replica sends them again.
        tasks = [t for t in (self._task, *self._inflight) if t is not None]
        for task in tasks:
            task.cancel()
        # Bounded: a request cancelled while its receiver hangs can stall in the HTTP client's
        # connection cleanup; shutdown must not wait for a receiver (the lease covers the attempt).
        _, stuck = await asyncio.wait(tasks, timeout=_STOP_SECONDS) if tasks else (set(), set())
        if stuck:
            _log.warning("account.webhooks.stop_abandoned", deliveries=len(stuck))
        try:
            await asyncio.wait_for(self._http.aclose(), _STOP_SECONDS)
        except TimeoutError:
            _log.warning("account.webhooks.client_close_timeout")

    async def _run(self) -> None:
        while True:
            # Cleared before looking, so a wake-up that comes while claiming is not lost.
            self._wake.clear()
            try:
                free = self._concurrency - len(self._inflight)
                if free <= 0:
                    await self._sleep(None)  # a finishing delivery wakes the loop
                    continue
                now = utcnow()
                lease = now + timedelta(seconds=self.config.webhook_lease_seconds)
                limit = min(free, self.config.webhook_batch_size)
                claimed = await run_db(self.store.claim, self.owner, now, lease, limit)
                for item in claimed:
                    task = asyncio.create_task(self._deliver(item))
                    self._inflight.add(task)
                    task.add_done_callback(self._done)
                if len(claimed) == limit:
                    continue  # more may be due already
                await self._sleep(await run_db(self.store.next_due, utcnow()))
            except asyncio.CancelledError:
                raise
            except _DB_DOWN as exc:
                _log.warning("account.webhooks.database_unavailable", error=str(getattr(exc, "orig", None) or exc)[:200])
                await asyncio.sleep(self.config.webhook_poll_seconds)
            except Exception:  # a bug must not end webhook delivery for the process's lifetime
                _log.exception("account.webhooks.round_failed")
                await asyncio.sleep(self.config.webhook_poll_seconds)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("account.webhooks.delivery_failed", error=repr(task.exception())[:200])
        self._wake.set()

    async def _sleep(self, due: datetime | None) -> None:
        timeout = self.config.webhook_poll_seconds
        if due is not None:
            timeout = min(timeout, max((as_utc(due) - utcnow()).total_seconds(), 0.0))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    def _secrets(self, endpoint: WebhookEndpointRow, now: datetime) -> list[str]:
        out = [self.box.open(endpoint.secret_box, endpoint.id)]
        expire = endpoint.previous_secret_expire_time
        if endpoint.previous_secret_box and expire is not None and as_utc(expire) > now:
            out.append(self.box.open(endpoint.previous_secret_box, endpoint.id))
        return out

    async def _deliver(self, claimed: Claimed) -> None:
        delivery, endpoint = claimed.delivery, claimed.endpoint
        if endpoint is None or endpoint.disabled:
            await run_db(self.store.finish_attempt, delivery.id, self.owner, None,
                         state=DeliveryState.FAILED, next_attempt_time=None)  # fmt: skip
            return
        now = utcnow()
        status, error, started = 0, "", time.monotonic()
        try:
            await check_destination(
                endpoint.url, max_length=self.config.webhook_max_url_length,
                allow_private=self.config.webhook_allow_private,
            )  # fmt: skip
            status = await self._post(endpoint, delivery.id, delivery.payload, now)
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except UrlRefused as exc:
            error = f"url refused: {exc}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        attempt = WebhookAttemptRow(
            delivery_id=delivery.id, attempt=0, time=now, status_code=status, error=error[:300],
            duration_ms=int((time.monotonic() - started) * 1000),
        )  # fmt: skip
        disable = ""
        if 200 <= status < 300:
            state, retry_at = DeliveryState.DELIVERED, None
        elif status == 410:
            state, retry_at, disable = DeliveryState.FAILED, None, "the receiver answered 410 Gone"
        else:
            retry_at = next_attempt(self.config, delivery.attempt_count + 1, as_utc(delivery.window_start_time), now)
            state = DeliveryState.PENDING if retry_at is not None else DeliveryState.FAILED
        await run_db(self.store.finish_attempt, delivery.id, self.owner, attempt, state=state,
                     next_attempt_time=retry_at, disable_endpoint=disable)  # fmt: skip
        _log.info(
            "account.webhooks.attempt", delivery_id=delivery.id, endpoint_id=endpoint.id, status_code=status,
            state=str(state), error=error[:120],
        )  # fmt: skip

    async def _post(self, endpoint: WebhookEndpointRow, message_id: str, body: str, now: datetime) -> int:
        signatures = " ".join(Webhook(s).sign(message_id, now, body) for s in self._secrets(endpoint, now))
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signatures,
        }
        # Streamed and never read: a receiver's answer body is not ours to buffer.
        async with self._http.stream("POST", endpoint.url, content=body.encode("utf-8"), headers=headers) as response:
            return response.status_code
