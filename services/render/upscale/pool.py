"""Server side of upscaling: a pool of warm worker processes (torch never loads in the server); each
job's ``UpscaleWork`` goes to one of them, its JSON lines become progress, a cancel kills it."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.kit import tracing
from services.render.config import RenderConfig
from services.render.upscale.work import UpscaleWork

__all__ = ["UpscaleCancelled", "UpscaleError", "UpscalePool", "UpscaleProgress", "UpscaleWorker", "model_paths", "upscale_video", "upscale_work"]

# Official release file names for the configured model id.
_RELEASES = {"realesrgan-x2plus": "RealESRGAN_x2plus.pth"}


class UpscaleError(Exception):
    pass


class UpscaleCancelled(Exception):
    pass


@dataclass(frozen=True)
class UpscaleProgress:
    frame: int
    total_frames: int
    fps: float
    width: int
    height: int
    fps_out: float
    message: str = ""

    @property
    def fraction(self) -> float:
        return min(1.0, self.frame / self.total_frames) if self.total_frames else 0.0

    @property
    def eta_seconds(self) -> float | None:
        return (self.total_frames - self.frame) / self.fps if self.fps > 0 else None


def model_paths(config: RenderConfig) -> tuple[Path, Path | None]:
    """(real weights path, tiny fallback path or None)."""
    root = Path(config.model_dir)
    name = _RELEASES.get(config.upscale_model, f"{config.upscale_model}.pth")
    tiny = root / f"{config.upscale_model}-tiny.pth" if config.upscale_allow_tiny else None
    return root / name, tiny


class UpscaleWorker:
    """One worker process (``--serve``): jobs go in as JSON lines on stdin, events come back as JSON
    lines on stdout. It leads its own process group, so killing the group also kills its ffmpegs."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.jobs = 0
        # The last of stderr (ffmpeg and Python errors), drained continuously so the pipe never fills.
        self._stderr: collections.deque[bytes] = collections.deque(maxlen=64)
        self._drain = asyncio.ensure_future(self._read_stderr())

    @classmethod
    async def start(cls) -> UpscaleWorker:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.render.upscale.worker", "--serve",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        return cls(proc)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self._stderr.append(line)

    def stderr_tail(self) -> str:
        return b"".join(self._stderr).decode(errors="replace").strip()[-1000:]

    async def kill(self) -> None:
        """At once, with its ffmpeg children."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        await self.proc.wait()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(self._drain, 5)

    async def close(self, grace: float = 5.0) -> None:
        """Retire it: stdin closed ends its loop; killed if it doesn't go within ``grace``."""
        if self.alive and self.proc.stdin is not None:
            self.proc.stdin.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.proc.wait(), grace)
        await self.kill()

    async def run(
        self, work: UpscaleWork, output: Path, on_progress: Callable[[UpscaleProgress], None] | None,
        cancel: asyncio.Event | None,
    ) -> UpscaleProgress:
        """One job. Raises UpscaleCancelled (after killing the process) or UpscaleError; either way the
        partial output is removed and this worker must not be reused."""
        assert self.proc.stdin is not None
        self.jobs += 1
        events = asyncio.ensure_future(self._events(work, on_progress))
        waiter = asyncio.ensure_future(cancel.wait()) if cancel is not None else None
        try:
            done, _ = await asyncio.wait({events} | ({waiter} if waiter else set()), return_when=asyncio.FIRST_COMPLETED)
            if waiter is not None and waiter in done:
                raise UpscaleCancelled()
            return events.result()
        except BaseException:
            await self.kill()
            events.cancel()
            with contextlib.suppress(BaseException):
                await events
            _discard(output)
            raise
        finally:
            if waiter is not None:
                waiter.cancel()

    async def _events(self, work: UpscaleWork, on_progress: Callable[[UpscaleProgress], None] | None) -> UpscaleProgress:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(work.to_json().encode() + b"\n")
            await self.proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # it died: reported below from its stderr
        state: dict[str, Any] = {"width": 0, "height": 0, "fps": 0.0, "total": 0, "message": ""}
        last = UpscaleProgress(0, 0, 0.0, 0, 0, 0.0)
        async for raw in self.proc.stdout:
            try:
                event = json.loads(raw)
                kind = event["event"]
            except (ValueError, KeyError, TypeError):
                continue  # not ours (a library printing to stdout): only JSON events count
            if kind == "ready":
                continue
            if kind == "error":
                raise UpscaleError(event["message"])
            if kind == "start":
                state.update(width=event["width"], height=event["height"], fps=event["fps"], total=event["total"],
                             message=f"Real-ESRGAN x2 ({event['weights']}) on {event['device']}")
                continue
            frame = event.get("frame", event.get("frames", 0))
            total = max(int(state["total"]), frame) if kind == "progress" else frame
            last = UpscaleProgress(frame, total, event.get("fps", last.fps), int(state["width"]), int(state["height"]),
                                   float(state["fps"]), str(state["message"]))
            if kind == "done":
                return last
            if on_progress is not None:
                on_progress(last)
        code = await self.proc.wait()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._drain), 5)
        raise UpscaleError(self.stderr_tail() or f"worker exited with {code}")


