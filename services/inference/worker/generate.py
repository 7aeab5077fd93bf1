"""The generation work function: model loading, denoising, decode, optional face swap, MP4
encode. Runs inside a device worker process."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

from services.inference.engine.cache import ModelCache, release_memory
from services.inference.engine.diffusion import (
    Interrupted,
    can_stream_decode,
    decode_latents,
    decode_streaming,
    denoise,
    make_preview,
    to_uint8,
)
from services.inference.engine.encode import FrameFeed, Mp4Encoder
from services.inference.engine.loras import apply_loras
from services.inference.engine.policy import MemoryPolicy, apply_policy, choose_policy, is_oom, next_policy
from services.inference.faceswap.worker import swap_frames
from services.inference.models.registry import DEFAULT_REGISTRY_PATH, ModelRegistry, load_registry
from services.inference.worker.context import TaskContext
from services.inference.worker.protocol import (
    GenerationOutcome,
    GenerationSpec,
    GenerationWork,
    LatentsKept,
    TaskCancelled,
)
from services.kit.errors import ServiceError
from viarte.type.v1 import job_pb2

__all__ = ["load_model", "run"]

# Share of the whole job per stage, for Progress.fraction (the last 3% are the upload).
_WEIGHTS = {"load": 0.05, "denoise": 0.62, "decode": 0.1, "swap": 0.1, "encode": 0.1}
_WORKER_END = 0.97


def _registry(ctx: TaskContext) -> ModelRegistry:
    if "registry" not in ctx.resources:
        ctx.resources["registry"] = load_registry(ctx.config.registry_path or DEFAULT_REGISTRY_PATH)
    return ctx.resources["registry"]  # type: ignore[no-any-return]


def _cache(ctx: TaskContext) -> ModelCache:
    if "models" not in ctx.resources:
        c = ctx.config
        ctx.resources["models"] = ModelCache(c.models_path, ctx.device, c.cache_budget_bytes,
                                             allow_download=c.allow_download, build_tiny=c.build_tiny_models)
    return ctx.resources["models"]  # type: ignore[no-any-return]


def _free_device_bytes(device: str) -> int | None:
    if not device.startswith("cuda"):
        return None
    import torch

    free, _ = torch.cuda.mem_get_info(torch.device(device))
    return int(free)


class _Latents:
    """Latents kept on disk between denoise and decode: a decode failure (or a worker crash during
    decode) is retried from here without re-running the denoiser."""

    def __init__(self, scratch: Path, job_id: str, spec: GenerationSpec) -> None:
        self.path = scratch / "latents" / f"{job_id}-{spec.fingerprint()}.pt"

    def load(self) -> Any:
        if not self.path.exists():
            return None
        import torch

        try:
            return torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception:
            return None

    def save(self, latents: Any) -> None:
        import torch

        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        torch.save(latents.detach().cpu(), tmp)
        tmp.replace(self.path)

    def drop(self) -> None:
        self.path.unlink(missing_ok=True)


def _latents_bytes(latents: Any) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(latents.detach().cpu(), buffer)
    return buffer.getvalue()


def _fetch_latents(url: str) -> Any:
    """Latents a previous attempt kept in S3 (read from a presigned URL: any node can); None when
    they cannot be read (the job then denoises again rather than failing)."""
    import urllib.request

    import torch

    try:
        with urllib.request.urlopen(url, timeout=120) as response:
            data = response.read()
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception:
        return None


def _progress(stage: int, fraction: float, **kw: Any) -> job_pb2.Progress:
    return job_pb2.Progress(stage=stage, fraction=min(1.0, fraction), **kw)  # type: ignore[arg-type]


def run(ctx: TaskContext, work: GenerationWork) -> GenerationOutcome:
    spec = work.spec
    model = _registry(ctx).get(spec.model_id)
    if model is None:
        raise ServiceError.invalid_argument("MODEL_NOT_FOUND", f"unknown model {spec.model_id!r}")
    timings: dict[str, float] = {}
    policy = choose_policy(ctx.config.memory_policy, ctx.config.dtype,
                           estimated_bytes=model.estimated_memory_bytes, free_bytes=_free_device_bytes(ctx.device))
    kept = _Latents(ctx.setup.scratch_dir, work.job_id, spec)
    latents = _fetch_latents(work.kept_latents_url) if work.kept_latents_url else kept.load()
    resumed = latents is not None

    cache = _cache(ctx)
    stats: dict[str, int] = {}
    try:
        loaded, latents, policy = _load_and_denoise(ctx, cache, model, work, policy, latents, timings, stats)
    finally:
        if ctx.partner is not None:
            ctx.partner.finish()  # resumed, failed or done denoising: the partner's device is free
    if not resumed and work.ship_latents:
        ctx.send(LatentsKept(ctx.task_id, _latents_bytes(latents)))  # kept in S3 by the server
    elif not resumed:
        kept.save(latents)
    out = Path(work.output_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Started now, so that ffmpeg's start-up (~0.1 s of CPU) overlaps the decode (on a GPU, a CPU
    # core is otherwise idle meanwhile); killed on any way out but a finished encode.
    encoder = Mp4Encoder(out, width=spec.width, height=spec.height, fps=spec.fps)
    try:
        total, face_swap = None, None
        if work.face_swap is None and can_stream_decode(loaded):
            total = _decode_and_encode(ctx, loaded, latents, spec, encoder, timings)
            if total is None:  # out of memory while streaming: the one-piece decode's ladder, a fresh encoder
                encoder = Mp4Encoder(out, width=spec.width, height=spec.height, fps=spec.fps)
        if total is None:
            frames, policy = _decode(ctx, cache, loaded, latents, spec, policy, timings)
            if work.face_swap is not None:
                t0 = time.perf_counter()
                frames, face_swap = swap_frames(ctx, frames, work.face_swap)
                timings["face_swap"] = time.perf_counter() - t0

            ctx.raise_if_cancelled()
            t0 = time.perf_counter()
            total = len(frames)

            def encoded(i: int, n: int) -> None:
                ctx.raise_if_cancelled()  # the encoder kills ffmpeg on the way out
                ctx.emit(_encoding(i, n))

            encoder.encode(iter(frames), total, encoded)
            timings["encode"] = time.perf_counter() - t0
    except BaseException:
        encoder.kill()
        raise
    kept.drop()
    return GenerationOutcome(
        frame_count=total, width=spec.width, height=spec.height, fps=spec.fps, seed=spec.seed,
        memory_policy=policy.label, device=ctx.device, timings=timings, face_swap=face_swap,
        resumed_from_latents=resumed, loaded_models=tuple(sorted(cache.loaded_ids())), model_loads=cache.loads,
        remote_passes=stats.get("remote", 0),
    )


def _encoding(frame: int, total: int) -> job_pb2.Progress:
    base = _WORKER_END - _WEIGHTS["encode"]
    return _progress(job_pb2.STAGE_ENCODING, base + _WEIGHTS["encode"] * frame / total, frame=frame, total_frames=total)


def _decode_and_encode(
    ctx: TaskContext, loaded: Any, latents: Any, spec: GenerationSpec, encoder: Mp4Encoder, timings: dict[str, float],
) -> int | None:
    """The CPU path (`can_stream_decode`): each chunk the VAE decodes goes to ffmpeg at once, so x264
    and the frame conversion run while the VAE decodes the rest (in a plain script they follow it).
    Returns the frame count; None when the decode ran out of memory (nothing kept: the caller decodes
    again the one-piece way, whose ladder retries with a stricter policy)."""
    base = _WEIGHTS["load"] + _WEIGHTS["denoise"]

    def decoded(frame: int, total: int) -> None:
        ctx.raise_if_cancelled()
        ctx.emit(_progress(job_pb2.STAGE_DECODING, base + _WEIGHTS["decode"] * frame / total,
                           frame=frame, total_frames=total))

    feed = FrameFeed(encoder, spec.num_frames, to_uint8)
    try:
        ctx.raise_if_cancelled()
        t0 = time.perf_counter()
        try:
            total = decode_streaming(loaded, latents, spec, decoded, feed.put)
        except TaskCancelled:
            raise
        except Exception as exc:
            if not is_oom(exc):
                raise ServiceError.internal("DECODE_FAILED", f"VAE decode failed: {exc}"[:300]) from exc
            feed.abort()
            release_memory()
            return None
        feed.close()
        timings["decoding"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        # Encoding events wait for the decode's last one (so the stages still come decode, then
        # encode, with growing fractions), then follow the frames ffmpeg has taken, as before.
        reported, over = 0, False
        while not over:
            written, over = feed.wait(reported, timeout=0.25)
            for frame in range(reported + 1, written + 1):
                ctx.raise_if_cancelled()
                ctx.emit(_encoding(frame, total))
            reported = written
            ctx.raise_if_cancelled()
        timings["encode"] = time.perf_counter() - t0
    except BaseException:
        feed.abort()
        raise
    return total


def load_model(ctx: TaskContext, work: GenerationWork) -> Any:
    """The work's pipeline, loaded as ``run`` loads it (policy, cache, LoRAs), for a CFG partner."""
    model = _registry(ctx).get(work.spec.model_id)
    if model is None:
        raise ServiceError.invalid_argument("MODEL_NOT_FOUND", f"unknown model {work.spec.model_id!r}")
    policy = choose_policy(ctx.config.memory_policy, ctx.config.dtype,
                           estimated_bytes=model.estimated_memory_bytes, free_bytes=_free_device_bytes(ctx.device))
    loaded = _cache(ctx).get(model, work.spec.task, policy)
    apply_loras(loaded.pipe, work.loras, ctx.setup.scratch_dir / "loras")
    return loaded


