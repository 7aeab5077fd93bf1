"""Gateway overhead: direct gRPC vs gRPC-Web through Envoy, same upstream, same run.

Measures
- unary calls per second at a fixed concurrency (direct grpc.aio client; grpc.aio through Envoy;
  the gRPC-Web client through Envoy, which is what browsers do),
- streamed-message latency (server send time → client receive time) of a paced server stream.

Prints the ratios to the direct baseline. Goals (issue 20): gRPC-Web >= 0.75 of direct (connect-node),
native gRPC >= 0.85. Each Envoy variant (VARIANTS: the gateway before issue 20, one change at a time,
today's defaults) runs as its own Envoy in the same run, so each change's effect is side by side,
with Envoy's own CPU µs per call (steadier than throughput on a shared machine) and this process's
(client + upstream). The knobs tried and not kept (HTTP/2 windows, buffer limits, codec, stats,
access log) stay runnable by name: --variants "+ stats off,+ 64K/1M h2 windows".

Two client families, each compared with itself so the ratio is the gateway's and not a client
library's: Python (grpc.aio C-core vs the pure-Python httpx gRPC-Web client, whose HTTP/1.1 stack is
the bottleneck on its own) and Node (connect-node's gRPC transport vs its gRPC-Web transport, the
library family the browser editor uses; run when gateway/editor/node_modules exists).

    .venv/bin/python bench/gateway_overhead.py [--seconds 5] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

# The test upstream lives in tests/ (not shipped): run from a checkout, like the other benches.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grpc

from gateway.config import GatewayConfig
from gateway.envoy import start_envoy
from gateway.grpcweb import GrpcWebClient
from tests.fakes.gateway_upstream import build_test_upstream
from viarte.render.v1 import render_pb2, render_pb2_grpc

EDITOR = Path(__file__).resolve().parents[1] / "gateway" / "editor"
GET_JOB = "/viarte.render.v1.RenderService/GetRenderJob"
WATCH = "/viarte.render.v1.RenderService/WatchRenderJob"


def _cpu_seconds(pid: int) -> float:
    """CPU time of every thread of process ``pid`` so far (schedstat: nanoseconds, unlike the
    10 ms ticks of /proc/<pid>/stat)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):  # a thread that ended meanwhile
            pass
    return total / 1e9


class Cpu:
    """CPU µs per call of this process (client and upstream) and of one Envoy, over a measurement."""

    def __init__(self, envoy_pid: int | None) -> None:
        self.envoy_pid = envoy_pid
        self.own = time.process_time()
        self.envoy = _cpu_seconds(envoy_pid) if envoy_pid else 0.0

    def per_call(self, calls: int) -> tuple[float, float]:
        own = (time.process_time() - self.own) / calls * 1e6
        envoy = (_cpu_seconds(self.envoy_pid) - self.envoy) / calls * 1e6 if self.envoy_pid else 0.0
        return own, envoy


async def _throughput(
    call: Callable[[], Awaitable[object]], seconds: float, concurrency: int, envoy_pid: int | None = None
) -> tuple[float, tuple[float, float]]:
    """Calls per second, and (this process's, Envoy's) CPU µs per call."""
    done = 0
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            await call()
            done += 1

    for _ in range(50):  # warm up connections
        await call()
    cpu = Cpu(envoy_pid)
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return done / elapsed, cpu.per_call(max(done, 1))


async def _grpc_latencies(
    stub: render_pb2_grpc.RenderServiceStub, count: int, interval: float
) -> list[float]:
    latencies = []
    async for reply in stub.WatchRenderJob(render_pb2.WatchRenderJobRequest(id=f"{count}:{interval}")):
        latencies.append(time.time() - reply.event.time.ToNanoseconds() / 1e9)
    return latencies


async def _web_latencies(client: GrpcWebClient, count: int, interval: float) -> list[float]:
    latencies = []
    request = render_pb2.WatchRenderJobRequest(id=f"{count}:{interval}")
    async for received in client.server_stream(WATCH, request, render_pb2.WatchRenderJobResponse):
        latencies.append(time.time() - received.message.event.time.ToNanoseconds() / 1e9)
    return latencies


