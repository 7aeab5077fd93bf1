"""RenderService over real loopback servers (auth + storage on SeaweedFS + render)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from tests.fixtures.render import jpeg_rgb, probe_file
from tests.render.timelines import crossfade, timeline, track
from viarte.errors import from_rpc_error
from viarte.render.v1 import render_pb2, render_pb2_grpc
from viarte.render.v1 import timeline_pb2 as tl
from viarte.storage.v1 import storage_pb2
from viarte.type.v1 import job_pb2

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def upload_media(storage_service, user, render_media) -> dict[str, str]:
    ids = {}
    for key, src, ctype in (
        ("red", render_media.red, "video/mp4"),
        ("blue", render_media.blue, "video/mp4"),
        ("tone", render_media.tone, "audio/mp4"),
        ("green", render_media.green_png, "image/png"),
    ):
        data = await asyncio.to_thread(Path(src.location).read_bytes)
        ids[key] = await storage_service.upload(user, data, Path(src.location).name, ctype)
    return ids


async def watch_to_end(stub, user, job_id: str) -> list[render_pb2.WatchRenderJobResponse]:
    out = []
    async for msg in stub.WatchRenderJob(render_pb2.WatchRenderJobRequest(id=job_id), metadata=user.metadata, timeout=120):
        out.append(msg)
    return out


def show_timeline(ids: dict[str, str]) -> tl.Timeline:
    t = timeline()
    v = track(t)
    v.clips.add(asset_id=ids["red"], source_end_seconds=1.5)
    v.clips.add(asset_id=ids["blue"], start_seconds=1.0, source_end_seconds=1.0, transition_in=crossfade(0.5))
    track(t, tl.TRACK_KIND_TEXT).clips.add(start_seconds=0.2, duration_seconds=1.5, text=tl.TextStyle(text="Viarte", font_size=18), fade_in_seconds=0.3)
    track(t, tl.TRACK_KIND_AUDIO).clips.add(asset_id=ids["tone"], source_end_seconds=2, fade_out_seconds=0.5, volume=0.5)
    return t


async def test_render_job_streams_progress_and_stores_outputs(render_service, storage_service, user_factory, render_media, tmp_path) -> None:
    user = await user_factory()
    ids = await upload_media(storage_service, user, render_media)
    stub = render_pb2_grpc.RenderServiceStub(render_service.channel)
    params = render_pb2.RenderParameters(timeline=show_timeline(ids), quality=render_pb2.QUALITY_PRESET_DRAFT, output_name="show.mp4")
    created = await stub.CreateRenderJob(render_pb2.CreateRenderJobRequest(parameters=params, request_id="r-1"), metadata=user.metadata)
    again = await stub.CreateRenderJob(render_pb2.CreateRenderJobRequest(parameters=params, request_id="r-1"), metadata=user.metadata)
    assert again.job.id == created.job.id  # idempotent on request_id
    stream = await watch_to_end(stub, user, created.job.id)
    assert stream[0].HasField("job")
    events = [m.event for m in stream[1:]]
    assert [e.sequence for e in events] == sorted(e.sequence for e in events)
    rendering = [e.progress for e in events if e.progress.stage == job_pb2.STAGE_RENDERING]
    assert rendering and rendering[-1].frame == rendering[-1].total_frames == 60
    assert any(e.progress.stage == job_pb2.STAGE_UPLOADING for e in events)
    assert events[-1].state == job_pb2.JOB_STATE_SUCCEEDED
    job = (await stub.GetRenderJob(render_pb2.GetRenderJobRequest(id=created.job.id), metadata=user.metadata)).job
    r = job.result
    assert (r.width, r.height, r.fps, r.frame_count, r.encoder, r.has_audio) == (160, 90, 30.0, 60, "libx264", True)
    video = tmp_path / "show.mp4"
    video.write_bytes(await storage_service.download(user, r.video_asset_id))
    facts = probe_file(video)
    assert abs(facts["video_duration"] - 2.0) <= 1 / 30 + 1e-6 and facts["has_audio"] and facts["frames"] == 60
    poster = await storage_service.download(user, r.poster_asset_id)
    assert jpeg_rgb(poster).shape == (90, 160, 3)
    # another user sees nothing of it
    other = await user_factory()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetRenderJob(render_pb2.GetRenderJobRequest(id=created.job.id), metadata=other.metadata)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND and from_rpc_error(info.value).reason == "JOB_NOT_FOUND"
    listed = await stub.ListRenderJobs(render_pb2.ListRenderJobsRequest(), metadata=other.metadata)
    assert list(listed.jobs) == []


async def test_bad_timelines_are_refused_before_queueing(render_service, storage_service, user_factory, render_media) -> None:
    user = await user_factory()
    ids = await upload_media(storage_service, user, render_media)
    stub = render_pb2_grpc.RenderServiceStub(render_service.channel)
    t = timeline()
    v = track(t)
    v.clips.add(asset_id=ids["red"], source_end_seconds=2)
    v.clips.add(asset_id=ids["blue"], start_seconds=2, source_start_seconds=0.5, source_end_seconds=9)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CreateRenderJob(render_pb2.CreateRenderJobRequest(parameters=render_pb2.RenderParameters(timeline=t)), metadata=user.metadata)
    err = from_rpc_error(info.value)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and err.reason == "INVALID_TIMELINE"
    # the blue source lasts 3 s (probed by storage at upload)
    assert [f.field for f in err.field_violations] == ["tracks[0].clips[1].source_end_seconds"]
    # someone else's asset is NOT_FOUND, like a missing one
    other = await user_factory()
    t2 = timeline()
    track(t2).clips.add(asset_id=ids["red"], source_end_seconds=1)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CreateRenderJob(render_pb2.CreateRenderJobRequest(parameters=render_pb2.RenderParameters(timeline=t2)), metadata=other.metadata)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND and from_rpc_error(info.value).reason == "ASSET_NOT_FOUND"
    big = timeline(width=4000, height=90)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CreateRenderJob(render_pb2.CreateRenderJobRequest(parameters=render_pb2.RenderParameters(timeline=big)), metadata=user.metadata)
    assert from_rpc_error(info.value).reason == "CANVAS_TOO_LARGE"
    # a speed ramp that would play more than the 3 s source in its given length
    ramped = timeline()
    c = track(ramped).clips.add(asset_id=ids["blue"], duration_seconds=2)
    c.filters.speed_keyframes.extend([tl.Keyframe(time_seconds=0, value=1), tl.Keyframe(time_seconds=1, value=4)])
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CreateRenderJob(render_pb2.CreateRenderJobRequest(parameters=render_pb2.RenderParameters(timeline=ramped)), metadata=user.metadata)
    err = from_rpc_error(info.value)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f.field for f in err.field_violations] == ["tracks[0].clips[0].filters.speed_keyframes[1].value"]
    assert list((await stub.ListRenderJobs(render_pb2.ListRenderJobsRequest(), metadata=user.metadata)).jobs) == []


async def test_cancel_stops_ffmpeg_and_stores_nothing(render_service, storage_service, user_factory, render_media) -> None:
    user = await user_factory()
    ids = await upload_media(storage_service, user, render_media)
    stub = render_pb2_grpc.RenderServiceStub(render_service.channel)
    t = timeline(width=640, height=360, duration=30)
    for start in range(0, 30, 3):
        track(t).clips.add(asset_id=ids["red"], start_seconds=start, source_end_seconds=3).filters.blur_sigma = 10
    job = (await stub.CreateRenderJob(
        render_pb2.CreateRenderJobRequest(parameters=render_pb2.RenderParameters(timeline=t, quality=render_pb2.QUALITY_PRESET_HIGH)),
        metadata=user.metadata,
    )).job
    states = []
    async for msg in stub.WatchRenderJob(render_pb2.WatchRenderJobRequest(id=job.id), metadata=user.metadata, timeout=120):
        if msg.HasField("event"):
            states.append(msg.event.state)
            if msg.event.progress.stage == job_pb2.STAGE_RENDERING and msg.event.progress.frame > 0 and len(states) < 100:
                await stub.CancelRenderJob(render_pb2.CancelRenderJobRequest(id=job.id), metadata=user.metadata)
                states.append(-1)
    assert -1 in states and states[-1] == job_pb2.JOB_STATE_CANCELLED
    final = (await stub.GetRenderJob(render_pb2.GetRenderJobRequest(id=job.id), metadata=user.metadata)).job
    assert final.status.state == job_pb2.JOB_STATE_CANCELLED and not final.result.video_asset_id
    listed = await storage_service.stub.ListAssets(storage_pb2.ListAssetsRequest(), metadata=user.metadata)
    assert {a.id for a in listed.assets} == set(ids.values())  # no partial output was stored
    await asyncio.sleep(0.2)
    assert list(render_service.config.resolved_work_dir.iterdir()) == []


async def test_render_frame_rpc(render_service, storage_service, user_factory, render_media) -> None:
    user = await user_factory()
    ids = await upload_media(storage_service, user, render_media)
    stub = render_pb2_grpc.RenderServiceStub(render_service.channel)
    t = show_timeline(ids)
    answer = await stub.RenderFrame(render_pb2.RenderFrameRequest(timeline=t, time_seconds=0.5), metadata=user.metadata)
    img = jpeg_rgb(answer.jpeg)
    assert (answer.width, answer.height) == (160, 90) and img.shape == (90, 160, 3)
    assert img[5, 5, 0] > 200 and img[5, 5, 2] < 60  # red under the playhead
    still = track(t).clips.add(asset_id=ids["green"], start_seconds=0.4, duration_seconds=0.5)  # an image via its presigned URL
    still.transform.scale.value = 0.25
    answer = await stub.RenderFrame(render_pb2.RenderFrameRequest(timeline=t, time_seconds=0.5), metadata=user.metadata)
    img = jpeg_rgb(answer.jpeg).astype(int)
    assert img[45, 80, 1] > 200 and img[45, 80, 0] < 60 and img[5, 5, 0] > 200  # green still over the red clip
    small = await stub.RenderFrame(render_pb2.RenderFrameRequest(timeline=t, time_seconds=1.25, max_width=80), metadata=user.metadata)
    mid = jpeg_rgb(small.jpeg)[5, 5].astype(int)
    assert (small.width, small.height) == (80, 44) and 80 < mid[0] < 180 and 80 < mid[2] < 180  # crossfade midpoint
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.RenderFrame(render_pb2.RenderFrameRequest(timeline=t, time_seconds=5), metadata=user.metadata)
    err = from_rpc_error(info.value)
    assert err.reason == "INVALID_TIMELINE" and [f.field for f in err.field_violations] == ["time_seconds"]
    assert list(render_service.config.resolved_work_dir.iterdir()) == []


async def test_export_with_upscale_option(render_service, storage_service, user_factory, render_media, tmp_path) -> None:
    user = await user_factory()
    ids = await upload_media(storage_service, user, render_media)
    stub = render_pb2_grpc.RenderServiceStub(render_service.channel)
    t = timeline(width=64, height=36)
    track(t).clips.add(asset_id=ids["red"], source_end_seconds=0.5)
    params = render_pb2.RenderParameters(timeline=t, quality=render_pb2.QUALITY_PRESET_DRAFT, upscale=True)
    job = (await stub.CreateRenderJob(render_pb2.CreateRenderJobRequest(parameters=params), metadata=user.metadata)).job
    stream = await watch_to_end(stub, user, job.id)
    stages = [m.event.progress.stage for m in stream[1:]]
    assert job_pb2.STAGE_RENDERING in stages and job_pb2.STAGE_UPSCALING in stages
    assert stream[-1].event.state == job_pb2.JOB_STATE_SUCCEEDED
    result = (await stub.GetRenderJob(render_pb2.GetRenderJobRequest(id=job.id), metadata=user.metadata)).job.result
    assert (result.width, result.height, result.frame_count) == (128, 72, 15)
    out = tmp_path / "x2.mp4"
    out.write_bytes(await storage_service.download(user, result.video_asset_id))
    facts = probe_file(out)
    assert (facts["width"], facts["height"], facts["frames"]) == (128, 72, 15) and facts["has_audio"]
