"""The edge interceptor: the one place where every RPC gets its request id, log line, metrics,
caller identity and error mapping.

Handlers raise :class:`~services.kit.errors.ServiceError`; a database that is down or ended the
session (``services.kit.db.is_database_down``) becomes UNAVAILABLE ``DATABASE_UNAVAILABLE``; anything
else becomes INTERNAL (logged with its traceback, never sent to the client).
"""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import structlog

from services.kit import auth as kit_auth
from services.kit import tracing
from services.kit.config import ServiceConfig
from services.kit.db import is_database_down
from services.kit.enums import check_enums
from services.kit.errors import ServiceError
from services.kit.logs import access_log
from services.kit.metrics import RPC_IN_FLIGHT, RPC_LATENCY, RPC_TOTAL
from services.kit.scopes import check_scope

__all__ = ["EdgeInterceptor", "MethodPolicy"]

_log = structlog.get_logger("viarte.rpc")
_ALWAYS_ANONYMOUS = ("/grpc.health.v1.Health/", "/grpc.reflection.")


@dataclass(frozen=True)
class MethodPolicy:
    anonymous: bool = False
    internal: bool = False


class _Metrics:
    __slots__ = ("in_flight", "latency", "method", "service", "totals")

    def __init__(self, service: str, method: str) -> None:
        self.service, self.method = service, method
        self.in_flight = RPC_IN_FLIGHT.labels(service, method)
        self.latency = RPC_LATENCY.labels(service, method)
        self.totals: dict[str, Any] = {}

    def count(self, code: str) -> None:
        counter = self.totals.get(code)
        if counter is None:
            counter = self.totals[code] = RPC_TOTAL.labels(self.service, self.method, code)
        counter.inc()


class EdgeInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(
        self,
        config: ServiceConfig,
        authenticator: kit_auth.Authenticator | None,
        policies: dict[str, MethodPolicy],
    ) -> None:
        self._config = config
        self._authenticator = authenticator
        self._policies = policies
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return None
        method: str = details.method
        if method.startswith(_ALWAYS_ANONYMOUS):
            return handler
        # Generic handlers return the same handler object per method: wrap it once, not per call.
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        policy = self._policies.get(method, MethodPolicy())
        wrapped = _wrap(handler, _Edge(self, method, policy, _Metrics(self._config.service_name, method)))
        self._wrapped[method] = (handler, wrapped)
        return wrapped


