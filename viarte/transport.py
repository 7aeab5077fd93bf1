"""Channels, deadlines, retries and call metadata: the one code path every SDK call takes.

One ``grpc.aio`` channel per distinct address (direct to each service, or one address for all of
them through Envoy). Unary calls get an overall deadline, a fresh ``x-request-id`` and the
credentials' metadata, and are retried with exponential backoff and jitter on UNAVAILABLE (the
server's ``RetryInfo`` delay wins when it is longer). A call is retried only when it is safe:
reads, creates that carry a ``request_id`` the server deduplicates on, and a Refresh once (within
the auth service's retry grace for a lost answer).

Tracing: when ``opentelemetry-api`` is importable, every call carries the caller's current trace
context as a W3C ``traceparent`` (through the application's configured propagator), so an
application's span becomes the parent of the services' spans. The SDK does not depend on it and
starts no trace of its own: without a current span there is nothing to send, and the services
start the trace at their edge.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import grpc
import grpc.aio

from viarte.errors import (
    ClientError,
    DeadlineExceeded,
    RateLimited,
    Unauthenticated,
    Unavailable,
    ViarteError,
    from_rpc_error,
)

__all__ = [
    "SERVICES",
    "CallCredentials",
    "Endpoints",
    "RetryPolicy",
    "TlsConfig",
    "Transport",
]

_otel_inject: Callable[[dict[str, str]], None] | None
try:  # optional: the SDK must stay importable (and cheap) without OpenTelemetry
    from opentelemetry.propagate import inject as _otel_inject
except ImportError:  # pragma: no cover - exercised in environments without opentelemetry-api
    _otel_inject = None

SERVICES = ("auth", "storage", "inference", "render", "account")
USER_AGENT = "viarte-python/0.1"
T = TypeVar("T")
Metadata = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Endpoints:
    """Where each service listens. ``Endpoints.single(addr)`` sends everything to one address."""

    auth: str = "127.0.0.1:50051"
    storage: str = "127.0.0.1:50052"
    inference: str = "127.0.0.1:50053"
    render: str = "127.0.0.1:50054"
    account: str = "127.0.0.1:50055"

    @classmethod
    def single(cls, address: str) -> Endpoints:
        return cls(auth=address, storage=address, inference=address, render=address, account=address)

    @classmethod
    def from_mapping(cls, values: Mapping[str, str]) -> Endpoints:
        unknown = set(values) - set(SERVICES)
        if unknown:
            raise ClientError(f"unknown services in endpoints: {sorted(unknown)}")
        return cls(**{k: v for k, v in values.items() if v})

    def address(self, service: str) -> str:
        if service not in SERVICES:
            raise ClientError(f"unknown service {service!r}")
        return str(getattr(self, service))

    def as_dict(self) -> dict[str, str]:
        return {s: self.address(s) for s in SERVICES}


@dataclass(frozen=True)
class TlsConfig:
    """TLS for every channel. Empty roots use the system trust store; key + chain enable mTLS."""

    root_certificates: bytes | None = None
    private_key: bytes | None = None
    certificate_chain: bytes | None = None
    # Overrides the name checked against the server certificate (tests, IP addresses).
    server_name: str = ""

    @classmethod
    def from_files(
        cls, ca: str | Path | None = None, cert: str | Path | None = None, key: str | Path | None = None,
        server_name: str = "",
    ) -> TlsConfig:
        def read(p: str | Path | None) -> bytes | None:
            return Path(p).read_bytes() if p else None

        return cls(read(ca), read(key), read(cert), server_name)

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(self.root_certificates, self.private_key, self.certificate_chain)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter for UNAVAILABLE (and, when enabled, rate limits)."""

    max_attempts: int = 5
    initial_backoff: float = 0.2
    max_backoff: float = 10.0
    multiplier: float = 2.0
    # Fraction of the delay drawn at random, so that many clients don't retry in lockstep.
    jitter: float = 0.2
    # Also retry RESOURCE_EXHAUSTED answers that carry RetryInfo (QUEUE_FULL, RATE_LIMITED).
    retry_rate_limited: bool = False
    # Never sleep longer than this for one retry, whatever RetryInfo asks.
    max_retry_after: float = 30.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
        base = min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))
        base *= 1 + self.jitter * (2 * random.random() - 1)
        if retry_after is not None:
            base = max(base, min(retry_after, self.max_retry_after))
        return max(0.0, base)

    def retryable(self, err: ViarteError) -> bool:
        if isinstance(err, Unavailable):
            return True
        return self.retry_rate_limited and isinstance(err, RateLimited) and err.retry_after is not None


