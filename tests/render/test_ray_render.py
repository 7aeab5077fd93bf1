"""Render and upscale on the Ray executor (issue 15), on the session's simulated 2-node Ray cluster
(tests/fixtures/ray.py: a head without GPUs, two worker nodes declaring one logical GPU each), real
render servers over loopback, the tiny upscaler. One Ray-backed render server serves the whole
module; the session's local render server is the reference. The node-removal test runs last (it
adds a node first, so the cluster keeps two GPU nodes)."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import pytest_asyncio

from services.kit.ports import free_port
from services.render.capabilities import capabilities
from services.render.config import RenderConfig
from services.render.upscale.pool import upscale_work
from tests.fixtures.ray import add_gpu_node, connected, service_without_ray
from tests.fixtures.render import MODEL_DIR, probe_file, render_test_config, running_render
from tests.render.test_split import MIN_C_CRF18_DB, MIN_Y_CRF18_DB, busy_timeline, decode, scores
from tests.render.test_stabilize import Counted, make_shaky
from tests.render.timelines import timeline, track
from viarte.errors import from_rpc_error
from viarte.render.v1 import render_pb2, render_pb2_grpc, timeline_pb2
from viarte.storage.v1 import storage_pb2
from viarte.type.v1 import asset_pb2, job_pb2

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow]
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def ray_render(tmp_path_factory: Any, auth_service: Any, storage_service: Any, tiny_upscaler: Path,
                     ray_cluster: Any) -> AsyncIterator[Any]:
    # Split from 3 s of timeline and 8 frames of video; lossless upscale so decoded frames compare exactly.
    config = render_test_config(tmp_path_factory.mktemp("ray-render"), auth_service, storage_service, executor="ray",
                                ray_address=ray_cluster.address, ray_probe_seconds=0.5, split_max_workers=2,
                                render_split_seconds=3.0, upscale_split_min_frames=8, upscale_crf=0)
    async with running_render(config) as service:
        await connected(service.server.render_ray.actors)
        yield service


async def _watch(stub: Any, method: str, request: Any, user: Any) -> list[job_pb2.JobEvent]:
    events = []
    async for msg in getattr(stub, method)(request, metadata=user.metadata, timeout=300):
        if msg.HasField("event"):
            events.append(msg.event)
    return events


def _yuv_frames(data: bytes, tmp: Path, w: int, h: int) -> np.ndarray:
    tmp.write_bytes(data)
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(tmp), "-map", "0:v:0", "-f", "rawvideo", "-pix_fmt", "yuv420p",
                          "pipe:1"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, w * h * 3 // 2)


async def test_split_upscale_equals_the_single_worker_output(ray_render: Any, storage_service: Any, user_factory: Any,
                                                             render_media: Any, ray_cluster: Any, tmp_path: Path) -> None:
    user = await user_factory()
    src = Path(render_media.small.location)  # 15 frames, 64x36, 15 fps, with sound
    asset = await storage_service.upload(user, await asyncio.to_thread(src.read_bytes), "small.mp4", "video/mp4")
    stub = render_pb2_grpc.UpscaleServiceStub(ray_render.channel)
    job = (await stub.CreateUpscaleJob(render_pb2.CreateUpscaleJobRequest(
        parameters=render_pb2.UpscaleParameters(video_asset_id=asset, scale=2)), metadata=user.metadata)).job
    events = await _watch(stub, "WatchUpscaleJob", render_pb2.WatchUpscaleJobRequest(id=job.id), user)
    assert events[-1].state == job_pb2.JOB_STATE_SUCCEEDED, events[-1]
    frames = [e.progress.frame for e in events if e.progress.stage == job_pb2.STAGE_UPSCALING]
    assert frames == sorted(frames) and frames[-1] == 15, str(frames)  # the parts' frames, summed, in order
    done = (await stub.GetUpscaleJob(render_pb2.GetUpscaleJobRequest(id=job.id), metadata=user.metadata)).job
    # split over both actors, one per node
    assert done.status.placement.executor == "ray"
    assert set(done.status.placement.node.split(",")) == {n.node_id for n in ray_cluster.worker_nodes}
    assert (done.result.width, done.result.height, done.result.frame_count) == (128, 72, 15)
    data = await storage_service.download(user, done.result.video_asset_id)
    (tmp_path / "ray.mp4").write_bytes(data)
    facts = probe_file(tmp_path / "ray.mp4")
    assert (facts["frames"], facts["fps"]) == (15, 15.0) and facts["has_audio"]
    # the reference: the same work in one worker, start to end (the local executor's code path)
    from services.render.upscale.worker import upscale_file

    config: RenderConfig = ray_render.config
    work = upscale_work(config, str(src), "video/mp4", tmp_path / "one.mp4")
    await asyncio.to_thread(upscale_file, work, lambda _m: None)
    one = _yuv_frames((tmp_path / "one.mp4").read_bytes(), tmp_path / "a.mp4", 128, 72)
    split = _yuv_frames(data, tmp_path / "b.mp4", 128, 72)
    assert one.shape == split.shape == (15, 128 * 72 * 3 // 2)
    assert all(np.array_equal(a, b) for a, b in zip(one, split, strict=True))  # byte-equal, frame by frame
    assert not np.array_equal(one[7], split[8])  # (the frames differ from each other: the check means something)


async def test_split_render_on_two_actors_matches_the_local_render(ray_render: Any, render_service: Any, storage_service: Any,
                                                                   user_factory: Any, render_media: Any, ray_cluster: Any,
                                                                   tmp_path: Path) -> None:
    user = await user_factory()
    ids = {}
    for key, source in (("bars", render_media.bars), ("red", render_media.red), ("blue", render_media.blue)):
        data = await asyncio.to_thread(Path(source.location).read_bytes)
        ids[key] = await storage_service.upload(user, data, Path(source.location).name, "video/mp4")
    params = render_pb2.RenderParameters(timeline=busy_timeline(ids), quality=render_pb2.QUALITY_PRESET_HIGH)
    outputs = []
    for service in (ray_render, render_service):  # the session's render server: local, one ffmpeg
        stub = render_pb2_grpc.RenderServiceStub(service.channel)
        job = (await stub.CreateRenderJob(render_pb2.CreateRenderJobRequest(parameters=params), metadata=user.metadata)).job
        events = await _watch(stub, "WatchRenderJob", render_pb2.WatchRenderJobRequest(id=job.id), user)
        assert events[-1].state == job_pb2.JOB_STATE_SUCCEEDED, events[-1]
        rendering = [e.progress.frame for e in events if e.progress.stage == job_pb2.STAGE_RENDERING]
        assert rendering and rendering == sorted(rendering)
        outputs.append((await stub.GetRenderJob(render_pb2.GetRenderJobRequest(id=job.id), metadata=user.metadata)).job)
    ray_job, local_job = outputs
    assert ray_job.status.placement.executor == "ray" and local_job.status.placement.executor == "local"
    assert set(ray_job.status.placement.node.split(",")) == {n.node_id for n in ray_cluster.worker_nodes}
    for field in ("frame_count", "width", "height", "fps", "has_audio", "encoder"):
        assert getattr(ray_job.result, field) == getattr(local_job.result, field), field
    paths = []
    for name, job in (("ray", ray_job), ("local", local_job)):
        path = tmp_path / f"{name}.mp4"
        path.write_bytes(await storage_service.download(user, job.result.video_asset_id))
        paths.append(path)
    a, b = probe_file(paths[0]), probe_file(paths[1])
    assert a["frames"] == b["frames"] == 180 and a["has_audio"] and abs(float(a["duration"]) - float(b["duration"])) < 0.05
    luma, chroma = scores(decode(paths[1]), decode(paths[0]))
    assert luma > MIN_Y_CRF18_DB and chroma > MIN_C_CRF18_DB, (luma, chroma)


async def test_cancel_mid_upscale_on_an_actor_then_the_actor_works_again(ray_render: Any, storage_service: Any,
                                                                          user_factory: Any, render_media: Any) -> None:
    user = await user_factory()
    src = Path(render_media.bars.location)  # 90 frames at 320x180: long enough to cancel in the middle
    asset = await storage_service.upload(user, await asyncio.to_thread(src.read_bytes), "bars.mp4", "video/mp4")
    stub = render_pb2_grpc.UpscaleServiceStub(ray_render.channel)
    job = (await stub.CreateUpscaleJob(render_pb2.CreateUpscaleJobRequest(
        parameters=render_pb2.UpscaleParameters(video_asset_id=asset, scale=2)), metadata=user.metadata)).job
    async for msg in stub.WatchUpscaleJob(render_pb2.WatchUpscaleJobRequest(id=job.id), metadata=user.metadata, timeout=300):
        if msg.HasField("event") and msg.event.progress.stage == job_pb2.STAGE_UPSCALING and msg.event.progress.frame >= 4:
            break
    await stub.CancelUpscaleJob(render_pb2.CancelUpscaleJobRequest(id=job.id), metadata=user.metadata)
    events = await _watch(stub, "WatchUpscaleJob", render_pb2.WatchUpscaleJobRequest(id=job.id), user)
    assert events[-1].state == job_pb2.JOB_STATE_CANCELLED, events[-1]
    upscaled = max(e.progress.frame for e in events if e.progress.stage == job_pb2.STAGE_UPSCALING)
    assert upscaled < 90  # stopped between batches, not run to the end
    # the actors live on (cancel is a flag, not a kill): the next job succeeds on them
    data = await asyncio.to_thread(Path(render_media.small.location).read_bytes)
    small = await storage_service.upload(user, data, "small.mp4", "video/mp4")
    again = (await stub.CreateUpscaleJob(render_pb2.CreateUpscaleJobRequest(
        parameters=render_pb2.UpscaleParameters(video_asset_id=small, scale=2)), metadata=user.metadata)).job
    final = await _watch(stub, "WatchUpscaleJob", render_pb2.WatchUpscaleJobRequest(id=again.id), user)
    assert final[-1].state == job_pb2.JOB_STATE_SUCCEEDED, final[-1]


async def test_ray_unreachable_answers_unavailable_and_local_is_unaffected(
    tmp_path: Path, auth_service: Any, storage_service: Any, render_service: Any, user_factory: Any, render_media: Any
) -> None:
    port, nowhere = free_port(), f"127.0.0.1:{free_port()}"  # nothing listens there
    values = {
        "PORT": str(port), "DATA_DIR": str(tmp_path), "LOG_LEVEL": "WARNING", "AUTH_ADDRESS": auth_service.address,
        "STORAGE_ADDRESS": storage_service.address, "INTERNAL_SECRET": auth_service.config.internal_secret.reveal(),
        "JWT_ISSUER": auth_service.config.jwt_issuer, "JWT_AUDIENCE": auth_service.config.jwt_audience,
        "MODEL_DIR": str(MODEL_DIR), "EXECUTOR": "ray", "RAY_CONNECT_TIMEOUT_SECONDS": "20",
    }
    env = {f"VIARTE_RENDER_{k}": v for k, v in values.items()} | {"VIARTE_RAY_ADDRESS": nowhere}  # the mesh-wide name
    user = await user_factory()
    data = await asyncio.to_thread(Path(render_media.small.location).read_bytes)
    small = await storage_service.upload(user, data, "small.mp4", "video/mp4")
    request = render_pb2.CreateUpscaleJobRequest(parameters=render_pb2.UpscaleParameters(video_asset_id=small, scale=2))
    async with service_without_ray("services.render", env, port, tmp_path / "render.log") as channel:
        stub = render_pb2_grpc.UpscaleServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.CreateUpscaleJob(request, metadata=user.metadata, timeout=30)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert from_rpc_error(err.value).reason == "RAY_UNAVAILABLE" and nowhere in (err.value.details() or "")
        listed = await stub.ListUpscaleJobs(render_pb2.ListUpscaleJobsRequest(), metadata=user.metadata, timeout=30)
        assert not listed.jobs  # nothing was queued that could not start
    local = render_pb2_grpc.UpscaleServiceStub(render_service.channel)
    job = (await local.CreateUpscaleJob(request, metadata=user.metadata)).job
    events = await _watch(local, "WatchUpscaleJob", render_pb2.WatchUpscaleJobRequest(id=job.id), user)
    assert events[-1].state == job_pb2.JOB_STATE_SUCCEEDED


@pytest.mark.skipif(not capabilities("ffmpeg").has("stabilize"), reason="this ffmpeg has no vidstab")
async def test_a_stabilised_split_render_on_actors_fetches_the_stored_analysis(
    ray_render: Any, render_service: Any, storage_service: Any, user_factory: Any, ray_cluster: Any, tmp_path: Path,
    monkeypatch: Any,
) -> None:
    """vidstab's analysis lives in storage, not on a server's disk: the local server analyses the
    source once and stores it; the Ray-backed server (another replica, its own data folder) finds
    it there and its actors, on two nodes, fetch it into their own task folders. Two renders on two
    replicas, one analysis, the same frames."""
    counted = Counted(monkeypatch)
    user = await user_factory()
    clip = await asyncio.to_thread(make_shaky, tmp_path, 4, 320, 180)
    asset = await storage_service.upload(user, await asyncio.to_thread(clip.read_bytes), "shaky.mp4", "video/mp4")
    t = timeline(width=320, height=180, fps=30)
    track(t).clips.add(asset_id=asset, source_start_seconds=0.2, source_end_seconds=4,  # 3.8 s: split in two on Ray
                       filters=timeline_pb2.ClipFilters(stabilize=True))
    params = render_pb2.RenderParameters(timeline=t, quality=render_pb2.QUALITY_PRESET_HIGH)
    done = []
    for service in (render_service, ray_render):  # the local replica first: it analyses
        stub = render_pb2_grpc.RenderServiceStub(service.channel)
        job = (await stub.CreateRenderJob(render_pb2.CreateRenderJobRequest(parameters=params), metadata=user.metadata)).job
        events = await _watch(stub, "WatchRenderJob", render_pb2.WatchRenderJobRequest(id=job.id), user)
        assert events[-1].state == job_pb2.JOB_STATE_SUCCEEDED, events[-1]
        done.append((await stub.GetRenderJob(render_pb2.GetRenderJobRequest(id=job.id), metadata=user.metadata)).job)
    local_job, ray_job = done
    assert counted.runs == 1  # the second render (another replica) used the stored analysis
    assert local_job.status.placement.executor == "local" and ray_job.status.placement.executor == "ray"
    assert set(ray_job.status.placement.node.split(",")) == {n.node_id for n in ray_cluster.worker_nodes}
    # The Ray-backed server never held the analysis on its own disk: its actors fetched it.
    assert not await asyncio.to_thread(lambda: list(Path(ray_render.config.data_dir).rglob("*.trf")))
    paths = []
    for name, job in (("local", local_job), ("ray", ray_job)):
        path = tmp_path / f"{name}.mp4"
        path.write_bytes(await storage_service.download(user, job.result.video_asset_id))
        paths.append(path)
    a, b = probe_file(paths[0]), probe_file(paths[1])
    assert a["frames"] == b["frames"] == 114 and ray_job.result.frame_count == local_job.result.frame_count == 114
    luma, chroma = scores(decode(paths[0]), decode(paths[1]))
    assert luma > MIN_Y_CRF18_DB and chroma > MIN_C_CRF18_DB, (luma, chroma)


def _transitions(states: list[int]) -> list[int]:
    return [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s]


async def _videos(storage_service: Any, user: Any) -> set[str]:
    listed = await storage_service.stub.ListAssets(storage_pb2.ListAssetsRequest(kind=asset_pb2.ASSET_KIND_VIDEO),
                                                   metadata=user.metadata, timeout=30)
    return {a.id for a in listed.assets}


async def test_a_node_removed_mid_render_retries_on_the_other_nodes_once(
    ray_render: Any, storage_service: Any, user_factory: Any, render_media: Any, ray_cluster: Any
) -> None:
    """Runs last (mirrors the inference node-removal test): a split render loses the node of one of
    its segments; the attempt fails retryable (attempts counted), the retry runs on the nodes left
    and succeeds once: one output asset, 180 frames."""
    user = await user_factory()
    ids = {}
    for key, source in (("bars", render_media.bars), ("red", render_media.red), ("blue", render_media.blue)):
        data = await asyncio.to_thread(Path(source.location).read_bytes)
        ids[key] = await storage_service.upload(user, data, Path(source.location).name, "video/mp4")
    before = await _videos(storage_service, user)
    add_gpu_node(ray_cluster)  # first: the cluster keeps two GPU nodes, and the lost actor has a place
    stub = render_pb2_grpc.RenderServiceStub(ray_render.channel)
    params = render_pb2.RenderParameters(timeline=busy_timeline(ids), quality=render_pb2.QUALITY_PRESET_HIGH)
    job = (await stub.CreateRenderJob(render_pb2.CreateRenderJobRequest(parameters=params), metadata=user.metadata)).job
    head: list[job_pb2.JobEvent] = []
    async for msg in stub.WatchRenderJob(render_pb2.WatchRenderJobRequest(id=job.id), metadata=user.metadata,
                                         timeout=300):
        if msg.HasField("event"):
            head.append(msg.event)
            if msg.event.progress.stage == job_pb2.STAGE_RENDERING and msg.event.progress.frame >= 1:
                break
    first = (await stub.GetRenderJob(render_pb2.GetRenderJobRequest(id=job.id), metadata=user.metadata)).job
    victim_id = first.status.placement.node.split(",")[0]
    victim = next(n for n in ray_cluster.worker_nodes if n.node_id == victim_id)
    await asyncio.to_thread(ray_cluster.remove_node, victim)
    tail = await _watch(stub, "WatchRenderJob", render_pb2.WatchRenderJobRequest(id=job.id, after_sequence=head[-1].sequence),
                        user)
    assert tail[-1].state == job_pb2.JOB_STATE_SUCCEEDED, tail[-1]
    assert _transitions([e.state for e in head + tail]) == [
        job_pb2.JOB_STATE_QUEUED, job_pb2.JOB_STATE_RUNNING, job_pb2.JOB_STATE_QUEUED, job_pb2.JOB_STATE_RUNNING,
        job_pb2.JOB_STATE_SUCCEEDED]
    done = (await stub.GetRenderJob(render_pb2.GetRenderJobRequest(id=job.id), metadata=user.metadata)).job
    assert done.status.attempts == 2 and done.result.frame_count == 180
    assert done.status.placement.executor == "ray" and victim_id not in done.status.placement.node.split(",")
    assert await _videos(storage_service, user) - before == {done.result.video_asset_id}  # succeeded once: one asset
