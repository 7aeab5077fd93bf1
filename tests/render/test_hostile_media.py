"""An asset whose stored bytes were replaced by a playlist (behind storage's back, so storage's upload
checks never saw them): RenderFrame and render jobs must not fetch its URLs, and answer a clear
caller error with nothing internal in it (issue 21 §3.2, §4)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import pytest

from tests.hostile_media import counting_server, hls_playlist, leaks
from tests.render.timelines import timeline, track
from tests.storage.helpers import rows, s3_client
from viarte.errors import from_rpc_error
from viarte.render.v1 import render_pb2, render_pb2_grpc
from viarte.type.v1 import job_pb2

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(300)]


async def _replace_bytes(storage_service, asset_id: str, body: bytes) -> None:
    [row] = [r for r in rows(storage_service) if r.id == asset_id]
    client = s3_client(storage_service)
    await asyncio.to_thread(client.put_object, Bucket=storage_service.config.s3_bucket, Key=row.object_key, Body=body)


def _error_text(message: str, reason: str, metadata: dict[str, str]) -> str:
    return " ".join([message, reason, *metadata.keys(), *metadata.values()])


async def test_a_replaced_asset_that_is_a_playlist_is_refused_without_any_request(
    render_service, storage_service, user_factory, render_media
) -> None:
    user = await user_factory()
    data = await asyncio.to_thread(Path(render_media.red.location).read_bytes)
    asset_id = await storage_service.upload(user, data, "red.mp4", "video/mp4")
    stub = render_pb2_grpc.RenderServiceStub(render_service.channel)
    t = timeline()
    track(t).clips.add(asset_id=asset_id, source_end_seconds=1)
    endpoint = urlsplit(storage_service.config.s3_endpoint).netloc
    with counting_server() as segments:
        await _replace_bytes(storage_service, asset_id, hls_playlist(segments.url("/seg0.ts"), segments.url("/dir/assign.mp4")))
        try:
            await _probe_the_replaced_asset(stub, user, t, asset_id, endpoint)
        finally:
            # The storage fixture is shared by the session: its consistency checks must find the recorded bytes.
            await _replace_bytes(storage_service, asset_id, data)
        assert segments.hits == 0, segments.paths


async def _probe_the_replaced_asset(stub, user, t, asset_id: str, endpoint: str) -> None:
    """RenderFrame and a render job over the replaced asset: a clear caller error, nothing internal."""
    # 1. a preview frame: the caller's error, not INTERNAL
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.RenderFrame(render_pb2.RenderFrameRequest(timeline=t, time_seconds=0.5), metadata=user.metadata, timeout=120)
    err = from_rpc_error(info.value)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (info.value.code(), info.value.details())
    assert err.reason == "INVALID_TIMELINE" and err.metadata.get("asset_id") == asset_id
    text = _error_text(info.value.details() or "", err.reason, dict(err.metadata))
    assert not leaks(text, endpoint), text
    # 2. a render job fails with the same clear error
    params = render_pb2.RenderParameters(timeline=t, quality=render_pb2.QUALITY_PRESET_DRAFT)
    created = await stub.CreateRenderJob(render_pb2.CreateRenderJobRequest(parameters=params), metadata=user.metadata)
    async for _ in stub.WatchRenderJob(render_pb2.WatchRenderJobRequest(id=created.job.id), metadata=user.metadata, timeout=120):
        pass
    job = (await stub.GetRenderJob(render_pb2.GetRenderJobRequest(id=created.job.id), metadata=user.metadata)).job
    assert job.status.state == job_pb2.JOB_STATE_FAILED, job.status
    error = job.status.error
    assert (error.code, error.reason) == ("INVALID_ARGUMENT", "INVALID_TIMELINE"), error
    text = _error_text(error.message, error.reason, dict(error.metadata))
    assert not leaks(text, endpoint), text
