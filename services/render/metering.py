"""What render's jobs cost and measured (issue 16): estimates at create, outcomes for account.

Quantities per kind (the price functions are in services/kit/prices.py):
- render: output seconds. SUCCEEDED: the result's ``duration_seconds``; CANCELLED: the frames
  rendered before the cancel (the last progress ``frame``) over the output fps; FAILED: refunded.
  The estimate is the planned timeline's duration. An ``upscale`` pass inside a render job is part
  of its price.
- upscale: output frames. SUCCEEDED: the result's ``frame_count``; CANCELLED: frames done so far.
  The estimate is the input's duration x fps.
"""

from __future__ import annotations

from services.kit.account_client import AccountClient, JobOutcome
from services.kit.config import ServiceConfig
from services.kit.jobs.metering import Metering, outcome_of
from services.kit.jobs.record import JobRecord
from services.kit.prices import PriceList, Usage
from services.render.handlers import RENDER, UPSCALE
from viarte.account.v1 import account_pb2
from viarte.render.v1 import render_pb2
from viarte.type.v1 import job_pb2

__all__ = ["KINDS", "describe", "metering"]

KINDS = {RENDER: account_pb2.JOB_KIND_RENDER, UPSCALE: account_pb2.JOB_KIND_UPSCALE}


def describe(record: JobRecord) -> JobOutcome:
    ok = record.state == job_pb2.JOB_STATE_SUCCEEDED and record.result is not None
    if record.kind == RENDER:
        if ok:
            r = render_pb2.RenderResult.FromString(record.result or b"")
            return outcome_of(record, KINDS[RENDER], quantities=Usage(video_seconds=r.duration_seconds, frames=r.frame_count),
                              result_asset_ids=[r.video_asset_id, r.poster_asset_id])
        p = render_pb2.RenderParameters.FromString(record.parameters)
        fps = p.output_fps or p.timeline.canvas.fps or 0.0  # the output fps, else the canvas's
        frames = record.progress.frame if record.progress.total_frames else 0  # the frame counter it stopped at
        return outcome_of(record, KINDS[RENDER], quantities=Usage(video_seconds=frames / fps if fps > 0 else 0.0,
                                                                  frames=frames))
    if record.kind == UPSCALE:
        if ok:
            u = render_pb2.UpscaleResult.FromString(record.result or b"")
            return outcome_of(record, KINDS[UPSCALE], quantities=Usage(frames=u.frame_count, width=u.width, height=u.height),
                              result_asset_ids=[u.video_asset_id])
        return outcome_of(record, KINDS[UPSCALE], quantities=Usage(frames=record.progress.frame))
    raise ValueError(f"no metering for job kind {record.kind!r}")


def metering(config: ServiceConfig, client: AccountClient | None = None) -> Metering:
    return Metering(client or AccountClient(config), describe, PriceList.from_config(config), KINDS)
