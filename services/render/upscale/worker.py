"""The upscaler worker process: ``python -m services.render.upscale.worker --serve`` (warm: one
``UpscaleWork`` as JSON per stdin line, jobs one after another, torch imported and models loaded once) or
``python -m services.render.upscale.worker '<UpscaleWork as JSON>'`` (one job).

ffmpeg decodes to raw RGB frames on a pipe (a reader thread), the network upscales them in batches
(tiles when asked; fp16 on CUDA), a writer thread feeds a second ffmpeg that encodes H.264 and
copies the original audio. One JSON line per frame (once it reached the encoder) reports progress on stdout; each job
ends with a ``done`` or ``error`` line. After an error the process exits (threads or pipes of the
failed job may be stuck), so a warm worker only ever carries on from clean successes. The server
kills the process group (this process and its two ffmpeg children) to cancel.
"""

from __future__ import annotations

import json
import math
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from services.kit.media_input import media_input
from services.render.media import probe
from services.render.upscale.rrdbnet import RRDBNet, build_tiny, load_rrdbnet
from services.render.upscale.work import UpscaleWork

__all__ = ["main", "upscale_batch", "upscale_file"]


def _device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


@torch.inference_mode()  # type: ignore[untyped-decorator]
def upscale_batch(model: RRDBNet, frames: torch.Tensor, *, tile: int = 0, padding: int = 10) -> torch.Tensor:
    """(B, 3, H, W) floats in [0, 1] → (B, 3, 2H, 2W), clamped. Tiles of ``tile`` input pixels
    overlap by ``padding`` pixels of context each side (Real-ESRGAN's tiling)."""
    _, _, h, w = frames.shape
    # pixel-unshuffle needs even sides: reflect-pad one pixel and crop it off afterwards
    ph, pw = h % 2, w % 2
    x = F.pad(frames, (0, pw, 0, ph), mode="reflect") if ph or pw else frames
    if tile <= 0 or (tile >= x.shape[2] and tile >= x.shape[3]):
        out = model(x)
    else:
        out = _tiled(model, x, tile + tile % 2, padding + padding % 2)
    result: torch.Tensor = out[:, :, : 2 * h, : 2 * w].clamp_(0, 1)
    return result


def _tiled(model: RRDBNet, x: torch.Tensor, tile: int, pad: int) -> torch.Tensor:
    b, c, h, w = x.shape
    out = x.new_zeros((b, c, 2 * h, 2 * w))
    for ty in range(math.ceil(h / tile)):
        for tx in range(math.ceil(w / tile)):
            y0, x0 = ty * tile, tx * tile
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            py0, px0 = max(y0 - pad, 0), max(x0 - pad, 0)
            py1, px1 = min(y1 + pad, h), min(x1 + pad, w)
            piece = model(x[:, :, py0:py1, px0:px1])
            oy, ox = 2 * (y0 - py0), 2 * (x0 - px0)
            out[:, :, 2 * y0 : 2 * y1, 2 * x0 : 2 * x1] = piece[:, :, oy : oy + 2 * (y1 - y0), ox : ox + 2 * (x1 - x0)]
    return out


_models: dict[tuple[str, str, str, bool], tuple[RRDBNet, str]] = {}


def load_model(work: UpscaleWork, device: str) -> tuple[RRDBNet, str]:
    """Loaded once per process and kept (a warm worker serves many jobs with the same weights)."""
    key = (work.model_path, work.tiny_fallback, device, work.fp16)
    if key not in _models:
        _models.clear()  # one model at a time: weights are big
        _models[key] = _load_model(work, device)
    return _models[key]


def _load_model(work: UpscaleWork, device: str) -> tuple[RRDBNet, str]:
    path = Path(work.model_path)
    if not path.exists():
        if not work.tiny_fallback:
            raise FileNotFoundError(f"upscaler weights not found: {path}")
        path = build_tiny(Path(work.tiny_fallback))
    fp16 = work.fp16 and device.startswith("cuda")
    return load_rrdbnet(path, device=device, fp16=fp16), path.name


