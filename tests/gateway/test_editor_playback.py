"""Timeline playback in Debian's Chromium (issue 19), against the real mesh behind the real Envoy.

The project (a 6 s 640x360 clip with sound) is prepared over gRPC; `gateway/editor/e2e/playback.mjs`
signs in, opens it, presses Space and reports what the page saw; the assertions live here.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from PIL import Image

from gateway.envoy import EnvoyProcess
from tests.gateway.browser import artifacts_dir, run_script_async
from viarte.auth.v1 import auth_pb2, auth_pb2_grpc
from viarte.render.v1 import project_pb2, project_pb2_grpc, render_pb2, render_pb2_grpc
from viarte.render.v1 import timeline_pb2 as tl
from viarte.storage.v1 import storage_pb2, storage_pb2_grpc

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

# Mean 4x4-block difference (0..255, RGB) between a frame the browser showed (360p draft, x264 CRF
# 26, decoded and converted to RGB by Chromium) and RenderFrame's JPEG of the same time. Measured
# 1.4-1.6; the frame one step before or after measured 4.0-5.9 (testsrc2 moves every frame).
FRAME_MATCH = 3.0


def _media(path: Path) -> bytes:
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=640x360:r=30:d=6",
         "-f", "lavfi", "-i", "sine=f=440:d=6", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-shortest", str(path)],
        check=True,
    )  # fmt: skip
    return path.read_bytes()


async def _prepare(mesh: Any, tmp: Path) -> tuple[str, str, str, list[tuple[str, str]], tl.Timeline]:
    """A user, an uploaded clip, and a project holding it on a 640x360 canvas."""
    email, password = f"play-{uuid.uuid4().hex[:10]}@example.com", "correct horse battery staple 42"
    ends = mesh.endpoints
    async with grpc.aio.insecure_channel(ends["auth"]) as a, grpc.aio.insecure_channel(ends["storage"]) as s:
        tokens = (await auth_pb2_grpc.AuthServiceStub(a).Register(auth_pb2.RegisterRequest(email=email, password=password))).tokens
        md = [("authorization", f"Bearer {tokens.access_token}")]
        data = await asyncio.to_thread(_media, tmp / "clip.mp4")

        async def chunks():  # type: ignore[no-untyped-def]
            yield storage_pb2.UploadAssetRequest(metadata=storage_pb2.UploadMetadata(name="clip.mp4", content_type="video/mp4"))
            yield storage_pb2.UploadAssetRequest(chunk=data)

        asset = (await storage_pb2_grpc.StorageServiceStub(s).UploadAsset(chunks(), metadata=md, timeout=60)).asset
    t = tl.Timeline(canvas=tl.Canvas(width=640, height=360, fps=30, background_color="#000000"))
    t.tracks.add(kind=tl.TRACK_KIND_VIDEO).clips.add(asset_id=asset.id, source_end_seconds=6)
    async with grpc.aio.insecure_channel(ends["render"]) as r:
        created = await project_pb2_grpc.ProjectServiceStub(r).CreateProject(
            project_pb2.CreateProjectRequest(project=project_pb2.Project(title="Playback", timeline=t)), metadata=md
        )
    return email, password, created.project.id, md, t


def _block_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of 4x4-block means: codec and chroma-upsampling noise at edges
    averages out, a different picture does not (the transitions tests measure the same way)."""
    h, w = a.shape[0] // 4 * 4, a.shape[1] // 4 * 4

    def blocks(x: np.ndarray) -> np.ndarray:
        return x[:h, :w].reshape(h // 4, 4, w // 4, 4, 3).mean(axis=(1, 3))

    return float(np.abs(blocks(a) - blocks(b)).mean())


async def _render_frames(mesh: Any, md: list[tuple[str, str]], t: tl.Timeline, times: list[float]) -> list[np.ndarray]:
    async with grpc.aio.insecure_channel(mesh.endpoints["render"]) as r:
        stub = render_pb2_grpc.RenderServiceStub(r)
        out = []
        for at in times:
            reply = await stub.RenderFrame(render_pb2.RenderFrameRequest(timeline=t, time_seconds=at), metadata=md, timeout=60)
            out.append(np.asarray(Image.open(io.BytesIO(reply.jpeg)).convert("RGB")).astype(int))
        return out


async def test_play_three_seconds_with_sound_and_frames_that_match_render_frame(
    mesh: Any, editor_gateway: EnvoyProcess, tmp_path: Path
) -> None:
    mesh.require("auth", "storage", "render")
    email, password, project, md, t = await _prepare(mesh, tmp_path)
    artifacts = artifacts_dir("editor-playback")
    result = await run_script_async("playback", editor_gateway.url, artifacts, time_limit=400,
                                    email=email, password=password, project=project)  # fmt: skip
    assert result["consoleErrors"] == []

    play = result["play"]
    # The playhead follows the media clock in real time: 3 s of wall time, 3 s ± 0.2 s of timeline.
    assert abs(play["advanced"] - play["wall"]) <= 0.2, play
    assert 2.8 <= play["wall"] <= 3.5, play
    assert play["audioBytes"] > 0  # sound was decoded
    assert play["videoWidth"] == 640  # the 360p draft of a 640x360 canvas

    # Five frames as the page presented them match RenderFrame at their media times.
    times = [f["mediaTime"] for f in play["frames"]]
    assert len(times) == 5 and times == sorted(times), times
    shown = [np.asarray(Image.open(io.BytesIO(base64.b64decode(f["png"].split(",", 1)[1]))).convert("RGB")).astype(int)
             for f in play["frames"]]  # fmt: skip
    stills = await _render_frames(mesh, md, t, times)
    diffs = [_block_difference(a, b) for a, b in zip(shown, stills, strict=True)]
    assert float(np.mean(diffs)) < FRAME_MATCH, diffs
    # ...and not the neighbouring frames (the comparison can tell frames apart).
    off = await _render_frames(mesh, md, t, [x + 3 / 30 for x in times])
    neighbours = [_block_difference(a, b) for a, b in zip(shown, off, strict=True)]
    assert float(np.mean(neighbours)) > float(np.mean(diffs)) * 1.5, (diffs, neighbours)

    # Opening the project rendered the three segments ahead of the playhead (the warm-up), so Play
    # read them from the cache.
    assert [(s["start"], s["cached"]) for s in result["warmOpen"]] == [(0, False), (2, False), (4, False)]
    assert all(s["cached"] for s in play["log"]["segments"]), play["log"]
    # After a text over 0..3 s, only the segments that text overlaps are rendered again...
    warm = result["warmAfterEdit"]
    assert [(s["start"], s["cached"]) for s in warm] == [(0, False), (2, False), (4, True)], warm
    # ...and playing then reads every segment from the cache.
    log = result["afterEdit"]["segments"]
    assert [(s["start"], s["cached"]) for s in log[:3]] == [(0, True), (2, True), (4, True)], log
    print(json.dumps({"firstSegmentMs": result["afterEdit"]["firstSegmentMs"], "play": {k: play[k] for k in ("wall", "advanced")},
                      "frameDiffs": diffs}))  # fmt: skip
