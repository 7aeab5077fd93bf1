"""What inference's jobs cost and measured (issue 16): estimates at create, outcomes for account.

Quantities per kind (the price functions are in services/kit/prices.py):
- generation: width x height of the output, frames, denoising steps. SUCCEEDED: the result's
  size and frame count with the requested steps; CANCELLED: the steps completed before the cancel
  (the step counter it stopped at; all of them once it counted decoded frames) over the requested
  frames; FAILED: refunded.
  A face swap inside a generation job is part of its price.
- face swap: frames swapped (the result's ``frames_swapped``); CANCELLED: frames processed so far.
- training: width x height, frames per optimizer step (num_frames x batch_size), optimizer steps
  (model: the base model). SUCCEEDED: the result's ``steps_completed`` (a retry resumed from a
  checkpoint is not charged twice for the steps before it); CANCELLED: the steps trained before the
  cancel (the step counter it stopped at; the partial LoRA is kept); FAILED: refunded.
GPU-seconds are the attempt's wall time (start → end), reported for usage, not priced.
"""

from __future__ import annotations

from dataclasses import replace

from services.inference.faceswap.handler import KIND as FACE_SWAP
from services.inference.generation import KIND as GENERATION
from services.inference.training.handler import KIND as TRAINING
from services.kit.account_client import AccountClient, JobOutcome
from services.kit.config import ServiceConfig
from services.kit.jobs.metering import Metering, outcome_of
from services.kit.jobs.record import JobRecord
from services.kit.prices import PriceList, Usage
from viarte.account.v1 import account_pb2
from viarte.inference.v1 import face_swap_pb2 as F
from viarte.inference.v1 import generation_pb2 as G
from viarte.training.v1 import training_pb2 as T
from viarte.type.v1 import job_pb2

__all__ = ["KINDS", "describe", "generation_usage", "metering", "training_usage"]

KINDS = {GENERATION: account_pb2.JOB_KIND_GENERATION, FACE_SWAP: account_pb2.JOB_KIND_FACE_SWAP,
         TRAINING: account_pb2.JOB_KIND_TRAINING}


def generation_usage(params: G.GenerationParameters) -> Usage:
    """The quantities of a generation as requested (resolved parameters): the estimate."""
    return Usage(width=params.width, height=params.height, frames=params.num_frames, steps=params.num_inference_steps)


def training_usage(params: T.TrainingParameters, steps: int | None = None) -> Usage:
    """The quantities of a training (resolved parameters), ``steps`` of it (default: all)."""
    return Usage(width=params.width, height=params.height, frames=params.num_frames * params.batch_size,
                 steps=params.steps if steps is None else steps)


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
    if record.kind == TRAINING:
        p = T.TrainingParameters.FromString(record.parameters)
        if ok:
            r = T.TrainingResult.FromString(record.result or b"")
            return outcome_of(record, KINDS[TRAINING], model=p.base_model, result_asset_ids=[r.lora_asset_id],
                              quantities=replace(training_usage(p, r.steps_completed), gpu_seconds=gpu))
        # The step counter the job stopped at (a cancelled job keeps it; the partial LoRA's steps).
        steps = min(record.progress.step, p.steps)
        return outcome_of(record, KINDS[TRAINING], model=p.base_model,
                          quantities=replace(training_usage(p, steps), gpu_seconds=gpu))
    raise ValueError(f"no metering for job kind {record.kind!r}")


def metering(config: ServiceConfig, client: AccountClient | None = None) -> Metering:
    return Metering(client or AccountClient(config), describe, PriceList.from_config(config), KINDS)
