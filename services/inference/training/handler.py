"""The training job handler (kind "training"), server side: fetch the dataset from storage as the
owner, hand a `TrainingWork` to a device worker, store each checkpoint the worker writes as an
asset (and record it, so a retry resumes from it) and each sample clip as a video asset, store the
final adapter and its LoRA row."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import shutil
from pathlib import Path

from services.inference.training.store import LoraStore
from services.inference.worker.pool import WorkRunner
from services.inference.worker.protocol import TaskEvent, TrainingExample, TrainingWork
from services.kit.db import run_db
from services.kit.jobs import JobCancelled, RunningJob
from services.kit.logs import get_logger
from services.kit.storage_client import StorageClient
from viarte.training.v1 import training_pb2 as T
from viarte.type.v1 import asset_pb2, job_pb2

__all__ = ["KIND", "SAFETENSORS", "TrainingHandler"]

KIND = TrainingWork.kind
SAFETENSORS = "application/vnd.safetensors"
_log = get_logger("viarte.inference.training")


class TrainingHandler:
    """``HandlerExecutor`` handler for kind "training"."""

    def __init__(self, runner: WorkRunner, store: StorageClient, loras: LoraStore, scratch_dir: Path) -> None:
        self.runner = runner
        self.store = store
        self.loras = loras
        self.scratch_dir = scratch_dir

    async def __call__(self, job: RunningJob) -> bytes:
        params = T.TrainingParameters.FromString(job.parameters)
        folder = self.scratch_dir / "training" / job.id
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        uploads: list[asyncio.Task[None]] = []
        try:
            job.emit(job_pb2.Progress(stage=job_pb2.STAGE_FETCHING_INPUTS, message="fetching the dataset"))
            examples, dataset_sha = await self._examples(job, params, folder)
            checkpoints = await run_db(self.loras.checkpoints, job.id)
            resume = None
            if checkpoints:  # a retry: continue from the last stored checkpoint, not from step 0
                await self.store.fetch(job.owner, checkpoints[-1].asset_id, folder / "resume.safetensors")
                resume = await asyncio.to_thread((folder / "resume.safetensors").read_bytes)
            work = TrainingWork(
                job_id=job.id, model_id=params.base_model, examples=examples, width=params.width,
                height=params.height, num_frames=params.num_frames, rank=params.rank, alpha=params.alpha,
                learning_rate=params.learning_rate, steps=params.steps, batch_size=params.batch_size,
                seed=params.seed, checkpoint_every=params.checkpoint_every_n_steps,
                output_dir=str(folder / "work"), resume_checkpoint=resume,
                sample_every=params.sample_every_n_steps, sample_prompt=params.validation_prompt,
                sample_inference_steps=params.sample_num_inference_steps, sample_frames=params.sample_num_frames,
                gradient_checkpointing=(params.gradient_checkpointing
                                        if params.HasField("gradient_checkpointing") else None),
            )
            job.raise_if_cancelled()

            def on_event(event: TaskEvent) -> None:
                progress = job_pb2.Progress.FromString(event.progress)
                if event.artifact:  # announced once stored, with its asset id
                    store = self._sample if "sample_step" in progress.metrics else self._checkpoint
                    uploads.append(asyncio.ensure_future(store(job, progress, Path(event.artifact))))
                    return
                job.emit(progress, droppable=event.droppable, time_us=event.time_us)

            try:
                out = await self.runner.run(work, on_event, job)
            finally:
                # A worker that died right after a checkpoint: store it before the retry looks for it.
                await asyncio.gather(*uploads, return_exceptions=True)
            if out.cancelled and out.steps_completed == 0:
                raise JobCancelled(job.id)  # not one step trained: nothing worth keeping
            # With the steps trained: a cancel that ends the job here keeps this counter, and
            # metering charges the steps done (services/inference/metering.py).
            job.emit(job_pb2.Progress(stage=job_pb2.STAGE_UPLOADING, fraction=0.98, message="storing the LoRA",
                                      step=out.steps_completed, total_steps=params.steps))
            name = params.name or f"lora-{job.id[:8]}"
            asset = await self.store.store(
                job.owner, Path(out.lora_path), f"{name}.safetensors", SAFETENSORS,
                {"source": "training", "job_id": job.id, "model": params.base_model}, request_id=f"lora-{job.id}",
            )
            lora = await run_db(
                self.loras.add, owner_id=job.owner, name=name, asset_id=asset.id, base_model=params.base_model,
                training_job_id=job.id, dataset_asset_ids=[e.asset_id for e in params.dataset.examples],
                dataset_sha256=dataset_sha, parameters=params.SerializeToString(), final_loss=out.final_loss,
                steps=out.steps_completed, partial=out.cancelled,
            )
            if out.cancelled:  # the adapter so far is kept as a (partial) LoRA; the job ends CANCELLED
                raise JobCancelled(job.id)
            stored = await run_db(self.loras.checkpoints, job.id)
            samples = await run_db(self.loras.samples, job.id)
        finally:
            await asyncio.to_thread(_rmtree, folder)
        result = T.TrainingResult(
            lora_id=lora.id, lora_asset_id=asset.id, steps_completed=out.steps_completed, final_loss=out.final_loss,
            resumed_from_step=out.resumed_from_step, checkpoint_asset_ids=[c.asset_id for c in stored],
            sample_asset_ids=[a for _, a in samples], gradient_checkpointing=out.gradient_checkpointing,
        )
        return bytes(result.SerializeToString())

    async def _examples(self, job: RunningJob, params: T.TrainingParameters,
                        folder: Path) -> tuple[tuple[TrainingExample, ...], str]:
        """The examples' bytes and captions (trigger word first) and the dataset's hash."""
        digest = hashlib.sha256()
        examples = []
        trigger = params.trigger_word.strip()
        for i, example in enumerate(params.dataset.examples):
            path = folder / f"example-{i}"
            asset = await self.store.fetch(job.owner, example.asset_id, path)
            caption = " ".join(p for p in (trigger, example.caption.strip()) if p)
            digest.update(f"{asset.sha256}\n{example.caption}\n".encode())
            examples.append(TrainingExample(
                data=await asyncio.to_thread(path.read_bytes), content_type=asset.content_type,
                is_video=asset.kind == asset_pb2.ASSET_KIND_VIDEO, caption=caption,
            ))
        return tuple(examples), digest.hexdigest()

    async def _checkpoint(self, job: RunningJob, progress: job_pb2.Progress, path: Path) -> None:
        step = int(progress.metrics["checkpoint_step"])
        try:
            asset = await self.store.store(
                job.owner, path, f"checkpoint-{job.id[:8]}-{step:06d}.safetensors", SAFETENSORS,
                {"source": "training-checkpoint", "job_id": job.id, "step": str(step)},
                request_id=f"checkpoint-{job.id}-{step}",
            )
        except Exception as exc:  # a lost checkpoint only costs a longer resume; the run goes on
            _log.warning("training_checkpoint_not_stored", job_id=job.id, step=step, error=str(exc)[:200])
            return
        await run_db(self.loras.add_checkpoint, job.id, step, asset.id, float(progress.metrics.get("loss", 0.0)))
        progress.asset_id = asset.id
        job.emit(progress)


    async def _sample(self, job: RunningJob, progress: job_pb2.Progress, path: Path) -> None:
        step = int(progress.metrics["sample_step"])
        try:  # request_id: a retry that renders the same step again finds the asset already stored
            asset = await self.store.store(
                job.owner, path, f"sample-{job.id[:8]}-{step:06d}.mp4", "video/mp4",
                {"source": "training-sample", "job_id": job.id, "step": str(step)},
                request_id=f"sample-{job.id}-{step}",
            )
        except Exception as exc:  # a lost sample costs a view of the run, never the run
            _log.warning("training_sample_not_stored", job_id=job.id, step=step, error=str(exc)[:200])
            return
        await run_db(self.loras.add_sample, job.id, step, asset.id)
        progress.asset_id = asset.id
        job.emit(progress)


def _rmtree(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path)
