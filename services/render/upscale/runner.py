"""Server side of upscaling: spawns the worker process (torch never loads in the server), turns
its JSON lines into progress, kills it on cancel."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.render.config import RenderConfig

__all__ = ["UpscaleCancelled", "UpscaleError", "UpscaleProgress", "model_paths", "upscale_video"]

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


async def upscale_video(
    config: RenderConfig,
    source: str,
    output: Path,
    *,
    tile_size: int = 0,
    tile_padding: int = 10,
    on_progress: Callable[[UpscaleProgress], None] | None = None,
    cancel: asyncio.Event | None = None,
) -> UpscaleProgress:
    real, tiny = model_paths(config)
    # The worker's Spec fields, as JSON (importing the worker module would import torch here).
    spec = {
        "input": source, "output": str(output), "model_path": str(real), "tiny_fallback": str(tiny) if tiny else "",
        "tile_size": tile_size, "tile_padding": tile_padding, "batch_size": config.upscale_batch_size,
        "device": config.upscale_device, "fp16": config.upscale_fp16, "ffmpeg": config.ffmpeg_binary,
        "ffprobe": config.ffprobe_binary,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.render.upscale.worker", json.dumps(spec),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True,
    )
    state: dict[str, Any] = {"width": 0, "height": 0, "fps": 0.0, "total": 0, "message": ""}
    last = UpscaleProgress(0, 0, 0.0, 0, 0, 0.0)

    async def pump() -> bytes:
        nonlocal last
        assert proc.stdout is not None and proc.stderr is not None
        async for raw in proc.stdout:
            event = json.loads(raw)
            if event["event"] == "start":
                state.update(width=event["width"], height=event["height"], fps=event["fps"], total=event["total"],
                             message=f"Real-ESRGAN x2 ({event['weights']}) on {event['device']}")
                continue
            frame = event.get("frame", event.get("frames", 0))
            total = max(int(state["total"]), frame) if event["event"] == "progress" else frame
            last = UpscaleProgress(frame, total, event.get("fps", last.fps), int(state["width"]), int(state["height"]),
                                   float(state["fps"]), str(state["message"]))
            if on_progress is not None and event["event"] == "progress":
                on_progress(last)
        return await proc.stderr.read()

    work = asyncio.ensure_future(asyncio.gather(pump(), proc.wait()))
    waiter = asyncio.ensure_future(cancel.wait()) if cancel is not None else None
    try:
        done, _ = await asyncio.wait({work} | ({waiter} if waiter else set()), return_when=asyncio.FIRST_COMPLETED)
        if waiter is not None and waiter in done:
            raise UpscaleCancelled()
        stderr, code = work.result()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            # The worker leads its own process group: its two ffmpeg children go with it.
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(work, 5)
        _discard(output)
        raise
    finally:
        if waiter is not None:
            waiter.cancel()
    if code != 0:
        _discard(output)
        raise UpscaleError(stderr.decode(errors="replace").strip()[-1000:] or f"worker exited with {code}")
    return last



def _discard(path: Path) -> None:
    path.unlink(missing_ok=True)
