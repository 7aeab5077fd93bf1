"""The inspector's effects and "Auto-edit to music" in Debian's Chromium (issue 18), against the
real mesh behind the real Envoy. The project (two 3 s clips and a 120 BPM click track) is prepared
over gRPC; `gateway/editor/e2e/effects.mjs` uploads a LUT, sets EQ and ducking, snaps the cut to the
beats, auto-edits and undoes; the saved project and a RenderFrame of it are checked here."""

from __future__ import annotations

import asyncio
import io
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
from tests.render.test_analyze import CLICKS
from tests.render.test_looks import RED_TO_BLUE
from viarte.auth.v1 import auth_pb2, auth_pb2_grpc
from viarte.render.v1 import project_pb2, project_pb2_grpc, render_pb2, render_pb2_grpc
from viarte.render.v1 import timeline_pb2 as tl
from viarte.storage.v1 import storage_pb2, storage_pb2_grpc
from viarte.type.v1 import asset_pb2

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

_S = "s=320x180:r=30:d=3"
SOURCES = {
    "red.mp4": ["-f", "lavfi", "-i", f"color=c=red:{_S},drawbox=x=100:y=40:w=60:h=60:c=white:t=fill", "-f", "lavfi", "-i", "sine=f=300:d=3"],
    "navy.mp4": ["-f", "lavfi", "-i", f"color=c=navy:{_S},drawgrid=w=40:h=40:t=4:c=white", "-f", "lavfi", "-i", "sine=f=500:d=3"],
    "clicks.m4a": ["-f", "lavfi", "-i", CLICKS],
}


def _make(path: Path, args: list[str]) -> bytes:
    codec = ["-c:a", "aac"] if path.suffix == ".m4a" else ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"]
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args, *codec, str(path)], check=True)
    return path.read_bytes()


async def _prepare(mesh: Any, tmp: Path) -> tuple[str, str, str, list[tuple[str, str]], dict[str, str]]:
    email, password = f"fx-{uuid.uuid4().hex[:10]}@example.com", "correct horse battery staple 42"
    ends = mesh.endpoints
    ids: dict[str, str] = {}
    async with grpc.aio.insecure_channel(ends["auth"]) as a, grpc.aio.insecure_channel(ends["storage"]) as s:
        tokens = (await auth_pb2_grpc.AuthServiceStub(a).Register(auth_pb2.RegisterRequest(email=email, password=password))).tokens
        md = [("authorization", f"Bearer {tokens.access_token}")]
        for name, args in SOURCES.items():
            data = await asyncio.to_thread(_make, tmp / name, args)
            ctype = "audio/mp4" if name.endswith(".m4a") else "video/mp4"

            async def chunks(name: str = name, data: bytes = data, ctype: str = ctype):  # type: ignore[no-untyped-def]
                yield storage_pb2.UploadAssetRequest(metadata=storage_pb2.UploadMetadata(name=name, content_type=ctype))
                yield storage_pb2.UploadAssetRequest(chunk=data)

            ids[name] = (await storage_pb2_grpc.StorageServiceStub(s).UploadAsset(chunks(), metadata=md, timeout=60)).asset.id
    t = tl.Timeline(canvas=tl.Canvas(width=320, height=180, fps=30, background_color="#000000"))
    video = t.tracks.add(id="v1", kind=tl.TRACK_KIND_VIDEO, name="Video")
    # The cut at 2.8 s is off the music's beats (0.25 + k * 0.5 s): "Snap to beats" moves it to 2.75.
    video.clips.add(id="c1", asset_id=ids["red.mp4"], source_end_seconds=2.8)
    video.clips.add(id="c2", asset_id=ids["navy.mp4"], start_seconds=2.8, source_end_seconds=3)
    t.tracks.add(id="a1", kind=tl.TRACK_KIND_AUDIO, name="Music").clips.add(id="m1", asset_id=ids["clicks.m4a"], source_end_seconds=6)
    async with grpc.aio.insecure_channel(ends["render"]) as r:
        created = await project_pb2_grpc.ProjectServiceStub(r).CreateProject(
            project_pb2.CreateProjectRequest(project=project_pb2.Project(title="Effects", timeline=t)), metadata=md
        )
    return email, password, created.project.id, md, ids


async def test_lut_eq_ducking_and_auto_edit_from_the_inspector(mesh: Any, editor_gateway: EnvoyProcess, tmp_path: Path) -> None:
    mesh.require("auth", "storage", "render")
    email, password, project, md, _ids = await _prepare(mesh, tmp_path)
    lut = tmp_path / "swap.cube"
    lut.write_bytes(RED_TO_BLUE)
    artifacts = artifacts_dir("editor-effects")
    result = await run_script_async("effects", editor_gateway.url, artifacts, time_limit=600, email=email, password=password, project=project, lut=str(lut))
    assert result["consoleErrors"] == []
    assert result["snapNotice"].startswith("Snap to beats: 1 cut moved"), result
    # Auto-edit replaced the tracks in one change (the proposal's "video" track), Undo restored them.
    assert result["autoEditNotice"].startswith("Auto-edit:") and result["proposedClips"] >= 2, result
    assert result["afterUndoProposedClips"] == 0

    async with grpc.aio.insecure_channel(mesh.endpoints["render"]) as r, grpc.aio.insecure_channel(mesh.endpoints["storage"]) as s:
        saved = (await project_pb2_grpc.ProjectServiceStub(r).GetProject(project_pb2.GetProjectRequest(id=project), metadata=md)).project
        lut_asset = (await storage_pb2_grpc.StorageServiceStub(s).GetAsset(storage_pb2.GetAssetRequest(asset_id=result["lutAssetId"]), metadata=md)).asset
        video, music = saved.timeline.tracks
        assert lut_asset.kind == asset_pb2.ASSET_KIND_LUT  # uploaded through storage as a LUT
        assert video.clips[0].filters.lut_asset_id == lut_asset.id and not video.clips[1].filters.lut_asset_id
        assert music.clips[0].filters.audio_eq == "voice" and music.ducking.voice_track_id == "v1"
        # Snap to beats (kept by the Undo of the auto-edit): the cut on the beat at 2.75 s (AnalyzeMedia
        # finds this click track's beats within 15 ms), the first clip trimmed to it, the second moved.
        first, second = video.clips
        assert abs(second.start_seconds - 2.75) < 0.03, second
        assert abs(first.source_end_seconds - second.start_seconds) < 0.0015, (first, second)
        # The saved project renders with its LUT: the red clip comes out blue.
        frame = await render_pb2_grpc.RenderServiceStub(r).RenderFrame(
            render_pb2.RenderFrameRequest(timeline=saved.timeline, time_seconds=1.0), metadata=md, timeout=120)
        px = np.asarray(Image.open(io.BytesIO(frame.jpeg)).convert("RGB"))[10, 10].astype(int)
        assert px[2] > 200 and px[0] < 60, px
