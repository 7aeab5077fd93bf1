"""One way to build, run and stop a service's gRPC server.

``build_server`` returns ``(server, port)`` like grpc's own helpers; ``serve`` runs a service until
SIGTERM/SIGINT and shuts it down gracefully; ``stop`` flips health to NOT_SERVING, drains RPCs for
the grace period and runs the shutdown hooks the service registered.
"""

from __future__ import annotations

import asyncio
import importlib
import signal
import sys
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from services.kit.auth import Authenticator
from services.kit.channels import MAX_MESSAGE_BYTES
from services.kit.config import ServiceConfig, load_config
from services.kit.db import run_db, wait_for_database
from services.kit.errors import ServiceError
from services.kit.interceptor import Edge, MethodPolicy
from services.kit.logs import configure_logging, get_logger
from services.kit.metrics import start_metrics_server
from services.kit.tracing import configure_tracing, shutdown_tracing

__all__ = ["PortInUseError", "Service", "add_shutdown_hook", "build_server", "health_of", "run", "serve", "stop"]

ShutdownHook = Callable[[], Awaitable[None]]
_hooks: weakref.WeakKeyDictionary[grpc.aio.Server, list[ShutdownHook]] = weakref.WeakKeyDictionary()
_health: weakref.WeakKeyDictionary[grpc.aio.Server, health.aio.HealthServicer] = weakref.WeakKeyDictionary()
_log = get_logger("viarte.server")


class PortInUseError(RuntimeError):
    """The configured port could not be bound (another process holds it)."""


@dataclass(frozen=True)
class Service:
    """A servicer to expose. ``internal``: only service principals may call it (never routed by the
    gateway). ``anonymous``: method names callable without credentials."""

    servicer: object
    internal: bool = False
    anonymous: frozenset[str] = frozenset()

    @property
    def _generated_base(self) -> type:
        for base in type(self.servicer).__mro__:
            if base.__name__.endswith("Servicer") and base.__module__.endswith("_pb2_grpc"):
                return base
        raise TypeError(f"{type(self.servicer).__name__} does not subclass a generated *Servicer")

    @property
    def descriptor(self) -> ServiceDescriptor:
        base = self._generated_base
        pb2 = importlib.import_module(base.__module__.removesuffix("_grpc"))
        descriptor: ServiceDescriptor = pb2.DESCRIPTOR.services_by_name[base.__name__.removesuffix("Servicer")]
        return descriptor

    @property
    def full_name(self) -> str:
        return str(self.descriptor.full_name)

    def register(self, server: grpc.aio.Server, edge: Edge) -> None:
        """Adds the servicer with each method handler wrapped by the edge (once, here)."""
        base = self._generated_base
        add_to_server = getattr(sys.modules[base.__module__], f"add_{base.__name__}_to_server")
        edge.register(server, lambda target: add_to_server(self.servicer, target))

    def policies(self) -> dict[str, MethodPolicy]:
        unknown = self.anonymous - {m.name for m in self.descriptor.methods}
        if unknown:
            raise ValueError(f"{self.full_name} has no methods {sorted(unknown)}")
        return {
            f"/{self.full_name}/{m.name}": MethodPolicy(anonymous=m.name in self.anonymous, internal=self.internal)
            for m in self.descriptor.methods
        }


SERVER_OPTIONS: tuple[tuple[str, int], ...] = (
    # grpcio otherwise lets a second server bind the same port silently.
    ("grpc.so_reuseport", 0),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
)


async def build_server(
    config: ServiceConfig,
    services: Sequence[Service],
    *,
    authenticator: Authenticator | None = None,
    health_servicer: health.aio.HealthServicer | None = None,
) -> tuple[grpc.aio.Server, int]:
    """Build (not start) a server with health, reflection and the edge around every service's methods."""
    policies: dict[str, MethodPolicy] = {}
    for service in services:
        policies.update(service.policies())
    authenticator = authenticator or Authenticator(config)
    server = grpc.aio.server(options=SERVER_OPTIONS, maximum_concurrent_rpcs=config.max_concurrent_rpcs or None)
    edge = Edge(config, authenticator, policies)
    for service in services:
        service.register(server, edge)
    health_servicer = health_servicer or health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [s.full_name for s in services]
    for name in [*names, ""]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    _enable_reflection(server, [*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name])
    port = _bind(server, config)
    _health[server] = health_servicer
    _hooks[server] = [authenticator.close]
    # Every service follows auth's revocation feed from its start (auth itself reads its tables).
    authenticator.start()
    server.authenticator = authenticator  # exposed for tests (feed state); not part of the API
    return server, port


REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"


def _enable_reflection(server: grpc.aio.Server, names: list[str]) -> None:
    """Server reflection as ``grpc.reflection.v1`` (what current grpcurl and buf ask for first) and
    ``v1alpha`` (older clients). grpcio-reflection ships only v1alpha; v1 is the same protocol under
    a new package (identical messages and field numbers), so one servicer answers both, v1 through
    a generic handler with the v1alpha (de)serialisers."""
    _register_v1_descriptor()
    servicer = reflection.aio.ReflectionServicer([*names, REFLECTION_V1, reflection.SERVICE_NAME])
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    v1 = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(REFLECTION_V1, {"ServerReflectionInfo": v1}),))


