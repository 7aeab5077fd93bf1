"""Trace context without an exporter (the default): an incoming W3C traceparent still becomes the
current context of the RPC, so the access line and every log line the handler writes carry the
caller's trace id; and the SDK sends the caller's current context as traceparent."""

from __future__ import annotations

import json
import uuid

import grpc
import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from services.kit.config import ServiceConfig
from services.kit.logs import configure_logging, get_logger
from services.kit.server import Service, build_server, stop
from viarte.auth.v1 import auth_pb2, auth_pb2_grpc
from viarte.transport import Transport

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


class Logged(auth_pb2_grpc.AuthServiceServicer):
    async def ListPublicKeys(self, request, context):
        get_logger("test.handler").info("handler.line", marker="traced-handler")
        return auth_pb2.ListPublicKeysResponse()


@pytest.fixture(scope="module")
async def channel():
    server, port = await build_server(ServiceConfig(port=0), [Service(Logged(), anonymous=frozenset({"ListPublicKeys"}))])
    await server.start()
    chan = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield chan
    await chan.close()
    await stop(server, 0)


async def test_incoming_traceparent_is_in_every_log_line_of_the_rpc(channel, capfd):
    configure_logging(ServiceConfig(log_level="INFO"))
    try:
        capfd.readouterr()
        request_id = uuid.uuid4().hex
        md = (("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01"), ("x-request-id", request_id))
        await auth_pb2_grpc.AuthServiceStub(channel).ListPublicKeys(auth_pb2.ListPublicKeysRequest(), metadata=md)
        # A call without a traceparent: no trace id is made up while tracing is off.
        await auth_pb2_grpc.AuthServiceStub(channel).ListPublicKeys(auth_pb2.ListPublicKeysRequest())
        lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
    finally:
        configure_logging(ServiceConfig(log_level="WARNING"))
    access = [r for r in lines if r.get("event") == "rpc"]
    handler = [r for r in lines if r.get("marker") == "traced-handler"]
    assert len(access) == 2 and len(handler) == 2
    assert access[0]["request_id"] == request_id
    assert access[0]["trace_id"] == handler[0]["trace_id"] == TRACE_ID
    assert handler[0]["span_id"] == PARENT_ID  # off: the caller's span is the current one
    assert "trace_id" not in access[1] and "trace_id" not in handler[1]


async def test_malformed_traceparent_is_ignored(channel, capfd):
    configure_logging(ServiceConfig(log_level="INFO"))
    try:
        capfd.readouterr()
        md = (("traceparent", "00-nothex-00f067aa0ba902b7-01"),)
        await auth_pb2_grpc.AuthServiceStub(channel).ListPublicKeys(auth_pb2.ListPublicKeysRequest(), metadata=md)
        lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
    finally:
        configure_logging(ServiceConfig(log_level="WARNING"))
    access = [r for r in lines if r.get("event") == "rpc"]
    assert len(access) == 1 and access[0]["code"] == "OK" and "trace_id" not in access[0]


async def test_sdk_sends_the_callers_current_context():
    transport = Transport()
    assert not [k for k, _ in await transport.metadata("r", False) if k == "traceparent"]
    span = NonRecordingSpan(SpanContext(int(TRACE_ID, 16), int(PARENT_ID, 16), False, TraceFlags(TraceFlags.SAMPLED)))
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        md = dict(await transport.metadata("r", False))
    finally:
        otel_context.detach(token)
    assert md["traceparent"] == f"00-{TRACE_ID}-{PARENT_ID}-01"
    assert md["x-request-id"] == "r"
