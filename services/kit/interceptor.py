"""The edge: the one place where every RPC gets its request id, log line, metrics, caller identity
and error mapping.

Each servicer's method handlers are wrapped once, when ``build_server`` registers them
(``Edge.register``), not by a ``grpc.aio`` server interceptor: an interceptor costs a chain of
coroutines and a handler lookup on every call (issue 20 measured the edge at +65 µs of server CPU
per unary RPC). Health and reflection are registered unwrapped (always anonymous, not logged).

Handlers raise :class:`~services.kit.errors.ServiceError`; a database that is down or ended the
session (``services.kit.db.is_database_down``) becomes UNAVAILABLE ``DATABASE_UNAVAILABLE``; anything
else becomes INTERNAL (logged with its traceback, never sent to the client).
"""

from __future__ import annotations

import inspect
import os
import random
import re
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import grpc
import structlog
from google.protobuf.descriptor import Descriptor

from services.kit import auth as kit_auth
from services.kit import tracing
from services.kit.config import ServiceConfig
from services.kit.db import is_database_down
from services.kit.enums import check_enums, may_hold_enums
from services.kit.errors import ServiceError
from services.kit.logs import access_log
from services.kit.metrics import RpcStats, rpc_stats
from services.kit.scopes import check_scope

__all__ = ["Edge", "MethodPolicy"]

_log = structlog.get_logger("viarte.rpc")
# Request ids only correlate log lines (never a secret): the Mersenne Twister is ~10x cheaper per
# call than os.urandom, seeded from the OS per process.
_ids = random.Random()
# What a caller's x-request-id may be to be kept (UUIDs, hex, ULIDs, dotted/colon forms): it goes
# into every log line of the request and into the services' own calls.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
os.register_at_fork(after_in_child=_ids.seed)  # a forked child must not repeat its parent's ids


@dataclass(frozen=True)
class MethodPolicy:
    anonymous: bool = False
    internal: bool = False


class Edge:
    """One server's edge: its config, authenticator and the policy of each method."""

    def __init__(
        self,
        config: ServiceConfig,
        authenticator: kit_auth.Authenticator | None,
        policies: dict[str, MethodPolicy],
    ) -> None:
        self.config = config
        self.authenticator = authenticator
        self.policies = policies

    def register(self, server: grpc.aio.Server, add_to_server: Callable[[Any], None]) -> None:
        """Runs a generated ``add_*_to_server`` against ``server`` with every handler it adds wrapped."""
        registrar = _Registrar(self)
        add_to_server(registrar)
        registrar.flush(server)

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        policy = self.policies.get(method, MethodPolicy())
        return _wrap(handler, _MethodEdge(self, method, policy, rpc_stats(self.config.service_name, method)))


