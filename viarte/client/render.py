"""Render and upscale jobs and scrubber frames (``viarte.render.v1``)."""

from __future__ import annotations

from viarte.client._base import sync
from viarte.client.jobs import AsyncJobs, Jobs, _JobSpec
from viarte.render.v1 import render_pb2, render_pb2_grpc, timeline_pb2

__all__ = ["AsyncRender", "Render"]

RENDER = _JobSpec("render", "render", render_pb2_grpc.RenderServiceStub, render_pb2, "Render")
UPSCALE = _JobSpec("upscale", "render", render_pb2_grpc.UpscaleServiceStub, render_pb2, "Upscale")


class AsyncRender(AsyncJobs[render_pb2.RenderJob, render_pb2.RenderParameters]):
    """Timeline render jobs and scrubber frames (``viarte.render.v1.RenderService``)."""

    async def frame(self, timeline: timeline_pb2.Timeline, time_seconds: float, *, max_width: int = 0) -> render_pb2.RenderFrameResponse:
        stub = self._t.stub(render_pb2_grpc.RenderServiceStub, "render")
        req = render_pb2.RenderFrameRequest(timeline=timeline, time_seconds=time_seconds, max_width=max_width)
        resp: render_pb2.RenderFrameResponse = await self._t.unary(stub.RenderFrame, req, retry=True)
        return resp


class Render(Jobs[render_pb2.RenderJob, render_pb2.RenderParameters]):
    """The sync :class:`AsyncRender`."""

    frame = sync(AsyncRender.frame)