def _load_and_denoise(
    ctx: TaskContext, cache: ModelCache, model: Any, work: GenerationWork,
    policy: MemoryPolicy, latents: Any, timings: dict[str, float], stats: dict[str, int],
) -> tuple[Any, Any, MemoryPolicy]:
    spec = work.spec
    for attempt in (1, 2):
        try:
            if not cache.contains(model, spec.task, policy):
                ctx.emit(_progress(job_pb2.STAGE_MODEL_LOADING, 0.0,
                                   message=f"loading {model.id} on {ctx.device} ({policy.label})"))
            t0 = time.perf_counter()
            loaded = cache.get(model, spec.task, policy)
            apply_loras(loaded.pipe, work.loras, ctx.setup.scratch_dir / "loras")
            timings["model_loading"] = timings.get("model_loading", 0.0) + time.perf_counter() - t0
            ctx.raise_if_cancelled()  # cancelled during the load: not a single step
            if latents is not None:
                ctx.emit(_progress(job_pb2.STAGE_DENOISING, _WEIGHTS["load"] + _WEIGHTS["denoise"],
                                   step=spec.steps, total_steps=spec.steps, message="resumed from kept latents"))
                return loaded, latents, policy
            # Step 0, before the prompt is encoded: the job is on its device and denoising starts
            # now (a client's dispatch measure then ends here, not after the text encoder's pass).
            ctx.emit(_progress(job_pb2.STAGE_DENOISING, _WEIGHTS["load"], step=0, total_steps=spec.steps))
            t0 = time.perf_counter()
            latents = denoise(loaded, spec, image_png=work.image_png, on_step=_step_reporter(ctx, loaded, spec),
                              should_stop=lambda: ctx.cancelled, partner=ctx.partner, stats=stats)
            timings["denoising"] = time.perf_counter() - t0
            return loaded, latents, policy
        except Interrupted:
            raise TaskCancelled(ctx.task_id) from None
        except Exception as exc:
            if not is_oom(exc):
                raise
            stricter = next_policy(policy)
            cache.clear()
            release_memory()
            if attempt == 2 or stricter is None:
                raise ServiceError.resource_exhausted(
                    "OUT_OF_MEMORY", f"{model.id} does not fit on {ctx.device} even with policy {policy.label}",
                    metadata={"device": ctx.device, "policy": policy.label},
                ) from None
            ctx.emit(_progress(job_pb2.STAGE_MODEL_LOADING, 0.0,
                               message=f"out of memory under {policy.label}; retrying with {stricter.label}"))
            policy = stricter
    raise AssertionError("unreachable")


