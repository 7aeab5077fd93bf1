"""GetMediaOverview (issue 19) over the real services: a filmstrip whose tiles show the frames at
their times, peaks that follow the sound, computed once per asset, and the playback proxy that
draft segments then decode (a keyframe every half second, the same frames)."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest

from tests.fixtures.render import jpeg_rgb
from tests.render.test_service import upload_media
from tests.render.timelines import timeline, track
from viarte.errors import from_rpc_error
from viarte.render.v1 import render_pb2, render_pb2_grpc

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(600)]

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)]  # one per second


@pytest.fixture(scope="module")
def four_colours(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 s of 160x90 at 30 fps, red/green/blue/white a second each, one keyframe only (x264 GOP 250,
    as most encoders write); silence for 2 s, then a 0.5 amplitude 440 Hz tone."""
    out = tmp_path_factory.mktemp("overview") / "four.mp4"
    colours = "".join(f"color=c=0x{r:02x}{g:02x}{b:02x}:s=160x90:r=30:d=1[c{i}];" for i, (r, g, b) in enumerate(COLOURS))
    sound = "aevalsrc='0.5*sin(2*PI*440*t)*gte(t,2)':s=48000:d=4[a]"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-filter_complex", f"{colours}[c0][c1][c2][c3]concat=n=4,format=yuv420p[v];{sound}",
         "-map", "[v]", "-map", "[a]", "-c:v", "libx264", "-preset", "ultrafast", "-g", "250", "-c:a", "aac", str(out)],
        check=True,
    )
    return out


def _stub(render_service) -> render_pb2_grpc.RenderServiceStub:  # type: ignore[no-untyped-def]
    return render_pb2_grpc.RenderServiceStub(render_service.channel)


def _keyframes(data: bytes, folder: Path) -> list[float]:
    path = folder / "proxy.mp4"
    path.write_bytes(data)
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-skip_frame", "nokey", "-show_entries",
                          "frame=pts_time", "-of", "csv=p=0", str(path)], capture_output=True, check=True, text=True).stdout
    return [float(x.strip(",")) for x in out.split()]


