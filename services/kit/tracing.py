"""Distributed tracing (OpenTelemetry, W3C ``traceparent``): the one module that touches it.

- ``configure_tracing(service_name, otlp_endpoint)``: installs an SDK tracer provider exporting
  over OTLP/gRPC when an endpoint is configured (``VIARTE_OTLP_ENDPOINT``); off by default, and
  then nothing is recorded or exported (the API's no-op tracer).
- Server side (the kit's edge interceptor): ``start_rpc_span`` / ``end_rpc_span``: one SERVER span
  per RPC, child of the caller's ``traceparent``. With tracing off an incoming ``traceparent`` is
  still made current (not recorded), so log lines carry the caller's trace id.
- Client side: ``client_interceptors()`` for the kit's channels: a CLIENT span per call and the
  ``traceparent`` header (only installed when tracing is on: internal calls cost nothing when off).
- Processes we spawn (inference and upscale workers) get the context as a ``traceparent`` string
  (``current_traceparent()``) in their typed messages and open spans under it
  (``context_from_traceparent``, ``StageSpans``).
- ``log_ids()``: the current trace and span ids for log lines.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Mapping
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = [
    "JobTrace",
    "StageSpans",
    "TaskTrace",
    "client_interceptors",
    "configure_tracing",
    "context_from_traceparent",
    "current_traceparent",
    "enabled",
    "end_rpc_span",
    "flush",
    "log_ids",
    "shutdown_tracing",
    "start_rpc_span",
    "tracer",
]

_PROPAGATOR = TraceContextTextMapPropagator()
# A proxy tracer: it follows the provider installed later by configure_tracing.
tracer = trace.get_tracer("viarte")
_provider: Any = None
# The current RPC's span and the token that made it current (set by the edge interceptor).
_rpc: contextvars.ContextVar[tuple[Span, object] | None] = contextvars.ContextVar("viarte_rpc_span", default=None)


def enabled() -> bool:
    return _provider is not None


def configure_tracing(service_name: str, otlp_endpoint: str) -> None:
    """Export spans of this process to ``otlp_endpoint`` (``http://host:4317``: plaintext gRPC,
    ``https://``: TLS). An empty endpoint keeps tracing off. Idempotent per process."""
    global _provider
    if not otlp_endpoint or _provider is not None:
        return
    # Imported only when tracing is on: the SDK and the exporter stay out of processes that don't export.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    # A short delay: jobs end in seconds and tests wait for their spans; batches still amortise RPCs.
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint), schedule_delay_millis=500))
    trace.set_tracer_provider(provider)
    _provider = provider


def flush(timeout_seconds: float = 5.0) -> None:
    """Exports what is buffered (worker processes call it after each task: they may be killed)."""
    if _provider is not None:
        _provider.force_flush(int(timeout_seconds * 1000))


def shutdown_tracing() -> None:
    global _provider
    if _provider is not None:
        _provider.shutdown()
        _provider = None


# -- W3C traceparent ------------------------------------------------------------------------------
def context_from_traceparent(traceparent: str) -> otel_context.Context | None:
    """The remote parent a ``traceparent`` header names (None when empty or malformed)."""
    if not traceparent:
        return None
    ctx = _PROPAGATOR.extract({"traceparent": traceparent})
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


