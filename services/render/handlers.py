"""Job handlers: the server-side logic of the render and upscale job kinds, run by the kit's job
service (``HandlerExecutor``).

Both read inputs through storage's presigned URLs (fresh ones each attempt), work in a private
scratch folder that is removed however the job ends, report progress as job events, and store
outputs through StoreAsset on behalf of the owner. Cancel kills ffmpeg (or the upscaler worker
process) at once; nothing is stored after a cancel.
"""

from __future__ import annotations

import asyncio
import socket
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from google.protobuf import duration_pb2

from services.kit.cube_lut import MAX_LUT_BYTES, CubeLut, LutError, parse_cube
from services.kit.errors import ServiceError
from services.kit.jobs import JobCancelled, RunningJob
from services.kit.media_input import scrub
from services.kit.storage_client import ResolvedAsset, StorageClient
from services.render.capabilities import capabilities
from services.render.config import RenderConfig
from services.render.encoder import Codec, Quality, encoder_options, select_encoder
from services.render.ffmpeg_process import FFmpegCancelled, FFmpegError, FFmpegProgress
from services.render.media import MediaError, MediaKind, SourceInfo, probe
from services.render.pipeline import render_plan, scratch_dir
from services.render.reasons import Reason
from services.render.segments import render_split, render_window
from services.render.stabilize import fetch_stabilization, prepare_stabilization
from services.render.timeline.compile import Window
from services.render.timeline.looks import lut_asset_ids
from services.render.timeline.plan import Plan, Source
from services.render.timeline.validate import Limits, OutputOverrides, asset_ids, plan_timeline
from services.render.upscale.pool import (
    UpscaleCancelled,
    UpscaleError,
    UpscalePool,
    UpscaleProgress,
    upscale_video,
    upscale_work,
)
from viarte.render.v1 import render_pb2, timeline_pb2
from viarte.storage.v1 import storage_pb2
from viarte.type.v1 import asset_pb2, job_pb2

if TYPE_CHECKING:
    from services.render.ray_runner import RenderRay

__all__ = [
    "RENDER",
    "UPSCALE",
    "RenderContext",
    "ffmpeg_failed",
    "handle_render",
    "handle_upscale",
    "limits_of",
    "overrides_of",
    "resolve_luts",
    "resolve_sources",
    "stored_info",
    "unreadable_asset",
]

RENDER = "render"
UPSCALE = "upscale"
_HOST = socket.gethostname()

_QUALITY = {
    render_pb2.QUALITY_PRESET_UNSPECIFIED: Quality.STANDARD,
    render_pb2.QUALITY_PRESET_DRAFT: Quality.DRAFT,
    render_pb2.QUALITY_PRESET_STANDARD: Quality.STANDARD,
    render_pb2.QUALITY_PRESET_HIGH: Quality.HIGH,
}
_KINDS = {asset_pb2.ASSET_KIND_VIDEO: MediaKind.VIDEO, asset_pb2.ASSET_KIND_IMAGE: MediaKind.IMAGE, asset_pb2.ASSET_KIND_AUDIO: MediaKind.AUDIO}


def stored_info(asset: storage_pb2.Asset) -> SourceInfo | None:
    """Media facts storage probed at upload (None when it has none: probe the URL instead)."""
    kind = _KINDS.get(asset.kind)
    m = asset.media
    if kind is None or (kind is not MediaKind.IMAGE and m.duration_seconds <= 0):
        return None
    if kind is not MediaKind.AUDIO and (m.width <= 0 or m.height <= 0):
        return None
    return SourceInfo(kind, m.duration_seconds if kind is not MediaKind.IMAGE else 0.0, m.width, m.height, m.fps, m.has_audio)


