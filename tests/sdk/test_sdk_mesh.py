"""The SDK against the real mesh (every service as its own process, started by the dev runner).

Each test registers its own user. Job tests use the tiny local models at their smallest sizes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import grpc
import httpx
import pytest

from studio_dev.demo import FACE_IMAGE, SOUNDTRACK, build_timeline
from tests.fixtures.mesh import MeshUser, RunningMesh
from viarte import AsyncClient, Client, JobState, Stage, generation_parameters
from viarte.errors import (
    Aborted,
    AlreadyExists,
    Cancelled,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from viarte.render.v1 import render_pb2

pytestmark = pytest.mark.e2e

T2V = dict(model="tiny-modelscope", prompt="a red fox in the snow", width=64, height=64, num_frames=4, seed=3)


def signed_in(mesh: RunningMesh, user: MeshUser) -> Client:
    client = mesh.client()
    client.auth.register(user.email, user.password)
    return client


def test_auth_session_and_api_keys(mesh: RunningMesh, mesh_user: MeshUser) -> None:
    mesh.require("auth")
    saved = []
    with mesh.client(on_tokens=saved.append) as client:
        user = client.auth.register(mesh_user.email, mesh_user.password, display_name="Ada")
        assert client.auth.me().user.id == user.id
        with pytest.raises(AlreadyExists) as taken:
            client.auth.register(mesh_user.email, mesh_user.password)
        assert taken.value.reason == "EMAIL_TAKEN"
        old = client.credentials.tokens
        client.auth.refresh()
        assert client.credentials.tokens.refresh_token != old.refresh_token
        assert len(saved) == 2  # register, then the refresh
        key, secret = client.api_keys.create("ci", ["assets:read"])
        assert secret.startswith(key.prefix.rstrip(".")[:4])
        assert [k.id for k in client.api_keys.list()] == [key.id]
        assert {k.kid for k in client.auth.public_keys().keys}
        client.auth.logout()
        with pytest.raises(Unauthenticated):
            client.auth.me()
    with mesh.client(api_key=secret) as partner:
        me = partner.auth.me()
        assert me.user.id == user.id and list(me.scopes) == ["assets:read"]
        if "storage" in mesh.services:
            with pytest.raises(PermissionDenied) as denied:
                partner.assets.upload(b"abc", name="a.txt", content_type="text/plain")
            assert denied.value.reason == "MISSING_SCOPE"
    with mesh.client() as client:
        client.auth.login(mesh_user.email, mesh_user.password)
        client.api_keys.revoke(key.id)
    with mesh.client(api_key=secret) as partner, pytest.raises(Unauthenticated):
        partner.auth.me()


def test_wrong_password_is_unauthenticated(mesh: RunningMesh, mesh_user: MeshUser) -> None:
    mesh.require("auth")
    with signed_in(mesh, mesh_user) as client, pytest.raises(Unauthenticated) as caught:
        client.auth.login(mesh_user.email, "not the password at all")
    assert caught.value.reason == "INVALID_CREDENTIALS"


def test_assets_upload_download_both_ways(mesh: RunningMesh, mesh_user: MeshUser, tmp_path: Path) -> None:
    mesh.require("auth", "storage")
    data = FACE_IMAGE.read_bytes()
    seen: list[tuple[int, int]] = []
    with signed_in(mesh, mesh_user) as client:
        streamed = client.assets.upload(FACE_IMAGE, progress=lambda d, t: seen.append((d, t)))
        presigned = client.assets.upload(SOUNDTRACK, method="presigned")
        assert seen[-1] == (len(data), len(data))
        assert streamed.sha256 == hashlib.sha256(data).hexdigest()
        assert streamed.media.width == 256 and presigned.media.duration_seconds > 5
        assert client.assets.get(streamed.id).name == "demo_face.png"
        assert {a.id for a in client.assets.list_all()} >= {streamed.id, presigned.id}
        assert [a.id for a in client.assets.list(kind="audio").items] == [presigned.id]
        assert client.assets.read(streamed.id) == data
        target = client.assets.download(presigned.id, tmp_path)
        assert target == tmp_path / "demo_tone.m4a" and target.read_bytes() == SOUNDTRACK.read_bytes()
        via_url = client.assets.download(streamed.id, tmp_path / "via-url.png", method="url")
        assert via_url.read_bytes() == data
        url = client.assets.url(streamed.id, attachment=True)
        assert httpx.get(url, timeout=10).content == data
        assert client.assets.read(streamed.id, thumbnail=True)[:2] == b"\xff\xd8"  # a JPEG
        client.assets.delete(presigned.id)
        with pytest.raises(NotFound) as gone:
            client.assets.get(presigned.id)
        assert gone.value.reason == "ASSET_NOT_FOUND"
    with signed_in(mesh, MeshUser("other-" + mesh_user.email, mesh_user.password)) as other:
        with pytest.raises(NotFound):  # another user's asset looks exactly like a missing one
            other.assets.read(streamed.id)


def test_presigned_multipart_upload(
    mesh: RunningMesh, mesh_user: MeshUser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mesh.require("auth", "storage")
    import subprocess

    import viarte.client.assets

    puts: list[int] = []
    real_put = viarte.client.assets._put

    async def counted_put(http, url, body, *args):  # type: ignore[no-untyped-def]
        puts.append(len(body))  # observe the real PUTs (one per part), change nothing
        return await real_put(http, url, body, *args)

    monkeypatch.setattr(viarte.client.assets, "_put", counted_put)

    wav = tmp_path / "long.wav"  # 40 s of 16-bit stereo: about 7 MiB, above the 6 MiB multipart threshold
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=40", "-ac", "2",
                    "-c:a", "pcm_s16le", str(wav)], check=True, timeout=60)  # fmt: skip
    size = wav.stat().st_size
    seen: list[tuple[int, int]] = []
    with signed_in(mesh, mesh_user) as client:
        asset = client.assets.upload(wav, method="presigned", progress=lambda d, t: seen.append((d, t)))
        assert asset.size_bytes == size and asset.sha256 == hashlib.sha256(wav.read_bytes()).hexdigest()
        assert asset.media.duration_seconds == pytest.approx(40, abs=0.1)
        assert client.assets.read(asset.id) == wav.read_bytes()
    assert seen[-1] == (size, size)
    assert puts == [5 * 1024 * 1024, size - 5 * 1024 * 1024]  # two parts, straight to S3


async def test_async_client_generation_with_progress(mesh: RunningMesh, mesh_user: MeshUser) -> None:
    mesh.require("auth", "storage", "inference")
    async with AsyncClient(mesh.endpoints) as client:
        await client.auth.register(mesh_user.email, mesh_user.password)
        models = {m.id: m for m in await client.generation.list_models()}
        assert "tiny-modelscope" in models and models["tiny-modelscope"].tiny
        updates = []
        job = await client.generation.run(generation_parameters(**T2V), on_progress=updates.append)  # type: ignore[arg-type]
        assert job.status.state == JobState.SUCCEEDED
        steps = [u.step for u in updates if u.stage is Stage.DENOISING and not u.snapshot]
        assert steps == [0, 1, 2, 3, 4]  # step 0 before the prompt is encoded, then the tiny model's 4 denoising steps, each once
        assert {Stage.MODEL_LOADING, Stage.DECODING, Stage.ENCODING, Stage.UPLOADING} <= {u.stage for u in updates} | {Stage.MODEL_LOADING}
        assert updates[-1].terminal and updates[-1].job.result.video_asset_id == job.result.video_asset_id
        sequences = [u.sequence for u in updates if not u.snapshot]
        assert sequences == list(range(1, sequences[-1] + 1))  # every event once, in order
        asset = await client.assets.get(job.result.video_asset_id)
        assert asset.media.frame_count == 4 and asset.media.width == 64
        # Watching a finished job gives its final snapshot, result included.
        replay = [u async for u in client.generation.watch(job.id, after_sequence=sequences[1])]
        assert len(replay) == 1 and replay[0].terminal and replay[0].job.result.video_asset_id
        page = await client.generation.list(state="succeeded")
        assert job.id in {j.id for j in page.items}


def test_invalid_generation_parameters_carry_field_violations(mesh: RunningMesh, mesh_user: MeshUser) -> None:
    mesh.require("auth", "inference")
    bad = generation_parameters(model="tiny-modelscope", prompt="x", width=70, height=64, num_inference_steps=10_000)
    with signed_in(mesh, mesh_user) as client:
        with pytest.raises(InvalidArgument) as caught:
            client.generation.create(bad)
        with pytest.raises(InvalidArgument) as unknown:
            client.generation.create(generation_parameters(model="no-such-model", prompt="x"))
    fields = {v.field for v in caught.value.field_violations}
    assert caught.value.reason == "INVALID_PARAMETERS"
    assert any("width" in f for f in fields) and any("num_inference_steps" in f for f in fields)
    assert unknown.value.reason == "MODEL_NOT_FOUND"


def test_cancel_queued_and_running_jobs(mesh: RunningMesh, mesh_user: MeshUser) -> None:
    mesh.require("auth", "inference")
    with signed_in(mesh, mesh_user) as client:
        first = client.generation.create(generation_parameters(**{**T2V, "num_inference_steps": 12}))  # type: ignore[arg-type]
        second = client.generation.create(generation_parameters(**T2V))  # type: ignore[arg-type]
        # One CPU worker: the second job waits in the queue, and cancelling it there is immediate.
        assert client.generation.cancel(second.id).status.state == JobState.CANCELLED
        with pytest.raises(Cancelled):
            client.generation.wait(second.id, timeout=30)
        for update in client.generation.watch(first.id):
            if update.stage is Stage.DENOISING and update.step >= 1:
                break
        client.generation.cancel(first.id)  # running: stops at its next denoising step
        with pytest.raises(Cancelled):
            client.generation.wait(first.id, timeout=120)
        assert client.generation.get(first.id).status.state == JobState.CANCELLED


def test_face_swap_render_frame_and_upscale(mesh: RunningMesh, mesh_user: MeshUser) -> None:
    mesh.require("auth", "storage", "inference", "render")
    from viarte.client import face_swap_options
    from viarte.inference.v1 import face_swap_pb2

    with signed_in(mesh, mesh_user) as client:
        face = client.assets.upload(FACE_IMAGE)
        tone = client.assets.upload(SOUNDTRACK)
        swapped = client.face_swap.run(face_swap_pb2.FaceSwapParameters(
            target_asset_id=face.id, options=face_swap_options(face.id), output_name="swapped.png"))  # fmt: skip
        assert swapped.result.faces_swapped == 1
        timeline = build_timeline(face.id, 1.0, swapped.result.asset_id, 1.0, tone.id, width=128, height=128, stills=True)
        frame = client.render.frame(timeline, 0.5, max_width=64)
        assert frame.jpeg[:2] == b"\xff\xd8" and frame.width == 64
        rendered = client.render.run(render_pb2.RenderParameters(timeline=timeline, quality=render_pb2.QUALITY_PRESET_DRAFT))
        assert rendered.result.has_audio and rendered.result.width == 128
        upscaled = client.upscale.run(render_pb2.UpscaleParameters(video_asset_id=rendered.result.video_asset_id, scale=2))
        assert (upscaled.result.width, upscaled.result.height) == (256, 256)
        kinds = {j.id for j in client.render.list().items} | {j.id for j in client.upscale.list().items}
        assert {rendered.id, upscaled.id} <= kinds


def test_projects_with_etags(mesh: RunningMesh, mesh_user: MeshUser) -> None:
    mesh.require("auth", "render")
    with signed_in(mesh, mesh_user) as client:
        project = client.projects.create("Holiday cut")
        assert client.projects.get(project.id).title == "Holiday cut"
        stale = client.projects.get(project.id)
        project.title = "Holiday cut v2"
        saved = client.projects.update(project, fields=["title"])
        assert saved.etag != stale.etag
        stale.title = "lost update"
        with pytest.raises(Aborted) as conflict:
            client.projects.update(stale, fields=["title"])
        assert conflict.value.reason == "ETAG_MISMATCH"
        assert [p.id for p in client.projects.list().items] == [project.id]
        client.projects.delete(project.id)
        with pytest.raises(NotFound):
            client.projects.get(project.id)


def test_assistant_enhance_and_chat(mesh: RunningMesh, mesh_user: MeshUser) -> None:
    mesh.require("auth", "inference")
    from tests.fakes.chat_server import Reply

    with signed_in(mesh, mesh_user) as client:
        status = client.assistant.status()
        assert status.available, status.reason
        mesh.chat.script(Reply(content='{"prompt": "a red fox trotting through fresh snow, golden hour", '
                                       '"negative_prompt": "blurry, low quality"}'))  # fmt: skip
        enhanced = client.assistant.enhance_prompt("fox in snow")
        assert enhanced.prompt.startswith("a red fox trotting") and enhanced.negative_prompt == "blurry, low quality"
        assert "fox in snow" in json.dumps(mesh.chat.requests[0].body)
        mesh.chat.script(Reply(content="Try a crossfade between the two clips."))
        answer = list(client.assistant.chat([("user", "how do I join my clips?")]))
        text = "".join(m.delta for m in answer if m.WhichOneof("payload") == "delta")
        assert text == "Try a crossfade between the two clips."
        assert answer[-1].finish_reason == "stop"


def test_unauthenticated_call_is_rejected_with_a_reason(mesh: RunningMesh) -> None:
    mesh.require("auth", "storage")
    with mesh.client() as client, pytest.raises(Unauthenticated) as caught:
        client.assets.list()
    assert caught.value.code is grpc.StatusCode.UNAUTHENTICATED and caught.value.reason


def test_one_address_for_everything_through_envoy(mesh: RunningMesh, mesh_user: MeshUser) -> None:
    mesh.require("auth", "storage", "inference")
    if not mesh.gateway_url:
        pytest.skip("the mesh runs without Envoy")
    with Client(mesh.gateway_url.removeprefix("http://")) as client:
        client.auth.register(mesh_user.email, mesh_user.password)
        asset = client.assets.upload(FACE_IMAGE)
        assert client.assets.read(asset.id) == FACE_IMAGE.read_bytes()
        job = client.generation.run(generation_parameters(**T2V))  # type: ignore[arg-type]  # the Watch stream via Envoy
        assert job.status.state == JobState.SUCCEEDED
