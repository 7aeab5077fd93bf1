"""Keyframe lanes and the transition picker in Debian's Chromium (issue 19), against the real mesh
behind the real Envoy. The project (a red clip, then a navy clip with a crossfade into it) is
prepared over gRPC; `gateway/editor/e2e/keyframes.mjs` adds two opacity keyframes on the red clip,
drags one in its lane, eases into it and changes the crossfade to "circleopen". Here: the saved
Project (etag bumped) holds exactly the expected Timeline, and RenderFrame of it shows the moved
keyframe (the red clip's brightness at 0, 0.5 and 1 s)."""

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
from viarte.auth.v1 import auth_pb2, auth_pb2_grpc
from viarte.render.v1 import project_pb2, project_pb2_grpc, render_pb2, render_pb2_grpc
from viarte.render.v1 import timeline_pb2 as tl
from viarte.storage.v1 import storage_pb2, storage_pb2_grpc

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

SOURCES = {"red.mp4": "color=c=red:s=320x180:r=30:d=3", "navy.mp4": "color=c=navy:s=320x180:r=30:d=3"}


def _make(path: Path, source: str) -> bytes:
    args = ["-f", "lavfi", "-i", source, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args, str(path)], check=True)
    return path.read_bytes()


def _timeline(ids: dict[str, str]) -> tl.Timeline:
    t = tl.Timeline(canvas=tl.Canvas(width=320, height=180, fps=30, background_color="#000000"))
    video = t.tracks.add(id="v1", kind=tl.TRACK_KIND_VIDEO, name="Video")
    video.clips.add(id="c1", asset_id=ids["red.mp4"], source_end_seconds=3)
    video.clips.add(
        id="c2", asset_id=ids["navy.mp4"], start_seconds=2.5, source_end_seconds=3,
        transition_in=tl.Transition(kind=tl.TRANSITION_KIND_CROSSFADE, duration_seconds=0.5),
    )  # fmt: skip
    return t


async def _prepare(mesh: Any, tmp: Path) -> tuple[str, str, project_pb2.Project, list[tuple[str, str]], dict[str, str]]:
    email, password = f"kf-{uuid.uuid4().hex[:10]}@example.com", "correct horse battery staple 42"
    ends = mesh.endpoints
    ids: dict[str, str] = {}
    async with grpc.aio.insecure_channel(ends["auth"]) as a, grpc.aio.insecure_channel(ends["storage"]) as s:
        tokens = (await auth_pb2_grpc.AuthServiceStub(a).Register(auth_pb2.RegisterRequest(email=email, password=password))).tokens
        md = [("authorization", f"Bearer {tokens.access_token}")]
        for name, source in SOURCES.items():
            data = await asyncio.to_thread(_make, tmp / name, source)

            async def chunks(name: str = name, data: bytes = data):  # type: ignore[no-untyped-def]
                yield storage_pb2.UploadAssetRequest(metadata=storage_pb2.UploadMetadata(name=name, content_type="video/mp4"))
                yield storage_pb2.UploadAssetRequest(chunk=data)

            ids[name] = (await storage_pb2_grpc.StorageServiceStub(s).UploadAsset(chunks(), metadata=md, timeout=60)).asset.id
    async with grpc.aio.insecure_channel(ends["render"]) as r:
        created = await project_pb2_grpc.ProjectServiceStub(r).CreateProject(
            project_pb2.CreateProjectRequest(project=project_pb2.Project(title="Keyframes", timeline=_timeline(ids))), metadata=md
        )
    return email, password, created.project, md, ids


async def test_keyframes_dragged_in_a_lane_and_a_transition_picked_are_saved_and_rendered(
    mesh: Any, editor_gateway: EnvoyProcess, tmp_path: Path
) -> None:
    mesh.require("auth", "storage", "render")
    email, password, project, md, ids = await _prepare(mesh, tmp_path)
    artifacts = artifacts_dir("editor-keyframes")
    result = await run_script_async("keyframes", editor_gateway.url, artifacts, time_limit=600, email=email, password=password, project=project.id)
    assert result["consoleErrors"] == []
    assert result["h1"] == 1
    assert (result["movedTime"], result["movedValue"]) == (1, 1), result
    assert result["previewTime"] == 2.75  # the middle of the 0.5 s transition that starts at 2.5 s

    expected = _timeline(ids)
    red, navy = expected.tracks[0].clips
    first = tl.Keyframe(time_seconds=0, value=0, easing=tl.EASING_LINEAR)
    moved = tl.Keyframe(time_seconds=1, value=1, easing=tl.EASING_EASE_IN)
    red.transform.opacity.CopyFrom(tl.AnimatedValue(value=1, keyframes=[first, moved]))
    navy.transition_in.CopyFrom(tl.Transition(name="circleopen", duration_seconds=0.5))
    async with grpc.aio.insecure_channel(mesh.endpoints["render"]) as r:
        render = render_pb2_grpc.RenderServiceStub(r)
        names = (await render.ListCapabilities(render_pb2.ListCapabilitiesRequest(), metadata=md)).transitions
        assert result["transitionOptions"] == ["", *names]  # the picker offers what the service lists
        saved = (await project_pb2_grpc.ProjectServiceStub(r).GetProject(project_pb2.GetProjectRequest(id=project.id), metadata=md)).project
        assert saved.etag != project.etag
        assert saved.timeline == expected, f"{saved.timeline}\n!=\n{expected}"

        async def red_at(seconds: float) -> int:
            frame = await render.RenderFrame(render_pb2.RenderFrameRequest(timeline=saved.timeline, time_seconds=seconds), metadata=md, timeout=120)
            return int(np.asarray(Image.open(io.BytesIO(frame.jpeg)).convert("RGB"))[90, 160, 0])

        # Opacity 0 → 1 over [0, 1] s eased in (p²): 0 at 0 s, 0.25 at 0.5 s, 1 at 1 s. Had the point
        # stayed at 2 s: 0.0625 and 0.25; unmoved and linear: 0.25 and 0.5.
        reds = [await red_at(t) for t in (0.0, 0.5, 1.0)]
        assert reds[0] < 20 and 40 < reds[1] < 90 and reds[2] > 220, reds