@dataclass
class RenderContext:
    config: RenderConfig
    storage: StorageClient
    # Warm upscaler workers, shared by upscale jobs and the export's upscale option.
    upscale_pool: UpscalePool | None = None
    # Executor "ray": render and upscale work on actors of a Ray cluster (None: this machine).
    ray: RenderRay | None = None
    # Probed facts by asset id (assets are immutable once stored), least recently used dropped.
    _facts: OrderedDict[str, SourceInfo] = field(default_factory=OrderedDict)
    max_cached_facts: int = 4096

    def check_executor(self) -> None:
        """UNAVAILABLE (RAY_UNAVAILABLE) while the Ray cluster cannot be reached; local: never."""
        if self.ray is not None:
            self.ray.check_available()

    @property
    def work_root(self) -> Path:
        return self.config.resolved_work_dir

    @property
    def stabilization_cache(self) -> Path:
        """This server's copies of stored vidstab analyses (named by object key: never stale)."""
        return self.work_root.parent / f"{self.work_root.name}-vidstab"

    async def stabilize(self, plan: Plan, cancel: asyncio.Event | None = None, *, fetch: bool = True) -> Plan:
        """``plan`` with its stabilised sources' analyses found in (or analysed into) storage and,
        with ``fetch``, their files in this server's cache (where its own ffmpeg reads them)."""
        plan = await prepare_stabilization(plan, self.storage, self.stabilization_cache,
                                           ffmpeg_binary=self.config.ffmpeg_binary, cancel=cancel)
        return await fetch_stabilization(plan, self.stabilization_cache) if fetch else plan

    async def source_info(self, resolved: ResolvedAsset) -> SourceInfo:
        cached = self._facts.get(resolved.asset.id)
        if cached is not None:
            self._facts.move_to_end(resolved.asset.id)
            return cached
        info = stored_info(resolved.asset)
        if info is None:
            try:
                info = await self.probe(resolved.url, resolved.asset.content_type)
            except MediaError as exc:
                raise unreadable_asset(resolved.asset.id, exc) from None
        self._facts[resolved.asset.id] = info
        while len(self._facts) > self.max_cached_facts:
            self._facts.popitem(last=False)
        return info

    async def probe(self, location: str, content_type: str) -> SourceInfo:
        return await asyncio.to_thread(probe, location, content_type, ffprobe=self.config.ffprobe_binary)

    async def ffmpeg_failed(self, exc: FFmpegError, sources: dict[str, Source]) -> ServiceError:
        """The error to answer when ffmpeg failed on a timeline: the first source that no longer
        opens as its recorded type (bytes replaced behind storage's back, say) is the caller's
        INVALID_ARGUMENT; otherwise it is ours, ENCODER_FAILED, with stderr scrubbed."""
        for asset_id, source in sources.items():
            try:
                await self.probe(source.location, source.content_type)
            except MediaError as bad:
                self._facts.pop(asset_id, None)
                return unreadable_asset(asset_id, bad)
        return ffmpeg_failed(exc, *(s.location for s in sources.values()))


def unreadable_asset(asset_id: str, exc: Exception) -> ServiceError:
    return ServiceError.invalid_argument(
        Reason.INVALID_TIMELINE, f"asset {asset_id} is not readable media: {exc}", metadata={"asset_id": asset_id}
    )


def ffmpeg_failed(exc: FFmpegError, *sources: str) -> ServiceError:
    return ServiceError.internal(Reason.ENCODER_FAILED, f"ffmpeg failed: {scrub(str(exc), *sources)}")


def limits_of(config: RenderConfig) -> Limits:
    return Limits(
        max_width=config.max_width, max_height=config.max_height, max_fps=config.max_fps,
        max_duration_seconds=config.max_duration_seconds, max_tracks=config.max_tracks,
        max_clips=config.max_clips, default_font_family=config.default_font_family,
        ffmpeg_caps=capabilities(config.ffmpeg_binary),
    )


def overrides_of(params: render_pb2.RenderParameters) -> OutputOverrides:
    return OutputOverrides(params.output_width, params.output_height, params.output_fps)


async def resolve_sources(ctx: RenderContext, owner: str, timeline: timeline_pb2.Timeline) -> dict[str, Source]:
    """Presigned URLs and media facts of every asset the timeline uses (NOT_FOUND for others')."""
    ids = asset_ids(timeline)
    resolved = await asyncio.gather(*(ctx.storage.resolve(owner, i) for i in ids))
    infos = await asyncio.gather(*(ctx.source_info(r) for r in resolved))
    return {i: Source(r.url, info, r.asset.content_type, asset_id=i, sha256=r.asset.sha256)
            for i, r, info in zip(ids, resolved, infos, strict=True)}


