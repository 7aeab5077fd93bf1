"""Filmstrips and waveforms on the timeline in Debian's Chromium (issue 19), through the real mesh
behind Envoy: a video clip shows its frames along its length in order, an uploaded audio file its
peaks (silence flat, the tone tall). `gateway/editor/e2e/strips.mjs` reads the drawn canvases."""

from __future__ import annotations

import asyncio
import math
import subprocess
import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest

from gateway.envoy import EnvoyProcess
from tests.gateway.browser import artifacts_dir, run_script_async
from viarte.auth.v1 import auth_pb2, auth_pb2_grpc
from viarte.render.v1 import project_pb2, project_pb2_grpc
from viarte.render.v1 import timeline_pb2 as tl
from viarte.storage.v1 import storage_pb2, storage_pb2_grpc

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)]  # one a second
TILE_SECONDS, TILE_W, TILE_H, SHOWN_H = 0.5, 86, 48, 34  # the service's tiles, the editor's canvas height


def _media(folder: Path) -> tuple[bytes, bytes]:
    video, audio = folder / "four.mp4", folder / "tone.m4a"
    colours = "".join(f"color=c=0x{r:02x}{g:02x}{b:02x}:s=160x90:r=30:d=1[c{i}];" for i, (r, g, b) in enumerate(COLOURS))
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-filter_complex", f"{colours}[c0][c1][c2][c3]concat=n=4,format=yuv420p[v]",
                    "-map", "[v]", "-c:v", "libx264", "-preset", "ultrafast", str(video)], check=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "aevalsrc='0.5*sin(2*PI*440*t)*gte(t,2)':s=48000:d=4",
                    "-c:a", "aac", str(audio)], check=True)
    return video.read_bytes(), audio.read_bytes()


async def _prepare(mesh: Any, tmp: Path) -> tuple[str, str, str]:
    email, password = f"strips-{uuid.uuid4().hex[:10]}@example.com", "correct horse battery staple 42"
    ends = mesh.endpoints
    video, audio = await asyncio.to_thread(_media, tmp)
    async with grpc.aio.insecure_channel(ends["auth"]) as a, grpc.aio.insecure_channel(ends["storage"]) as s:
        tokens = (await auth_pb2_grpc.AuthServiceStub(a).Register(auth_pb2.RegisterRequest(email=email, password=password))).tokens
        md = [("authorization", f"Bearer {tokens.access_token}")]
        ids = []
        for name, ctype, data in (("four.mp4", "video/mp4", video), ("tone.m4a", "audio/mp4", audio)):

            async def chunks(name: str = name, ctype: str = ctype, data: bytes = data):  # type: ignore[no-untyped-def]
                yield storage_pb2.UploadAssetRequest(metadata=storage_pb2.UploadMetadata(name=name, content_type=ctype))
                yield storage_pb2.UploadAssetRequest(chunk=data)

            ids.append((await storage_pb2_grpc.StorageServiceStub(s).UploadAsset(chunks(), metadata=md, timeout=60)).asset.id)
    t = tl.Timeline(canvas=tl.Canvas(width=160, height=90, fps=30, background_color="#000000"))
    t.tracks.add(id="v1", kind=tl.TRACK_KIND_VIDEO, name="Video").clips.add(id="c1", asset_id=ids[0], source_end_seconds=4)
    t.tracks.add(id="a1", kind=tl.TRACK_KIND_AUDIO, name="Audio").clips.add(id="c2", asset_id=ids[1], source_end_seconds=4)
    async with grpc.aio.insecure_channel(ends["render"]) as r:
        created = await project_pb2_grpc.ProjectServiceStub(r).CreateProject(
            project_pb2.CreateProjectRequest(project=project_pb2.Project(title="Strips", timeline=t)), metadata=md
        )
    return email, password, created.project.id


async def test_filmstrip_and_waveform_are_drawn_along_the_clips(mesh: Any, editor_gateway: EnvoyProcess, tmp_path: Path) -> None:
    mesh.require("auth", "storage", "render")
    email, password, project = await _prepare(mesh, tmp_path)
    artifacts = artifacts_dir("editor-strips")
    result = await run_script_async("strips", editor_gateway.url, artifacts, time_limit=400,
                                    email=email, password=password, project=project)  # fmt: skip
    assert result["consoleErrors"] == []
    px = result["pxPerSecond"]
    strip, wave = result["filmstrip"], result["waveform"]
    assert abs(strip["cssWidth"] - 4 * px) <= 1 and abs(wave["cssWidth"] - 4 * px) <= 1

    # Each column shows the tile of the source time under its tile's left edge, in order.
    shown = round(TILE_W * SHOWN_H / TILE_H)
    wrong = []
    for col in strip["columns"]:
        start = (col["x"] // shown) * shown / px
        want = COLOURS[min(7, math.floor(start / TILE_SECONDS + 1e-6)) // 2]
        if max(abs(a - b) for a, b in zip(col["rgb"], want, strict=True)) > 48:
            wrong.append((col["x"], start, col["rgb"], want))
    assert not wrong, wrong
    # The audio's bars: flat over the first 2 s of silence, about half the height for the 0.5 tone.
    silent = [c["lit"] for c in wave["columns"] if c["x"] / px < 1.8]
    tone = [c["lit"] for c in wave["columns"] if c["x"] / px > 2.2]
    assert silent and max(silent) <= 2, silent
    assert tone and 12 <= min(tone) and max(tone) <= 22, tone