def _step_reporter(ctx: TaskContext, loaded: Any, spec: GenerationSpec) -> Any:
    base, weight = _WEIGHTS["load"], _WEIGHTS["denoise"]

    def on_step(step: int, total: int, latents: Any) -> None:
        progress = _progress(job_pb2.STAGE_DENOISING, base + weight * step / total, step=step, total_steps=total)
        ctx.emit(progress)
        if spec.preview_every and latents is not None and (step % spec.preview_every == 0 or step == total):
            preview = _progress(job_pb2.STAGE_DENOISING, progress.fraction, step=step, total_steps=total,
                                preview_jpeg=make_preview(loaded, latents))
            ctx.emit(preview, droppable=True)

    return on_step


def _decode(
    ctx: TaskContext, cache: ModelCache, loaded: Any, latents: Any, spec: GenerationSpec, policy: MemoryPolicy,
    timings: dict[str, float],
) -> tuple[Any, MemoryPolicy]:
    base = _WEIGHTS["load"] + _WEIGHTS["denoise"]

    def decoded(frame: int, total: int) -> None:
        ctx.raise_if_cancelled()
        ctx.emit(_progress(job_pb2.STAGE_DECODING, base + _WEIGHTS["decode"] * frame / total,
                           frame=frame, total_frames=total))

    ctx.raise_if_cancelled()
    t0 = time.perf_counter()
    try:
        frames = decode_latents(loaded, latents, spec, policy, decoded)
    except TaskCancelled:
        raise
    except Exception as exc:
        stricter = next_policy(policy)
        if not is_oom(exc) or stricter is None:
            if is_oom(exc):
                raise ServiceError.resource_exhausted("OUT_OF_MEMORY", "VAE decode ran out of memory") from None
            raise ServiceError.internal("DECODE_FAILED", f"VAE decode failed: {exc}"[:300]) from exc
        # Same latents, a stricter VAE setting (tiling/slicing, smaller chunks): no re-denoising.
        release_memory()
        ctx.emit(_progress(job_pb2.STAGE_DECODING, base, message=f"decode out of memory; retrying with {stricter.label}"))
        apply_policy(loaded.pipe, stricter, ctx.device)
        try:
            frames = decode_latents(loaded, latents, spec, stricter, decoded)
        except TaskCancelled:
            raise
        except Exception as again:
            if is_oom(again):
                raise ServiceError.resource_exhausted("OUT_OF_MEMORY", "VAE decode ran out of memory") from None
            raise ServiceError.internal("DECODE_FAILED", f"VAE decode failed: {again}"[:300]) from again
        policy = stricter
    timings["decoding"] = time.perf_counter() - t0
    return frames, policy
