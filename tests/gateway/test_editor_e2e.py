"""The editor in Debian's Chromium (playwright-core), against the real mesh behind the real Envoy.

The browser side is `gateway/editor/e2e/flow.mjs`; it records what it saw in result.json and
screenshots of each page under test-artifacts/editor-e2e*/; the assertions live here.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from gateway.envoy import EnvoyProcess
from gateway.grpcweb import GrpcWebClient
from tests.gateway.browser import MESH_SERVICES, artifacts_dir, run_script
from viarte.auth.v1 import auth_pb2
from viarte.inference.v1 import generation_pb2

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def _run_flow(envoy: EnvoyProcess, artifacts: Path, *, timeout: float, **options: str) -> dict[str, Any]:
    if artifacts.exists():
        shutil.rmtree(artifacts)
    image = artifacts.parent / f"{artifacts.name}-input.png"
    artifacts.parent.mkdir(parents=True, exist_ok=True)
    # A picture with structure (not a flat colour) so thumbnails and frames show something.
    Image.radial_gradient("L").resize((96, 96)).convert("RGB").save(image)
    return run_script("flow", envoy.url, artifacts, time_limit=timeout, image=str(image), **options)


async def test_sign_up_and_sign_in_in_chromium(editor_gateway: EnvoyProcess) -> None:
    """Needs only auth and storage: registration, a refused password, login, an upload."""
    artifacts = artifacts_dir("editor-e2e-auth")
    result = await asyncio.to_thread(_run_flow, editor_gateway, artifacts, until="upload", timeout=180)
    assert result["consoleErrors"] == []
    assert [s["name"] for s in result["steps"]] == ["register", "login", "upload"]
    assert result["wrongPasswordReason"] == "INVALID_CREDENTIALS"
    assert result["user"].startswith("e2e-")
    assert result["imageAssetId"]
    for shot in ("01-register", "02-login", "03-library"):
        assert (artifacts / f"{shot}.png").stat().st_size > 1000


async def _tiny_i2v_model(envoy: EnvoyProcess) -> tuple[str, str]:
    """A tiny image-to-video model and a prompt it accepts (SVD is image-conditioned only)."""
    async with GrpcWebClient(envoy.url) as client:
        registered = await client.unary(
            "/viarte.auth.v1.AuthService/Register",
            auth_pb2.RegisterRequest(
                email=f"probe-{uuid.uuid4().hex[:10]}@example.com", password="probe password 123"
            ),
            auth_pb2.RegisterResponse,
        )
        models = await client.unary(
            "/viarte.inference.v1.GenerationService/ListModels",
            generation_pb2.ListModelsRequest(),
            generation_pb2.ListModelsResponse,
            metadata=[("authorization", f"Bearer {registered.tokens.access_token}")],
        )
    candidates = [m for m in models.models if m.tiny and generation_pb2.TASK_IMAGE_TO_VIDEO in m.tasks]
    # Prefer a model that also takes a text prompt (Wan TI2V), so the prompt field is exercised too.
    candidates.sort(key=lambda m: m.family == generation_pb2.MODEL_FAMILY_SVD)
    if not candidates:
        pytest.skip("the mesh serves no tiny image-to-video model")
    model = candidates[0]
    prompt = (
        "" if model.family == generation_pb2.MODEL_FAMILY_SVD else "a small red ball rolling across a table"
    )
    return model.id, prompt


def _ffprobe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(json.loads(out))


async def test_whole_flow_from_sign_up_to_downloaded_mp4(mesh: Any, editor_gateway: EnvoyProcess) -> None:
    mesh.require(*MESH_SERVICES)
    model, prompt = await _tiny_i2v_model(editor_gateway)
    artifacts = artifacts_dir("editor-e2e")
    output = artifacts_dir("editor-e2e-export.mp4")
    output.unlink(missing_ok=True)
    result = await asyncio.to_thread(
        _run_flow, editor_gateway, artifacts, model=model, prompt=prompt, out=str(output), timeout=1200
    )

    assert result["consoleErrors"] == []
    steps = ["register", "login", "upload", "generate", "cancel", "edit", "export", "download", "conflict"]
    assert [s["name"] for s in result["steps"]] == steps

    # Progress arrived as it streamed: the client received many Watch events (state, steps, frames)
    # and the page rendered several distinct step/frame readings, in order, before the result.
    assert result["generationEvents"] >= 5, result["generationEvents"]
    # Where it ran (JobStatus.placement): the mesh's local executor, its host and device.
    assert result["generationPlacement"].startswith("Runs on local · node "), result["generationPlacement"]
    progress = result["generationProgress"]
    working = [p for p in progress if "step" in p["label"] or "frame" in p["label"]]
    assert len({p["label"] for p in working}) >= 2, progress
    percents = [p["percent"] for p in progress]
    assert percents == sorted(percents), progress
    assert progress[-1]["percent"] == 100
    # The refused width came back as a BadRequest violation, shown next to the Width field.
    assert result["widthBannerReason"] == "INVALID_PARAMETERS"
    assert result["widthViolation"]
    assert result["cancelledAt"] == "Cancelled"  # a second, 40-step job cancelled mid-denoising

    assert result["clips"] == {"v1": 1, "v2": 1}
    assert result["move"] == {"movedTo": "v1", "backTo": "v2"}  # dragged across tracks, then undone
    trim = result["trim"]
    assert trim["videoAfter"] < trim["videoBefore"]
    assert trim["imageAfter"] < trim["imageBefore"]
    assert result["undoRedo"] == {"undone": trim["imageBefore"], "redone": trim["imageAfter"]}
    assert result["textClips"] == 1
    # The second tab saved first: the first tab's autosave is refused and the user is told.
    assert result["conflictReason"] == "ETAG_MISMATCH"
    assert result["textClipsAfterReload"] == 2
    assert result["renderEvents"] >= 2
    assert result["renderProgress"][-1]["percent"] == 100

    probe = _ffprobe(output)
    video = next(s for s in probe["streams"] if s["codec_type"] == "video")
    assert video["codec_name"] in ("h264", "hevc")
    assert (video["width"], video["height"]) == (640, 360)
    assert float(probe["format"]["duration"]) > 0.5
    for shot in (
        "01-register",
        "02-login",
        "03-library",
        "04-generate-form",
        "06-generate-done",
        "07-editor",
        "09-export-done",
        "10-editor-conflict",
    ):
        assert (artifacts / f"{shot}.png").exists(), shot