async def resolve_luts(ctx: RenderContext, owner: str, timeline: timeline_pb2.Timeline) -> dict[str, CubeLut | str]:
    """Every LUT asset the timeline's clips name, fetched by us (never a URL handed to ffmpeg),
    size-bounded, parsed and checked: the LUT, or why the asset is not one (refused at the clip's
    ``filters.lut_asset_id`` by validation). Unknown or foreign assets: NOT_FOUND."""
    out: dict[str, CubeLut | str] = {}
    for asset_id in lut_asset_ids(timeline):
        resolved = await ctx.storage.resolve(owner, asset_id)
        if resolved.asset.size_bytes > MAX_LUT_BYTES:
            out[asset_id] = f"larger than {MAX_LUT_BYTES} bytes"
            continue
        with scratch_dir(ctx.work_root, "lut-") as work:
            path = work / "lut.cube"
            await ctx.storage.download(resolved, path)
            data = await asyncio.to_thread(path.read_bytes)
        try:
            out[asset_id] = await asyncio.to_thread(parse_cube, data)
        except LutError as exc:
            out[asset_id] = str(exc)
    return out


def _cancel_event(job: RunningJob) -> asyncio.Event:
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    job.on_cancel(lambda: _call_soon(loop, event.set))
    return event


def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[[], object]) -> None:
    loop.call_soon_threadsafe(fn)


def _eta(seconds: float | None) -> duration_pb2.Duration | None:
    if seconds is None:
        return None
    d = duration_pb2.Duration()
    d.FromMilliseconds(int(seconds * 1000))
    return d


async def handle_render(ctx: RenderContext, job: RunningJob) -> bytes:
    config = ctx.config
    params = render_pb2.RenderParameters.FromString(job.parameters)
    # 1. inputs (fresh presigned URLs: a queued job may start after older ones expired)
    job.emit(job_pb2.Progress(stage=job_pb2.STAGE_FETCHING_INPUTS, message="resolving inputs"))
    sources = await resolve_sources(ctx, job.owner, params.timeline)
    luts = await resolve_luts(ctx, job.owner, params.timeline)
    plan = plan_timeline(params.timeline, sources, limits_of(config), overrides_of(params), luts)
    codec = Codec.HEVC if params.codec == render_pb2.VIDEO_CODEC_HEVC else Codec.H264
    encoder = await asyncio.to_thread(select_encoder, config.ffmpeg_binary, codec, config.video_encoder)
    encoding = encoder_options(encoder, _QUALITY[params.quality], config.encoder_threads)
    cancel = _cancel_event(job)
    share = 0.7 if params.upscale else 0.95

    def progress(p: FFmpegProgress) -> None:
        job.emit(job_pb2.Progress(
            stage=job_pb2.STAGE_RENDERING, frame=min(p.frame, p.total_frames), total_frames=p.total_frames,
            fps=p.fps, speed=p.speed, eta=_eta(p.eta_seconds), fraction=share * p.fraction,
            message=f"rendering with {encoder}",
        ))

    # A long timeline is cut into segments rendered side by side (on several actors, or as
    # concurrent local ffmpegs), then joined by stream copy (services/render/segments.py).
    split = 0 < config.render_split_seconds < plan.canvas.duration and config.split_max_workers > 1
    # vidstab's first pass, stored once per source for every replica and node: the local executor
    # reads it from this server's cache, a Ray actor fetches it where it runs.
    plan = await ctx.stabilize(plan, cancel, fetch=ctx.ray is None)
    with scratch_dir(ctx.work_root, f"render-{job.id}-") as work:
        # 2. one ffmpeg run (or one per segment)
        try:
            if ctx.ray is not None:
                out = await ctx.ray.render(job, plan, work, encoding, split=split, on_progress=progress, cancel=cancel)
            else:
                await job.place(executor="local", node=_HOST, device="cpu")
                if split:
                    async def run_segment(_i: int, window: Window, path: Path, frames: Callable[[int], None]) -> int:
                        return await render_window(plan, window, path, encoding, ffmpeg_binary=config.ffmpeg_binary,
                                                   on_frames=frames, cancel=cancel)

                    out = await render_split(plan, work, encoding, config.split_max_workers, run_segment,
                                             ffmpeg_binary=config.ffmpeg_binary, on_progress=progress, cancel=cancel)
                else:
                    out = await render_plan(
                        plan, work, encoding, ffmpeg_binary=config.ffmpeg_binary, on_progress=progress, cancel=cancel,
                    )
        except FFmpegCancelled:
            raise JobCancelled() from None
        except FFmpegError as exc:
            raise await ctx.ffmpeg_failed(exc, sources) from None
        video, width, height = out.video, out.width, out.height
        # 3. optional Real-ESRGAN x2 (the export option)
        if params.upscale:
            upscaled = work / "upscaled.mp4"
            upscale = await _upscale(ctx, job, str(video), "video/mp4", upscaled, 0, 10, cancel, base=share, share=0.25,
                                     frames=out.frames)
            video, width, height = upscaled, upscale.width, upscale.height
        job.raise_if_cancelled()
        # 4. outputs, on behalf of the owner
        job.emit(job_pb2.Progress(stage=job_pb2.STAGE_UPLOADING, fraction=0.97, message="storing the video"))
        labels = {"source": "render", "job_id": job.id}
        if params.project_id:
            labels["project_id"] = params.project_id
        name = params.output_name or "render.mp4"
        # Side by side: storage verifies (probes, thumbnails) one while the other streams. Each has
        # its request_id, so a retried job gets the same assets back whichever one was stored.
        asset, poster = await asyncio.gather(
            ctx.storage.store(job.owner, video, name=name, content_type="video/mp4", labels=labels, request_id=f"{job.id}:video"),
            ctx.storage.store(
                job.owner, out.poster, name=Path(name).stem + "-poster.jpg", content_type="image/jpeg",
                labels=labels | {"role": "poster"}, request_id=f"{job.id}:poster",
            ),
        )
    rendered: bytes = render_pb2.RenderResult(
        video_asset_id=asset.id, poster_asset_id=poster.id, duration_seconds=out.duration, width=width,
        height=height, fps=out.fps, frame_count=out.frames, encoder=encoder, has_audio=out.has_audio,
    ).SerializeToString()
    return rendered


