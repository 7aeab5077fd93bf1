"""RenderService and UpscaleService: validation up front, work in the shared job pattern.

Transport (these servicers) → handlers (one per job kind, ``services.render.handlers``) → worker
processes (ffmpeg subprocesses; the upscaler's torch process from its pool). Everything that can be refused is refused
before a job is queued: structure, limits, assets (NOT_FOUND for missing or foreign ones) and
trims against each source's probed duration.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc

from services.kit.auth import current_principal
from services.kit.errors import ServiceError, Violations
from services.kit.jobs import JobRpc, JobService
from services.kit.prices import Usage
from services.render.analyze import Analyzer
from services.render.capabilities import BLEND_MODES, CURVES_PRESETS, EASINGS, capabilities
from services.render.config import RenderConfig
from services.render.ffmpeg_process import FFmpegError
from services.render.handlers import (
    RENDER,
    UPSCALE,
    RenderContext,
    limits_of,
    overrides_of,
    resolve_luts,
    resolve_sources,
)
from services.render.overview import Overviews
from services.render.pipeline import render_frame, scratch_dir
from services.render.playback import DRAFT_MIME, DraftCache, draft_plan, render_draft_segment
from services.render.propose import propose_edit
from services.render.reasons import Reason
from services.render.timeline.audiofx import EQ_PRESETS
from services.render.timeline.plan import Plan
from services.render.timeline.validate import check_structure, plan_timeline
from viarte.render.v1 import render_pb2, render_pb2_grpc

__all__ = ["RenderServicer", "UpscaleServicer"]


def check_render_parameters(params: render_pb2.RenderParameters, config: RenderConfig) -> None:
    v = Violations()
    v.check(params.HasField("timeline"), "parameters.timeline", "is required")
    v.check(params.quality in render_pb2.QualityPreset.values(), "parameters.quality", "unknown preset")
    v.check(params.codec in render_pb2.VideoCodec.values(), "parameters.codec", "unknown codec")
    v.check(len(params.output_name) <= 200, "parameters.output_name", "at most 200 characters")
    v.raise_if_any(Reason.INVALID_TIMELINE)
    check_structure(params.timeline, limits_of(config), overrides_of(params))


class RenderServicer(render_pb2_grpc.RenderServiceServicer):  # type: ignore[misc]
    def __init__(self, ctx: RenderContext, jobs: JobService, drafts: DraftCache | None = None) -> None:
        self.ctx = ctx
        self.jobs = jobs
        self.drafts = drafts
        # Throttles this replica's draft ffmpegs (the cache they fill is shared, in the database).
        self.draft_gate = asyncio.Semaphore(max(1, ctx.config.draft_concurrency))
        self.rpc = JobRpc(jobs, RENDER, render_pb2.RenderJob, render_pb2.RenderParameters, render_pb2.RenderResult)
        self.analyzer = Analyzer(ctx)
        self.overviews = Overviews(ctx)

    async def CreateRenderJob(self, request: render_pb2.CreateRenderJobRequest, context: grpc.aio.ServicerContext) -> render_pb2.CreateRenderJobResponse:
        principal = current_principal()
        owner = principal.user_id
        params = request.parameters
        check_render_parameters(params, self.ctx.config)
        self.ctx.check_executor()
        sources = await resolve_sources(self.ctx, owner, params.timeline)
        luts = await resolve_luts(self.ctx, owner, params.timeline)
        plan = plan_timeline(params.timeline, sources, limits_of(self.ctx.config), overrides_of(params), luts)
        rec = await self.jobs.create(
            owner, RENDER, params.SerializeToString(), request_id=request.request_id, priority=request.priority,
            caller=principal,
            estimated_credits=self.jobs.estimate(RENDER, "", Usage(video_seconds=plan.canvas.duration)),
        )
        return render_pb2.CreateRenderJobResponse(job=self.rpc.to_proto(rec))

    async def GetRenderJob(self, request: render_pb2.GetRenderJobRequest, context: grpc.aio.ServicerContext) -> render_pb2.GetRenderJobResponse:
        return await self.rpc.get(request, render_pb2.GetRenderJobResponse)

    async def ListRenderJobs(self, request: render_pb2.ListRenderJobsRequest, context: grpc.aio.ServicerContext) -> render_pb2.ListRenderJobsResponse:
        return await self.rpc.list(request, render_pb2.ListRenderJobsResponse)

    async def CancelRenderJob(self, request: render_pb2.CancelRenderJobRequest, context: grpc.aio.ServicerContext) -> render_pb2.CancelRenderJobResponse:
        return await self.rpc.cancel(request, render_pb2.CancelRenderJobResponse)

    async def WatchRenderJob(self, request: render_pb2.WatchRenderJobRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[render_pb2.WatchRenderJobResponse]:
        async for response in self.rpc.watch(request, render_pb2.WatchRenderJobResponse):
            yield response

    async def _preview_plan(self, request: Any, max_width: int = 0, draft_height: int = 0) -> tuple[Plan, dict[str, Any]]:
        """RenderFrame's and RenderPlaybackSegment's checks: the timeline planned against its sources."""
        owner = current_principal().user_id
        config = self.ctx.config
        limits = limits_of(config)
        v = Violations()
        v.check(request.HasField("timeline"), "timeline", "is required")
        v.check(request.time_seconds >= 0, "time_seconds", "must not be negative")
        v.check(0 <= max_width <= config.max_width, "max_width", f"must be in [0, {config.max_width}]")
        v.raise_if_any(Reason.INVALID_TIMELINE)
        timeline = request.timeline
        check_structure(timeline, limits)
        # Side by side (each is its own storage round trips); a refusal of the sources wins, as when
        # they were looked up first.
        sources, luts = await asyncio.gather(resolve_sources(self.ctx, owner, timeline), resolve_luts(self.ctx, owner, timeline),
                                             return_exceptions=True)
        if isinstance(sources, BaseException):
            raise sources
        if isinstance(luts, BaseException):
            raise luts
        if draft_height:  # playback: the whole graph at the draft's size, videos read from their proxies
            stabilised = frozenset(c.asset_id for t in timeline.tracks for c in t.clips if c.filters.stabilize)
            sources = await self.overviews.with_proxies(owner, sources, keep=stabilised)
            plan = draft_plan(timeline, sources, limits, draft_height, luts)
        else:
            plan = plan_timeline(timeline, sources, limits, luts=luts)
        if request.time_seconds >= plan.canvas.duration:
            raise ServiceError.invalid_argument(
                Reason.INVALID_TIMELINE, "time is outside the timeline",
                violations=[_violation("time_seconds", f"must be below the timeline's {plan.canvas.duration:.3f} s")],
            )
        return plan, sources

    async def RenderFrame(self, request: render_pb2.RenderFrameRequest, context: grpc.aio.ServicerContext) -> render_pb2.RenderFrameResponse:
        config = self.ctx.config
        plan, sources = await self._preview_plan(request, request.max_width)
        with scratch_dir(self.ctx.work_root, "frame-") as work:
            try:
                plan = await self.ctx.stabilize(plan)
                jpeg, width, height = await render_frame(
                    plan, request.time_seconds, work, max_width=request.max_width or 0,
                    ffmpeg_binary=config.ffmpeg_binary, limit_seconds=config.frame_timeout_seconds,
                )
            except FFmpegError as exc:
                # An asset that no longer decodes is the caller's INVALID_ARGUMENT, not our INTERNAL.
                raise await self.ctx.ffmpeg_failed(exc, sources) from None
        return render_pb2.RenderFrameResponse(jpeg=jpeg, width=width, height=height)

    async def RenderPlaybackSegment(self, request: render_pb2.RenderPlaybackSegmentRequest, context: grpc.aio.ServicerContext) -> render_pb2.RenderPlaybackSegmentResponse:
        config = self.ctx.config
        if self.drafts is None:  # pragma: no cover - build() always passes the cache
            raise ServiceError.unavailable(Reason.STORAGE_UNAVAILABLE, "the playback cache is not configured")
        plan, sources = await self._preview_plan(request, draft_height=config.draft_height)
        with scratch_dir(self.ctx.work_root, "draft-") as work:
            try:
                plan = await self.ctx.stabilize(plan)
                segment = await render_draft_segment(
                    plan, request.time_seconds, self.drafts, work, segment_seconds=config.draft_segment_seconds,
                    height=config.draft_height, ffmpeg_binary=config.ffmpeg_binary,
                    limit_seconds=config.frame_timeout_seconds * 2, gate=self.draft_gate,
                )
            except FFmpegError as exc:
                raise await self.ctx.ffmpeg_failed(exc, sources) from None
        fps = plan.canvas.fps
        return render_pb2.RenderPlaybackSegmentResponse(
            media=b"" if request.warm_only else segment.media, mime_type=DRAFT_MIME, start_seconds=segment.window.start / fps,
            duration_seconds=segment.window.frames / fps, timeline_duration_seconds=plan.canvas.duration,
            cached=segment.cached, key=segment.key, width=segment.width, height=segment.height,
        )

    async def ListCapabilities(self, request: render_pb2.ListCapabilitiesRequest, context: grpc.aio.ServicerContext) -> render_pb2.ListCapabilitiesResponse:
        # Discovered at server start (cached per binary): this is a lookup, not an ffmpeg run.
        caps = capabilities(self.ctx.config.ffmpeg_binary)
        return render_pb2.ListCapabilitiesResponse(
            transitions=caps.transitions, filters=caps.filters, lut_formats=caps.lut_formats, encoders=caps.encoders,
            easings=EASINGS, curves_presets=CURVES_PRESETS if caps.has("curves") else (),
            blend_modes=BLEND_MODES if caps.has("blend_mode") else BLEND_MODES[:1],
            loudness_normalization=caps.loudness_normalization, audio_eq_presets=list(EQ_PRESETS),
        )


    async def AnalyzeMedia(self, request: render_pb2.AnalyzeMediaRequest, context: grpc.aio.ServicerContext) -> render_pb2.AnalyzeMediaResponse:
        return await self.analyzer.analyze(current_principal().user_id, request.asset_id)

    async def GetMediaOverview(self, request: render_pb2.GetMediaOverviewRequest, context: grpc.aio.ServicerContext) -> render_pb2.GetMediaOverviewResponse:
        return await self.overviews.overview(current_principal().user_id, request.asset_id)

    async def ProposeEdit(self, request: render_pb2.ProposeEditRequest, context: grpc.aio.ServicerContext) -> render_pb2.ProposeEditResponse:
        return await propose_edit(self.analyzer, current_principal().user_id, request)


class UpscaleServicer(render_pb2_grpc.UpscaleServiceServicer):  # type: ignore[misc]
    def __init__(self, ctx: RenderContext, jobs: JobService) -> None:
        self.ctx = ctx
        self.jobs = jobs
        self.rpc = JobRpc(jobs, UPSCALE, render_pb2.UpscaleJob, render_pb2.UpscaleParameters, render_pb2.UpscaleResult)

    async def CreateUpscaleJob(self, request: render_pb2.CreateUpscaleJobRequest, context: grpc.aio.ServicerContext) -> render_pb2.CreateUpscaleJobResponse:
        principal = current_principal()
        owner = principal.user_id
        p = request.parameters
        v = Violations()
        v.check(bool(p.video_asset_id), "parameters.video_asset_id", "is required")
        v.check(p.scale in (0, 2), "parameters.scale", "only 2 is supported")
        v.check(p.tile_size == 0 or 32 <= p.tile_size <= 2048, "parameters.tile_size", "0 (no tiling) or 32..2048")
        v.check(0 <= p.tile_padding <= 128, "parameters.tile_padding", "must be in [0, 128]")
        v.check(p.model in ("", self.ctx.config.upscale_model), "parameters.model", f"unknown model; available: {self.ctx.config.upscale_model}")
        v.raise_if_any(Reason.INVALID_ARGUMENT)
        self.ctx.check_executor()
        resolved = await self.ctx.storage.resolve(owner, p.video_asset_id)
        info = await self.ctx.source_info(resolved)
        if not info.has_video or info.duration <= 0:
            raise ServiceError.invalid_argument(
                Reason.INVALID_ARGUMENT, "not a video", violations=[_violation("parameters.video_asset_id", "is not a video")]
            )
        if info.width * 2 > self.ctx.config.max_width or info.height * 2 > self.ctx.config.max_height:
            raise ServiceError.invalid_argument(
                Reason.CANVAS_TOO_LARGE, "the upscaled video would exceed the size limits",
                violations=[_violation("parameters.video_asset_id", f"{info.width}x{info.height} doubled is over the limit")],
            )
        estimate = self.jobs.estimate(UPSCALE, "", Usage(frames=round(info.duration * info.fps)))
        rec = await self.jobs.create(owner, UPSCALE, p.SerializeToString(), request_id=request.request_id,
                                     priority=request.priority, caller=principal, estimated_credits=estimate)
        return render_pb2.CreateUpscaleJobResponse(job=self.rpc.to_proto(rec))

    async def GetUpscaleJob(self, request: render_pb2.GetUpscaleJobRequest, context: grpc.aio.ServicerContext) -> render_pb2.GetUpscaleJobResponse:
        return await self.rpc.get(request, render_pb2.GetUpscaleJobResponse)

    async def ListUpscaleJobs(self, request: render_pb2.ListUpscaleJobsRequest, context: grpc.aio.ServicerContext) -> render_pb2.ListUpscaleJobsResponse:
        return await self.rpc.list(request, render_pb2.ListUpscaleJobsResponse)

    async def CancelUpscaleJob(self, request: render_pb2.CancelUpscaleJobRequest, context: grpc.aio.ServicerContext) -> render_pb2.CancelUpscaleJobResponse:
        return await self.rpc.cancel(request, render_pb2.CancelUpscaleJobResponse)

    async def WatchUpscaleJob(self, request: render_pb2.WatchUpscaleJobRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[render_pb2.WatchUpscaleJobResponse]:
        async for response in self.rpc.watch(request, render_pb2.WatchUpscaleJobResponse):
            yield response


def _violation(field: str, description: str) -> Any:
    from services.kit.errors import FieldViolation

    return FieldViolation(field, description)
