"""What does the SDK add on top of a raw generated stub? (deadline, request id, credentials
metadata, retry loop, error decoding; the sync client's hop to its loop thread)

Same run, same server: a trivial ``GenerationService.ListModels`` in a child process (one core), so
the numbers measure the client side. Rounds alternate between the clients to cancel drift.
  - stub:  ``grpc.aio`` generated stub, with the same metadata the SDK sends
  - async: ``viarte.AsyncClient`` (API key credentials)
  - sync:  ``viarte.Client`` (the same, driven from a plain thread)
Printed: calls/s per client, sequential and with N calls in flight, and each ratio to the stub.

    .venv/bin/python bench/sdk_overhead.py [--seconds 2] [--rounds 3] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grpc

from viarte import AsyncClient, Client
from viarte.inference.v1 import generation_pb2, generation_pb2_grpc


def _serve(port_queue: Any) -> None:
    class Models(generation_pb2_grpc.GenerationServiceServicer):  # type: ignore[misc]
        async def ListModels(self, request: Any, context: Any) -> Any:
            return generation_pb2.ListModelsResponse(models=[generation_pb2.Model(id="tiny-wan", tiny=True)])

    async def main() -> None:
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        generation_pb2_grpc.add_GenerationServiceServicer_to_server(Models(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        port_queue.put(port)
        await server.wait_for_termination()

    asyncio.run(main())


async def _stub_rate(address: str, seconds: float, concurrency: int) -> float:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)

        async def one() -> None:
            md = (("x-request-id", uuid.uuid4().hex), ("x-api-key", "vk_bench"))
            await stub.ListModels(generation_pb2.ListModelsRequest(), timeout=30, metadata=md)

        return await _rate(one, seconds, concurrency)


async def _async_rate(address: str, seconds: float, concurrency: int) -> float:
    async with AsyncClient({"inference": address}, api_key="vk_bench") as client:
        return await _rate(client.generation.list_models, seconds, concurrency)


async def _rate(call: Any, seconds: float, concurrency: int) -> float:
    for _ in range(50):  # warm the channel
        await call()
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await call()
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - started)


def _sync_rate(address: str, seconds: float, concurrency: int) -> float:
    with Client({"inference": address}, api_key="vk_bench") as client:
        for _ in range(50):
            client.generation.list_models()
        deadline = time.perf_counter() + seconds

        def worker() -> int:
            n = 0
            while time.perf_counter() < deadline:
                client.generation.list_models()
                n += 1
            return n

        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            total = sum(pool.map(lambda _: worker(), range(concurrency)))
        return total / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()

    ctx = mp.get_context("spawn")
    ports: Any = ctx.Queue()
    server = ctx.Process(target=_serve, args=(ports,), daemon=True)
    server.start()
    address = f"127.0.0.1:{ports.get(timeout=30)}"
    try:
        for label, concurrency in (("sequential", 1), (f"{args.concurrency} in flight", args.concurrency)):
            rates: dict[str, list[float]] = {"stub": [], "async": [], "sync": []}
            for _ in range(args.rounds):
                rates["stub"].append(asyncio.run(_stub_rate(address, args.seconds, concurrency)))
                rates["async"].append(asyncio.run(_async_rate(address, args.seconds, concurrency)))
                rates["sync"].append(_sync_rate(address, args.seconds, concurrency))
            med = {k: statistics.median(v) for k, v in rates.items()}
            print(f"{label:>16}: stub {med['stub']:8.0f}/s | async SDK {med['async']:8.0f}/s "
                  f"(x{med['async'] / med['stub']:.2f}) | sync SDK {med['sync']:8.0f}/s (x{med['sync'] / med['stub']:.2f})")  # fmt: skip
    finally:
        server.terminate()
        server.join(5)


if __name__ == "__main__":
    main()