_emit_lock = threading.Lock()


def _emit(payload: dict[str, Any]) -> None:
    with _emit_lock:  # the writer thread reports too
        sys.stdout.write(json.dumps(payload) + "\n")
        sys.stdout.flush()


def _traced(work: UpscaleWork, report: Any = _emit) -> dict[str, Any]:
    """``upscale_file`` inside an ``upscale`` span (child of the job's) with a span per stage."""
    if not work.otlp_endpoint:
        return upscale_file(work, report)
    from services.kit import tracing

    tracing.configure_tracing("render-upscale-worker", work.otlp_endpoint)
    trace = tracing.TaskTrace("worker.upscale", work.traceparent, "worker.")
    error = ""
    try:
        return upscale_file(work, report, trace.stage)
    except BaseException as exc:
        error = type(exc).__name__
        raise
    finally:
        trace.end(error)
        tracing.flush()  # the server kills this process group on cancel or error


class Cancelled(Exception):
    """``cancel`` was set: the job stops between batches (a Ray actor's cancel; a worker process is
    killed instead)."""


def upscale_file(work: UpscaleWork, report: Any = _emit, stage: Any = None, cancel: threading.Event | None = None) -> dict[str, Any]:
    stage = stage or (lambda _name: None)
    stage("probe")
    info = probe(work.input, work.content_type, ffprobe=work.ffprobe)
    source = media_input(work.content_type, work.input).ffmpeg_args()
    if not info.has_video or info.duration <= 0:
        raise ValueError("input is not a video")
    device = _device(work.device)
    stage("model_loading")
    model, weights = load_model(work, device)
    dtype = next(model.parameters()).dtype
    w, h, fps = info.width, info.height, info.fps or 30.0
    total = max(1, round(info.duration * fps))
    if work.start_frame or work.end_frame:
        total = max(1, (work.end_frame or total) - work.start_frame)
    report({"event": "start", "total": total, "width": 2 * w, "height": 2 * h, "fps": fps, "device": device, "weights": weights})
    # A part of a split job: the decoded frames [start, end) by number (trim counts frames as
    # decoded, so every part sees exactly the frames the whole job would; cheap next to the network).
    # setpts: frames from 0 again, or the raw muxer's constant-rate sync fills the gap with copies.
    trim = f"trim=start_frame={work.start_frame}" + (f":end_frame={work.end_frame}" if work.end_frame else "")
    part = ["-vf", f"{trim},setpts=PTS-STARTPTS"] if work.start_frame or work.end_frame else []
    decoder = subprocess.Popen(
        [work.ffmpeg, "-nostdin", "-loglevel", "error", *source, "-map", "0:v:0", *part, "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
        stdout=subprocess.PIPE,
    )
    audio = [*source, "-map", "0:v:0", "-map", "1:a?", "-c:a", "copy"] if work.audio else ["-map", "0:v:0"]
    encoder = subprocess.Popen(
        [work.ffmpeg, "-nostdin", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{2 * w}x{2 * h}",
         "-r", f"{fps:.6f}", "-i", "pipe:0", *audio, "-c:v", "libx264",
         "-preset", work.preset, "-crf", str(work.crf), "-pix_fmt", "yuv420p", "-movflags", "+faststart",
         work.output],
        stdin=subprocess.PIPE,
    )
    frame_bytes = w * h * 3
    frames_in: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=work.batch_size * 3)
    frames_out: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=work.batch_size * 3)

    def read() -> None:  # decoding overlaps with the network
        assert decoder.stdout is not None
        while True:
            raw = decoder.stdout.read(frame_bytes)
            if len(raw) < frame_bytes:
                break
            frames_in.put(np.frombuffer(raw, np.uint8).reshape(h, w, 3))
        frames_in.put(None)

    written = 0
    started = time.monotonic()

    def write() -> None:  # and so does encoding; a frame counts as done once it reached the encoder
        nonlocal written
        assert encoder.stdin is not None
        try:
            while (arr := frames_out.get()) is not None:
                encoder.stdin.write(arr.tobytes())
                written += 1
                elapsed = time.monotonic() - started
                report({"event": "progress", "frame": written, "total": max(total, written), "fps": written / elapsed if elapsed > 0 else 0.0})
            encoder.stdin.close()
        except (BrokenPipeError, ValueError):
            pass  # the encoder was killed (cancel) or died: reported by its exit status

    stage("upscaling")  # decode, network and encode overlap (three threads): one stage
    reader = threading.Thread(target=read, daemon=True)
    writer = threading.Thread(target=write, daemon=True)
    reader.start()
    writer.start()
    try:
        done = _run_batches(work, model, device, dtype, frames_in, frames_out, cancel)
    except BaseException:
        # A worker process exits after an error; an actor lives on, so nothing may stay behind.
        _abandon(decoder, encoder, reader, writer, frames_in, frames_out)
        Path(work.output).unlink(missing_ok=True)
        raise
    frames_out.put(None)
    writer.join()
    reader.join()
    if decoder.wait() != 0 or encoder.wait() != 0:
        raise RuntimeError(f"ffmpeg failed (decoder {decoder.returncode}, encoder {encoder.returncode})")
    result = {"event": "done", "frames": done, "width": 2 * w, "height": 2 * h, "video_fps": fps}
    report(result)
    return result


