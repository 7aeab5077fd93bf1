"""The render service's device actor on a Ray cluster (issue 15): one long-lived actor per GPU
running the same code as the local executor: ``render_plan`` / ``render_window`` (ffmpeg) and the
upscaler's ``upscale_file`` with the network kept warm in the actor's process (torch is imported
here, in the Ray worker, never in the server).

Files: inputs are presigned URLs any node can read (or bytes shipped along for a file that only
the server has); outputs go back as bytes, and the server stores them exactly as after a local run.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

from services.kit.ray.task import ActorTask, TaskActor, TaskCancelled
from services.render.config import RenderConfig
from services.render.ffmpeg_process import FFmpegCancelled, FFmpegProgress

__all__ = ["UPSCALER", "RenderActor"]

T = TypeVar("T")
# The affinity key of a warm upscaler.
UPSCALER = "upscaler"


class RenderActor(TaskActor):
    def __init__(self, config: RenderConfig) -> None:
        super().__init__()
        self.config = config
        self._warm: set[str] = set()

    def loaded(self) -> list[str]:
        return sorted(self._warm)

    def work(self, task: ActorTask, kind: str, payload: Any) -> dict[str, Any]:
        if kind == "upscale":
            return self._upscale(task, payload)
        if kind == "render":
            return self._render(task, payload)
        raise KeyError(f"no work function for {kind!r}")

    def _upscale(self, task: ActorTask, payload: dict[str, Any]) -> dict[str, Any]:
        from services.render.upscale import worker

        work = payload["work"]
        if payload.get("input_bytes") is not None:  # a file only the server has
            source = task.folder / ("in" + Path(work.input).suffix)
            source.write_bytes(payload["input_bytes"])
            work = dataclasses.replace(work, input=str(source))
        output = task.folder / "out.mp4"
        work = dataclasses.replace(work, output=str(output))

        def report(message: dict[str, Any]) -> None:
            if message["event"] in ("start", "progress"):
                task.report(message)

        try:
            done = worker.upscale_file(work, report, cancel=task.cancelled)
        except worker.Cancelled:
            raise TaskCancelled(task.id) from None
        self._warm.add(UPSCALER)
        return {"frames": done["frames"], "width": done["width"], "height": done["height"],
                "video_fps": done["video_fps"], "output": output.read_bytes()}

    def _render(self, task: ActorTask, payload: dict[str, Any]) -> dict[str, Any]:
        from services.render.pipeline import render_plan
        from services.render.segments import render_window
        from services.render.stabilize import fetch_stabilization_sync

        window, encoding = payload.get("window"), payload["encoding"]
        # vidstab's analysis from storage (the server's disk is not this node's), into this task's folder.
        plan = fetch_stabilization_sync(payload["plan"], task.folder / "vidstab")
        ffmpeg = self.config.ffmpeg_binary

        def progress(p: FFmpegProgress) -> None:
            task.report({"event": "progress", "frame": p.frame, "total": p.total_frames, "fps": p.fps,
                         "speed": p.speed, "eta": p.eta_seconds})

        def frames(n: int) -> None:
            task.report({"event": "progress", "frame": n, "total": window.frames if window is not None else 0, "fps": 0.0, "speed": 0.0, "eta": None})

        if window is None:
            out = _run(task, lambda cancel: render_plan(plan, task.folder, encoding, ffmpeg_binary=ffmpeg,
                                                        on_progress=progress, cancel=cancel))
            return {"frames": out.frames, "duration": out.duration, "width": out.width, "height": out.height,
                    "fps": out.fps, "has_audio": out.has_audio, "output": out.video.read_bytes(),
                    "poster": out.poster.read_bytes()}
        segment = task.folder / "segment.mp4"
        count = _run(task, lambda cancel: render_window(plan, window, segment, encoding, ffmpeg_binary=ffmpeg,
                                                        on_frames=frames, cancel=cancel))
        return {"frames": count, "output": segment.read_bytes()}


def _run(task: ActorTask, work: Any) -> Any:
    """Runs the coroutine ``work(cancel)`` in this thread's own loop; the task's cancel flag (set
    from Ray's thread) kills its ffmpeg within one poll."""

    async def main() -> Any:
        cancel = asyncio.Event()

        async def watch() -> None:
            while not task.cancelled.is_set():
                await asyncio.to_thread(task.cancelled.wait, 0.1)
            cancel.set()

        watcher = asyncio.ensure_future(watch())
        try:
            coro: Awaitable[Any] = work(cancel)
            return await coro
        finally:
            watcher.cancel()

    try:
        return asyncio.run(main())
    except FFmpegCancelled:
        raise TaskCancelled(task.id) from None