async def test_filmstrip_and_peaks_follow_the_media_and_are_made_once(render_service, storage_service, user_factory, four_colours) -> None:
    user = await user_factory()
    asset = await storage_service.upload(user, await asyncio.to_thread(four_colours.read_bytes), "four.mp4", "video/mp4")
    stub = _stub(render_service)
    first = await stub.GetMediaOverview(render_pb2.GetMediaOverviewRequest(asset_id=asset), metadata=user.metadata, timeout=300)
    o = first.overview
    assert not first.cached and o.has_video and o.has_audio and abs(o.duration_seconds - 4) < 0.05
    assert (o.tile_seconds, o.tile_count, o.tile_width, o.tile_height) == (0.5, 8, 86, 48)
    strip = jpeg_rgb(o.filmstrip_jpeg)
    assert strip.shape == (48, 8 * 86, 3)
    for i in range(8):  # tile i is the frame at i * 0.5 s: two tiles per colour, in order
        mean = strip[8:40, i * 86 + 8 : (i + 1) * 86 - 8].reshape(-1, 3).mean(axis=0)
        assert np.abs(mean - COLOURS[i // 2]).max() < 24, (i, mean)
    peaks = np.frombuffer(o.peaks, np.uint8)
    assert o.peaks_per_second == 50 and abs(len(peaks) - 200) <= 3
    assert peaks[:95].max() < 8  # silence (AAC's priming leaves a little)
    assert 110 <= peaks[105:195].min() and peaks[105:195].max() <= 145  # 0.5 of full scale = 127

    again = await stub.GetMediaOverview(render_pb2.GetMediaOverviewRequest(asset_id=asset), metadata=user.metadata, timeout=60)
    assert again.cached and again.overview == o


async def test_a_quicktime_file_with_pcm_sound_gets_its_overview(render_service, storage_service, user_factory, tmp_path) -> None:
    """Cameras write PCM sound in QuickTime, which an MP4 cannot hold as a stream copy: the proxy
    re-encodes it, and the one decode still gives filmstrip, peaks and proxy."""
    path = tmp_path / "camera.mov"
    await asyncio.to_thread(
        subprocess.run, ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=green:s=160x90:r=30:d=2", "-f", "lavfi",
                         "-i", "sine=f=440:d=2", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "pcm_s16le",
                         "-shortest", str(path)], check=True)
    user = await user_factory()
    asset = await storage_service.upload(user, path.read_bytes(), "camera.mov", "video/quicktime")
    got = await _stub(render_service).GetMediaOverview(render_pb2.GetMediaOverviewRequest(asset_id=asset),
                                                       metadata=user.metadata, timeout=300)
    o = got.overview
    assert o.has_video and o.has_audio and o.tile_count == 4 and len(o.peaks) > 90


async def test_playback_reads_the_proxy_once_it_exists(render_service, storage_service, user_factory, four_colours, tmp_path) -> None:
    user = await user_factory()
    asset = await storage_service.upload(user, await asyncio.to_thread(four_colours.read_bytes), "four.mp4", "video/mp4")
    stub = _stub(render_service)
    t = timeline()
    track(t).clips.add(asset_id=asset, source_start_seconds=1.0, source_end_seconds=4.0)  # 3 s: segments at 0 and 2 s

    async def segment(at: float) -> render_pb2.RenderPlaybackSegmentResponse:
        request = render_pb2.RenderPlaybackSegmentRequest(timeline=t, time_seconds=at)
        return await stub.RenderPlaybackSegment(request, metadata=user.metadata, timeout=120)

    before = await segment(2.5)
    await stub.GetMediaOverview(render_pb2.GetMediaOverviewRequest(asset_id=asset), metadata=user.metadata, timeout=300)
    # The proxy is the same picture: what the warm-up rendered from the original stays valid.
    after = await segment(2.5)
    assert after.key == before.key and after.cached

    # The proxy: a keyframe every half second (the original has one at 0 s only).
    storage = render_service.server.render_storage
    sha = (await storage.resolve(user.id, asset)).asset.sha256
    key = f"render/overview/v2/{asset}/{sha}-h360.proxy.mp4"  # the draft's height: 160x90 stays as it is
    async with httpx.AsyncClient() as client:
        proxy = (await client.get(await storage.resolve_object(key))).content
    assert await asyncio.to_thread(_keyframes, proxy, tmp_path) == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]
    # A segment not rendered yet decodes the proxy, not the original: with the proxy object replaced
    # by a yellow clip with the same sound (only this test does that), the segment at 0..2 s (source 1..3 s) is yellow.
    yellow = tmp_path / "yellow.mp4"
    await asyncio.to_thread(subprocess.run, ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=yellow:s=160x90:r=30:d=4",
                                             "-i", str(four_colours), "-map", "0:v", "-map", "1:a", "-c:v", "libx264",
                                             "-pix_fmt", "yuv420p", "-c:a", "copy", str(yellow)], check=True)
    await storage.put_object(key, yellow.read_bytes())
    got = await segment(0.5)
    assert not got.cached
    media = tmp_path / "segment.mp4"
    media.write_bytes(got.media)
    raw = (await asyncio.to_thread(subprocess.run, ["ffmpeg", "-v", "error", "-i", str(media), "-ss", "0.5", "-frames:v", "1",
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, check=True)).stdout
    frame = np.frombuffer(raw, np.uint8).reshape(got.height, got.width, 3)
    assert np.abs(frame.reshape(-1, 3).mean(axis=0) - (255, 255, 0)).max() < 24


async def test_audio_has_peaks_only_and_an_image_is_refused(render_service, storage_service, user_factory, render_media) -> None:
    user = await user_factory()
    ids = await upload_media(storage_service, user, render_media)
    stub = _stub(render_service)
    tone = (await stub.GetMediaOverview(render_pb2.GetMediaOverviewRequest(asset_id=ids["tone"]), metadata=user.metadata, timeout=300)).overview
    assert tone.has_audio and not tone.has_video and not tone.filmstrip_jpeg and tone.tile_count == 0
    assert len(tone.peaks) >= 50 and max(tone.peaks) > 20
    for asset_id, code, reason in (
        (ids["green"], grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
        ("", grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
        ("no-such-asset", grpc.StatusCode.NOT_FOUND, "ASSET_NOT_FOUND"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.GetMediaOverview(render_pb2.GetMediaOverviewRequest(asset_id=asset_id), metadata=user.metadata, timeout=60)
        assert info.value.code() == code and from_rpc_error(info.value).reason == reason, asset_id
