"""A small real gRPC upstream for exercising the gateway without the whole mesh.

It serves the real ``viarte.render.v1.RenderService`` and ``viarte.auth.v1.AuthInternalService``
contracts (enough of them to drive Envoy: a unary call, a paced server stream, rich errors) plus
``grpc.health.v1`` for Envoy's active health checks. Used by the gateway tests and
``bench/gateway_overhead.py``; never part of the mesh.

- ``GetRenderJob(id)``: echoes the id back (unary round trip); ``id="missing"`` fails NOT_FOUND
  with ``ErrorInfo{JOB_NOT_FOUND}``; ``id="bad"`` fails INVALID_ARGUMENT with a ``BadRequest``.
- ``WatchRenderJob(id="<count>:<interval seconds>")``: ``count`` events ``interval`` apart, each
  stamped with its send time (``JobEvent.time``), so clients can measure delivery latency.
- ``AuthInternalService.IssueServiceToken``: answers anyone; the gateway must never route to it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
from google.protobuf import timestamp_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from services.kit.errors import FieldViolation, ServiceError
from viarte.auth.v1 import auth_pb2, auth_pb2_grpc
from viarte.render.v1 import render_pb2, render_pb2_grpc
from viarte.type.v1 import job_pb2

__all__ = ["build_test_upstream"]

_DOMAIN = "viarte.render"


class _RenderServicer(render_pb2_grpc.RenderServiceServicer):  # type: ignore[misc]
    async def GetRenderJob(
        self, request: render_pb2.GetRenderJobRequest, context: grpc.aio.ServicerContext
    ) -> render_pb2.GetRenderJobResponse:
        if request.id == "missing":
            error = ServiceError.not_found(
                "JOB_NOT_FOUND", "render job not found", metadata={"job_id": request.id}
            )
            await context.abort_with_status(error.to_status(_DOMAIN))
        if request.id == "bad":
            violation = FieldViolation(
                "parameters.timeline.tracks[0].clips[0].source_end_seconds",
                "must be after source_start_seconds",
            )
            error = ServiceError.invalid_argument(
                "INVALID_TIMELINE", "invalid timeline", violations=(violation,)
            )
            await context.abort_with_status(error.to_status(_DOMAIN))
        metadata = dict(context.invocation_metadata())
        # "request-id": answers with the x-request-id the upstream received ("" when none).
        owner = metadata.get("x-request-id", "") if request.id == "request-id" else metadata.get("authorization", "")
        return render_pb2.GetRenderJobResponse(job=render_pb2.RenderJob(id=request.id, owner_id=owner))

    async def WatchRenderJob(
        self, request: render_pb2.WatchRenderJobRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[render_pb2.WatchRenderJobResponse]:
        count_text, _, interval_text = request.id.partition(":")
        count, interval = int(count_text or 1), float(interval_text or 0)
        for sequence in range(1, count + 1):
            if sequence > 1 and interval:
                await asyncio.sleep(interval)
            sent = timestamp_pb2.Timestamp()
            sent.GetCurrentTime()
            event = job_pb2.JobEvent(sequence=sequence, time=sent, state=job_pb2.JOB_STATE_RUNNING)
            yield render_pb2.WatchRenderJobResponse(event=event)


class _AuthInternalServicer(auth_pb2_grpc.AuthInternalServiceServicer):  # type: ignore[misc]
    async def IssueServiceToken(
        self, request: auth_pb2.IssueServiceTokenRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.IssueServiceTokenResponse:
        return auth_pb2.IssueServiceTokenResponse(access_token="internal-token-must-not-leak")


async def build_test_upstream(host: str = "127.0.0.1", port: int = 0) -> tuple[grpc.aio.Server, int]:
    """Build (not start) the upstream; returns the server and its bound port."""
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    render_pb2_grpc.add_RenderServiceServicer_to_server(_RenderServicer(), server)
    auth_pb2_grpc.add_AuthInternalServiceServicer_to_server(_AuthInternalServicer(), server)
    checker = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    await checker.set("", health_pb2.HealthCheckResponse.SERVING)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind {host}:{port}")
    return server, bound
