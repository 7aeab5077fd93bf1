"""Video stabilisation, vidstab's two passes.

Pass 1 (``vidstabdetect``) analyses a source's motion once; its transforms file is a storage
service object under ``render/vidstab/<version>/<source>/<sha256>-<parameters>.trf`` (an asset id
names immutable bytes; the sha256 and the parameters name what was derived from what), so every
replica, and every Ray actor on any node, finds what one analysed (issue 15: a file on the server's
disk was invisible to a render step running on another node). Where ffmpeg runs — the server for
the local executor and previews, the actor for the Ray executor — the file is fetched once into a
local folder (``fetch_stabilization``). Pass 2 (``vidstabtransform``) is part of the one graph: a
stabilised clip's input is then decoded from the source's start (not seeked), so the frame numbers
vidstab counts match the analysis whatever window of the timeline is compiled.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Protocol

import ffmpeg
import httpx

from services.kit.errors import ServiceError
from services.render.ffmpeg_process import run_ffmpeg
from services.render.reasons import Reason
from services.render.timeline.plan import Plan, Source, StoredAnalysis

__all__ = ["DETECT", "ObjectStore", "fetch_stabilization", "fetch_stabilization_sync", "object_key", "prepare_stabilization",
           "source_key"]

_VERSION = "v1"
# vidstabdetect's options: part of the object key (other options, another analysis).
DETECT = {"shakiness": 8, "accuracy": 15}
_LOCKS: dict[str, asyncio.Lock] = {}


class ObjectStore(Protocol):
    """Storage's service objects (``services.kit.storage_client.StorageClient``)."""

    async def put_object(self, key: str, data: bytes) -> None: ...

    async def resolve_object(self, key: str) -> str | None: ...


def source_key(source: Source) -> str:
    """The plan's key of a source: the asset id, or (an asset without one, in tests) a hash of where it is."""
    return source.asset_id or hashlib.sha256(source.location.encode()).hexdigest()[:32]


def object_key(source: Source) -> str:
    """Where the analysis of ``source`` is stored: content-addressed by source and parameters."""
    options = ",".join(f"{k}={v}" for k, v in sorted(DETECT.items()))
    params = hashlib.sha256(options.encode()).hexdigest()[:16]
    return f"render/vidstab/{_VERSION}/{source_key(source)}/{source.sha256 or 'nosha'}-{params}.trf"


def _local_name(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:40] + ".trf"


async def prepare_stabilization(plan: Plan, store: ObjectStore, cache_dir: Path, *, ffmpeg_binary: str = "ffmpeg",
                                cancel: asyncio.Event | None = None) -> Plan:
    """The plan with the stored analysis (object key and GET URL) of every stabilised clip's source,
    analysed here and stored now where storage holds none yet. The file analysed here is also kept
    in ``cache_dir`` (what ``fetch_stabilization`` would download there)."""
    wanted = {source_key(c.source): c.source for c in plan.clips() if c.filters.stabilize and c.source is not None}
    if not wanted:
        return plan
    analyses: dict[str, StoredAnalysis] = {}
    for key, source in wanted.items():
        okey = object_key(source)
        async with _LOCKS.setdefault(okey, asyncio.Lock()):  # one analysis per source in this process
            url = await store.resolve_object(okey)
            if url is None:
                await asyncio.to_thread(cache_dir.mkdir, parents=True, exist_ok=True)
                path = cache_dir / _local_name(okey)
                await _detect(source, path, ffmpeg_binary, cancel)
                await store.put_object(okey, await asyncio.to_thread(path.read_bytes))
                url = await store.resolve_object(okey)
                if url is None:  # stored a moment ago: storage lost it (or answers inconsistently)
                    raise ServiceError.unavailable(Reason.STORAGE_UNAVAILABLE, "the stored stabilisation analysis is gone")
        analyses[key] = StoredAnalysis(okey, url)
    return replace(plan, analyses=analyses)


async def fetch_stabilization(plan: Plan, folder: Path) -> Plan:
    """The plan with a local transforms file for each stored analysis (downloaded into ``folder``
    unless it is there already: a file is named by its object key, whose content never changes)."""
    if not plan.analyses:
        return plan
    try:
        return await asyncio.to_thread(fetch_stabilization_sync, plan, folder)
    except AnalysisUnreadable as exc:  # storage's S3 is down or the URL expired: not the caller's fault
        raise ServiceError.unavailable(Reason.STORAGE_UNAVAILABLE, str(exc)) from None


class AnalysisUnreadable(Exception):
    """A stored analysis could not be downloaded. The message never holds the URL: a presigned
    URL carries credentials, and this text reaches the job's error."""

    def __init__(self, exc: httpx.HTTPError) -> None:
        answer = exc.response.status_code if isinstance(exc, httpx.HTTPStatusError) else type(exc).__name__
        super().__init__(f"the stabilisation analysis is unreadable ({answer})")


def fetch_stabilization_sync(plan: Plan, folder: Path) -> Plan:
    """``fetch_stabilization`` from a thread without an event loop (a Ray actor's task)."""
    if not plan.analyses:
        return plan
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    with httpx.Client(timeout=60) as client:
        for key, analysis in plan.analyses.items():
            path = folder / _local_name(analysis.key)
            if not path.exists():
                try:
                    answer = client.get(analysis.url)
                    answer.raise_for_status()
                except httpx.HTTPError as exc:
                    raise AnalysisUnreadable(exc) from None
                partial = _partial(path)  # own name: two renders may fetch the same analysis at once
                partial.write_bytes(answer.content)
                partial.replace(path)  # whole or nothing, as the analysis itself
            files[key] = str(path)
    return replace(plan, stabilization=files)


def _partial(path: Path) -> Path:
    """A file beside ``path`` that no other process or thread writes (renamed onto it when whole)."""
    return path.with_suffix(f".{os.getpid()}.{uuid.uuid4().hex[:12]}.part")


async def _detect(source: Source, path: Path, ffmpeg_binary: str, cancel: asyncio.Event | None) -> None:
    from services.render.pipeline import _command  # the one place graphs become commands

    inp = source.input()
    partial = _partial(path)
    stream = ffmpeg.input(inp.location, **inp.kwargs()).video.filter("vidstabdetect", result=str(partial), **DETECT)
    args = _command(ffmpeg.output(stream, "-", f="null"), ffmpeg_binary, path.parent, "-y")
    try:
        await run_ffmpeg(args, cancel=cancel)
        await asyncio.to_thread(partial.replace, path)  # whole or nothing: a killed analysis leaves no half file
    finally:
        await asyncio.to_thread(_cleanup, partial, args)


def _cleanup(partial: Path, args: list[str]) -> None:
    partial.unlink(missing_ok=True)
    from services.render.pipeline import _graph_scripts

    for script in _graph_scripts(args):
        script.unlink(missing_ok=True)