class UpscalePool:
    """Keeps upscaler workers warm between jobs (torch imported, weights loaded: 5-10 s saved per job).

    A worker that finished a job cleanly goes back to the pool for ``idle_seconds`` and is retired
    after that; one that crashed, failed or was cancelled (killed) is dropped, and the next job
    starts a fresh one. ``idle_seconds`` 0 = a new process per job.
    """

    def __init__(self, idle_seconds: float) -> None:
        self.idle_seconds = idle_seconds
        self.started = 0
        self._idle: list[UpscaleWorker] = []
        self._busy: set[UpscaleWorker] = set()
        self._timers: dict[int, asyncio.Task[None]] = {}
        self._retiring: set[asyncio.Task[None]] = set()

    @property
    def idle_pids(self) -> list[int]:
        return [w.pid for w in self._idle]

    @property
    def busy_pids(self) -> list[int]:
        return [w.pid for w in self._busy]

    async def acquire(self) -> UpscaleWorker:
        worker = await self._take()
        self._busy.add(worker)
        return worker

    async def _take(self) -> UpscaleWorker:
        while self._idle:
            worker = self._idle.pop()
            self._timers.pop(worker.pid).cancel()
            if worker.alive:
                return worker
            await worker.kill()  # died while idle: reap it, start another
        self.started += 1
        return await UpscaleWorker.start()

    def release(self, worker: UpscaleWorker) -> None:
        self._busy.discard(worker)
        if not worker.alive or self.idle_seconds <= 0:
            self._retire(worker)
            return
        self._idle.append(worker)
        self._timers[worker.pid] = asyncio.ensure_future(self._expire(worker))

    async def _expire(self, worker: UpscaleWorker) -> None:
        await asyncio.sleep(self.idle_seconds)
        if worker in self._idle:
            self._idle.remove(worker)
            self._timers.pop(worker.pid, None)
            await worker.close()

    def _retire(self, worker: UpscaleWorker) -> None:
        task = asyncio.ensure_future(worker.close())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        workers, self._idle, self._timers = self._idle, [], {}
        await asyncio.gather(*(w.close() for w in workers), *self._retiring, return_exceptions=True)


def upscale_work(config: RenderConfig, source: str, content_type: str, output: Path, *, tile_size: int = 0,
                 tile_padding: int = 10) -> UpscaleWork:
    """The typed job for a worker process or a Ray actor (the same either way)."""
    real, tiny = model_paths(config)
    return UpscaleWork(
        input=source, content_type=content_type, output=str(output), model_path=str(real), tiny_fallback=str(tiny) if tiny else "",
        tile_size=tile_size, tile_padding=tile_padding, batch_size=config.upscale_batch_size,
        device=config.upscale_device, fp16=config.upscale_fp16, ffmpeg=config.ffmpeg_binary,
        ffprobe=config.ffprobe_binary, crf=config.upscale_crf,
        # The worker's spans join the job's trace (exported to the same collector as the service).
        traceparent=tracing.current_traceparent(), otlp_endpoint=config.otlp_endpoint,
    )


async def upscale_video(
    config: RenderConfig,
    source: str,
    content_type: str,
    output: Path,
    *,
    tile_size: int = 0,
    tile_padding: int = 10,
    on_progress: Callable[[UpscaleProgress], None] | None = None,
    cancel: asyncio.Event | None = None,
    pool: UpscalePool | None = None,
) -> UpscaleProgress:
    """Upscales ``source`` (holding ``content_type``, as storage recorded it) into ``output`` on a warm
    worker from ``pool`` (or a one-off process)."""
    work = upscale_work(config, source, content_type, output, tile_size=tile_size, tile_padding=tile_padding)
    own = pool is None
    pool = UpscalePool(0) if pool is None else pool
    worker = await pool.acquire()
    try:
        return await worker.run(work, output, on_progress, cancel)
    finally:
        pool.release(worker)  # a killed worker is retired; a healthy one stays warm (unless idle_seconds is 0)
        if own:
            await pool.close()


def _discard(path: Path) -> None:
    path.unlink(missing_ok=True)
