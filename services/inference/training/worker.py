"""The training work function (worker side): `run(ctx, TrainingWork) -> TrainingOutcome`.

Goes through the worker's model cache (the warm pipeline's VAE and text encoder encode the
dataset once; a training copy of its transformer gets the adapter), reports every step
(STAGE_TRAINING, loss / learning_rate / grad_norm, ETA), writes a checkpoint file every
`checkpoint_every` steps (the server stores it as an asset before the step is reported), and
stops within one step on cancel with the adapter of the last completed step. Every
`sample_every` steps (and after the last) it renders a sample clip with the adapter so far
(`samples.py`), announced like a checkpoint.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from services.inference.engine.cache import LoadedPipeline
from services.inference.engine.policy import MemoryPolicy, choose_policy
from services.inference.models.registry import ModelSpec, Task
from services.inference.training.samples import render_sample, sample_event, sample_spec, sample_steps
from services.inference.training.trainer import LoraTrainer, decode_example
from services.inference.worker.config import WorkerConfig
from services.inference.worker.context import TaskContext
from services.inference.worker.generate import _cache, _free_device_bytes, _registry
from services.inference.worker.protocol import TrainingOutcome, TrainingWork
from services.kit.errors import ServiceError
from viarte.type.v1 import job_pb2

__all__ = ["run", "training_dtype", "training_threads", "use_gradient_checkpointing"]

_PREPARE = 0.05  # share of Progress.fraction for loading + encoding the dataset


def run(ctx: TaskContext, work: TrainingWork) -> TrainingOutcome:
    model = _registry(ctx).get(work.model_id)
    if model is None:
        raise ServiceError.invalid_argument("MODEL_NOT_FOUND", f"unknown model {work.model_id!r}")
    policy = choose_policy(ctx.config.memory_policy, ctx.config.dtype,
                           estimated_bytes=model.estimated_memory_bytes, free_bytes=_free_device_bytes(ctx.device))
    cache = _cache(ctx)
    if not cache.contains(model, Task.TEXT_TO_VIDEO, policy):
        ctx.emit(job_pb2.Progress(stage=job_pb2.STAGE_MODEL_LOADING, message=f"loading {model.id} on {ctx.device}"))
    loaded = cache.get(model, Task.TEXT_TO_VIDEO, policy)
    ctx.raise_if_cancelled()
    checkpointing = use_gradient_checkpointing(work, model, _free_device_bytes(ctx.device))
    trainer = LoraTrainer(loaded.pipe, rank=work.rank, alpha=work.alpha, learning_rate=work.learning_rate,
                          seed=work.seed, batch_size=work.batch_size, device=ctx.device,
                          gradient_checkpointing=checkpointing,
                          weights_dtype=training_dtype(ctx.config.training_dtype, ctx.device))
    out = Path(work.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = 0
    if work.resume_checkpoint is not None:
        path = out / "resume.safetensors"
        path.write_bytes(work.resume_checkpoint)
        start = trainer.load_checkpoint(path)
    ctx.emit(job_pb2.Progress(stage=job_pb2.STAGE_TRAINING, fraction=_PREPARE / 2, total_steps=work.steps,
                              message=f"encoding {len(work.examples)} examples (training copy in "
                              f"{trainer.weights_dtype}, LoRA in fp32)"
                              + (f"; resuming from the checkpoint of step {start}" if start else "")))
    videos = [decode_example(e, work.width, work.height, work.num_frames) for e in work.examples]
    captions = [e.caption for e in work.examples]
    with _torch_threads(training_threads(ctx.config, ctx.device)) as own_threads:
        trainer.prepare(videos, captions)
        return _train(ctx, work, model, trainer, loaded, policy, start, checkpointing, own_threads)


def _train(ctx: TaskContext, work: TrainingWork, model: ModelSpec, trainer: LoraTrainer, loaded: LoadedPipeline,
           policy: MemoryPolicy, start: int, checkpointing: bool, own_threads: int) -> TrainingOutcome:
    """The steps from `start` (the trainer's data prepared), their events, checkpoints and samples
    (rendered on `own_threads`, the worker's own count: a sample is a generation)."""
    samples, spec = sample_steps(work), sample_spec(work, model)
    out = Path(work.output_dir)
    loss, step, cancelled = float("nan"), start, False
    t0 = time.perf_counter()
    for step in range(start + 1, work.steps + 1):
        if ctx.cancelled:
            step, cancelled = step - 1, True
            break
        loss, grad_norm = trainer.step(step)
        if work.checkpoint_every and step % work.checkpoint_every == 0 and step < work.steps:
            ckpt = out / f"checkpoint-{step:06d}.safetensors"
            trainer.save_checkpoint(ckpt, step, loss)
            ctx.emit(job_pb2.Progress(stage=job_pb2.STAGE_TRAINING, step=step, total_steps=work.steps,
                                      message=f"checkpoint at step {step}",
                                      metrics={"checkpoint_step": step, "loss": loss}), artifact=str(ckpt))
        done = step - start
        per_step = (time.perf_counter() - t0) / done
        progress = job_pb2.Progress(
            stage=job_pb2.STAGE_TRAINING, step=step, total_steps=work.steps,
            fraction=_PREPARE + (1 - _PREPARE - 0.03) * step / work.steps,
            metrics={"loss": loss, "learning_rate": trainer.learning_rate, "grad_norm": grad_norm},
        )
        progress.eta.FromNanoseconds(int(per_step * (work.steps - step) * 1e9))
        ctx.emit(progress)
        if step in samples:  # after the step's event: its loss shows while the sample renders
            clip = out / f"sample-{step:06d}.mp4"
            with _torch_threads(own_threads):
                why_not = render_sample(ctx, loaded, policy, trainer.transformer, spec, clip)
            if why_not:
                ctx.emit(job_pb2.Progress(stage=job_pb2.STAGE_TRAINING, step=step, total_steps=work.steps,
                                          message=f"no sample clip at step {step}: {why_not}"))
            else:
                ctx.emit(sample_event(step, work.steps, loss), artifact=str(clip))
        if ctx.config.fault_crash_at_training_step == step and ctx._fault_fires():
            _crash(ctx)
    else:
        step = work.steps
    lora = trainer.save_lora(out / "lora")
    return TrainingOutcome(lora_path=str(lora), steps_completed=step, final_loss=loss,
                           resumed_from_step=start, cancelled=cancelled, gradient_checkpointing=checkpointing,
                           weights_dtype=trainer.weights_dtype)


def training_threads(config: WorkerConfig, device: str) -> int:
    """Torch intra-op threads for the training steps: `training_threads`, or for 0 one on a CPU
    worker; 0 (the worker's own count, unchanged) on CUDA, where the steps run on the GPU."""
    if device != "cpu":
        return 0
    return config.training_threads or 1


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[int]:
    """torch's intra-op thread count set to `threads` (0: unchanged) for the block, then restored;
    yields the count it had before (the worker's own: `worker_threads` 0 means every core, which
    only torch knows once the worker has set it up)."""
    import torch

    before = torch.get_num_threads()
    if not threads or threads == before:
        yield before
        return
    torch.set_num_threads(threads)
    try:
        yield before
    finally:
        torch.set_num_threads(before)


def training_dtype(configured: str, device: str) -> str:
    """The training copy's weights dtype: the config's, or for "auto" bf16 on a CUDA device with
    bf16 support (mixed precision: half the frozen weights' memory, tensor-core matmuls) and fp32
    elsewhere (a CPU, where bf16 saves memory but is no faster, and the tests compare fp32 losses)."""
    if configured != "auto":
        return configured
    if device.startswith("cuda"):
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "fp32"


def use_gradient_checkpointing(work: TrainingWork, model: ModelSpec, free_bytes: int | None) -> bool:
    """The job's choice, else on when the device's free memory (measured with the warm pipeline
    already resident) is below what the model's estimate without it adds to that pipeline (CPU: no
    figure to compare, off; a model without training figures: off)."""
    if work.gradient_checkpointing is not None:
        return work.gradient_checkpointing
    if free_bytes is None or model.training is None:
        return False
    need = model.training_memory_bytes(work.width, work.height, work.num_frames, rank=work.rank,
                                       batch=work.batch_size)
    return free_bytes < need - model.estimated_memory_bytes


def _crash(ctx: TaskContext) -> None:
    """Fault injection for the resume tests: die right after this step, its checkpoint event
    delivered (the local sender's close() flushes what was queued; a resumed attempt starts past it)."""
    close = getattr(getattr(ctx.send, "__self__", None), "close", None)
    if close is not None:
        close()
    os._exit(17)
