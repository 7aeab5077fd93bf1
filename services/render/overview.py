"""GetMediaOverview (issue 19): filmstrips, waveforms and playback proxies, derived once per asset.

One ffmpeg decode of a stored video or audio asset makes three things:
- the filmstrip: frames every ``tile_seconds`` scaled to ``TILE_HEIGHT`` lines, tiled side by side
  into one JPEG (the editor draws it along the clip);
- the peaks: the mono mix at 8 kHz, the largest magnitude per 1/``PEAKS_PER_SECOND`` s as one byte;
- the playback proxy (video only): the same frames with the same timing, at most the draft's height
  (``draft_height``, 360 lines: ``proxy_size``), re-encoded with a keyframe every half second and
  the source's sound copied. Draft playback segments decode the proxy instead of the original: a
  segment starting 7 s after the source's last keyframe (x264's default GOP is 250 frames)
  otherwise decodes those 7 s first, which was most of the edit → first playable segment time, and
  a 720p source decodes four times the pixels the 360p draft shows (bench/playback.py).

All three are storage service objects under ``render/overview/<version>/<asset id>/<sha256>-h<draft
height>`` (a changed ``draft_height`` makes its own overview and proxy, never reads another size): every
replica finds what one computed (an asset id names immutable bytes; the sha256 and the version name
what was derived from what). Concurrent requests for one asset in one process share one decode; at
most ``analyze_concurrency`` decodes run at once per server, bounded by ``analyze_timeout_seconds``.
"""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path

import grpc
import httpx
import numpy as np

from services.kit.errors import FieldViolation, ServiceError
from services.kit.logs import get_logger
from services.kit.storage_client import ResolvedAsset
from services.render.ffmpeg_process import FFmpegError, run_ffmpeg
from services.render.handlers import RenderContext
from services.render.media import MediaKind, SourceInfo
from services.render.pipeline import scratch_dir
from services.render.reasons import Reason
from services.render.timeline.plan import Source
from viarte.render.v1 import render_pb2

__all__ = ["PEAKS_PER_SECOND", "TILE_HEIGHT", "Overviews", "overview_args", "peaks_of", "proxy_size", "tile_seconds"]

_log = get_logger("services.render.overview")
_VERSION = "v2"  # v2: proxies at the draft's height (v1: the source's size)
TILE_HEIGHT = 48
MAX_TILES = 120
PEAKS_PER_SECOND = 50
_PCM_RATE = 8000
# How long a proxy's presigned URL is reused by this process (well inside the URL's own lifetime).
_PROXY_URL_SECONDS = 300.0


def tile_seconds(duration: float) -> float:
    """A tile every half second for short media, at most MAX_TILES along longer ones."""
    return max(0.5, math.ceil(duration / MAX_TILES * 10) / 10)


def tile_size(info: SourceInfo) -> tuple[int, int]:
    width = round(TILE_HEIGHT * info.width / max(1, info.height) / 2) * 2
    return min(max(width, 16), 4 * TILE_HEIGHT), TILE_HEIGHT


def proxy_size(info: SourceInfo, height: int) -> tuple[int, int]:
    """The proxy's picture: the source's, or at most ``height`` lines (the source's aspect, even
    sides) when ``height`` is set and smaller. Worked out again wherever a proxy is read, so its
    size need not be stored."""
    if height <= 0 or info.height <= height:
        return info.width, info.height
    h = height // 2 * 2
    return max(2, round(info.width * h / info.height / 2) * 2), h


def overview_args(ffmpeg: str, source: Source, info: SourceInfo, folder: Path, proxy_height: int = 0) -> tuple[list[str], int]:
    """The one command (and the filmstrip's tile count): every output from one decode; the proxy at
    ``proxy_size(info, proxy_height)``."""
    args = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *source.input().ffmpeg_args()]
    graph, maps = [], []
    tiles = 0
    if info.kind == MediaKind.VIDEO:
        step = tile_seconds(info.duration)
        tiles = max(1, math.ceil(info.duration / step - 1e-6))
        w, h = tile_size(info)
        graph.append(f"[0:v]fps=1/{step:g}:round=down,scale={w}:{h},setsar=1,tile={tiles}x1[strip]")
        maps += ["-map", "[strip]", "-frames:v", "1", "-q:v", "5", str(folder / "strip.jpg")]
        # The proxy: stream timestamps passed through (no frame added or dropped); the sound copied
        # from an MP4 (its codecs fit an MP4), else AAC (QuickTime's PCM or WebM's Vorbis may not).
        gop = max(1, round((info.fps or 30) / 2))
        pw, ph = proxy_size(info, proxy_height)
        small = ["-vf", f"scale={pw}:{ph}"] if (pw, ph) != (info.width, info.height) else []
        sound = ["-c:a", "copy"] if source.content_type == "video/mp4" else ["-c:a", "aac", "-b:a", "192k"]
        maps += ["-map", "0:v:0", "-map", "0:a:0?", *small, "-c:v", "libx264", "-preset", "superfast", "-tune", "fastdecode",
                 "-crf", "18", "-g", str(gop), "-keyint_min", str(gop), "-pix_fmt", "yuv420p", "-fps_mode", "passthrough",
                 *sound, "-movflags", "+faststart", str(folder / "proxy.mp4")]
    if info.has_audio:
        graph.append(f"[0:a:0]aresample={_PCM_RATE},aformat=sample_fmts=s16:channel_layouts=mono[pcm]")
        maps += ["-map", "[pcm]", "-f", "s16le", str(folder / "pcm.raw")]
    return [*args, "-filter_complex", ";".join(graph), *maps], tiles