def _register_v1_descriptor() -> None:
    """Puts grpc/reflection/v1/reflection.proto (v1alpha's file under the v1 package) in the default
    descriptor pool, so clients can also resolve the v1 service itself through reflection."""
    pool = descriptor_pool.Default()
    try:
        pool.FindServiceByName(REFLECTION_V1)
        return
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    proto.name, proto.package = "grpc/reflection/v1/reflection.proto", "grpc.reflection.v1"
    proto.options.Clear()
    for message in proto.message_type:
        for f in message.field:
            if f.type_name:
                f.type_name = f.type_name.replace(".grpc.reflection.v1alpha.", ".grpc.reflection.v1.")
    for method in proto.service[0].method:
        method.input_type = method.input_type.replace(".grpc.reflection.v1alpha.", ".grpc.reflection.v1.")
        method.output_type = method.output_type.replace(".grpc.reflection.v1alpha.", ".grpc.reflection.v1.")
    pool.Add(proto)


def _bind(server: grpc.aio.Server, config: ServiceConfig) -> int:
    try:
        if getattr(config, "tls_cert_file", ""):
            cert = Path(config.tls_cert_file).read_bytes()  # type: ignore[attr-defined]
            key = Path(config.tls_key_file).read_bytes()  # type: ignore[attr-defined]
            port = server.add_secure_port(config.bind_address, grpc.ssl_server_credentials([(key, cert)]))
        else:
            port = server.add_insecure_port(config.bind_address)
    except RuntimeError as exc:
        raise PortInUseError(f"cannot bind {config.bind_address}: {exc}") from exc
    if port == 0 or (config.port and port != config.port):
        raise PortInUseError(f"cannot bind {config.bind_address}")
    return int(port)


def add_shutdown_hook(server: grpc.aio.Server, hook: ShutdownHook) -> None:
    """Run ``hook`` after the server stopped (close DB engines, worker processes, channels)."""
    _hooks.setdefault(server, []).append(hook)


def health_of(server: grpc.aio.Server) -> health.aio.HealthServicer:
    return _health[server]


async def stop(server: grpc.aio.Server, grace: float | None = 1.0) -> None:
    """NOT_SERVING, drain in-flight RPCs for ``grace`` seconds, then run shutdown hooks (LIFO)."""
    servicer = _health.get(server)
    if servicer is not None:
        await servicer.enter_graceful_shutdown()
    await server.stop(grace)
    for hook in reversed(_hooks.pop(server, [])):
        try:
            await hook()
        except Exception:  # a failing hook must not keep the others from running
            _log.exception("shutdown_hook.failed")


C = TypeVar("C", bound=ServiceConfig)
Builder = Callable[[C], Awaitable[tuple[grpc.aio.Server, int]]]


async def serve(config: C, build: Builder[C], *, ready: Callable[[int], Any] | None = None) -> None:
    """Build, start and run a service until SIGTERM/SIGINT, then stop it gracefully."""
    configure_logging(config)
    configure_tracing(config.service_name, config.otlp_endpoint)  # before build: channels take its interceptors
    await wait_for_own_database(config)
    server, port = await build(config)
    await server.start()
    metrics_port = start_metrics_server(config.metrics_port, config.host) if config.metrics_port >= 0 else None
    _log.info("server.started", address=f"{config.host}:{port}", metrics_port=metrics_port)
    if ready is not None:
        ready(port)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    _log.info("server.stopping", grace_seconds=config.grace_period_seconds)
    await stop(server, config.grace_period_seconds)
    shutdown_tracing()  # exports the spans still buffered
    _log.info("server.stopped")


async def wait_for_own_database(config: ServiceConfig) -> None:
    """Until the service's PostgreSQL answers, its port serves a stand-in: health NOT_SERVING (the
    mesh, Envoy and compose keep traffic away) and UNAVAILABLE with reason DATABASE_UNAVAILABLE for
    every other call, instead of a refused connection; the real server binds once it answers."""
    url = str(getattr(config, "database_url", "") or "")
    if not url or url.startswith("sqlite"):
        return
    standby = None
    if config.port:
        standby = grpc.aio.server(options=SERVER_OPTIONS)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, standby)
        await health_servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        standby.add_generic_rpc_handlers((_DatabaseUnavailable(config.domain),))
        _bind(standby, config)
        await standby.start()
    try:
        await run_db(wait_for_database, url, config.database_wait_seconds)
    finally:
        if standby is not None:
            await standby.stop(None)


class _DatabaseUnavailable(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Answers any method but health's while the database is unreachable at start."""

    def __init__(self, domain: str) -> None:
        self._status = ServiceError.unavailable(
            "DATABASE_UNAVAILABLE", "the service's database is unreachable; retrying", retry_after=1.0
        ).to_status(domain)

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        status = self._status

        async def refuse(_request: Any, context: grpc.aio.ServicerContext) -> None:
            await context.abort_with_status(status)

        # Raw bytes in and out: any method, unary or streaming, gets the status before a message.
        return grpc.unary_unary_rpc_method_handler(refuse)


def run(config_cls: type[C], build: Builder[C]) -> None:
    """Entry point of ``python -m services.<svc>``: config from the environment, then serve."""
    config = load_config(config_cls)
    asyncio.run(serve(config, build))
