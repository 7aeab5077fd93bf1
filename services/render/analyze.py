"""AnalyzeMedia (issue 18): the server side. Checks the asset, answers from the per-asset cache, or
runs `analysis_worker` in a process of its own with a deadline and caches what it found.

The cache is a storage service object (`render/analysis/v1/<asset id>/<sha256>.json`), so every
replica finds what one of them computed; the asset's sha256 is in the key because an asset id names
immutable bytes, and the version names the analysis (a better detector → v2, old entries ignored).
At most `analyze_concurrency` workers run at once per server: each takes a core for the duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from dataclasses import dataclass
from typing import Any

import grpc
import httpx

from services.kit.errors import FieldViolation, ServiceError
from services.kit.logs import get_logger
from services.kit.storage_client import ResolvedAsset
from services.render.handlers import RenderContext
from services.render.media import MediaKind, SourceInfo
from services.render.reasons import Reason
from viarte.render.v1 import render_pb2

__all__ = ["Analyzed", "Analyzer", "to_proto"]

_log = get_logger("services.render.analyze")
_VERSION = "v1"
_KINDS = {
    "cut": render_pb2.SCENE_CHANGE_KIND_CUT,
    "dissolve": render_pb2.SCENE_CHANGE_KIND_DISSOLVE,
    "fade": render_pb2.SCENE_CHANGE_KIND_FADE,
}


def to_proto(found: dict[str, Any], has_video: bool, has_audio: bool) -> render_pb2.MediaAnalysis:
    return render_pb2.MediaAnalysis(
        duration_seconds=found["duration_seconds"],
        scene_changes=[
            render_pb2.SceneChange(time_seconds=t, kind=_KINDS[k], start_seconds=a, end_seconds=b) for t, k, a, b in found["scenes"]
        ],
        tempo_bpm=found["tempo_bpm"],
        beat_seconds=found["beats"],
        downbeat_seconds=found["downbeats"],
        integrated_lufs=found["integrated_lufs"],
        loudness_range_lu=found["loudness_range_lu"],
        silences=[render_pb2.TimeSpan(start_seconds=a, end_seconds=b) for a, b in found["silences"]],
        has_video=has_video,
        has_audio=has_audio,
    )


@dataclass(frozen=True)
class Analyzed:
    """An analysis with the source it was made from (callers that go on to read the media reuse the
    resolved URL and probe facts instead of asking storage again)."""

    response: render_pb2.AnalyzeMediaResponse
    resolved: ResolvedAsset
    info: SourceInfo


class Analyzer:
    def __init__(self, ctx: RenderContext) -> None:
        self.ctx = ctx
        self._slots = asyncio.Semaphore(max(1, ctx.config.analyze_concurrency))
        # ProposeEdit's frame grabs (small ffmpeg runs), shared by every request of this server.
        self.grab_slots = asyncio.Semaphore(max(2, ctx.config.analyze_concurrency * 2))

    async def analyze(self, owner: str, asset_id: str, field: str = "asset_id") -> render_pb2.AnalyzeMediaResponse:
        """The analysis of one asset; refusals name ``field`` (the request's path to the id)."""
        return (await self.analyze_source(owner, asset_id, field)).response

    async def analyze_source(self, owner: str, asset_id: str, field: str = "asset_id") -> Analyzed:
        """`analyze`, with the resolved asset and its probe facts."""
        config = self.ctx.config
        if not asset_id:
            raise _invalid(Reason.INVALID_ARGUMENT, f"{field} is required", "is required", field)
        resolved = await self.ctx.storage.resolve(owner, asset_id)
        info = await self.ctx.source_info(resolved)
        if info.kind not in (MediaKind.VIDEO, MediaKind.AUDIO):
            raise _invalid(Reason.INVALID_ARGUMENT, "not a video or audio asset", "is not a video or audio asset", field)
        if info.duration > config.analyze_max_seconds:
            raise _invalid(
                Reason.MEDIA_TOO_LONG, f"the media is longer than {config.analyze_max_seconds:g} s",
                f"{info.duration:.1f} s is over the {config.analyze_max_seconds:g} s limit", field,
            )
        key = f"render/analysis/{_VERSION}/{asset_id}/{resolved.asset.sha256 or 'nosha'}.json"
        has_video = info.kind == MediaKind.VIDEO
        cached = await self._cached(key)
        if cached is not None:
            answer = render_pb2.AnalyzeMediaResponse(analysis=to_proto(cached, has_video, info.has_audio), cached=True)
            return Analyzed(answer, resolved, info)
        request = {
            "source": resolved.url, "content_type": resolved.asset.content_type, "duration": info.duration,
            "fps": info.fps, "width": info.width, "height": info.height, "has_video": has_video,
            "has_audio": info.has_audio, "ffmpeg": config.ffmpeg_binary,
        }
        async with self._slots:
            found = await self._run(request, asset_id)
        try:
            await self.ctx.storage.put_object(key, json.dumps(found).encode())
        except ServiceError as exc:  # an uncached answer is still an answer
            _log.warning("render.analysis_cache_unwritable", key=key, error=str(exc)[:200])
        return Analyzed(render_pb2.AnalyzeMediaResponse(analysis=to_proto(found, has_video, info.has_audio)), resolved, info)

    async def _cached(self, key: str) -> dict[str, Any] | None:
        try:
            url = await self.ctx.storage.resolve_object(key)
            if url is None:
                return None
            async with httpx.AsyncClient(timeout=10) as client:
                answer = await client.get(url)
            answer.raise_for_status()
            found: dict[str, Any] = answer.json()
            return found
        except (ServiceError, httpx.HTTPError, ValueError) as exc:  # a cache miss, never a failure
            _log.warning("render.analysis_cache_unreadable", key=key, error=str(exc)[:200])
            return None

    async def _run(self, request: dict[str, Any], asset_id: str) -> dict[str, Any]:
        limit = self.ctx.config.analyze_timeout_seconds
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.render.analysis_worker",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # its ffmpeg children go with it
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(json.dumps(request).encode()), limit)
        except TimeoutError:
            raise ServiceError(
                grpc.StatusCode.DEADLINE_EXCEEDED, Reason.ANALYSIS_TIMEOUT, f"the analysis took longer than {limit:g} s",
                metadata={"asset_id": asset_id},
            ) from None
        finally:
            if proc.returncode is None:  # timed out or the call was cancelled: the whole group goes
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        try:
            answer = json.loads(out)
        except ValueError:
            answer = {"error": f"the analysis worker exited with status {proc.returncode}"}
        if "ok" not in answer:
            # The worker's message is already scrubbed of URLs and addresses.
            raise ServiceError.invalid_argument(
                Reason.ANALYSIS_FAILED, "the media could not be analysed",
                metadata={"asset_id": asset_id, "detail": str(answer.get("error", ""))[:200]},
            )
        found: dict[str, Any] = answer["ok"]
        return found


def _invalid(reason: Reason, message: str, description: str, field: str) -> ServiceError:
    return ServiceError.invalid_argument(reason, message, violations=[FieldViolation(field, description)])

