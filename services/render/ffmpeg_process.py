"""Runs ffmpeg as an asyncio subprocess: ``-progress pipe:1`` parsed into progress, instant cancel."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

__all__ = ["FFmpegCancelled", "FFmpegError", "FFmpegProgress", "ProgressParser", "run_ffmpeg"]


class FFmpegError(Exception):
    """ffmpeg exited with an error; the message is the tail of its stderr."""


class FFmpegCancelled(Exception):
    """The run was cancelled and ffmpeg was killed."""


@dataclass(frozen=True)
class FFmpegProgress:
    frame: int
    total_frames: int
    fps: float
    speed: float
    eta_seconds: float | None
    done: bool = False

    @property
    def fraction(self) -> float:
        return min(1.0, self.frame / self.total_frames) if self.total_frames else 0.0


class ProgressParser:
    """Folds ffmpeg's ``key=value`` progress lines into one snapshot per block."""

    def __init__(self, total_frames: int) -> None:
        self.total = total_frames
        self._block: dict[str, str] = {}
        self._started = time.monotonic()

    def feed(self, line: str) -> FFmpegProgress | None:
        key, sep, value = line.strip().partition("=")
        if not sep:
            return None
        self._block[key] = value.strip()
        if key != "progress":
            return None
        block, self._block = self._block, {}
        frame = _int(block.get("frame"))
        fps = _float(block.get("fps"))
        if fps <= 0:
            elapsed = time.monotonic() - self._started
            fps = frame / elapsed if elapsed > 0 else 0.0
        speed = _float(block.get("speed", "").rstrip("x"))
        eta = (self.total - frame) / fps if fps > 0 and self.total else None
        return FFmpegProgress(frame, self.total, fps, speed, max(eta, 0.0) if eta is not None else None, value == "end")


ProgressCallback = Callable[[FFmpegProgress], Awaitable[None] | None]


async def run_ffmpeg(
    args: Sequence[str],
    *,
    total_frames: int = 0,
    on_progress: ProgressCallback | None = None,
    cancel: asyncio.Event | None = None,
    limit_seconds: float | None = None,
) -> bytes:
    """Runs ``args`` (which must include ``-progress pipe:2``-free stdout use) and returns stdout.

    With ``on_progress`` the command must write progress to stdout (``-progress pipe:1``).
    ``cancel`` set → ffmpeg is killed at once and FFmpegCancelled raised.
    """
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    parser = ProgressParser(total_frames)
    chunks: list[bytes] = []

    async def pump_stdout() -> None:
        assert proc.stdout is not None
        if on_progress is None:
            chunks.append(await proc.stdout.read())
            return
        async for raw in proc.stdout:
            snap = parser.feed(raw.decode(errors="replace"))
            if snap is not None:
                result = on_progress(snap)
                if asyncio.iscoroutine(result):
                    await result

    async def pump_stderr() -> bytes:
        assert proc.stderr is not None
        return await proc.stderr.read()

    work = asyncio.gather(pump_stdout(), pump_stderr(), proc.wait())
    waiter = asyncio.ensure_future(cancel.wait()) if cancel is not None else None
    try:
        pending = {asyncio.ensure_future(work)} | ({waiter} if waiter else set())
        done, _ = await asyncio.wait(pending, timeout=limit_seconds, return_when=asyncio.FIRST_COMPLETED)
        if waiter is not None and waiter in done:
            raise FFmpegCancelled("cancelled")
        if not done:
            raise FFmpegError(f"ffmpeg took longer than {limit_seconds:g} s")
        _, stderr, code = await work
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(asyncio.shield(work), 5)
        raise
    finally:
        if waiter is not None:
            waiter.cancel()
    if code != 0:
        raise FFmpegError(stderr.decode(errors="replace").strip()[-2000:] or f"ffmpeg exited with {code}")
    return b"".join(chunks)


def _int(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0


def _float(text: str | None) -> float:
    try:
        return float(text or 0)
    except ValueError:
        return 0.0
