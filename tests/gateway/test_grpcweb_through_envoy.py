"""gRPC-Web through the real Envoy to a real grpc.aio upstream (no browser)."""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from pathlib import Path

import grpc
import httpx
import pytest
import pytest_asyncio
from google.rpc import error_details_pb2

from gateway.config import GatewayConfig
from gateway.envoy import EnvoyProcess
from gateway.grpcweb import GrpcWebClient, GrpcWebError
from viarte.auth.v1 import auth_pb2
from viarte.render.v1 import render_pb2

GET_JOB = "/viarte.render.v1.RenderService/GetRenderJob"
WATCH = "/viarte.render.v1.RenderService/WatchRenderJob"
ORIGIN = "http://localhost:5173"


def _config(upstream_address: str, **overrides: object) -> GatewayConfig:
    base: dict[str, object] = {
        "port": 0,
        "admin_port": 0,
        "static_dir": "",
        "health_check_interval_seconds": 0.5,
        # Every upstream is the test server: Envoy must still refuse the internal services.
        "auth_address": upstream_address,
        "storage_address": upstream_address,
        "inference_address": upstream_address,
        "render_address": upstream_address,
    }
    base.update(overrides)
    return GatewayConfig(**base)  # type: ignore[arg-type]


@pytest_asyncio.fixture(scope="module")
async def envoy(gateway_upstream, envoy_factory, tmp_path_factory) -> EnvoyProcess:
    dist = tmp_path_factory.mktemp("dist")
    (dist / "index.html").write_text("<!doctype html><title>viarte</title>")
    (dist / "assets").mkdir()
    (dist / "assets" / "main-abc.js").write_text("export const x = 1;\n")
    envoy = await envoy_factory(_config(gateway_upstream.address, static_dir=str(dist)))
    await envoy.wait_healthy(["render", "auth"])
    return envoy


async def test_unary_call_round_trips_with_metadata(envoy: EnvoyProcess) -> None:
    async with GrpcWebClient(envoy.url) as client:
        reply = await client.unary(
            GET_JOB,
            render_pb2.GetRenderJobRequest(id="job-42"),
            render_pb2.GetRenderJobResponse,
            metadata=[("authorization", "Bearer abc")],
            grpc_timeout=5,
        )
    assert reply.job.id == "job-42"
    assert reply.job.owner_id == "Bearer abc"


async def test_the_gateway_mints_no_request_id_and_passes_on_the_clients(envoy: EnvoyProcess) -> None:
    """No x-request-id minted per call (issue 20: CPU per request; the services make theirs), and a
    client's own reaches the service, so the id in an SDK error is the one in the services' logs."""
    async with GrpcWebClient(envoy.url) as client:
        for metadata, seen in (([], ""), ([("x-request-id", "chosen-by-the-client")], "chosen-by-the-client")):
            reply = await client.unary(
                GET_JOB, render_pb2.GetRenderJobRequest(id="request-id"), render_pb2.GetRenderJobResponse,
                metadata=metadata, grpc_timeout=5,
            )
            assert reply.job.owner_id == seen


async def test_server_stream_messages_arrive_one_by_one(envoy: EnvoyProcess) -> None:
    interval = 0.3
    async with GrpcWebClient(envoy.url) as client:
        received = [
            r
            async for r in client.server_stream(
                WATCH, render_pb2.WatchRenderJobRequest(id=f"5:{interval}"), render_pb2.WatchRenderJobResponse
            )
        ]
    offset = time.time() - time.monotonic()  # monotonic arrival times → wall clock, like the send stamps
    assert [r.message.event.sequence for r in received] == [1, 2, 3, 4, 5]
    gaps = [b.at - a.at for a, b in itertools.pairwise(received)]
    # Buffered delivery would bunch the messages at the end; streamed ones keep the server's pace
    # (median, so one scheduling hiccup on a loaded machine does not decide the outcome).
    assert statistics.median(gaps) > interval * 0.5, gaps
    sent = [r.message.event.time.ToNanoseconds() / 1e9 for r in received]
    # The first message was in the client's hands before the server even sent the last one.
    assert received[0].at + offset < sent[-1], (received[0].at + offset, sent)


async def test_error_details_survive_the_gateway(envoy: EnvoyProcess) -> None:
    async with GrpcWebClient(envoy.url) as client:
        with pytest.raises(GrpcWebError) as missing:
            await client.unary(
                GET_JOB, render_pb2.GetRenderJobRequest(id="missing"), render_pb2.GetRenderJobResponse
            )
        with pytest.raises(GrpcWebError) as bad:
            await client.unary(
                GET_JOB, render_pb2.GetRenderJobRequest(id="bad"), render_pb2.GetRenderJobResponse
            )
    assert missing.value.code is grpc.StatusCode.NOT_FOUND
    assert missing.value.message == "render job not found"
    info = missing.value.detail(error_details_pb2.ErrorInfo)
    assert info is not None
    assert (info.reason, info.domain, dict(info.metadata)) == (
        "JOB_NOT_FOUND",
        "viarte.render",
        {"job_id": "missing"},
    )
    assert bad.value.code is grpc.StatusCode.INVALID_ARGUMENT
    violations = bad.value.detail(error_details_pb2.BadRequest)
    assert violations is not None
    assert violations.field_violations[0].field == "parameters.timeline.tracks[0].clips[0].source_end_seconds"