def _abandon(decoder: subprocess.Popen[bytes], encoder: subprocess.Popen[bytes], reader: threading.Thread,
             writer: threading.Thread, frames_in: queue.Queue[np.ndarray | None], frames_out: queue.Queue[np.ndarray | None]) -> None:
    """Kills both ffmpegs and unblocks both threads (the reader may wait on a full queue, the writer
    on an empty one) until they have ended."""
    for proc in (decoder, encoder):
        proc.kill()
    while reader.is_alive() or writer.is_alive():
        while True:
            try:
                frames_in.get_nowait()
            except queue.Empty:
                break
        try:
            frames_out.put_nowait(None)
        except queue.Full:
            pass
        reader.join(0.02)
        writer.join(0.02)
    decoder.wait()
    encoder.wait()


def _run_batches(
    work: UpscaleWork, model: RRDBNet, device: str, dtype: torch.dtype,
    frames_in: queue.Queue[np.ndarray | None], frames_out: queue.Queue[np.ndarray | None],
    cancel: threading.Event | None = None,
) -> int:
    done, finished = 0, False
    while not finished:
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        batch: list[np.ndarray] = []
        while len(batch) < work.batch_size:
            item = frames_in.get()
            if item is None:
                finished = True
                break
            batch.append(item)
        if not batch:
            break
        x = torch.from_numpy(np.stack(batch)).to(device).permute(0, 3, 1, 2).to(dtype).div_(255)
        y = upscale_batch(model, x, tile=work.tile_size, padding=work.tile_padding)
        out = (y * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        for arr in out:
            frames_out.put(arr)
        done += len(batch)
    return done


def serve(lines: Any = sys.stdin) -> int:
    """Jobs one per line until stdin closes (the server went away or retired this worker)."""
    _emit({"event": "ready", "pid": os.getpid()})
    for line in lines:
        if not line.strip():
            continue
        try:
            _traced(UpscaleWork.from_json(line))
        except Exception as exc:  # the server fails the job with UPSCALE_FAILED and starts a fresh worker
            _emit({"event": "error", "message": f"{type(exc).__name__}: {exc}"})
            return 1
    return 0


def main(argv: list[str]) -> int:
    if argv[1:] == ["--serve"]:
        return serve()
    work = UpscaleWork.from_json(argv[1])
    try:
        _traced(work)
    except Exception as exc:  # reported to the server, which fails the job with UPSCALE_FAILED
        sys.stderr.write(f"{type(exc).__name__}: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
