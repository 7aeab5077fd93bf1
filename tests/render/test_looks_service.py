"""Looks through the real service: a LUT asset is fetched by the render service and checked."""

from __future__ import annotations

import io

import grpc
import numpy as np
import pytest
from PIL import Image

from tests.render.test_looks import RED_TO_BLUE
from tests.render.test_service import upload_media
from tests.render.timelines import timeline, track
from viarte.errors import from_rpc_error
from viarte.render.v1 import render_pb2, render_pb2_grpc
from viarte.render.v1 import timeline_pb2 as tl

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_lut_asset_that_is_not_a_lut_is_refused_at_its_field(render_service, storage_service, user_factory, render_media) -> None:
    user = await user_factory()
    ids = await upload_media(storage_service, user, render_media)
    stub = render_pb2_grpc.RenderServiceStub(render_service.channel)
    t = timeline()
    track(t).clips.add(asset_id=ids["red"], source_end_seconds=1, filters=tl.ClipFilters(lut_asset_id=ids["green"]))  # a PNG
    params = render_pb2.RenderParameters(timeline=t)
    for call in (
        stub.CreateRenderJob(render_pb2.CreateRenderJobRequest(parameters=params), metadata=user.metadata),
        stub.RenderFrame(render_pb2.RenderFrameRequest(timeline=t, time_seconds=0.5), metadata=user.metadata),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call
        err = from_rpc_error(info.value)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and err.reason == "INVALID_TIMELINE"
        (violation,) = err.field_violations
        assert violation.field == "tracks[0].clips[0].filters.lut_asset_id" and "not a valid .cube" in violation.description
    # Someone else's (or no) asset: NOT_FOUND, as for clips.
    t.tracks[0].clips[0].filters.lut_asset_id = "no-such-asset"
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.RenderFrame(render_pb2.RenderFrameRequest(timeline=t, time_seconds=0.5), metadata=user.metadata)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert list(render_service.config.resolved_work_dir.iterdir()) == []  # the fetched bytes are gone


async def test_a_lut_uploaded_to_storage_grades_by_its_asset_id(render_service, storage_service, user_factory, render_media) -> None:
    """Issue 18: a .cube stored as a LUT asset (storage parsed it) is used by RenderFrame by id."""
    user = await user_factory()
    ids = await upload_media(storage_service, user, render_media)
    lut_id = await storage_service.upload(user, RED_TO_BLUE, "swap.cube", "application/x-cube-lut")
    stub = render_pb2_grpc.RenderServiceStub(render_service.channel)
    t = timeline()
    track(t).clips.add(asset_id=ids["red"], source_end_seconds=1, filters=tl.ClipFilters(lut_asset_id=lut_id))
    frame = await stub.RenderFrame(render_pb2.RenderFrameRequest(timeline=t, time_seconds=0.5), metadata=user.metadata)
    px = np.asarray(Image.open(io.BytesIO(frame.jpeg)).convert("RGB"))[frame.height // 2, frame.width // 2]
    assert px[2] > 200 and px[0] < 50, px  # red turned blue