async def _node_clients(
    direct: str, gateway: str, seconds: float, concurrency: int, messages: int
) -> dict[str, object] | None:
    node = shutil.which("node")
    if node is None or not (EDITOR / "node_modules" / "@connectrpc" / "connect-node").is_dir():
        return None
    process = await asyncio.create_subprocess_exec(
        node, "e2e/grpc_load.mjs",
        "--direct", f"http://{direct}", "--gateway", gateway,
        "--seconds", str(seconds), "--concurrency", str(concurrency), "--messages", str(messages),
        cwd=EDITOR, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    if process.returncode != 0:
        print(f"node load generator failed: {err.decode()[-500:]}")
        return None
    result: dict[str, object] = json.loads(out)
    return result


def _ms(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"median {statistics.median(ordered) * 1000:6.2f} ms  p95 {p95 * 1000:6.2f} ms"


def _report(title: str, rates: dict[str, list[float]], latencies: dict[str, list[float]]) -> None:
    base = statistics.median(rates[next(iter(rates))])
    print(title)
    for name, rounds in rates.items():
        rate = statistics.median(rounds)
        spread = ", ".join(f"{r:.0f}" for r in rounds)
        print(f"  {name:20s} {rate:9.0f} calls/s   ratio {rate / base:5.2f}   (rounds: {spread})")
    base_latency = statistics.median(latencies[next(iter(latencies))])
    print("  streamed-message latency, send → receive:")
    for name, values in latencies.items():
        ratio = statistics.median(values) / base_latency if base_latency > 1e-5 else float("nan")
        print(f"  {name:20s} {_ms(values)}   median ratio {ratio:5.2f}")


def _dynamic_stats_on(bootstrap: dict[str, Any]) -> None:
    """The router as it was before issue 20: per-request dynamic stats and x-envoy-* headers."""
    for listener in bootstrap["static_resources"]["listeners"]:
        for chain in listener["filter_chains"]:
            for network_filter in chain["filters"]:
                for http_filter in network_filter["typed_config"].get("http_filters", []):
                    if http_filter["name"] == "envoy.filters.http.router":
                        http_filter["typed_config"].pop("dynamic_stats", None)
                        http_filter["typed_config"].pop("suppress_envoy_headers", None)


def _managers(bootstrap: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        network_filter["typed_config"]
        for listener in bootstrap["static_resources"]["listeners"]
        for chain in listener["filter_chains"]
        for network_filter in chain["filters"]
    ]


def _request_ids_on(bootstrap: dict[str, Any]) -> None:
    """The gateway before issue 20 (Envoy's default): a UUID4 x-request-id minted for every request."""
    for manager in _managers(bootstrap):
        manager.pop("generate_request_id", None)
        manager.get("route_config", {}).pop("request_headers_to_remove", None)


def _small_h2_windows(bootstrap: dict[str, Any]) -> None:
    """Envoy's edge-proxy advice: 64 KiB stream and 1 MiB connection windows, both hops (the
    default windows are 256 MiB)."""
    windows = {"initial_stream_window_size": 65536, "initial_connection_window_size": 1048576}
    for manager in _managers(bootstrap):
        manager.setdefault("http2_protocol_options", {}).update(windows)
    for cluster in bootstrap["static_resources"]["clusters"]:
        options = cluster.get("typed_extension_protocol_options", {}).get(
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
        )
        if options is not None:
            options["explicit_http_config"]["http2_protocol_options"].update(windows)


def _buffer_limits_32k(bootstrap: dict[str, Any]) -> None:
    """Envoy's edge-proxy advice: 32 KiB per-connection buffer limits (default 1 MiB)."""
    for listener in bootstrap["static_resources"]["listeners"]:
        listener["per_connection_buffer_limit_bytes"] = 32768
    for cluster in bootstrap["static_resources"]["clusters"]:
        cluster["per_connection_buffer_limit_bytes"] = 32768


def _nghttp2(bootstrap: dict[str, Any]) -> None:
    """HTTP/2 through nghttp2: the runtime flag envoy.reloadable_features.http2_use_oghttp2 off."""
    layer = bootstrap["layered_runtime"]["layers"][0]["static_layer"]
    layer["envoy.reloadable_features.http2_use_oghttp2"] = False


def _stats_off(bootstrap: dict[str, Any]) -> None:
    """No stats at all (per-request counters and histograms of listener, HCM and cluster)."""
    bootstrap["stats_config"] = {"stats_matcher": {"reject_all": True}}


# Gateway variants, each an Envoy of its own in the same run: the one before issue 20, then one
# change at a time, then today's defaults (the row the goals refer to).
CORES = len(os.sched_getaffinity(0))
VARIANTS: dict[str, tuple[dict[str, Any], Callable[[dict[str, Any]], None] | None]] = {
    f"before: {CORES} workers + dyn stats": ({"envoy_concurrency": CORES}, _dynamic_stats_on),
    "1 worker + dyn stats": ({"envoy_concurrency": 1}, _dynamic_stats_on),
    "1 worker + lean router": ({"envoy_concurrency": 1}, None),
    "+ request ids": ({}, _request_ids_on),
    "+ 64K/1M h2 windows": ({}, _small_h2_windows),
    "+ 32K buffer limits": ({}, _buffer_limits_32k),
    "+ nghttp2 codec": ({}, _nghttp2),
    "+ stats off": ({}, _stats_off),
    "+ access log on": ({"access_log": True}, None),
    "defaults": ({}, None),
}
# The changes kept, one at a time (the others: --variants).
DEFAULT_VARIANTS = (f"before: {CORES} workers + dyn stats", "1 worker + lean router", "+ request ids", "defaults")


async def main(seconds: float, concurrency: int, messages: int, rounds: int, variants: list[str]) -> None:
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
    py_rates: dict[str, list[float]] = {"direct gRPC": [], "gRPC via Envoy": [], "gRPC-Web via Envoy": []}
    py_latencies: dict[str, list[float]] = {name: [] for name in py_rates}
    node_rates: dict[str, list[float]] = {"direct gRPC (h2)": [], "gRPC-Web via Envoy": []}
    node_latencies: dict[str, list[float]] = {name: [] for name in node_rates}
    # Per variant and round: native gRPC via Envoy / direct, connect-node gRPC-Web / direct (same round).
    native_ratio: dict[str, list[float]] = {name: [] for name in variants}
    web_ratio: dict[str, list[float]] = {name: [] for name in variants}
    # CPU µs per call: this process (client + upstream) per path, each Envoy per native / web call.
    own_cpu: dict[str, list[float]] = {name: [] for name in ["direct", *variants]}
    envoy_cpu: dict[str, list[float]] = {name: [] for name in variants}
    envoy_web_cpu: dict[str, list[float]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as tmp:
        envoys = {}
        try:
            for i, name in enumerate(variants):
                overrides, edit = VARIANTS[name]
                envoys[name] = await start_envoy(replace(config, **overrides), workdir=Path(tmp) / str(i), edit=edit)
                await envoys[name].wait_healthy(["render"])
            envoy = envoys["defaults"]
            direct = grpc.aio.insecure_channel(address)
            channels = {name: grpc.aio.insecure_channel(f"127.0.0.1:{e.port}") for name, e in envoys.items()}
            web = GrpcWebClient(envoy.url)
            direct_stub = render_pb2_grpc.RenderServiceStub(direct)
            stubs = {name: render_pb2_grpc.RenderServiceStub(c) for name, c in channels.items()}
            envoy_stub = stubs["defaults"]
            # Interleaved rounds: the machine is shared, so load drifts; medians over rounds.
            for _ in range(rounds):
                base, (direct_cpu, _) = await _throughput(lambda: direct_stub.GetRenderJob(request), seconds, concurrency)
                py_rates["direct gRPC"].append(base)
                own_cpu["direct"].append(direct_cpu)
                for name, stub in stubs.items():
                    rate, (own, envoy_us) = await _throughput(
                        lambda stub=stub: stub.GetRenderJob(request), seconds, concurrency,  # type: ignore[misc]
                        envoys[name].process.pid,
                    )
                    native_ratio[name].append(rate / base)
                    own_cpu[name].append(own)
                    envoy_cpu[name].append(envoy_us)
                    if name == "defaults":
                        py_rates["gRPC via Envoy"].append(rate)
                web_rate, _ = await _throughput(
                    lambda: web.unary(GET_JOB, request, render_pb2.GetRenderJobResponse), seconds, concurrency
                )
                py_rates["gRPC-Web via Envoy"].append(web_rate)
                py_latencies["direct gRPC"] += await _grpc_latencies(direct_stub, messages, 0.02)
                py_latencies["gRPC via Envoy"] += await _grpc_latencies(envoy_stub, messages, 0.02)
                py_latencies["gRPC-Web via Envoy"] += await _web_latencies(web, messages, 0.02)
                for name, each in envoys.items():
                    envoy_before = _cpu_seconds(each.process.pid)
                    node = await _node_clients(address, each.url, seconds, concurrency, messages)
                    if node is None:
                        break
                    web_ratio[name].append(
                        float(node["grpc_web_calls_per_second"]) / float(node["direct_calls_per_second"])  # type: ignore[arg-type]
                    )
                    # Envoy's CPU over the node run, per gRPC-Web unary call (its stream of
                    # `messages` replies is counted in, a few per cent of the calls).
                    web_calls = float(node["grpc_web_calls_per_second"]) * seconds  # type: ignore[arg-type]
                    envoy_web_cpu[name].append((_cpu_seconds(each.process.pid) - envoy_before) / web_calls * 1e6)
                    if name == "defaults":
                        node_rates["direct gRPC (h2)"].append(float(node["direct_calls_per_second"]))  # type: ignore[arg-type]
                        node_rates["gRPC-Web via Envoy"].append(float(node["grpc_web_calls_per_second"]))  # type: ignore[arg-type]
                        node_latencies["direct gRPC (h2)"] += [v / 1000 for v in node["direct_latency_ms"]]  # type: ignore[attr-defined]
                        node_latencies["gRPC-Web via Envoy"] += [v / 1000 for v in node["grpc_web_latency_ms"]]  # type: ignore[attr-defined]
            await web.aclose()
            await direct.close()
            for channel in channels.values():
                await channel.close()
        finally:
            for each in envoys.values():
                await each.stop()
    await server.stop(None)

    print(
        f"unary GetRenderJob, {concurrency} concurrent callers, {seconds:g} s per measurement, {rounds} rounds, "
        f"{CORES} cores, load average {os.getloadavg()[0]:.1f}"
    )
    print(
        "Envoy variants: median over rounds of each round's ratio to direct (same client each side), and CPU µs\n"
        "per call (medians): Envoy's per native and per gRPC-Web call, this process's (client + upstream)\n"
        f"per native call ({statistics.median(own_cpu['direct']):.0f} µs direct)."
    )
    print(f"  {'variant':30s} {'native':>7s} {'gRPC-Web':>9s} {'Envoy µs':>9s} {'web µs':>7s} {'Python µs':>10s}")
    for name in variants:
        web_text = f"{statistics.median(web_ratio[name]):.2f}" if web_ratio[name] else "skipped"
        web_cpu = f"{statistics.median(envoy_web_cpu[name]):.1f}" if envoy_web_cpu[name] else "-"
        rounds_text = ", ".join(f"{r:.2f}" for r in native_ratio[name])
        print(
            f"  {name:30s} {statistics.median(native_ratio[name]):7.2f} {web_text:>9s} "
            f"{statistics.median(envoy_cpu[name]):9.1f} {web_cpu:>7s} {statistics.median(own_cpu[name]):10.0f}"
            f"   (native rounds: {rounds_text})"
        )
    _report("Python clients (grpc.aio C-core; httpx gRPC-Web), defaults", py_rates, py_latencies)
    if not node_rates["direct gRPC (h2)"]:
        print("connect-node comparison skipped: run npm ci in gateway/editor first")
        return
    _report("connect-node clients (the browser editor's library family), defaults", node_rates, node_latencies)
    ratio = statistics.median(web_ratio["defaults"])
    envoy_ratio = statistics.median(native_ratio["defaults"])
    print(f"gRPC through Envoy / direct (same C-core client): {envoy_ratio:.2f} (goal >= 0.85)")
    print(
        f"gRPC-Web through Envoy / direct gRPC (same connect-node client): {ratio:.2f} (goal >= 0.75: {'met' if ratio >= 0.75 else 'NOT met'})"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--variants", default=",".join(DEFAULT_VARIANTS), help=f"comma-separated of {list(VARIANTS)}; 'defaults' always runs"
    )
    args = parser.parse_args()
    chosen = [v for v in args.variants.split(",") if v and v != "defaults"] + ["defaults"]
    asyncio.run(main(args.seconds, args.concurrency, args.messages, args.rounds, chosen))
