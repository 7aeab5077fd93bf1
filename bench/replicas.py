"""Job API throughput and dispatch latency: SQLite-1, PostgreSQL-1 and PostgreSQL-2 replicas, same run.

Three dev meshes one after the other (auth, storage, render and Envoy; `viarte up` shapes), each
driven through Envoy with the SDK, the way browsers and partners reach the studio:
  1. API throughput: C concurrent clients for S seconds, each looping create → get → cancel of a
     tiny render job (a 64x36 background-only timeline, half a second, draft quality: no media,
     no model). Reported as create+get pairs per second (the cancel keeps the queue short so the
     render workers do not eat the CPU the API is measured on). Every shape gets the same render
     slots in all (--render-slots, spread over its replicas), so each starts about as many jobs
     before their cancel ("ran") and pays alike for that work.
  2. Dispatch latency: N jobs one at a time on an idle queue, create → the first RUNNING event on
     a Watch opened right after Create returns (p50/p99, ms; "missed": no RUNNING event within
     10 s, i.e. the Watch landed on a replica that does not see the other's live events).
Printed side by side with the ratios the issue asks for: PG-2 vs PG-1 (goal ≥ 1.6x throughput) and
PG-1 vs SQLite-1, and dispatch p99 (goal < 50 ms). No assertion: a shared machine's numbers are
reported, not judged.
Beside each throughput: how busy the whole machine's CPUs were (from /proc/stat, other work
included), and the CPU time per create+get pair of the mesh's own processes (client, Envoy, each
service replica apart from its children such as ffmpeg, PostgreSQL with its backends; from
/proc/<pid>/stat, so other work on a shared machine is left out), which bounds what any number of
replicas can reach here: CPUs / CPU-per-pair. One replica's own Python runs on one CPU at a time
(the GIL), so with C CPUs two replicas give at most C x (one replica's own ms) / (the mesh's ms)
times one replica's throughput even at no extra cost; printed as "at most".

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

from bench.machine import TICK_SECONDS, cpu_jiffies  # noqa: E402
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


def slots_env(total: int, replicas: int) -> tuple[str, ...]:
    """The same render slots in all for every shape (0: each replica's default, one each), so every
    shape starts about as many of the jobs before their cancel: with one slot per replica, two
    replicas started 2.3x the share of jobs one did (ffmpeg and job events, not API work)."""
    return (f"VIARTE_RENDER_RENDER_WORKERS={max(1, total // replicas)}",) if total else ()


def tiny_job() -> render_pb2.RenderParameters:
    canvas = tl.Canvas(width=64, height=36, fps=10, background_color="#203040", duration_seconds=0.5)
    return render_pb2.RenderParameters(timeline=tl.Timeline(canvas=canvas), quality=render_pb2.QUALITY_PRESET_DRAFT)


def _proc_ticks(pid: int) -> tuple[int, int, int] | None:
    """(ppid, own CPU ticks, CPU ticks of its reaped children) of a live process (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # after the command: state ppid ... utime(12) stime(13) cutime(14) cstime(15), 0-based from state
    return int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


def mesh_cpu(state: object) -> dict[str, int]:
    """CPU ticks so far of the mesh's processes by the state file's process name, plus "client" (this
    process); a gRPC service's own Python apart from its children (render's ffmpeg; reaped ones
    through its child time). Other work on the machine is left out."""
    table: dict[int, tuple[int, int, int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (t := _proc_ticks(int(entry.name))) is not None:
            table[int(entry.name)] = t
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)

    def tree(pid: int) -> tuple[int, int]:  # (the process's own, its descendants' and reaped children's)
        own = table.get(pid)
        below = sum(sum(tree(c)) for c in children.get(pid, ()))
        return (own[1], own[2] + below) if own else (0, below)

    out = {"client": table[os.getpid()][1] if os.getpid() in table else 0}
    for proc in state.processes:  # type: ignore[attr-defined]
        if proc.pid:
            own, below = tree(proc.pid)
            if proc.kind == "grpc":  # the service's Python apart from what it runs (ffmpeg, workers)
                out[proc.name] = own
                out[f"{proc.name} children"] = below
            else:  # PostgreSQL's backends, Envoy's workers: one whole
                out[proc.name] = own + below
    return out


@dataclass
class Result:
    shape: str
    pairs_per_second: float
    errors: int
    dispatch_ms: list[float]
    missed: int
    busy_fraction: float  # of all CPUs, during the throughput phase
    cpu_ms_per_pair: float  # the whole machine's (other work included)
    split_ms_per_pair: dict[str, float]  # the mesh's own processes (and this client), by process
    ran: int  # jobs that had started (RUNNING) when their cancel came: the render work they cost

    @property
    def mesh_ms_per_pair(self) -> float:
        return sum(self.split_ms_per_pair.values())

    @property
    def ceiling(self) -> float:
        """Pairs per second this machine could give at 100 % of every CPU at the mesh's CPU cost per pair."""
        return (os.cpu_count() or 1) * 1000 / self.mesh_ms_per_pair if self.mesh_ms_per_pair else float("nan")

    def percentile(self, p: float) -> float:
        ordered = sorted(self.dispatch_ms)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] if ordered else float("nan")


async def throughput(address: str, tokens: object, seconds: float, clients: int) -> tuple[float, int, int]:
    params = tiny_job()
    stop_at = time.monotonic() + seconds
    counts, errors, ran = [0] * clients, [0] * clients, [0] * clients

    async def one(i: int) -> None:
        async with AsyncClient(address, tokens=tokens) as client:  # type: ignore[arg-type]
            while time.monotonic() < stop_at:
                try:
                    job = await client.render.create(params, request_id=uuid.uuid4().hex)
                    await client.render.get(job.id)
                    counts[i] += 1
                    cancelled = await client.render.cancel(job.id)
                    ran[i] += cancelled.status.HasField("start_time")
                except Exception:
                    errors[i] += 1

    began = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(clients)))
    return sum(counts) / (time.monotonic() - began), sum(errors), sum(ran)


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
        services=("auth", "storage", "account", "render"), child_env=CHILD_ENV + slots_env(args.render_slots, replicas),
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
            split0 = mesh_cpu(state)
            began = time.monotonic()
            pairs, errors, ran = await throughput(address, tokens, args.seconds, args.clients)
            busy1, total1 = cpu_jiffies()
            split1 = mesh_cpu(state)
            elapsed = time.monotonic() - began
            busy_fraction = (busy1 - busy0) / max(1, total1 - total0)
            ms_per_tick = 1000 * TICK_SECONDS
            done = max(1.0, pairs * elapsed)
            cpu_ms_per_pair = (busy1 - busy0) * ms_per_tick / done
            split = {name: (split1.get(name, 0) - ticks) * ms_per_tick / done for name, ticks in split0.items()}
            await asyncio.sleep(2)  # let cancels settle
            latencies, missed = await dispatch(address, tokens, args.dispatch)
        return Result(shape, pairs, errors, latencies, missed, busy_fraction, cpu_ms_per_pair, split, ran)
    finally:
        stop(state_dir)
        link = state_dir / "postgres"
        if link.is_symlink():
            shutil.rmtree(link.resolve(), ignore_errors=True)


