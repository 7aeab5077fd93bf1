"""Sample clips during training (worker side): every `sample_every` steps the validation prompt is
rendered with the adapter of that step, through the same denoise / decode / encode path as a
generation, and the MP4 is announced as an artifact (the server stores it as a video asset).

The warm pipeline lends its VAE, text encoder and scheduler; its transformer is swapped for the
training copy (adapter attached) for the length of the sample and put back after, so the
generation side never sees the training weights. The sample's seed is the training seed: samples
of one job differ only by what the adapter learnt in between.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from services.inference.engine.cache import LoadedPipeline, release_memory
from services.inference.engine.diffusion import Interrupted, decode_latents, denoise
from services.inference.engine.encode import encode_mp4
from services.inference.engine.policy import MemoryPolicy, is_oom
from services.inference.models.registry import ModelSpec, Task
from services.inference.worker.context import TaskContext
from services.inference.worker.protocol import GenerationSpec, TrainingWork
from viarte.type.v1 import job_pb2

__all__ = ["render_sample", "sample_event", "sample_spec", "sample_steps"]


def sample_steps(work: TrainingWork) -> set[int]:
    """The steps after which a sample is rendered: every `sample_every`, and the last step."""
    if not work.sample_every:
        return set()
    return {*range(work.sample_every, work.steps + 1, work.sample_every), work.steps}


def sample_spec(work: TrainingWork, model: ModelSpec) -> GenerationSpec:
    lim = model.limits
    return GenerationSpec(
        model_id=model.id, task=Task.TEXT_TO_VIDEO, prompt=work.sample_prompt, negative_prompt="",
        width=work.width, height=work.height, num_frames=work.sample_frames, fps=lim.default_fps,
        steps=work.sample_inference_steps, guidance_scale=lim.default_guidance_scale, seed=work.seed,
        flow_shift=model.flow_shift,
    )


@contextlib.contextmanager
def _transformer(pipe: Any, transformer: Any) -> Iterator[None]:
    warm = pipe.transformer
    pipe.transformer = transformer
    try:
        yield
    finally:
        pipe.transformer = warm


def render_sample(ctx: TaskContext, loaded: LoadedPipeline, policy: MemoryPolicy, transformer: Any,
                  spec: GenerationSpec, path: Path) -> str:
    """Renders one sample clip to `path`. Returns "" when written, else why not (cancelled, out of
    memory): a sample is a view of the run, never a reason to fail or delay it."""
    try:
        with _transformer(loaded.pipe, transformer):
            latents = denoise(loaded, spec, image_png=None, on_step=lambda *_: None,
                              should_stop=lambda: ctx.cancelled)
            frames = decode_latents(loaded, latents, spec, policy, lambda *_: None)
    except Interrupted:
        return "cancelled"
    except Exception as exc:
        if not is_oom(exc):
            raise
        release_memory()
        return "out of device memory"
    path.parent.mkdir(parents=True, exist_ok=True)
    encode_mp4(iter(frames), path, width=spec.width, height=spec.height, fps=spec.fps, total=len(frames))
    return ""


def sample_event(step: int, total: int, loss: float) -> job_pb2.Progress:
    return job_pb2.Progress(stage=job_pb2.STAGE_TRAINING, step=step, total_steps=total,
                            message=f"sample clip at step {step}", metrics={"sample_step": step, "loss": loss})
