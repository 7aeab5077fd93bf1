"""What the server sends the upscaler worker process for one job: a typed unit, torch-free so the
server side (``pool``) can build it without importing the worker module (which imports torch)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

__all__ = ["UpscaleWork"]


@dataclass(frozen=True)
class UpscaleWork:
    input: str
    output: str
    # Of the input, as storage recorded it: ffmpeg opens it as this type only (kit.media_input).
    content_type: str
    model_path: str
    tiny_fallback: str = ""
    tile_size: int = 0
    tile_padding: int = 10
    batch_size: int = 4
    device: str = "auto"
    fp16: bool = True
    ffmpeg: str = "ffmpeg"
    ffprobe: str = "ffprobe"
    crf: int = 18
    preset: str = "fast"
    # One part of a job split over several workers (issue 15): input frames [start_frame,
    # end_frame) (end 0 = to the end), encoded without audio (the parts are joined, then the
    # original audio is copied once).
    start_frame: int = 0
    end_frame: int = 0
    audio: bool = True
    # Tracing: the job's W3C traceparent and where to export this process's spans ("" = off).
    traceparent: str = ""
    otlp_endpoint: str = ""

    def to_json(self) -> str:
        """One line of the worker's stdin protocol (or its one-job argument)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | bytes) -> UpscaleWork:
        return cls(**json.loads(text))