class CallCredentials(Protocol):
    """What the transport needs from credentials (see ``viarte.credentials``)."""

    async def metadata(self) -> Metadata: ...

    async def refresh(self, rejected: Metadata) -> bool:
        """Called after UNAUTHENTICATED/TOKEN_EXPIRED; True when new credentials are worth a retry."""
        ...


_DEFAULT = object()


@dataclass
class Transport:
    """Owns the channels. Safe to share between tasks of one event loop."""

    endpoints: Endpoints = field(default_factory=Endpoints)
    tls: TlsConfig | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # Default deadline of unary calls; streams (watch, upload, download) take theirs per call.
    timeout: float | None = 30.0
    credentials: CallCredentials | None = None
    channel_options: Sequence[tuple[str, Any]] = ()
    _channels: dict[str, grpc.aio.Channel] = field(default_factory=dict, init=False, repr=False)
    _stubs: dict[tuple[Any, str], Any] = field(default_factory=dict, init=False, repr=False)

    # -- channels ---------------------------------------------------------------------------
    def channel(self, service: str) -> grpc.aio.Channel:
        address = self.endpoints.address(service)
        chan = self._channels.get(address)
        if chan is None:
            chan = self._open(address)
            self._channels[address] = chan
        return chan

    def _open(self, address: str) -> grpc.aio.Channel:
        options: list[tuple[str, Any]] = [
            ("grpc.primary_user_agent", USER_AGENT),
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.keepalive_time_ms", 30_000),
            # The SDK retries itself (with request ids); grpc's transparent retries would double up.
            ("grpc.enable_retries", 0),
            *self.channel_options,
        ]
        if self.tls is None:
            return grpc.aio.insecure_channel(address, options=options)
        if self.tls.server_name:
            options.append(("grpc.ssl_target_name_override", self.tls.server_name))
        return grpc.aio.secure_channel(address, self.tls.credentials(), options=options)

    def stub(self, stub_cls: Callable[[grpc.aio.Channel], T], service: str) -> T:
        key = (stub_cls, self.endpoints.address(service))
        stub = self._stubs.get(key)
        if stub is None:
            stub = stub_cls(self.channel(service))
            self._stubs[key] = stub
        return stub

    async def close(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        self._stubs.clear()
        for chan in channels:
            await chan.close()

    # -- metadata ---------------------------------------------------------------------------
    async def metadata(self, request_id: str, authenticate: bool) -> Metadata:
        md: Metadata = (("x-request-id", request_id),)
        if authenticate and self.credentials is not None:
            md += await self.credentials.metadata()
        return md + trace_metadata()

    def _deadline(self, timeout: Any) -> float | None:
        value = self.timeout if timeout is _DEFAULT else timeout
        return None if value is None else time.monotonic() + float(value)

    @staticmethod
    def _remaining(deadline: float | None, request_id: str) -> float | None:
        if deadline is None:
            return None
        left = deadline - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded("deadline exceeded before the call could be retried", request_id=request_id)
        return left

    async def _after_failure(
        self, err: ViarteError, *, attempt: int, retry: bool, authenticate: bool, refreshed: bool, md: Metadata,
        deadline: float | None, max_attempts: int | None = None,
    ) -> bool:
        """Decides whether to try again (sleeping for the backoff); True = try again.
        ``max_attempts`` lowers the retry policy's limit, never raises it."""
        if (
            authenticate
            and not refreshed
            and isinstance(err, Unauthenticated)
            and err.reason == "TOKEN_EXPIRED"
            and self.credentials is not None
            and await self.credentials.refresh(md)
        ):
            return True
        limit = self.retry.max_attempts if max_attempts is None else min(max_attempts, self.retry.max_attempts)
        if not (retry and self.retry.retryable(err) and attempt < limit):
            return False
        delay = self.retry.delay(attempt, err.retry_after)
        if deadline is not None and time.monotonic() + delay >= deadline:
            return False
        await asyncio.sleep(delay)
        return True

    # -- calls ------------------------------------------------------------------------------
    async def unary(
        self,
        method: Any,
        request: Any,
        *,
        retry: bool,
        max_attempts: int | None = None,
        timeout: Any = _DEFAULT,  # noqa: ASYNC109 - a gRPC deadline, passed down to each attempt
        authenticate: bool = True,
    ) -> Any:
        """One unary call with deadline, metadata, token refresh and (when ``retry``) retries.
        ``max_attempts`` lowers the retry policy's limit for a call whose retries must stay few."""
        deadline = self._deadline(timeout)
        request_id = uuid.uuid4().hex
        attempt, refreshed = 0, False
        while True:
            attempt += 1
            md = await self.metadata(request_id, authenticate)
            try:
                return await method(request, timeout=self._remaining(deadline, request_id), metadata=md)
            except grpc.RpcError as exc:
                err = _decode(exc, request_id)
            again = await self._after_failure(
                err, attempt=attempt, retry=retry, authenticate=authenticate, refreshed=refreshed, md=md,
                deadline=deadline, max_attempts=max_attempts,
            )
            if not again:
                raise err
            refreshed = refreshed or isinstance(err, Unauthenticated)

    async def stream_unary(
        self,
        method: Any,
        requests: Callable[[], AsyncIterator[Any] | Iterable[Any]],
        *,
        retry: bool,
        timeout: Any = None,  # noqa: ASYNC109 - a gRPC deadline
    ) -> Any:
        """A client-streaming call; ``requests`` is a factory so a retry can send the stream again."""
        deadline = self._deadline(timeout)
        request_id = uuid.uuid4().hex
        attempt, refreshed = 0, False
        while True:
            attempt += 1
            md = await self.metadata(request_id, True)
            try:
                return await _send_stream(method, requests(), self._remaining(deadline, request_id), md)
            except grpc.RpcError as exc:
                err = _decode(exc, request_id)
            if not await self._after_failure(
                err, attempt=attempt, retry=retry, authenticate=True, refreshed=refreshed, md=md, deadline=deadline
            ):
                raise err
            refreshed = refreshed or isinstance(err, Unauthenticated)

    async def unary_stream(
        self,
        method: Any,
        request: Any,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline
    ) -> AsyncIterator[Any]:
        """A server-streaming call; errors surface as ``ViarteError``. Resuming is the caller's job
        (it knows the resume point: a sequence number, a byte offset)."""
        request_id = uuid.uuid4().hex
        refreshed = False
        while True:
            md = await self.metadata(request_id, True)
            call = method(request, timeout=timeout, metadata=md)
            received = False
            try:
                async for message in call:
                    received = True
                    yield message
                return
            except grpc.RpcError as exc:
                err = _decode(exc, request_id)
            finally:
                call.cancel()
            if received or refreshed or not await self._after_failure(
                err, attempt=self.retry.max_attempts, retry=False, authenticate=True, refreshed=False, md=md,
                deadline=None,
            ):
                raise err
            refreshed = True


async def _send_stream(
    method: Any, requests: AsyncIterator[Any] | Iterable[Any], deadline: float | None, md: Metadata
) -> Any:
    """Writes the request stream message by message. When the server answers early (e.g.
    PERMISSION_DENIED before reading the body) a write fails with INTERNAL "Internal error from
    Core"; the call's own status, awaited afterwards, is the server's real answer."""
    call = method(timeout=deadline, metadata=md)
    try:
        if isinstance(requests, AsyncIterator):
            async for message in requests:
                await call.write(message)
        else:
            for message in requests:
                await call.write(message)
        await call.done_writing()
    except (grpc.RpcError, asyncio.InvalidStateError, grpc.aio.UsageError):
        pass  # the call already ended (a failed write reports INTERNAL); its real status is awaited below
    except BaseException:
        call.cancel()
        raise
    return await call


def trace_metadata() -> Metadata:
    """``traceparent`` (and ``tracestate``, baggage...) of the caller's current OpenTelemetry
    context; empty without opentelemetry-api or outside a span. Every call's metadata goes through
    ``Transport.metadata``, so this is the one place (cheaper than an aio interceptor per channel,
    which costs a task per call)."""
    if _otel_inject is None:
        return ()
    carrier: dict[str, str] = {}
    _otel_inject(carrier)
    return tuple(carrier.items())


def _decode(exc: grpc.RpcError, request_id: str) -> ViarteError:
    err = from_rpc_error(exc)
    if not err.request_id:
        err.request_id = request_id
    return err


async def call_soon_shielded(fn: Callable[[], Awaitable[Any]], limit: float = 5.0) -> None:
    """Runs ``fn`` to completion even though the current task is being cancelled (best effort)."""
    task = asyncio.ensure_future(fn())
    try:
        await asyncio.wait_for(asyncio.shield(task), limit)
    except (TimeoutError, ViarteError, asyncio.CancelledError):
        pass
