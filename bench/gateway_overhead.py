"""Gateway overhead: direct gRPC vs gRPC-Web through Envoy, same upstream, same run.

Measures
- unary calls per second at a fixed concurrency (direct grpc.aio client; grpc.aio through Envoy;
  the gRPC-Web client through Envoy, which is what browsers do),
- streamed-message latency (server send time → client receive time) of a paced server stream.

Prints the ratios to the direct baseline. Goal: gRPC-Web throughput >= 0.7 of direct.

    .venv/bin/python bench/gateway_overhead.py [--seconds 5] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc

from gateway.config import GatewayConfig
from gateway.envoy import start_envoy
from gateway.grpcweb import GrpcWebClient
from gateway.testing import build_test_upstream
from viarte.render.v1 import render_pb2, render_pb2_grpc

GET_JOB = "/viarte.render.v1.RenderService/GetRenderJob"
WATCH = "/viarte.render.v1.RenderService/WatchRenderJob"


async def _throughput(call: Callable[[], Awaitable[object]], seconds: float, concurrency: int) -> float:
    done = 0
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            await call()
            done += 1

    for _ in range(50):  # warm up connections
        await call()
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - started)


async def _grpc_latencies(
    stub: render_pb2_grpc.RenderServiceStub, count: int, interval: float
) -> list[float]:
    latencies = []
    async for reply in stub.WatchRenderJob(render_pb2.WatchRenderJobRequest(id=f"{count}:{interval}")):
        latencies.append(time.time() - reply.event.time.ToDatetime().timestamp())
    return latencies


async def _web_latencies(client: GrpcWebClient, count: int, interval: float) -> list[float]:
    latencies = []
    request = render_pb2.WatchRenderJobRequest(id=f"{count}:{interval}")
    async for received in client.server_stream(WATCH, request, render_pb2.WatchRenderJobResponse):
        latencies.append(time.time() - received.message.event.time.ToDatetime().timestamp())
    return latencies


def _ms(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"median {statistics.median(ordered) * 1000:6.2f} ms  p95 {p95 * 1000:6.2f} ms"


async def main(seconds: float, concurrency: int, messages: int) -> None:
    server, port = await build_test_upstream()
    await server.start()
    address = f"127.0.0.1:{port}"
    config = GatewayConfig(
        port=0,
        admin_port=0,
        static_dir="",
        rate_limit_per_second=0,
        auth_address=address,
        storage_address=address,
        inference_address=address,
        render_address=address,
    )
    request = render_pb2.GetRenderJobRequest(id="bench")
    with tempfile.TemporaryDirectory() as tmp:
        envoy = await start_envoy(config, workdir=Path(tmp))
        try:
            await envoy.wait_healthy(["render"])
            direct = grpc.aio.insecure_channel(address)
            via_envoy = grpc.aio.insecure_channel(f"127.0.0.1:{envoy.port}")
            web = GrpcWebClient(envoy.url)
            direct_stub = render_pb2_grpc.RenderServiceStub(direct)
            envoy_stub = render_pb2_grpc.RenderServiceStub(via_envoy)

            rates = {
                "direct gRPC": await _throughput(
                    lambda: direct_stub.GetRenderJob(request), seconds, concurrency
                ),
                "gRPC via Envoy": await _throughput(
                    lambda: envoy_stub.GetRenderJob(request), seconds, concurrency
                ),
                "gRPC-Web via Envoy": await _throughput(
                    lambda: web.unary(GET_JOB, request, render_pb2.GetRenderJobResponse), seconds, concurrency
                ),
            }
            latencies = {
                "direct gRPC": await _grpc_latencies(direct_stub, messages, 0.02),
                "gRPC via Envoy": await _grpc_latencies(envoy_stub, messages, 0.02),
                "gRPC-Web via Envoy": await _web_latencies(web, messages, 0.02),
            }
            await web.aclose()
            await direct.close()
            await via_envoy.close()
        finally:
            await envoy.stop()
    await server.stop(None)

    base_rate = rates["direct gRPC"]
    base_latency = statistics.median(latencies["direct gRPC"])
    print(f"unary GetRenderJob, {concurrency} concurrent callers, {seconds:g} s each")
    for name, rate in rates.items():
        print(f"  {name:20s} {rate:9.0f} calls/s   ratio {rate / base_rate:5.2f}")
    print(f"server stream, {messages} messages 20 ms apart: send → receive latency")
    for name, values in latencies.items():
        ratio = statistics.median(values) / base_latency
        print(f"  {name:20s} {_ms(values)}   median ratio {ratio:5.2f}")
    web_ratio = rates["gRPC-Web via Envoy"] / base_rate
    print(
        f"gRPC-Web throughput / direct = {web_ratio:.2f} (goal >= 0.70): {'met' if web_ratio >= 0.7 else 'NOT met'}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--messages", type=int, default=100)
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.concurrency, args.messages))
