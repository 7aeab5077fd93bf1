"""The render service's Ray executor, server side (issue 15): render and upscale jobs on
``RenderActor``s (one per GPU) through the kit's ``ActorSet`` (slots = live actors, cancel, retry on
actor or node death, UNAVAILABLE ``RAY_UNAVAILABLE`` while the cluster cannot be reached).

One job over several workers: a job takes the free actors when it starts (at most
``split_max_workers``, at least one; it never waits for a second):
- upscale: the frames are cut into ranges (multiples of the batch size, so every batch holds the
  same frames as in one worker's run and the network's output is bit-identical), each range is
  upscaled and encoded on its own actor without audio, the parts are joined by stream copy and the
  source's audio copied in;
- render: ``segments.render_split`` with one segment per actor (the sound is rendered here, once).

Imported only when ``VIARTE_RENDER_EXECUTOR=ray`` (imports ray, never torch).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from services.kit.jobs import JobCancelled, RunningJob
from services.kit.media_input import media_input
from services.kit.ray.actors import ActorSet, ActorSlot
from services.render.config import RenderConfig
from services.render.encoder import EncoderOptions
from services.render.ffmpeg_process import FFmpegError, FFmpegProgress, ProgressCallback
from services.render.pipeline import RenderOutput
from services.render.ray_actor import UPSCALER, RenderActor
from services.render.reasons import Reason
from services.render.segments import all_or_none, join_segments, render_split
from services.render.timeline.compile import Window
from services.render.timeline.plan import Plan
from services.render.upscale.pool import UpscaleError, UpscaleProgress
from services.render.upscale.work import UpscaleWork

__all__ = ["RenderRay", "frame_ranges"]


def frame_ranges(total: int, parts: int, batch: int) -> list[tuple[int, int]]:
    """[start, end) ranges of near-equal size on multiples of ``batch``; the last one is open (end
    0: to the end), so a frame count that differs from the estimate loses nothing."""
    batches = max(1, -(-total // max(1, batch)))
    parts = max(1, min(parts, batches))
    edges = [round(batches * i / parts) * batch for i in range(parts)] + [0]
    return list(itertools.pairwise(edges))


class RenderRay:
    def __init__(self, config: RenderConfig) -> None:
        self.config = config
        self.actors = ActorSet(RenderActor, (config,), reason=Reason.RAY_UNAVAILABLE.value, address=config.ray_address,
                               count=config.ray_actors, connect_timeout=config.ray_connect_timeout_seconds,
                               probe_seconds=config.ray_probe_seconds, cancel_grace=config.ray_cancel_grace_seconds,
                               stall_seconds=config.ray_stall_seconds, gpu_share=config.ray_gpu_share)

    @property
    def slots(self) -> int:
        return self.actors.slots

    def check_available(self) -> None:
        self.actors.check_available()

    async def start(self) -> None:
        await self.actors.start()

    async def stop(self) -> None:
        await self.actors.stop()

    async def _take(self, job: RunningJob, most: int, key: str) -> list[ActorSlot]:
        self.check_available()
        slots = await self.actors.acquire_up_to(job, most, key)
        nodes = list(dict.fromkeys(s.node for s in slots))
        await job.place(executor="ray", node=",".join(nodes), device=",".join(s.gpu for s in slots))
        return slots

    async def _call(self, slot: ActorSlot, kind: str, payload: dict[str, Any], job: RunningJob,
                    on_progress: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        task_id = uuid.uuid4().hex
        stream = slot.actor.run.options(num_returns="streaming").remote(task_id, kind, payload)

        def handle(message: dict[str, Any]) -> dict[str, Any] | None:
            event = message["event"]
            if event == "done":
                if kind == "upscale":
                    slot.loaded.add(UPSCALER)
                return message
            if event == "cancelled":
                raise JobCancelled(job.id)
            if event == "error":
                raise (UpscaleError if kind == "upscale" else FFmpegError)(message["message"])
            on_progress(message)
            return None

        result: dict[str, Any] = await self.actors.stream(slot, task_id, stream, job, handle)
        return result

    # -- upscale -----------------------------------------------------------------------------------
    async def upscale(self, job: RunningJob, work: UpscaleWork, output: Path, frames: int,
                      on_progress: Callable[[UpscaleProgress], None]) -> UpscaleProgress:
        """``work`` on one actor, or split over the free ones (``frames``: the estimated count)."""
        config = self.config
        most = config.split_max_workers if frames >= config.upscale_split_min_frames else 1
        slots = await self._take(job, most, UPSCALER)
        try:
            shipped = None if "://" in work.input else await asyncio.to_thread(Path(work.input).read_bytes)
            ranges = frame_ranges(frames, len(slots), work.batch_size) if len(slots) > 1 else [(0, 0)]
            works = [dataclasses.replace(work, start_frame=a, end_frame=b, audio=len(ranges) == 1) for a, b in ranges]
            done = [0] * len(works)
            state: dict[str, Any] = {"width": 0, "height": 0, "fps": 0.0, "message": ""}
            started = time.monotonic()

            def progress(i: int) -> Callable[[dict[str, Any]], None]:
                def report(message: dict[str, Any]) -> None:
                    if message["event"] == "start":
                        state.update(width=message["width"], height=message["height"], fps=message["fps"],
                                     message=f"Real-ESRGAN x2 ({message['weights']}) on {message['device']}"
                                             + (f", {len(works)} workers" if len(works) > 1 else ""))
                        return
                    done[i] = message["frame"]
                    count = sum(done)
                    elapsed = time.monotonic() - started
                    on_progress(UpscaleProgress(count, max(frames, count), count / elapsed if elapsed > 0 else 0.0,
                                                state["width"], state["height"], state["fps"], state["message"]))
                return report

            results = await all_or_none([
                self._call(slot, "upscale", {"work": w, "input_bytes": shipped}, job, progress(i))
                for i, (slot, w) in enumerate(zip(slots, works, strict=True))])
            if len(results) == 1:
                await asyncio.to_thread(output.write_bytes, results[0]["output"])
            else:
                parts = [output.parent / f"upscale-part-{i:03d}.mp4" for i in range(len(results))]
                for part, result in zip(parts, results, strict=True):
                    await asyncio.to_thread(part.write_bytes, result["output"])
                # the source's own audio, copied once (each part was encoded without it)
                source = media_input(work.content_type, work.input)  # the URL, or the server's own file
                try:
                    kept = [(p, r) for p, r in zip(parts, results, strict=True) if r["frames"] > 0]
                    await join_segments([p for p, _ in kept], source, output, ffmpeg_binary=config.ffmpeg_binary,
                                        durations=[r["frames"] / r["video_fps"] for _, r in kept])
                except FFmpegError as exc:
                    raise UpscaleError(f"joining the upscaled parts failed: {exc}") from None
                finally:
                    for part in parts:
                        part.unlink(missing_ok=True)
            last = results[-1]
            total = sum(r["frames"] for r in results)
            return UpscaleProgress(total, total, 0.0, last["width"], last["height"], last["video_fps"], state["message"])
        finally:
            self.actors.release(*slots)

    # -- render ------------------------------------------------------------------------------------
    async def render(self, job: RunningJob, plan: Plan, workdir: Path, encoding: EncoderOptions, *, split: bool,
                     on_progress: ProgressCallback | None = None, cancel: asyncio.Event | None = None) -> RenderOutput:
        slots = await self._take(job, self.config.split_max_workers if split else 1, "")
        try:
            if len(slots) == 1:
                return await self._render_whole(slots[0], job, plan, workdir, encoding, on_progress)

            async def run_segment(i: int, window: Window, out: Path, frames: Callable[[int], None]) -> int:
                result = await self._call(slots[i], "render", {"plan": plan, "window": window, "encoding": encoding},
                                          job, lambda m: frames(int(m["frame"])))
                await asyncio.to_thread(out.write_bytes, result["output"])
                return int(result["frames"])

            return await render_split(plan, workdir, encoding, len(slots), run_segment,
                                      ffmpeg_binary=self.config.ffmpeg_binary, on_progress=on_progress, cancel=cancel)
        finally:
            self.actors.release(*slots)

    async def _render_whole(self, slot: ActorSlot, job: RunningJob, plan: Plan, workdir: Path, encoding: EncoderOptions,
                            on_progress: ProgressCallback | None) -> RenderOutput:
        def progress(m: dict[str, Any]) -> None:
            if on_progress is not None:
                on_progress(FFmpegProgress(int(m["frame"]), int(m["total"]), float(m["fps"]), float(m["speed"]), m["eta"]))

        result = await self._call(slot, "render", {"plan": plan, "encoding": encoding}, job, progress)
        video, poster = workdir / "render.mp4", workdir / "poster.jpg"
        await asyncio.to_thread(video.write_bytes, result["output"])
        await asyncio.to_thread(poster.write_bytes, result["poster"])
        return RenderOutput(video=video, poster=poster, duration=result["duration"], width=result["width"],
                            height=result["height"], fps=result["fps"], frames=result["frames"],
                            encoder=encoding.encoder, has_audio=result["has_audio"])
