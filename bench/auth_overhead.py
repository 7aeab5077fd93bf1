"""What does the kit's edge (authentication, request id, JSON log line, metrics, error mapping) cost?

Same run, same trivial handler (`GetMe` answering from the caller's identity, no database):
  - plain: a bare `grpc.aio` server, no interceptors, no credentials;
  - kit:   `services.kit.server.build_server` + `Authenticator` verifying a real access token issued by
           the real auth service (Ed25519, keys fetched from ListPublicKeys and cached by kid).
  - auth:  for reference, the real auth service's GetMe (also checks the session in the database).
The servers run in a child process (one core), the load generator here; rounds alternate to cancel
drift. Printed: requests/s, server CPU µs per request, the kit/plain throughput ratio (goal ≥ 0.9),
the server CPU ratio (issue 20: ≤ 1.15), the p50 of one access-token verification in µs, and the
edge's own CPU per call measured in-process (steady under load, unlike the end-to-end figures).

    .venv/bin/python bench/auth_overhead.py [--seconds 3] [--rounds 3] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grpc

from viarte.auth.v1 import auth_pb2, auth_pb2_grpc


def _handler_base() -> type:
    from services.kit.auth import optional_principal

    class TrivialGetMe(auth_pb2_grpc.AuthServiceServicer):  # type: ignore[misc]
        async def GetMe(self, request: Any, context: Any) -> Any:
            principal = optional_principal()
            subject = principal.subject if principal is not None else "anonymous"
            return auth_pb2.GetMeResponse(user=auth_pb2.User(id=subject), scopes=["assets:read"])

    return TrivialGetMe


async def _serve(conn: Any, data_dir: str, log_level: str) -> None:
    from services.auth.config import AuthConfig
    from services.auth.server import build
    from services.kit.auth import Authenticator, RemoteKeySource
    from services.kit.config import ServiceConfig
    from services.kit.logs import configure_logging
    from services.kit.server import Service, build_server

    @dataclass(frozen=True)
    class BenchConfig(ServiceConfig):
        service_name = "bench"

    auth_config = AuthConfig(port=0, metrics_port=-1, data_dir=data_dir, bcrypt_cost=4, log_level=log_level)
    configure_logging(auth_config)
    auth_server, auth_port = await build(auth_config)
    await auth_server.start()

    handler = _handler_base()
    plain = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    auth_pb2_grpc.add_AuthServiceServicer_to_server(handler(), plain)
    plain_port = plain.add_insecure_port("127.0.0.1:0")
    await plain.start()

    kit_config = BenchConfig(port=0, auth_address=f"127.0.0.1:{auth_port}", log_level=log_level)
    channel = grpc.aio.insecure_channel(kit_config.auth_address)
    authenticator = Authenticator(kit_config, key_source=RemoteKeySource(channel), channel=channel)
    kit, kit_port = await build_server(kit_config, [Service(handler())], authenticator=authenticator)
    await kit.start()
    conn.send({"auth": auth_port, "plain": plain_port, "kit": kit_port})
    loop = asyncio.get_running_loop()
    while True:  # answer CPU-time probes until told to stop
        message = await loop.run_in_executor(None, conn.recv)
        if message == "stop":
            break
        conn.send(time.process_time())


def _server_process(conn: Any, data_dir: str, log_level: str) -> None:
    # The per-RPC JSON log lines are rendered and written as in production, just not to the terminal.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    asyncio.run(_serve(conn, data_dir, log_level))


async def _load(address: str, metadata: tuple[tuple[str, str], ...], seconds: float, concurrency: int) -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        request = auth_pb2.GetMeRequest()
        await stub.GetMe(request, metadata=metadata)  # warm: connection, key cache
        deadline = time.perf_counter() + seconds
        done = 0

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                await stub.GetMe(request, metadata=metadata)
                done += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done


async def _token_verification_p50(token: str, auth_port: int, samples: int) -> tuple[float, float]:
    """p50 µs of (a) a first-sight verification (key lookup + Ed25519 + claims), (b) a repeat
    verification of the same token (the kit's verified-token cache)."""
    from services.kit.auth import Authenticator, RemoteKeySource
    from services.kit.config import ServiceConfig

    config = ServiceConfig(auth_address=f"127.0.0.1:{auth_port}")
    channel = grpc.aio.insecure_channel(config.auth_address)
    keys = RemoteKeySource(channel)
    authenticator = Authenticator(config, key_source=keys, channel=channel)
    await authenticator.verify_access_token(token)
    first, repeat = [], []
    for _ in range(samples):
        t0 = time.perf_counter_ns()
        await authenticator._verify_uncached(token)
        t1 = time.perf_counter_ns()
        await authenticator.verify_access_token(token)
        t2 = time.perf_counter_ns()
        first.append((t1 - t0) / 1000)
        repeat.append((t2 - t1) / 1000)
    await authenticator.close()
    return statistics.median(first), statistics.median(repeat)


def _devnull() -> Any:
    return open(os.devnull, "w")  # closed by the caller


async def _edge_cost_in_process(token: str, auth_port: int, blocks: int) -> tuple[float, float]:
    """Server CPU µs per call of (a) the bare handler, (b) the same handler behind the kit's edge
    (authentication from the verified-token cache, request id, metrics, access line rendered to a
    sink), called in this process with a stand-in context: no sockets, no grpc core, so it is steady
    on a loaded machine where the end-to-end CPU figures above swing by ±30 %. Medians of
    interleaved blocks of thread CPU time."""
    from services.kit import logs
    from services.kit.auth import Authenticator, RemoteKeySource
    from services.kit.config import ServiceConfig
    from services.kit.interceptor import Edge, MethodPolicy

    class Context:
        def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
            self.metadata = metadata

        def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
            return self.metadata

        def code(self) -> None:
            return None

    config = ServiceConfig(auth_address=f"127.0.0.1:{auth_port}", log_level="INFO")
    logs.configure_logging(config)
    # The access lines are rendered and written as in production, to nowhere.
    real_stderr, sys.stderr = sys.stderr, _devnull()
    channel = grpc.aio.insecure_channel(config.auth_address)
    authenticator = Authenticator(config, key_source=RemoteKeySource(channel), channel=channel)
    method = "/viarte.auth.v1.AuthService/GetMe"
    bare = _handler_base()().GetMe
    raw = grpc.unary_unary_rpc_method_handler(bare, auth_pb2.GetMeRequest.FromString, auth_pb2.GetMeResponse.SerializeToString)
    wrapped = Edge(config, authenticator, {method: MethodPolicy()}).wrap(method, raw).unary_unary
    context = Context((("authorization", f"Bearer {token}"), ("user-agent", "grpc-python-asyncio")))
    request = auth_pb2.GetMeRequest()
    await wrapped(request, context)
    per_call: dict[str, list[float]] = {"bare": [], "edge": []}
    try:
        for _ in range(blocks):
            for name, fn in (("bare", bare), ("edge", wrapped)):
                t0 = time.thread_time()
                for _ in range(2000):
                    await fn(request, context)
                per_call[name].append((time.thread_time() - t0) / 2000 * 1e6)
    finally:
        sys.stderr.close()
        sys.stderr = real_stderr
        await authenticator.close()
    return statistics.median(per_call["bare"]), statistics.median(per_call["edge"])


async def main(args: argparse.Namespace) -> None:
    parent, child = mp.Pipe()
    data_dir = tempfile.mkdtemp(prefix="bench-auth-")
    process = mp.get_context("spawn").Process(target=_server_process, args=(child, data_dir, args.log_level))
    process.start()
    ports = parent.recv()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{ports['auth']}") as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        registered = await stub.Register(
            auth_pb2.RegisterRequest(email="bench@viarte.test", password="load generator passphrase")
        )
    token = registered.tokens.access_token
    authed = (("authorization", f"Bearer {token}"),)
    variants = {
        "plain": ((), ports["plain"]),
        "kit": (authed, ports["kit"]),
        "auth": (authed, ports["auth"]),
    }
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, (metadata, port) in variants.items():
            parent.send("cpu")
            cpu0 = parent.recv()
            t0 = time.perf_counter()
            count = await _load(f"127.0.0.1:{port}", metadata, args.seconds, args.concurrency)
            elapsed = time.perf_counter() - t0
            parent.send("cpu")
            cpu1 = parent.recv()
            results[name].append((count / elapsed, (cpu1 - cpu0) / count * 1e6))
    full_p50, bare_p50 = await _token_verification_p50(token, ports["auth"], args.samples)
    handler_us, edge_us = await _edge_cost_in_process(token, ports["auth"], args.blocks)
    parent.send("stop")
    process.join(timeout=10)
    if process.is_alive():
        process.terminate()
    shutil.rmtree(data_dir, ignore_errors=True)

    def summary(name: str) -> tuple[float, float]:
        return (
            statistics.median(r[0] for r in results[name]),
            statistics.median(r[1] for r in results[name]),
        )

    print(
        f"auth overhead bench: {args.rounds} rounds x {args.seconds:.0f}s, concurrency {args.concurrency}, "
        f"log level {args.log_level}, {os.cpu_count()} CPUs"
    )
    print(f"{'variant':<11}{'req/s':>10}{'server CPU µs/req':>20}")
    for name in variants:
        rps, cpu = summary(name)
        print(f"{name:<11}{rps:>10.0f}{cpu:>20.1f}")
    (plain_rps, plain_cpu), (kit_rps, kit_cpu) = summary("plain"), summary("kit")
    print(f"throughput ratio kit/plain: {kit_rps / plain_rps:.3f} (goal >= 0.9)")
    print(f"server CPU ratio kit/plain: {kit_cpu / plain_cpu:.3f} (issue 20 goal <= 1.15)")
    print(
        f"edge in-process: handler {handler_us:.1f} µs, handler behind the edge {edge_us:.1f} µs per call: "
        f"the edge adds {edge_us - handler_us:.1f} µs of server CPU (load average {os.getloadavg()[0]:.1f})"
    )
    print(
        f"token verification p50: {full_p50:.1f} µs first sight, {bare_p50:.1f} µs repeated (verified-token cache)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--samples", type=int, default=3000)
    parser.add_argument("--blocks", type=int, default=15, help="interleaved blocks of the in-process edge measure")
    parser.add_argument("--log-level", default="INFO")
    asyncio.run(main(parser.parse_args()))
