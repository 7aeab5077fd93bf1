"""Job API throughput and dispatch latency: SQLite-1, PostgreSQL-1 and PostgreSQL-2 replicas, same run.

Three dev meshes one after the other (auth, storage, render and Envoy; `viarte up` shapes), each
driven through Envoy with the SDK, the way browsers and partners reach the studio:
  1. API throughput: C concurrent clients for S seconds, each looping create → get → cancel of a
     tiny render job (a 64x36 background-only timeline, half a second, draft quality: no media,
     no model). Reported as create+get pairs per second (the cancel keeps the queue short so the
     render workers do not eat the CPU the API is measured on; every configuration pays it alike).
  2. Dispatch latency: N jobs one at a time on an idle queue, create → the first RUNNING event on
     a Watch opened right after Create returns (p50/p99, ms; "missed": no RUNNING event within
     10 s, i.e. the Watch landed on a replica that does not see the other's live events).
Printed side by side with the ratios the issue asks for: PG-2 vs PG-1 (goal ≥ 1.6x throughput) and
PG-1 vs SQLite-1, and dispatch p99 (goal < 50 ms). No assertion: a shared machine's numbers are
reported, not judged. Render runs with its default worker count per replica.
Beside each throughput: how busy the whole machine's CPUs were (from /proc/stat) and the CPU time
spent per create+get pair (every process: client, Envoy, services, PostgreSQL), which bounds what
any number of replicas can reach here: CPUs / CPU-per-pair. When one replica already keeps every
CPU busy, a second one can only share them. (Whole-machine figures: meaningful on a quiet machine.)

Run: .venv/bin/python bench/replicas.py [--seconds 20] [--clients 16] [--dispatch 40] [--only pg-1,pg-2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from studio_dev.mesh import MeshConfig, start, stop  # noqa: E402
from viarte import AsyncClient, JobState  # noqa: E402
from viarte.render.v1 import render_pb2  # noqa: E402
from viarte.render.v1 import timeline_pb2 as tl  # noqa: E402

SHAPES = {"sqlite-1": ("sqlite", 1), "pg-1": ("postgres", 1), "pg-2": ("postgres", 2)}
CHILD_ENV = (
    "VIARTE_AUTH_BCRYPT_COST=4",
    "VIARTE_LOG_LEVEL=WARNING",  # no access line per RPC: the bench measures the API, not logging
    "VIARTE_RENDER_MAX_QUEUED_JOBS=10000",
)


def tiny_job() -> render_pb2.RenderParameters:
    canvas = tl.Canvas(width=64, height=36, fps=10, background_color="#203040", duration_seconds=0.5)
    return render_pb2.RenderParameters(timeline=tl.Timeline(canvas=canvas), quality=render_pb2.QUALITY_PRESET_DRAFT)


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine so far, in clock ticks (Linux /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


@dataclass
class Result:
    shape: str
    pairs_per_second: float
    errors: int
    dispatch_ms: list[float]
    missed: int
    busy_fraction: float  # of all CPUs, during the throughput phase
    cpu_ms_per_pair: float

    @property
    def ceiling(self) -> float:
        """Pairs per second this machine could give at 100 % of every CPU at this CPU cost per pair."""
        return (os.cpu_count() or 1) * 1000 / self.cpu_ms_per_pair if self.cpu_ms_per_pair else float("nan")

    def percentile(self, p: float) -> float:
        ordered = sorted(self.dispatch_ms)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] if ordered else float("nan")


async def throughput(address: str, tokens: object, seconds: float, clients: int) -> tuple[float, int]:
    params = tiny_job()
    stop_at = time.monotonic() + seconds
    counts, errors = [0] * clients, [0] * clients

    async def one(i: int) -> None:
        async with AsyncClient(address, tokens=tokens) as client:  # type: ignore[arg-type]
            while time.monotonic() < stop_at:
                try:
                    job = await client.render.create(params, request_id=uuid.uuid4().hex)
                    await client.render.get(job.id)
                    counts[i] += 1
                    await client.render.cancel(job.id)
                except Exception:
                    errors[i] += 1

    began = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(clients)))
    return sum(counts) / (time.monotonic() - began), sum(errors)


async def dispatch(address: str, tokens: object, samples: int) -> tuple[list[float], int]:
    """Latencies (ms) and the samples whose RUNNING event never reached the watch within 10 s (a
    Watch served by a replica that does not see another replica's live events)."""
    params, out, missed = tiny_job(), [], 0
    async with AsyncClient(address, tokens=tokens) as client:  # type: ignore[arg-type]
        for _ in range(samples):
            began = time.perf_counter()
            job = await client.render.create(params)
            try:
                async with asyncio.timeout(10):
                    async for update in client.render.watch(job.id):
                        if update.state is not JobState.QUEUED:
                            out.append((time.perf_counter() - began) * 1000)
                            break
            except TimeoutError:
                missed += 1
            # An idle queue for the next sample (polled: a Watch may be on the other replica).
            for _poll in range(2400):  # at most ~2 min
                if JobState((await client.render.get(job.id)).status.state).terminal:
                    break
                await asyncio.sleep(0.05)
    return out, missed


async def measure(shape: str, state_root: Path, args: argparse.Namespace) -> Result:
    database, replicas = SHAPES[shape]
    state_dir = state_root / shape
    config = MeshConfig(
        state_dir=str(state_dir), free_ports=True, database=database, replicas=replicas,
        services=("auth", "storage", "account", "render"), child_env=CHILD_ENV,
    )  # fmt: skip
    print(f"[{shape}] starting the mesh…", flush=True)
    try:
        state = start(config)
        address = state.gateway_url.removeprefix("http://")
        async with AsyncClient(address) as client:
            await client.auth.register(f"bench-{uuid.uuid4().hex[:8]}@viarte.test", "correct horse battery staple")
            tokens = client.credentials.tokens
            await dispatch(address, tokens, 3)  # warm-up: connections, first ffmpeg, caches
            busy0, total0 = cpu_jiffies()
            began = time.monotonic()
            pairs, errors = await throughput(address, tokens, args.seconds, args.clients)
            busy1, total1 = cpu_jiffies()
            elapsed = time.monotonic() - began
            busy_fraction = (busy1 - busy0) / max(1, total1 - total0)
            cpu_seconds = (busy1 - busy0) / os.sysconf("SC_CLK_TCK")
            cpu_ms_per_pair = cpu_seconds * 1000 / max(1.0, pairs * elapsed)
            await asyncio.sleep(2)  # let cancels settle
            latencies, missed = await dispatch(address, tokens, args.dispatch)
        return Result(shape, pairs, errors, latencies, missed, busy_fraction, cpu_ms_per_pair)
    finally:
        stop(state_dir)
        link = state_dir / "postgres"
        if link.is_symlink():
            shutil.rmtree(link.resolve(), ignore_errors=True)


def report(results: dict[str, Result]) -> None:
    print(f"\nmachine: {os.cpu_count()} CPUs, shared with other work (numbers are relative, same run)")
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"{'shape':10} {'create+get/s':>13} {'errors':>7} {'CPU busy':>9} {'CPU ms/pair':>12} {'ceiling/s':>10}"
          f" {'dispatch p50':>13} {'p99 (ms)':>9} {'missed':>7}")
    for r in results.values():
        print(f"{r.shape:10} {r.pairs_per_second:13.1f} {r.errors:7d} {r.busy_fraction:9.0%} {r.cpu_ms_per_pair:12.1f}"
              f" {r.ceiling:10.1f} {r.percentile(50):13.1f} {r.percentile(99):9.1f} {r.missed:7d}")

    def ratio(a: str, b: str) -> None:
        if a in results and b in results and results[b].pairs_per_second:
            x = results[a].pairs_per_second / results[b].pairs_per_second
            print(f"throughput {a} / {b}: {x:.2f}x")

    ratio("pg-2", "pg-1")
    ratio("pg-1", "sqlite-1")
    print("goals: pg-2 ≥ 1.6x pg-1; dispatch p99 < 50 ms")


def _stop_on_sigterm() -> None:
    # SIGTERM (timeout, kill) unwinds like Ctrl-C, so the meshes started so far are stopped.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))


async def main(args: argparse.Namespace) -> None:
    shapes = args.only.split(",") if args.only else list(SHAPES)
    root = Path(tempfile.mkdtemp(prefix="viarte-bench-replicas-"))
    results: dict[str, Result] = {}
    try:
        for shape in shapes:
            results[shape] = await measure(shape, root, args)
            r = results[shape]
            print(f"[{shape}] {r.pairs_per_second:.1f} create+get/s, dispatch p99 {r.percentile(99):.1f} ms", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report(results)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--dispatch", type=int, default=40)
    parser.add_argument("--only", default="", help="comma-separated shapes: sqlite-1, pg-1, pg-2")
    _stop_on_sigterm()
    asyncio.run(main(parser.parse_args()))
