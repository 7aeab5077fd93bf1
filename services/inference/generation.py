"""The generation job handler (kind "generation"), server side: fetch inputs from storage on behalf
of the owner, run the model work on a device worker, store the MP4, return the result."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from services.inference.models.registry import ModelRegistry, Task
from services.inference.training.store import LoraStore
from services.inference.worker.pool import WorkRunner
from services.inference.worker.protocol import (
    FaceSwapInputs,
    GenerationSpec,
    GenerationWork,
    LoraInput,
    TaskEvent,
)
from services.kit.db import run_db
from services.kit.errors import ServiceError
from services.kit.jobs import RunningJob
from services.kit.storage_client import StorageClient
from viarte.inference.v1 import face_swap_pb2
from viarte.inference.v1 import generation_pb2 as gen_pb2
from viarte.type.v1 import job_pb2

__all__ = ["KIND", "GenerationHandler", "generation_spec"]

KIND = GenerationWork.kind


def generation_spec(params: gen_pb2.GenerationParameters) -> GenerationSpec:
    """Resolved parameters (defaults applied, seed drawn at Create) → the worker's spec."""
    task = Task.from_proto(params.task)
    assert task is not None
    spec: dict[str, Any] = {
        "model_id": params.model, "task": task, "prompt": params.prompt,
        "negative_prompt": params.negative_prompt, "width": params.width, "height": params.height,
        "num_frames": params.num_frames, "fps": params.fps, "steps": params.num_inference_steps,
        "guidance_scale": params.guidance_scale, "seed": params.seed, "preview_every": params.preview_every_n_steps,
    }
    if params.WhichOneof("family_parameters") == "svd":
        svd = params.svd
        spec.update(
            motion_bucket_id=svd.motion_bucket_id if svd.HasField("motion_bucket_id") else 127,
            noise_aug_strength=svd.noise_aug_strength if svd.HasField("noise_aug_strength") else 0.02,
            min_guidance_scale=svd.min_guidance_scale if svd.HasField("min_guidance_scale") else 1.0,
            max_guidance_scale=svd.max_guidance_scale if svd.HasField("max_guidance_scale") else params.guidance_scale,
            decode_chunk_size=svd.decode_chunk_size,
        )
    else:
        spec["max_guidance_scale"] = params.guidance_scale
    if params.WhichOneof("family_parameters") == "wan":
        if params.wan.HasField("flow_shift"):
            spec["flow_shift"] = params.wan.flow_shift
        if params.wan.HasField("guidance_scale_2"):
            spec["guidance_scale_2"] = params.wan.guidance_scale_2
    return GenerationSpec(**spec)


class GenerationHandler:
    """``HandlerExecutor`` handler for kind "generation"."""

    def __init__(self, registry: ModelRegistry, runner: WorkRunner, store: StorageClient, scratch_dir: Path,
                 loras: LoraStore | None = None) -> None:
        self.loras = loras
        # Pipelines the workers loaded from disk, as last reported (LoRA switches load none).
        self.model_loads = 0
        self.registry = registry
        self.runner = runner
        self.store = store
        self.scratch_dir = scratch_dir
        # Models resident on the workers, as last reported (ListModels' `loaded`).
        self.loaded: set[str] = set()

    async def __call__(self, job: RunningJob) -> bytes:
        params = gen_pb2.GenerationParameters.FromString(job.parameters)
        folder = self.scratch_dir / "jobs" / job.id
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        try:
            work = await self._work(job, params, folder)
            job.raise_if_cancelled()
            out = await self.runner.run(work, lambda ev: _forward(job, ev), job)
            self.loaded = set(out.loaded_models)
            self.model_loads = out.model_loads
            job.raise_if_cancelled()
            job.emit(job_pb2.Progress(stage=job_pb2.STAGE_UPLOADING, fraction=0.98, message="storing the video"))
            # A cancel during the upload aborts it: the job ends CANCELLED at once, not after the upload.
            asset = await job.unless_cancelled(self.store.store(
                job.owner, Path(work.output_path), f"generation-{job.id[:8]}.mp4", "video/mp4",
                {"source": "generation", "job_id": job.id, "model": params.model}, request_id=f"generation-{job.id}",
            ))
        finally:
            await asyncio.to_thread(_rmtree, folder)
        result = gen_pb2.GenerationResult(
            video_asset_id=asset.id, frame_count=out.frame_count, fps=out.fps, seed=out.seed,
            width=out.width, height=out.height, memory_policy=out.memory_policy, device=out.device,
        )
        if out.face_swap:
            result.face_swap.CopyFrom(face_swap_pb2.FaceSwapResult.FromString(out.face_swap))
        return bytes(result.SerializeToString())

    async def _work(self, job: RunningJob, params: gen_pb2.GenerationParameters, folder: Path) -> GenerationWork:
        needs_image = params.task == gen_pb2.TASK_IMAGE_TO_VIDEO
        if needs_image or params.HasField("face_swap"):
            job.emit(job_pb2.Progress(stage=job_pb2.STAGE_FETCHING_INPUTS, message="fetching inputs"))
        image_png = await self._fetch(job.owner, params.image_asset_id, folder / "image") if needs_image else None
        face_swap = None
        if params.HasField("face_swap"):
            opts = params.face_swap
            face_swap = FaceSwapInputs(
                options=opts.SerializeToString(),
                source=await self._fetch(job.owner, opts.source_face_asset_id, folder / "source"),
                reference=(await self._fetch(job.owner, opts.reference_face_asset_id, folder / "reference")
                           if opts.reference_face_asset_id else None),
            )
        loras = []
        for item in params.loras:  # checked at Create; a LoRA deleted since then is NOT_FOUND now
            row = await run_db(self.loras.get, item.lora_id, job.owner) if self.loras is not None else None
            if row is None:
                raise ServiceError.not_found("LORA_NOT_FOUND", f"the LoRA {item.lora_id!r} is gone")
            # Named by its asset: the same bytes load once per worker, whatever job asks for them.
            data = await self._fetch(job.owner, row.asset_id, folder / f"lora-{row.asset_id}")
            loras.append(LoraInput(name=f"lora_{row.asset_id.replace('-', '')}", weight=item.weight, data=data))
        return GenerationWork(job_id=job.id, spec=generation_spec(params), output_path=str(folder / "output.mp4"),
                              image_png=image_png, face_swap=face_swap, loras=tuple(loras),
                              devices=max(1, params.devices))

    async def _fetch(self, owner: str, asset_id: str, path: Path) -> bytes:
        await self.store.fetch(owner, asset_id, path)
        return await asyncio.to_thread(path.read_bytes)


def _forward(job: RunningJob, event: TaskEvent) -> None:
    job.emit(job_pb2.Progress.FromString(event.progress), droppable=event.droppable, time_us=event.time_us)


def _rmtree(path: Path) -> None:
    import shutil

    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path)