async def _upscale(
    ctx: RenderContext,
    job: RunningJob,
    source: str,
    content_type: str,
    output: Path,
    tile: int,
    padding: int,
    cancel: asyncio.Event,
    *,
    base: float = 0.0,
    share: float = 0.95,
    frames: int = 0,
) -> UpscaleProgress:
    def progress(p: UpscaleProgress) -> None:
        job.emit(job_pb2.Progress(
            stage=job_pb2.STAGE_UPSCALING, frame=p.frame, total_frames=p.total_frames, fps=p.fps,
            eta=_eta(p.eta_seconds), fraction=base + share * p.fraction, message=p.message,
        ))

    try:
        if ctx.ray is not None:
            work = upscale_work(ctx.config, source, content_type, output, tile_size=tile, tile_padding=padding)
            return await ctx.ray.upscale(job, work, output, frames, progress)
        if base == 0.0:  # the upscale job itself (an export's upscale was placed with its render)
            await job.place(executor="local", node=_HOST, device=ctx.config.upscale_device)
        return await upscale_video(
            ctx.config, source, content_type, output, tile_size=tile, tile_padding=padding, on_progress=progress, cancel=cancel,
            pool=ctx.upscale_pool,
        )
    except UpscaleCancelled:
        raise JobCancelled() from None
    except UpscaleError as exc:
        raise ServiceError.internal(Reason.UPSCALE_FAILED, f"upscaling failed: {scrub(str(exc), source)}") from None


async def handle_upscale(ctx: RenderContext, job: RunningJob) -> bytes:
    params = render_pb2.UpscaleParameters.FromString(job.parameters)
    job.emit(job_pb2.Progress(stage=job_pb2.STAGE_FETCHING_INPUTS, message="resolving the input"))
    resolved = await ctx.storage.resolve(job.owner, params.video_asset_id)
    info = await ctx.source_info(resolved)
    cancel = _cancel_event(job)
    with scratch_dir(ctx.work_root, f"upscale-{job.id}-") as work:
        output = work / "upscaled.mp4"
        result = await _upscale(ctx, job, resolved.url, resolved.asset.content_type, output, params.tile_size, params.tile_padding or 10, cancel,
                                frames=max(1, round(info.duration * (info.fps or 30.0))))
        job.raise_if_cancelled()
        job.emit(job_pb2.Progress(stage=job_pb2.STAGE_UPLOADING, fraction=0.97, message="storing the video"))
        name = params.output_name or (Path(resolved.asset.name).stem + "-x2.mp4")
        asset = await ctx.storage.store(
            job.owner, output, name=name, content_type="video/mp4",
            labels={"source": "upscale", "job_id": job.id, "input_asset_id": params.video_asset_id},
            request_id=f"{job.id}:video",
        )
    answer: bytes = render_pb2.UpscaleResult(
        video_asset_id=asset.id, width=result.width, height=result.height, frame_count=result.frame, fps=result.fps_out,
    ).SerializeToString()
    return answer


