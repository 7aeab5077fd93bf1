"""What does Ray cost, and what does it buy? Same run, same tiny models, real loopback servers (auth,
storage with SeaweedFS, inference, render), Ray clusters simulated on this machine
(``ray.cluster_utils.Cluster``: a head without GPUs plus N nodes declaring one logical GPU each):

  - throughput: ``--jobs`` generation jobs submitted at once, jobs per minute, with the local
    executor (one device worker) and with Ray on 1 and on 2 simulated GPU nodes (one actor each);
    every device runs torch on one thread, so N devices may use N cores;
  - dispatch overhead per job: ``--overhead-jobs`` minimal jobs one after another, each job's wall
    time (create → SUCCEEDED seen by the client) minus the device's own span (first to last event
    the worker or actor stamped): queueing, placement, the pipe or Ray's stream, the upload;
    p50/p99, Ray (1 node) vs local;
  - one generation over 2 devices on the 2-node cluster (``devices: 2``, CFG-parallel), one job at
    a time, 1 device vs 2 (``--rounds`` each, median);
  - split work on the 2-node cluster: one upscale job (``--split-seconds`` of 320x180 30 fps, tiny
    Real-ESRGAN) and one render job (a timeline of that length: the clip, a crossfade, a moving
    overlay) with ``split_max_workers`` 1 vs 2 (one render server at a time), speedup of 2 workers.

Printed side by side with the ratios (goals: Ray-1 ≥ 0.95x local, 2 nodes ≥ 1.8x one node, split ≥
1.6x on 2 workers). No assertions: on a shared 2-core machine the figures say more about the
machine than about Ray; on a GPU machine the same script prints absolute figures.

CPU seconds per job by process group (this process's tree, psutil; a short-lived ffmpeg is counted
when its parent reaps it): the servers (auth, storage, inference/render: one process here) and the
ffmpeg/ffprobe they run (storage's probe and thumbnail; render's audio, join and poster), the device
processes (local worker, Ray actors) and their ffmpeg (the encode; a render's whole graph), Ray's own
processes (raylets, GCS, idle workers), SeaweedFS; and the whole machine's busy share (other work
on a shared machine shows there). From them, the most N devices can give on this machine's cores:
``min(N / device, cores / total)`` jobs per second, so the best ratio of 2 devices over 1 is
``2 * device / max(device, total / cores * 1)`` capped at 2 — it says whether a ratio goal can be
reached here at all.

    .venv/bin/python bench/scale_out.py [--jobs 8] [--steps 8] [--overhead-jobs 10] [--rounds 2]
        [--split-seconds 10] [--skip-split]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inference_overhead import _register

from bench.machine import TICK_SECONDS, cpu_jiffies
from viarte.inference.v1 import generation_pb2 as G
from viarte.type.v1 import job_pb2

MODEL = "tiny-wan"
GROUPS = ("server", "server-ffmpeg", "device", "device-ffmpeg", "ray", "weed", "other")
_DEVICE_STAGES = {job_pb2.STAGE_MODEL_LOADING, job_pb2.STAGE_DENOISING, job_pb2.STAGE_DECODING, job_pb2.STAGE_ENCODING}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _group(pid: int, name: str, cmd: str) -> str:
    import os

    if pid == os.getpid():
        return "server"
    if "weed" in name:
        return "weed"
    if (cmd.startswith("ray::") and "Actor" in cmd) or ("multiprocessing.spawn" in cmd and "resource_tracker" not in cmd):
        return "device"
    return "ray" if "ray" in cmd or name in ("raylet", "gcs_server") else "other"


def _cpu_snapshot() -> tuple[dict[int, tuple[str, float, float]], tuple[float, float]]:
    """(pid → (group, own CPU s, reaped children's CPU s)) for this process's tree, and the
    machine's (busy, total) CPU seconds so far."""

    import psutil

    me = psutil.Process()
    tree: dict[int, tuple[str, float, float]] = {}
    for proc in [me, *me.children(recursive=True)]:
        try:
            with proc.oneshot():
                name, cmd, t = proc.name(), " ".join(proc.cmdline())[:300], proc.cpu_times()
        except psutil.Error:
            continue
        if name in ("ffmpeg", "ffprobe"):
            continue  # counted once, in its parent's reaped children
        tree[proc.pid] = (_group(proc.pid, name, cmd), t.user + t.system, t.children_user + t.children_system)
    busy, total = cpu_jiffies()
    return tree, (busy * TICK_SECONDS, total * TICK_SECONDS)


def _cpu_per_job(before: Any, after: Any, jobs: int) -> dict[str, float]:
    """CPU seconds per job by group between two snapshots, plus "machine" (busy share of all cores)
    and "ours" (this tree's share of the machine's busy seconds)."""
    (tree0, (busy0, total0)), (tree1, (busy1, total1)) = before, after
    spent = dict.fromkeys(GROUPS, 0.0)
    for pid, (group, own, reaped) in tree1.items():
        _, own0, reaped0 = tree0.get(pid, (group, 0.0, 0.0))
        spent[group] += own - own0
        spent[{"server": "server-ffmpeg", "device": "device-ffmpeg"}.get(group, group)] += reaped - reaped0
    ours = sum(spent.values())
    figures = {k: v / jobs for k, v in spent.items()}
    figures["machine"] = (busy1 - busy0) / max(1e-9, total1 - total0)
    figures["ours"] = ours / max(1e-9, busy1 - busy0)
    return figures


async def _job(stub: Any, user: Any, params: dict[str, Any]) -> tuple[float, float]:
    """(wall seconds, device seconds) of one generation job, as the client sees it."""
    t0 = time.time()
    created = await stub.CreateGenerationJob(G.CreateGenerationJobRequest(parameters=G.GenerationParameters(**params)),
                                             metadata=user.metadata)
    first = last = 0.0
    state = 0
    async for message in stub.WatchGenerationJob(G.WatchGenerationJobRequest(id=created.job.id), metadata=user.metadata):
        if not message.HasField("event"):
            continue
        ev = message.event
        state = ev.state
        if ev.progress.stage in _DEVICE_STAGES:
            stamp = ev.time.ToMicroseconds() / 1e6
            first, last = first or stamp, stamp
    wall = time.time() - t0
    assert state == job_pb2.JOB_STATE_SUCCEEDED, f"job ended {job_pb2.JobState.Name(state)}"
    return wall, last - first


def _params(args: argparse.Namespace, i: int, *, small: bool = False) -> dict[str, Any]:
    if small:  # the least a job can be: what is left over is the executor's own cost
        return {"model": MODEL, "prompt": f"overhead {i}", "width": 64, "height": 64, "num_frames": 5,
                "num_inference_steps": 1, "seed": i}
    return {"model": MODEL, "prompt": f"a lighthouse {i}", "width": args.size, "height": args.size,
            "num_frames": args.frames, "num_inference_steps": args.steps, "seed": i}


async def _inference_figures(stub: Any, user: Any, args: argparse.Namespace, devices: int,
                             overhead: bool) -> dict[str, Any]:
    # Warm every device (model load, first-call allocations): one job per device, at once.
    await asyncio.gather(*(_job(stub, user, _params(args, 1000 + d)) for d in range(devices)))
    before = _cpu_snapshot()
    t0 = time.perf_counter()
    await asyncio.gather(*(_job(stub, user, _params(args, i)) for i in range(args.jobs)))
    figures: dict[str, Any] = {"jpm": args.jobs * 60 / (time.perf_counter() - t0)}
    figures["cpu"] = _cpu_per_job(before, _cpu_snapshot(), args.jobs)
    if overhead:
        spent = [await _job(stub, user, _params(args, i, small=True)) for i in range(args.overhead_jobs)]
        figures["overhead_ms"] = [(wall - device) * 1000 for wall, device in spent]
    if devices == 2:
        # One job at a time on one device, then split over two (CFG-parallel: the unconditional pass
        # of each step on the second actor); the same seed, so the same video either way.
        one_job = _params(args, 7) | {"guidance_scale": 5.0}
        figures["cfg_s"] = {n: statistics.median([(await _job(stub, user, one_job | {"devices": n}))[0]
                                                  for _ in range(args.rounds)]) for n in (1, 2)}
    return figures


async def _split_job(channel: Any, user: Any, kind: str, asset: str, timeline: Any) -> float:
    """Seconds from create to SUCCEEDED of one upscale (of ``asset``) or render (of ``timeline``)."""
    from viarte.render.v1 import render_pb2, render_pb2_grpc

    t0 = time.perf_counter()
    if kind == "upscale":
        upscale = render_pb2_grpc.UpscaleServiceStub(channel)
        job = (await upscale.CreateUpscaleJob(render_pb2.CreateUpscaleJobRequest(
            parameters=render_pb2.UpscaleParameters(video_asset_id=asset, scale=2)), metadata=user.metadata)).job
        stream = upscale.WatchUpscaleJob(render_pb2.WatchUpscaleJobRequest(id=job.id), metadata=user.metadata)
    else:
        renders = render_pb2_grpc.RenderServiceStub(channel)
        job = (await renders.CreateRenderJob(render_pb2.CreateRenderJobRequest(parameters=render_pb2.RenderParameters(
            timeline=timeline, quality=render_pb2.QUALITY_PRESET_HIGH)), metadata=user.metadata)).job
        stream = renders.WatchRenderJob(render_pb2.WatchRenderJobRequest(id=job.id), metadata=user.metadata)
    state = 0
    async for message in stream:
        if message.HasField("event"):
            state = message.event.state
    assert state == job_pb2.JOB_STATE_SUCCEEDED, f"{kind} ended {job_pb2.JobState.Name(state)}"
    return time.perf_counter() - t0


async def _split_figures(base: Path, auth: Any, storage: Any, user: Any, cluster: Any, rounds: int,
                         seconds_long: int) -> dict[str, Any]:
    """The same upscale and render on the 2-node cluster by a render server splitting over at most
    1, then 2 actors (one server at a time: each holds an actor per GPU)."""
    from tests.fixtures.render import render_test_config, running_render
    from tests.render.timelines import crossfade, timeline, track
    from viarte.render.v1 import timeline_pb2 as tl

    # Long enough that the split part dominates the job's fixed costs (download, join, upload).
    source = base / "long.mp4"
    await asyncio.to_thread(subprocess.run, [
        "ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=s=320x180:r=30:d={seconds_long}", "-f", "lavfi",
        "-i", f"sine=f=660:d={seconds_long}", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-shortest", str(source)], check=True)
    data = await asyncio.to_thread(source.read_bytes)
    long_id = await storage.upload(user, data, "long.mp4", "video/mp4")
    edit = timeline()
    video = track(edit)
    video.clips.add(asset_id=long_id, source_end_seconds=seconds_long)
    video.clips.add(asset_id=long_id, start_seconds=seconds_long - 1, source_end_seconds=seconds_long,
                    transition_in=crossfade(1.0))
    over = track(edit).clips.add(asset_id=long_id, start_seconds=1, source_end_seconds=seconds_long, fit=tl.FIT_STRETCH)
    over.transform.scale.value = 0.3
    over.transform.x.keyframes.add(time_seconds=0.0, value=0.2)
    over.transform.x.keyframes.add(time_seconds=seconds_long, value=0.8)
    seconds: dict[str, list[float]] = {}
    cpu: dict[str, dict[str, float]] = {}
    for workers in (1, 2):
        config = render_test_config(base / f"render-{workers}", auth, storage, executor="ray", ray_address=cluster.address,
                                    split_max_workers=workers, render_split_seconds=3.0, upscale_split_min_frames=8)
        async with running_render(config) as render:
            await _split_job(render.channel, user, "upscale", long_id, edit)  # warm: upscaler loaded
            for kind in ("upscale", "render"):
                before = _cpu_snapshot()
                seconds[f"{kind}-{workers}"] = [await _split_job(render.channel, user, kind, long_id, edit)
                                                for _ in range(rounds)]
                cpu[f"{kind}-{workers}"] = _cpu_per_job(before, _cpu_snapshot(), rounds)
    return {k: statistics.median(v) for k, v in seconds.items()} | {"cpu": cpu}


async def main(args: argparse.Namespace) -> None:
    from services.inference.models.registry import load_registry
    from services.inference.models.tiny import build_tiny_models
    from services.render.config import RenderConfig
    from services.render.upscale.pool import model_paths
    from services.render.upscale.rrdbnet import build_tiny
    from tests.fixtures.auth import running_auth, test_auth_config
    from tests.fixtures.inference import TINY_MODELS_DIR, running_inference, test_inference_config
    from tests.fixtures.ray import simulated_cluster
    from tests.fixtures.render import MODEL_DIR
    from tests.fixtures.storage import running_s3, running_storage, test_storage_config

    build_tiny_models(load_registry(), TINY_MODELS_DIR)
    _, tiny = model_paths(RenderConfig(model_dir=str(MODEL_DIR)))
    assert tiny is not None
    build_tiny(tiny)
    results: dict[str, dict[str, Any]] = {}
    split: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-scale-out-") as tmp:
        base = Path(tmp)
        async with AsyncExitStack() as stack:
            auth = await stack.enter_async_context(running_auth(test_auth_config(str(base / "auth"))))
            s3 = await stack.enter_async_context(running_s3(base / "s3"))
            storage = await stack.enter_async_context(running_storage(test_storage_config(base / "storage", s3, auth), s3))
            user = await _register(auth.address)
            common = {"models": (MODEL,), "worker_threads": 1}
            local = test_inference_config(base / "local", auth, storage, devices=("cpu",), **common)
            async with running_inference(local) as service:
                results["local"] = await _inference_figures(service.stub, user, args, 1, overhead=True)
            print(f"local done: {results['local']['jpm']:.1f} jobs/min", flush=True)
            for nodes in (1, 2):
                with simulated_cluster(nodes) as cluster:
                    config = test_inference_config(base / f"ray-{nodes}", auth, storage, executor="ray",
                                                   ray_address=cluster.address, **common)
                    async with running_inference(config) as service:
                        results[f"ray-{nodes}"] = await _inference_figures(service.stub, user, args, nodes,
                                                                           overhead=nodes == 1)
                    print(f"ray-{nodes} done: {results[f'ray-{nodes}']['jpm']:.1f} jobs/min", flush=True)
                    if nodes == 2 and not args.skip_split:
                        split = await _split_figures(base, auth, storage, user, cluster, args.rounds, args.split_seconds)
    _report(args, results, split)


def _cpu_table(rows: dict[str, dict[str, float]], seconds: dict[str, float]) -> None:
    """CPU seconds per job by group, and what cores the job's wall time kept busy."""
    import os

    cores = os.cpu_count() or 1
    print(f"  {'':12}" + "".join(f"{g:>14}" for g in GROUPS) + f"{'total':>8}{'cores used':>12}{'machine':>9}{'ours':>6}")
    for name, cpu in rows.items():
        total = sum(cpu[g] for g in GROUPS)
        print(f"  {name:12}" + "".join(f"{cpu[g]:14.2f}" for g in GROUPS) + f"{total:8.2f}"
              f"{total / seconds[name]:12.2f}{cpu['machine'] * cores:8.2f}c{cpu['ours']:6.0%}")


def _report(args: argparse.Namespace, results: dict[str, dict[str, Any]], split: dict[str, Any]) -> None:
    import os

    cores = os.cpu_count() or 1
    print(f"\n{MODEL} {args.size}x{args.size}x{args.frames} frames, {args.steps} steps, {args.jobs} jobs at once, "
          "one torch thread per device (CPU, simulated GPU nodes)")
    print(f"{'executor':18}{'jobs/min':>10}{'vs local':>10}")
    for name in ("local", "ray-1", "ray-2"):
        jpm = results[name]["jpm"]
        print(f"{name:18}{jpm:10.2f}{jpm / results['local']['jpm']:10.2f}")
    print(f"Ray-1 / local: {results['ray-1']['jpm'] / results['local']['jpm']:.2f}x (goal >= 0.95); "
          f"Ray-2 / Ray-1: {results['ray-2']['jpm'] / results['ray-1']['jpm']:.2f}x (goal >= 1.8)")
    print(f"CPU seconds per job while {args.jobs} ran at once ('cores used': total / wall per job; 'machine': busy "
          f"cores of {cores} incl. others' work; 'ours': this run's share of it):")
    _cpu_table({n: results[n]["cpu"] for n in ("local", "ray-1", "ray-2")},
               {n: 60 / results[n]["jpm"] for n in ("local", "ray-1", "ray-2")})
    two = results["ray-2"]["cpu"]
    device, total = two["device"], sum(two[g] for g in GROUPS)
    best = min(2 / device, cores / total) / min(1 / device, cores / total)
    print(f"  2 devices over 1 at most {best:.2f}x on {cores} cores: min(2/device, cores/total) / min(1/device, "
          f"cores/total) with Ray-2's device {device:.2f} s and total {total:.2f} s per job")
    print(f"dispatch overhead per job ({args.overhead_jobs} minimal jobs in a row; wall minus device span), ms:")
    for name in ("local", "ray-1"):
        values = results[name]["overhead_ms"]
        print(f"  {name:8} p50 {statistics.median(values):8.1f}  p99 {_pct(values, 0.99):8.1f}")
    cfg = results["ray-2"].get("cfg_s")
    if cfg:
        print(f"one generation over 2 devices (devices: 2, CFG-parallel), median s of {args.rounds}: "
              f"1 device {cfg[1]:.2f} / 2 devices {cfg[2]:.2f}   {cfg[1] / cfg[2]:.2f}x")
    if split:
        print("split work on the 2-node cluster, median s (1 worker / 2 workers, speedup; goal >= 1.6):")
        for kind in ("upscale", "render"):
            one, two = split[f"{kind}-1"], split[f"{kind}-2"]
            print(f"  {kind:8} {one:8.2f} / {two:8.2f}   {one / two:5.2f}x")
        print("  CPU seconds per split job (a job that already keeps all cores busy on one worker cannot gain here):")
        _cpu_table(split["cpu"], {k: split[k] for k in split["cpu"]})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--overhead-jobs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2, help="split jobs per width")
    parser.add_argument("--split-seconds", type=int, default=10, help="length of the split upscale/render input")
    parser.add_argument("--skip-split", action="store_true")
    asyncio.run(main(parser.parse_args()))