class _Registrar:
    """Stands in for the server while a generated ``add_*_to_server`` registers a servicer: it hands
    over a dict of method handlers (``add_registered_method_handlers``) and the same handlers as a
    generic handler; both are registered wrapped. A generic handler without that dict (older
    generated code) is wrapped per method on first use."""

    def __init__(self, edge: Edge) -> None:
        self._edge = edge
        self._generic: list[grpc.GenericRpcHandler] = []
        self._registered: dict[str, dict[str, grpc.RpcMethodHandler]] = {}

    def add_generic_rpc_handlers(self, handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        self._generic.extend(handlers)

    def add_registered_method_handlers(self, service: str, handlers: Mapping[str, grpc.RpcMethodHandler]) -> None:
        self._registered[service] = {name: self._edge.wrap(f"/{service}/{name}", h) for name, h in handlers.items()}

    def flush(self, server: grpc.aio.Server) -> None:
        for service, handlers in self._registered.items():
            server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
            server.add_registered_method_handlers(service, handlers)
        for generic in self._generic:
            name = getattr(generic, "service_name", None)
            if name is None or name() not in self._registered:
                server.add_generic_rpc_handlers((_WrappingHandler(self._edge, generic),))


class _WrappingHandler(grpc.GenericRpcHandler):  # type: ignore[misc]
    def __init__(self, edge: Edge, inner: grpc.GenericRpcHandler) -> None:
        self._edge, self._inner = edge, inner
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        handler = self._inner.service(details)
        if handler is None:
            return None
        cached = self._wrapped.get(details.method)
        if cached is None or cached[0] is not handler:
            cached = self._wrapped[details.method] = (handler, self._edge.wrap(details.method, handler))
        return cached[1]


class _MethodEdge:
    """Per-method state shared by every call of that method."""

    __slots__ = ("authenticator", "domain", "method", "policy", "service", "stats")

    def __init__(self, edge: Edge, method: str, policy: MethodPolicy, stats: RpcStats) -> None:
        self.method, self.policy, self.stats = method, policy, stats
        self.authenticator = edge.authenticator
        self.domain = edge.config.domain
        self.service = edge.config.service_name

    async def enter(self, context: grpc.aio.ServicerContext) -> None:
        # Non-binary keys (all the edge reads) always carry str values.
        metadata = dict(context.invocation_metadata() or ())
        # A caller's own id (the SDK's, which its errors carry; another service's) is kept when it
        # looks like one; anything else (empty, overlong, odd characters) gets a fresh id.
        given = metadata.get("x-request-id", "")
        kit_auth._request_id.set(given if _REQUEST_ID.fullmatch(given) else f"{_ids.getrandbits(96):024x}")
        # First, so authentication failures are traced too; ended in finish().
        tracing.start_rpc_span(self.method, metadata)
        authenticator = self.authenticator
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
        domain = self.domain
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
        elapsed = perf_counter() - started
        code = _code_of(context, error)
        stats = self.stats
        stats.in_flight -= 1
        stats.observe(code, elapsed)
        principal = kit_auth._principal.get()
        request_id = kit_auth._request_id.get()
        subject = principal.subject if principal else None
        fields = {
            "event": "rpc",
            "service": self.service,
            "method": self.method,
            "code": code,
            # Whole microseconds in ms: round(x, 3) formats through a decimal string (~1 µs per call).
            "ms": int(elapsed * 1_000_000) / 1000,
            "request_id": request_id,
            "principal": subject,
        }
        ids = tracing.end_rpc_span(code, request_id, subject)
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


def _wrap(handler: grpc.RpcMethodHandler, edge: _MethodEdge) -> grpc.RpcMethodHandler:
    # The edge's steps are written inline in both wrappers (no `async with` helper): a context
    # manager is two more coroutines per RPC.
    if handler.unary_unary is not None or handler.stream_unary is not None:
        inner = handler.unary_unary or handler.stream_unary
        client_streaming = handler.unary_unary is None
        # Decided here, once per method: most request types hold no enum, and then a unary call
        # skips the enum check entirely.
        checked = _checked if client_streaming or _may_hold_enums_of(handler) else _as_is

        async def unary_response(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = perf_counter()
            edge.stats.in_flight += 1
            error: BaseException | None = None
            try:
                await edge.enter(context)
                return await inner(checked(request, client_streaming), context)
            except BaseException as exc:
                error = exc
                if isinstance(exc, Exception) and not _is_abort(exc):
                    await edge.fail(context, exc)  # aborts the call: raises
                raise
            finally:
                edge.finish(context, started, error)

        factory = (
            grpc.unary_unary_rpc_method_handler if handler.unary_unary is not None else grpc.stream_unary_rpc_method_handler
        )
        return factory(unary_response, handler.request_deserializer, handler.response_serializer)

    inner_stream = handler.unary_stream or handler.stream_stream
    client_streams = handler.unary_stream is None

    async def stream_response(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        started = perf_counter()
        edge.stats.in_flight += 1
        error: BaseException | None = None
        try:
            await edge.enter(context)
            result = inner_stream(_checked(request, client_streams), context)
            if inspect.isasyncgen(result):
                async for message in result:
                    yield message
            else:  # a coroutine that writes with context.write()
                await result
        except BaseException as exc:
            error = exc
            if isinstance(exc, Exception) and not _is_abort(exc):
                await edge.fail(context, exc)  # aborts the call: raises
            raise
        finally:
            edge.finish(context, started, error)

    factory = (
        grpc.unary_stream_rpc_method_handler if handler.unary_stream is not None else grpc.stream_stream_rpc_method_handler
    )
    return factory(stream_response, handler.request_deserializer, handler.response_serializer)


def _may_hold_enums_of(handler: grpc.RpcMethodHandler) -> bool:
    """Whether the handler's request type may hold an enum field; True when the type is not known
    from its deserializer (a generated ``Message.FromString`` names its class)."""
    message_type = getattr(handler.request_deserializer, "__self__", None)
    descriptor = getattr(message_type, "DESCRIPTOR", None)
    return not isinstance(descriptor, Descriptor) or may_hold_enums(descriptor)


def _as_is(request: Any, _streaming: bool) -> Any:
    return request


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