def current_traceparent() -> str:
    """The current span as a ``traceparent`` value ("" outside any trace)."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent", "")


def log_ids() -> tuple[str, str] | None:
    """(trace_id, span_id) in hex of the current span, None outside any trace."""
    sc = trace.get_current_span().get_span_context()
    if not sc.is_valid:
        return None
    return format(sc.trace_id, "032x"), format(sc.span_id, "016x")


# -- server spans (the edge interceptor) ----------------------------------------------------------
def start_rpc_span(method: str, metadata: Mapping[str, str]) -> None:
    """Opens the RPC's SERVER span (child of the caller's ``traceparent``) and makes it current
    for the rest of the call. With tracing off only an incoming parent is made current."""
    traceparent = metadata.get("traceparent")
    if traceparent is None and _provider is None:
        return  # off and nothing to follow: no work per RPC
    parent = context_from_traceparent(traceparent or "")
    if _provider is None:
        if parent is None:
            return
        span: Span = trace.get_current_span(parent)
    else:
        service, _, name = method.lstrip("/").partition("/")
        span = tracer.start_span(
            method.lstrip("/"), context=parent, kind=SpanKind.SERVER,
            attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name},
        )
    token = otel_context.attach(trace.set_span_in_context(span, parent))
    _rpc.set((span, token))


def end_rpc_span(code: str, request_id: str, subject: str | None) -> tuple[str, str] | None:
    """Ends the current RPC's span with its status code, request id and caller (``enduser.id``);
    returns its (trace_id, span_id) for the access line (None, at no cost, when the RPC had no
    trace context)."""
    current = _rpc.get()
    if current is None:
        return None
    span, token = current
    _rpc.set(None)
    sc = span.get_span_context()
    ids = (format(sc.trace_id, "032x"), format(sc.span_id, "016x"))
    if span.is_recording():
        span.set_attribute("rpc.grpc.status_code", getattr(grpc.StatusCode, code, grpc.StatusCode.UNKNOWN).value[0])
        span.set_attribute("viarte.request_id", request_id)
        if subject is not None:
            span.set_attribute("enduser.id", subject)
        if code != "OK":
            span.set_status(Status(StatusCode.ERROR, code))
        span.end()
    try:
        otel_context.detach(token)  # type: ignore[arg-type]
    except ValueError:  # a stream finalised in another context: the RPC's context dies with it anyway
        pass
    return ids


# -- client spans (the kit's channels) ------------------------------------------------------------
def _with_traceparent(details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    if not carrier:
        return details
    metadata = grpc.aio.Metadata(*(details.metadata or ()))
    for key, value in carrier.items():
        metadata[key] = value
    return grpc.aio.ClientCallDetails(
        details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
    )


def _client_span(details: grpc.aio.ClientCallDetails) -> Span:
    method = details.method.decode() if isinstance(details.method, bytes) else str(details.method)
    service, _, name = method.lstrip("/").partition("/")
    return tracer.start_span(
        method.lstrip("/"), kind=SpanKind.CLIENT,
        attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name},
    )


async def _end_when_done(span: Span, call: Any) -> None:
    try:
        code = await call.code()
    except (asyncio.CancelledError, Exception):  # the call vanished with its channel
        code = grpc.StatusCode.CANCELLED
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code != grpc.StatusCode.OK:
        span.set_status(Status(StatusCode.ERROR, code.name))
    span.end()


_background: set[asyncio.Task[None]] = set()


async def _traced(continuation: Callable[..., Any], details: grpc.aio.ClientCallDetails, request: Any) -> Any:
    span = _client_span(details)
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        call = await continuation(_with_traceparent(details), request)
    except BaseException as exc:
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        span.end()
        raise
    finally:
        otel_context.detach(token)
    task = asyncio.get_running_loop().create_task(_end_when_done(span, call))
    _background.add(task)
    task.add_done_callback(_background.discard)
    return call


class _UnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await _traced(continuation, details, request)


class _UnaryStream(grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await _traced(continuation, details, request)


class _StreamUnary(grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_unary(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return await _traced(continuation, details, request_iterator)


class _StreamStream(grpc.aio.StreamStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_stream(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return await _traced(continuation, details, request_iterator)


def client_interceptors() -> list[Any]:
    """CLIENT spans + ``traceparent`` on every call of a kit channel; none while tracing is off
    (aio interceptors cost a task per call, not worth paying for spans nobody records)."""
    if _provider is None:
        return []
    return [_UnaryUnary(), _UnaryStream(), _StreamUnary(), _StreamStream()]


# -- stage spans ----------------------------------------------------------------------------------
class StageSpans:
    """One span per stage of a unit of work: ``enter(name)`` ends the previous stage's span and opens
    the next as a child of ``parent`` (e.g. a worker task's span); ``close()`` ends the last one."""

    def __init__(self, parent: Span, prefix: str = "") -> None:
        self._parent_ctx = trace.set_span_in_context(parent)
        self._prefix = prefix
        self._stage = ""
        self._span: Span | None = None

    def enter(self, stage: str, **attributes: Any) -> None:
        if stage == self._stage:
            return
        self.close()
        self._stage = stage
        self._span = tracer.start_span(self._prefix + stage, context=self._parent_ctx, attributes=attributes or None)

    def close(self, error: str = "") -> None:
        if self._span is not None:
            if error:
                self._span.set_status(Status(StatusCode.ERROR, error))
            self._span.end()
            self._span = None
        self._stage = ""


class TaskTrace:
    """A unit of work in another process (a worker task): one span under the sender's
    ``traceparent`` and one child span per stage (``stage(name)`` whenever it changes)."""

    def __init__(self, name: str, traceparent: str, prefix: str = "", **attributes: Any) -> None:
        self.span = tracer.start_span(
            name, context=context_from_traceparent(traceparent), attributes=attributes or None
        )
        self._stages = StageSpans(self.span, prefix)

    def stage(self, name: str) -> None:
        self._stages.enter(name)

    def end(self, error: str = "") -> None:
        self._stages.close(error)
        if error:
            self.span.set_status(Status(StatusCode.ERROR, error))
        self.span.end()


# -- jobs -----------------------------------------------------------------------------------------
class JobTrace:
    """A job's place in its trace: created with the job (child of the Create RPC's span, or a new
    root for jobs recovered after a restart); ``job.queued`` lasts until dispatch, ``job.run``
    until the executor returns, and the executor's own spans (worker stages, storage calls) nest
    under ``job.run``."""

    __slots__ = ("_attributes", "_parent", "_queued")

    def __init__(self, job_id: str, kind: str) -> None:
        self._parent = otel_context.get_current()
        self._attributes = {"viarte.job_id": job_id, "viarte.job_kind": kind}
        self._queued: Span | None = tracer.start_span("job.queued", context=self._parent, attributes=self._attributes)

    def dispatched(self) -> None:
        if self._queued is not None:
            self._queued.end()
            self._queued = None

    def run(self, attempt: int) -> Span:
        """Opens ``job.run`` and makes it current in the calling task (the job's own task)."""
        self.dispatched()
        span = tracer.start_span(
            "job.run", context=self._parent, attributes={**self._attributes, "viarte.job_attempt": attempt}
        )
        otel_context.attach(trace.set_span_in_context(span, self._parent))
        return span