class _Edge:
    """Per-method state shared by every call of that method."""

    __slots__ = ("interceptor", "method", "metrics", "policy")

    def __init__(self, interceptor: EdgeInterceptor, method: str, policy: MethodPolicy, metrics: _Metrics) -> None:
        self.interceptor, self.method, self.policy, self.metrics = interceptor, method, policy, metrics

    async def enter(self, context: grpc.aio.ServicerContext) -> None:
        metadata = {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
        kit_auth._request_id.set(metadata.get("x-request-id") or os.urandom(12).hex())
        # First, so authentication failures are traced too; ended in finish().
        tracing.start_rpc_span(self.method, metadata)
        authenticator = self.interceptor._authenticator
        if self.policy.anonymous:
            # A stale token sent along with Login or Refresh must not block the call that renews it.
            try:
                principal = await authenticator.authenticate(metadata) if authenticator is not None else None
            except ServiceError:
                principal = None
            kit_auth._principal.set(principal)
            return
        principal = await authenticator.authenticate(metadata) if authenticator is not None else None
        kit_auth._principal.set(principal)
        if principal is None:
            raise ServiceError.unauthenticated("UNAUTHENTICATED", "credentials required", domain="viarte.auth")
        if self.policy.internal and not principal.is_service:
            raise ServiceError.permission_denied(
                "PERMISSION_DENIED", "internal RPC: service credentials required", domain="viarte.auth"
            )
        # API keys only reach the RPCs their scopes grant (the one table in services/kit/scopes.py).
        check_scope(principal, self.method)

    async def fail(self, context: grpc.aio.ServicerContext, exc: BaseException) -> None:
        domain = self.interceptor._config.domain
        if isinstance(exc, ServiceError):
            await context.abort_with_status(exc.to_status(domain))
        if is_database_down(exc):
            # Not a bug: the client retries (never the URL in the answer or the log line).
            _log.warning("rpc.database_unavailable", method=self.method, error=type(exc).__name__)
            await context.abort_with_status(ServiceError.unavailable(
                "DATABASE_UNAVAILABLE", "the service's database is unavailable; retry shortly", retry_after=1.0,
            ).to_status(domain))
        _log.error("rpc.unhandled", method=self.method, request_id=kit_auth.request_id(), exc_info=exc)
        await context.abort_with_status(ServiceError.internal().to_status(domain))

    def finish(self, context: grpc.aio.ServicerContext, started: float, error: BaseException | None) -> None:
        elapsed = time.perf_counter() - started
        code = _code_of(context, error)
        self.metrics.count(code)
        self.metrics.latency.observe(elapsed)
        principal = kit_auth._principal.get()
        fields = {
            "event": "rpc",
            "service": self.metrics.service,
            "method": self.method,
            "code": code,
            "ms": round(elapsed * 1000, 3),
            "request_id": kit_auth._request_id.get(),
            "principal": principal.subject if principal else None,
        }
        ids = tracing.end_rpc_span(code, {"viarte.request_id": fields["request_id"], "enduser.id": fields["principal"]})
        if ids is not None:
            fields["trace_id"], fields["span_id"] = ids
        access_log(fields)


def _code_of(context: grpc.aio.ServicerContext, error: BaseException | None) -> str:
    if isinstance(error, ServiceError):
        return str(error.code.name)
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    if error is not None:
        return "CANCELLED" if isinstance(error, BaseException) and "Cancel" in type(error).__name__ else "INTERNAL"
    return "OK"


class _Call:
    """One call's edge: in-flight gauge, identity, error mapping, then metrics and the access line.
    Unary and streaming handlers both run inside ``async with _Call(edge, context):``."""

    __slots__ = ("context", "edge", "started")

    def __init__(self, edge: _Edge, context: grpc.aio.ServicerContext) -> None:
        self.edge, self.context = edge, context

    async def __aenter__(self) -> None:
        self.started = time.perf_counter()
        self.edge.metrics.in_flight.inc()
        try:
            await self.edge.enter(self.context)
        except BaseException as exc:
            # `async with` skips __aexit__ when __aenter__ raises: a refused call is counted here.
            await self.__aexit__(type(exc), exc, exc.__traceback__)
            raise

    async def __aexit__(self, _type: type[BaseException] | None, exc: BaseException | None, _tb: Any) -> bool:
        try:
            if isinstance(exc, Exception) and not _is_abort(exc):
                await self.edge.fail(self.context, exc)  # aborts the call: raises
        finally:
            self.edge.metrics.in_flight.dec()
            self.edge.finish(self.context, self.started, exc)
        return False


def _wrap(handler: grpc.RpcMethodHandler, edge: _Edge) -> grpc.RpcMethodHandler:
    if handler.unary_unary is not None or handler.stream_unary is not None:
        inner = handler.unary_unary or handler.stream_unary
        client_streaming = handler.unary_unary is None

        async def unary_response(request: Any, context: grpc.aio.ServicerContext) -> Any:
            async with _Call(edge, context):
                return await inner(_checked(request, client_streaming), context)

        factory = (
            grpc.unary_unary_rpc_method_handler if handler.unary_unary is not None else grpc.stream_unary_rpc_method_handler
        )
        return factory(unary_response, handler.request_deserializer, handler.response_serializer)

    inner_stream = handler.unary_stream or handler.stream_stream
    client_streams = handler.unary_stream is None

    async def stream_response(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        async with _Call(edge, context):
            result = inner_stream(_checked(request, client_streams), context)
            if inspect.isasyncgen(result):
                async for message in result:
                    yield message
            else:  # a coroutine that writes with context.write()
                await result

    factory = (
        grpc.unary_stream_rpc_method_handler if handler.unary_stream is not None else grpc.stream_stream_rpc_method_handler
    )
    return factory(stream_response, handler.request_deserializer, handler.response_serializer)


def _checked(request: Any, streaming: bool) -> Any:
    """The request with every enum field checked (unknown numbers → INVALID_ARGUMENT); a request
    stream is checked message by message as the handler reads it."""
    if not streaming:
        check_enums(request)
        return request

    async def each() -> AsyncIterator[Any]:
        async for message in request:
            check_enums(message)
            yield message

    return each()


def _is_abort(exc: BaseException) -> bool:
    # grpc.aio signals context.abort() with this internal exception; it must pass through untouched.
    return type(exc).__name__ == "AbortError"