def report(results: dict[str, Result]) -> None:
    print(f"\nmachine: {os.cpu_count()} CPUs, shared with other work (numbers are relative, same run)")
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"{'shape':10} {'create+get/s':>13} {'errors':>7} {'CPU busy':>9} {'CPU ms/pair':>12} {'mesh ms/pair':>13}"
          f" {'ceiling/s':>10} {'ran':>5} {'dispatch p50':>13} {'p99 (ms)':>9} {'missed':>7}")
    for r in results.values():
        print(f"{r.shape:10} {r.pairs_per_second:13.1f} {r.errors:7d} {r.busy_fraction:9.0%} {r.cpu_ms_per_pair:12.1f}"
              f" {r.mesh_ms_per_pair:13.1f} {r.ceiling:10.1f} {r.ran:5d} {r.percentile(50):13.1f}"
              f" {r.percentile(99):9.1f} {r.missed:7d}")
    print("CPU ms per pair by process (the mesh's own; 'ran': jobs already RUNNING at their cancel):")
    for r in results.values():
        parts = sorted(r.split_ms_per_pair.items(), key=lambda kv: -kv[1])
        print(f"  {r.shape:10} " + "  ".join(f"{name} {ms:.1f}" for name, ms in parts if ms >= 0.05))

    def ratio(a: str, b: str) -> None:
        if a in results and b in results and results[b].pairs_per_second:
            x = results[a].pairs_per_second / results[b].pairs_per_second
            print(f"throughput {a} / {b}: {x:.2f}x")

    ratio("pg-2", "pg-1")
    ratio("pg-1", "sqlite-1")
    if "pg-1" in results and "pg-2" in results and results["pg-1"].pairs_per_second:
        one, two = results["pg-1"], results["pg-2"]
        # What this machine's CPUs allow pg-2 at most (every CPU busy on the mesh alone), against pg-1 as measured.
        print(f"pg-2 / pg-1 at most, on {os.cpu_count()} CPUs: {two.ceiling / one.pairs_per_second:.2f}x at pg-2's"
              f" CPU per pair, {one.ceiling / one.pairs_per_second:.2f}x if pg-2 cost what pg-1 costs per pair")
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
    parser.add_argument("--render-slots", type=int, default=2,
                        help="render jobs at once in the whole mesh, spread over its replicas (0: one per replica)")
    _stop_on_sigterm()
    asyncio.run(main(parser.parse_args()))