async def test_internal_services_are_not_routed(envoy: EnvoyProcess) -> None:
    async with GrpcWebClient(envoy.url) as client:
        with pytest.raises(GrpcWebError) as refused:
            await client.unary(
                "/viarte.auth.v1.AuthInternalService/IssueServiceToken",
                auth_pb2.IssueServiceTokenRequest(service="render", secret="x"),
                auth_pb2.IssueServiceTokenResponse,
            )
    assert refused.value.code is grpc.StatusCode.UNIMPLEMENTED
    # A real trailers-only gRPC answer, not a bare HTTP 404 the client has to interpret.
    assert refused.value.trailers["grpc-status"] == "12"
    assert "internal-token" not in str(refused.value.trailers)


async def test_cors_preflight_and_exposed_headers(envoy: EnvoyProcess) -> None:
    async with httpx.AsyncClient(base_url=envoy.url) as http:
        preflight = await http.options(
            GET_JOB,
            headers={
                "origin": ORIGIN,
                "access-control-request-method": "POST",
                "access-control-request-headers": "content-type,x-grpc-web,authorization",
            },
        )
        other = await http.options(
            GET_JOB, headers={"origin": "http://evil.example", "access-control-request-method": "POST"}
        )
        call = await http.post(
            GET_JOB,
            content=b"\x00\x00\x00\x00\x09\x0a\x07missing",
            headers={"origin": ORIGIN, "content-type": "application/grpc-web+proto", "x-grpc-web": "1"},
        )
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert "authorization" in preflight.headers["access-control-allow-headers"]
    assert "access-control-allow-origin" not in other.headers
    exposed = call.headers["access-control-expose-headers"].split(",")
    assert {"grpc-status", "grpc-message", "grpc-status-details-bin"} <= set(exposed)


async def test_cors_preflight_allows_the_trace_context_headers(envoy: EnvoyProcess) -> None:
    # The editor sends W3C traceparent on every call; a browser refuses the call unless the
    # preflight allows it.
    async with httpx.AsyncClient(base_url=envoy.url) as http:
        preflight = await http.options(
            GET_JOB,
            headers={
                "origin": ORIGIN,
                "access-control-request-method": "POST",
                "access-control-request-headers": "content-type,x-grpc-web,traceparent,tracestate",
            },
        )
    allowed = {h.strip() for h in preflight.headers["access-control-allow-headers"].split(",")}
    assert {"traceparent", "tracestate"} <= allowed


async def test_editor_is_served_on_the_same_origin(envoy: EnvoyProcess) -> None:
    async with httpx.AsyncClient(base_url=envoy.url) as http:
        index = await http.get("/")
        deep_link = await http.get("/projects/123/edit")
        chunk = await http.get("/assets/main-abc.js")
    assert index.status_code == 200 and "<title>viarte</title>" in index.text
    assert deep_link.status_code == 200 and deep_link.text == index.text
    assert chunk.headers["content-type"].split(";")[0] in ("text/javascript", "application/javascript")
    assert "immutable" in chunk.headers["cache-control"]


async def test_down_upstream_is_unavailable_not_a_hang(gateway_upstream, envoy_factory) -> None:
    # A port nobody listens on: Envoy answers UNAVAILABLE quickly.
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{probe.getsockname()[1]}"
    envoy = await envoy_factory(_config(gateway_upstream.address, render_address=dead))
    async with GrpcWebClient(envoy.url) as client:
        started = time.monotonic()
        with pytest.raises(GrpcWebError) as down:
            await client.unary(
                GET_JOB, render_pb2.GetRenderJobRequest(id="x"), render_pb2.GetRenderJobResponse
            )
    assert down.value.code is grpc.StatusCode.UNAVAILABLE
    assert down.value.trailers["grpc-status"] == "14"
    assert time.monotonic() - started < 5
    await envoy.stop()


async def test_rate_limit_answers_resource_exhausted(gateway_upstream, envoy_factory) -> None:
    envoy = await envoy_factory(
        _config(gateway_upstream.address, rate_limit_per_second=1, rate_limit_burst=1)
    )
    async with GrpcWebClient(envoy.url) as client:
        results = await asyncio.gather(
            *(
                client.unary(GET_JOB, render_pb2.GetRenderJobRequest(id="r"), render_pb2.GetRenderJobResponse)
                for _ in range(5)
            ),
            return_exceptions=True,
        )
    errors = [r for r in results if isinstance(r, GrpcWebError)]
    assert errors and all(e.code is grpc.StatusCode.RESOURCE_EXHAUSTED for e in errors)
    assert any(not isinstance(r, BaseException) for r in results)
    await envoy.stop()


async def test_tls_listener(gateway_upstream, envoy_factory, tmp_path: Path) -> None:
    from tests.gateway.test_envoy_config import _self_signed

    cert, key = _self_signed(tmp_path)
    envoy = await envoy_factory(
        _config(gateway_upstream.address, tls_cert_file=str(cert), tls_key_file=str(key))
    )
    assert envoy.url.startswith("https://")
    async with GrpcWebClient(envoy.url, verify=str(cert)) as client:
        reply = await client.unary(
            GET_JOB, render_pb2.GetRenderJobRequest(id="tls"), render_pb2.GetRenderJobResponse
        )
    assert reply.job.id == "tls"
    await envoy.stop()