def peaks_of(pcm: bytes) -> bytes:
    """The largest magnitude of each 1/PEAKS_PER_SECOND s of 16-bit mono PCM, 0..255."""
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.int32)
    per = _PCM_RATE // PEAKS_PER_SECOND
    if samples.size == 0:
        return b""
    padded = np.pad(np.abs(samples), (0, (-samples.size) % per))
    peaks = padded.reshape(-1, per).max(axis=1)
    return bytes(np.minimum(255, (peaks * 255 + 16383) // 32767).astype(np.uint8))


class Overviews:
    def __init__(self, ctx: RenderContext) -> None:
        self.ctx = ctx
        self._slots = asyncio.Semaphore(max(1, ctx.config.analyze_concurrency))
        self._running: dict[str, asyncio.Future[render_pb2.MediaOverview]] = {}
        self._proxies: dict[str, tuple[float, str | None]] = {}
        self._sha: dict[str, str] = {}  # asset id → sha256: an asset id names immutable bytes

    def _key(self, asset_id: str, sha256: str) -> str:
        # The draft height is in the key: a stored overview promises its proxy at that height, so
        # replicas (or a restart) with another draft_height make their own instead of finding none.
        return f"render/overview/{_VERSION}/{asset_id}/{sha256 or 'nosha'}-h{self.ctx.config.draft_height}"

    async def overview(self, owner: str, asset_id: str) -> render_pb2.GetMediaOverviewResponse:
        config = self.ctx.config
        if not asset_id:
            raise _invalid(Reason.INVALID_ARGUMENT, "asset_id is required", "is required")
        resolved = await self.ctx.storage.resolve(owner, asset_id)
        info = await self.ctx.source_info(resolved)
        if info.kind not in (MediaKind.VIDEO, MediaKind.AUDIO):
            raise _invalid(Reason.INVALID_ARGUMENT, "not a video or audio asset", "is not a video or audio asset")
        if info.duration > config.analyze_max_seconds:
            raise _invalid(Reason.MEDIA_TOO_LONG, f"the media is longer than {config.analyze_max_seconds:g} s",
                           f"{info.duration:.1f} s is over the {config.analyze_max_seconds:g} s limit")
        self._sha[asset_id] = resolved.asset.sha256
        key = self._key(asset_id, resolved.asset.sha256)
        cached = await self._cached(key)
        if cached is not None:
            return render_pb2.GetMediaOverviewResponse(overview=cached, cached=True)
        task = self._running.get(key)
        if task is None:  # its own task: a caller that goes away does not waste the decode
            task = asyncio.ensure_future(self._make(key, resolved, info))
            self._running[key] = task
            task.add_done_callback(lambda _: self._running.pop(key, None))
        return render_pb2.GetMediaOverviewResponse(overview=await asyncio.shield(task))

    async def _cached(self, key: str) -> render_pb2.MediaOverview | None:
        try:
            url = await self.ctx.storage.resolve_object(f"{key}.pb")
            if url is None:
                return None
            async with httpx.AsyncClient(timeout=10) as client:
                answer = await client.get(url)
            answer.raise_for_status()
            found: render_pb2.MediaOverview = render_pb2.MediaOverview.FromString(answer.content)
            return found
        except (ServiceError, httpx.HTTPError, ValueError) as exc:  # a cache miss, never a failure
            _log.warning("render.overview_cache_unreadable", key=key, error=str(exc)[:200])
            return None

    async def _make(self, key: str, resolved: ResolvedAsset, info: SourceInfo) -> render_pb2.MediaOverview:
        config = self.ctx.config
        source = Source(resolved.url, info, resolved.asset.content_type, asset_id=resolved.asset.id)
        with scratch_dir(self.ctx.work_root, "overview-") as folder:
            args, tiles = overview_args(config.ffmpeg_binary, source, info, folder, config.draft_height)
            async with self._slots:
                try:
                    await asyncio.wait_for(run_ffmpeg(args), config.analyze_timeout_seconds)
                except TimeoutError:
                    raise ServiceError(grpc.StatusCode.DEADLINE_EXCEEDED, Reason.ANALYSIS_TIMEOUT,
                                       f"the overview took longer than {config.analyze_timeout_seconds:g} s",
                                       metadata={"asset_id": resolved.asset.id}) from None
                except FFmpegError as exc:
                    raise await self.ctx.ffmpeg_failed(exc, {resolved.asset.id: source}) from None
            found = render_pb2.MediaOverview(duration_seconds=info.duration, has_video=info.kind == MediaKind.VIDEO,
                                             has_audio=info.has_audio)
            if found.has_video:
                w, h = tile_size(info)
                found.filmstrip_jpeg = await asyncio.to_thread((folder / "strip.jpg").read_bytes)
                found.tile_width, found.tile_height, found.tile_count = w, h, tiles
                found.tile_seconds = tile_seconds(info.duration)
            if info.has_audio:
                found.peaks = peaks_of(await asyncio.to_thread((folder / "pcm.raw").read_bytes))
                found.peaks_per_second = PEAKS_PER_SECOND
            try:
                if found.has_video:  # the proxy first: a stored overview promises its proxy
                    proxy = await asyncio.to_thread((folder / "proxy.mp4").read_bytes)
                    await self.ctx.storage.put_object(self._proxy_name(key), proxy)
                await self.ctx.storage.put_object(f"{key}.pb", found.SerializeToString())
                self._proxies.pop(key, None)  # a miss remembered here is over (other replicas: within 5 s)
            except ServiceError as exc:  # an uncached answer is still an answer
                _log.warning("render.overview_cache_unwritable", key=key, error=str(exc)[:200])
        return found

    @staticmethod
    def _proxy_name(key: str) -> str:
        return f"{key}.proxy.mp4"  # the key names the draft height

    async def with_proxies(self, owner: str, sources: dict[str, Source], keep: frozenset[str] = frozenset()) -> dict[str, Source]:
        """``sources`` with each video read from its playback proxy where one was made (else as is),
        except the assets in ``keep`` (stabilised ones: vidstab's analysis is in the original's pixels
        and frames). The asset id stays: the proxy is the same frames, scaled down no further than the
        draft's own height (the fit's scale makes the same picture of either, ``decoded_size`` tells
        it the size), and its encode (CRF 18) differs from the original far below the draft's own
        CRF 26, so a segment keeps its cache key when a proxy appears (no re-render of what the
        warm-up already made) and the segments made since read the proxy."""
        videos = [i for i, s in sources.items() if s.info.kind == MediaKind.VIDEO and i not in keep]
        urls = await asyncio.gather(*(self._proxy_url(owner, i) for i in videos))
        out = dict(sources)
        for asset_id, url in zip(videos, urls, strict=True):
            if url is not None:
                info = sources[asset_id].info
                out[asset_id] = Source(url, info, "video/mp4", asset_id=asset_id, sha256=sources[asset_id].sha256,
                                       decoded_size=proxy_size(info, self.ctx.config.draft_height))
        return out

    async def _proxy_url(self, owner: str, asset_id: str) -> str | None:
        now = time.monotonic()
        try:
            if asset_id not in self._sha:
                self._sha[asset_id] = (await self.ctx.storage.resolve(owner, asset_id)).asset.sha256
            key = self._key(asset_id, self._sha[asset_id])
            known = self._proxies.get(key)
            if known is not None and known[0] > now:
                return known[1]
            url = await self.ctx.storage.resolve_object(self._proxy_name(key))
        except ServiceError:
            return None  # the original still plays
        # A miss is remembered briefly too: the overview may be made meanwhile.
        self._proxies[key] = (now + (_PROXY_URL_SECONDS if url else 5.0), url)
        if len(self._proxies) > 4096 or len(self._sha) > 4096:  # bounded: drop the expired, then all
            self._proxies = {k: v for k, v in self._proxies.items() if v[0] > now}
            self._sha.clear()
        return url


def _invalid(reason: Reason, message: str, description: str) -> ServiceError:
    return ServiceError.invalid_argument(reason, message, violations=[FieldViolation("asset_id", description)])
