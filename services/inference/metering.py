"""What inference's jobs cost and measured (issue 16): estimates at create, outcomes for account.

Quantities per kind (the price functions are in services/kit/prices.py):
- generation: width x height of the output, frames, denoising steps. SUCCEEDED: the result's
  size and frame count with the requested steps; CANCELLED: the steps completed before the cancel
  (the step counter it stopped at; all of them once it counted decoded frames) over the requested
  frames; FAILED: refunded.
  A face swap inside a generation job is part of its price.
- face swap: frames swapped (the result's ``frames_swapped``); CANCELLED: frames processed so far.
GPU-seconds are the attempt's wall time (start → end), reported for usage, not priced.
"""

from __future__ import annotations

from services.inference.faceswap.handler import KIND as FACE_SWAP
from services.inference.generation import KIND as GENERATION
from services.kit.account_client import AccountClient, JobOutcome
from services.kit.config import ServiceConfig
from services.kit.jobs.metering import Metering, outcome_of
from services.kit.jobs.record import JobRecord
from services.kit.prices import PriceList, Usage
from viarte.account.v1 import account_pb2
from viarte.inference.v1 import face_swap_pb2 as F
from viarte.inference.v1 import generation_pb2 as G
from viarte.type.v1 import job_pb2

__all__ = ["KINDS", "describe", "generation_usage", "metering"]

KINDS = {GENERATION: account_pb2.JOB_KIND_GENERATION, FACE_SWAP: account_pb2.JOB_KIND_FACE_SWAP}


def generation_usage(params: G.GenerationParameters) -> Usage:
    """The quantities of a generation as requested (resolved parameters): the estimate."""
    return Usage(width=params.width, height=params.height, frames=params.num_frames, steps=params.num_inference_steps)


def _gpu_seconds(record: JobRecord) -> float:
    return max(0, (record.end_us or 0) - (record.start_us or record.end_us or 0)) / 1e6


def describe(record: JobRecord) -> JobOutcome:
    ok = record.state == job_pb2.JOB_STATE_SUCCEEDED and record.result is not None
    gpu = _gpu_seconds(record)
    if record.kind == GENERATION:
        p = G.GenerationParameters.FromString(record.parameters)
        if ok:
            r = G.GenerationResult.FromString(record.result or b"")
            usage = Usage(width=r.width, height=r.height, frames=r.frame_count, steps=p.num_inference_steps,
                          gpu_seconds=gpu)
            return outcome_of(record, KINDS[GENERATION], model=p.model, quantities=usage,
                              result_asset_ids=[r.video_asset_id])
        # The counters the job stopped at (a cancelled job keeps them): denoising counts steps,
        # the stages after it (decode, face swap, encode) count frames: denoising was over.
        progress = record.progress
        steps = min(progress.step, p.num_inference_steps) if progress.total_steps else 0
        if progress.total_frames and not progress.total_steps:
            steps = p.num_inference_steps
        usage = Usage(width=p.width, height=p.height, frames=p.num_frames, steps=steps, gpu_seconds=gpu)
        return outcome_of(record, KINDS[GENERATION], model=p.model, quantities=usage)
    if record.kind == FACE_SWAP:
        if ok:
            r = F.FaceSwapResult.FromString(record.result or b"")
            return outcome_of(record, KINDS[FACE_SWAP], quantities=Usage(frames=r.frames_swapped, gpu_seconds=gpu),
                              result_asset_ids=[r.asset_id])
        return outcome_of(record, KINDS[FACE_SWAP], quantities=Usage(frames=record.progress.frame, gpu_seconds=gpu))
    raise ValueError(f"no metering for job kind {record.kind!r}")


def metering(config: ServiceConfig, client: AccountClient | None = None) -> Metering:
    return Metering(client or AccountClient(config), describe, PriceList.from_config(config), KINDS)
