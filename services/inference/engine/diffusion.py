"""Runs one generation on a loaded pipeline: check_inputs, seeded denoising with per-step
callbacks (cancel + previews), latents kept before the VAE, per-frame decode.

Denoising always asks the pipeline for ``output_type="latent"`` and decodes here, so a failed
decode is retried from the kept latents without re-running the denoiser.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np

from services.inference.engine.cache import LoadedPipeline
from services.inference.engine.policy import MemoryPolicy
from services.inference.engine.previews import latent_preview_jpeg
from services.inference.models.registry import Family, Task
from services.inference.worker.protocol import GenerationSpec

__all__ = [
    "Interrupted",
    "can_stream_decode",
    "decode_latents",
    "decode_streaming",
    "denoise",
    "text_embeddings",
    "to_uint8",
]

StepCallback = Callable[[int, int, Any], None]  # (step, total, latents)
FrameCallback = Callable[[int, int], None]  # (frame, total)
ChunkCallback = Callable[[np.ndarray], None]  # post-processed frames (F, H, W, 3), float in [0, 1]


class Interrupted(Exception):
    """The job was cancelled between denoising steps."""


def _image(png: bytes | None, width: int, height: int) -> Any:
    from PIL import Image

    if png is None:
        return None
    img = Image.open(io.BytesIO(png)).convert("RGB")
    return img.resize((width, height), Image.Resampling.LANCZOS) if img.size != (width, height) else img


# Prompts whose embeddings a pipeline keeps (CPU copies: at most ~4 MiB each for Wan's UMT5 at 512
# tokens, so no device memory is held between jobs).
PROMPT_CACHE_ENTRIES = 16
# What Wan's pipelines encode a prompt to (their ``__call__`` default): the embeddings are the same.
_WAN_TEXT_TOKENS = 512


def text_embeddings(loaded: LoadedPipeline, text: str) -> Any:
    """Wan's text embeddings of ``text`` as the pipeline's own call computes them, from the
    pipeline's small cache: the negative prompt is the same for most jobs and a prompt is often run
    again with another seed, and each encode is a full text-encoder pass (UMT5-XXL on a real model).
    None when adapters sit on the text encoder (its output then depends on the job's LoRA set)."""
    pipe = loaded.pipe
    if getattr(pipe.text_encoder, "peft_config", None):
        return None
    device = pipe._execution_device
    cache = loaded.prompt_embeds
    kept = cache.get(text)
    if kept is None:
        import torch

        with torch.no_grad():  # as inside the pipeline's call (with grad on, kernels differ in the last bits)
            embeds, _ = pipe.encode_prompt(prompt=text, do_classifier_free_guidance=False,
                                           max_sequence_length=_WAN_TEXT_TOKENS, device=device)
        kept = embeds.detach().to("cpu", copy=True)
        cache[text] = kept
        while len(cache) > PROMPT_CACHE_ENTRIES:
            cache.popitem(last=False)
    else:
        cache.move_to_end(text)
    return kept.to(device, copy=True)  # the job's own copy: nothing it does reaches the cache


def _fresh_scheduler(loaded: LoadedPipeline, spec: GenerationSpec) -> None:
    # Schedulers are stateful; a fresh one per run keeps runs independent and seeds reproducible.
    overrides: dict[str, Any] = {}
    if spec.flow_shift is not None and "flow_shift" in loaded.scheduler_config:
        overrides["flow_shift"] = spec.flow_shift
    pipe = loaded.pipe
    pipe.scheduler = type(pipe.scheduler).from_config(loaded.scheduler_config, **overrides)


def denoise(
    loaded: LoadedPipeline,
    spec: GenerationSpec,
    *,
    image_png: bytes | None,
    on_step: StepCallback,
    should_stop: Callable[[], bool],
    partner: Any = None,
    stats: dict[str, int] | None = None,
) -> Any:
    """Runs the denoiser and returns the final latents ((B,C,F,h,w), SVD (B,F,C,h,w)). ``partner``
    (Wan): a second device runs the unconditional passes (worker/cfg_parallel.py), counted in
    ``stats["remote"]``."""
    import torch

    pipe, family = loaded.pipe, loaded.spec.family
    _fresh_scheduler(loaded, spec)
    generator = torch.Generator(device="cpu").manual_seed(spec.seed)
    total = spec.steps
    has_interrupt = hasattr(type(pipe), "interrupt")

    def on_step_end(p: Any, i: int, t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        on_step(i + 1, total, kwargs.get("latents"))
        if should_stop():
            if not has_interrupt:
                raise Interrupted()
            p._interrupt = True  # the pipeline skips the remaining steps
        return {}

    def legacy(step: int, t: Any, latents: Any) -> None:
        on_step(step + 1, total, latents)
        if should_stop():
            raise Interrupted()

    common: dict[str, Any] = dict(height=spec.height, width=spec.width, num_frames=spec.num_frames,
                                  num_inference_steps=spec.steps, generator=generator, output_type="latent")
    image = _image(image_png, spec.width, spec.height)
    if family is Family.MODELSCOPE:
        out = pipe(prompt=spec.prompt, negative_prompt=spec.negative_prompt or None,
                   guidance_scale=spec.guidance_scale, callback=legacy, callback_steps=1, **common)
    elif family is Family.WAN:
        kwargs: dict[str, Any] = dict(prompt=spec.prompt, negative_prompt=spec.negative_prompt or None,
                                      guidance_scale=spec.guidance_scale, callback_on_step_end=on_step_end,
                                      callback_on_step_end_tensor_inputs=["latents"], **common)
        embeds = text_embeddings(loaded, spec.prompt)
        if embeds is not None:
            kwargs.update(prompt=None, prompt_embeds=embeds, negative_prompt=None)
            if spec.guidance_scale > 1.0:  # the pipeline encodes the negative prompt only for CFG
                # The pipeline's own default for no negative prompt is "", encoded like any other.
                kwargs["negative_prompt_embeds"] = text_embeddings(loaded, spec.negative_prompt or "")
        if spec.guidance_scale_2 is not None and getattr(pipe, "transformer_2", None) is not None:
            kwargs["guidance_scale_2"] = spec.guidance_scale_2
        if spec.task is Task.IMAGE_TO_VIDEO:
            kwargs["image"] = image
        if partner is not None:
            from services.inference.worker.cfg_parallel import split_guidance

            with split_guidance(pipe, partner, stats if stats is not None else {}):
                out = pipe(**kwargs)
        else:
            out = pipe(**kwargs)
    else:
        out = pipe(image=image, min_guidance_scale=spec.min_guidance_scale,
                   max_guidance_scale=spec.max_guidance_scale, fps=spec.fps, motion_bucket_id=spec.motion_bucket_id,
                   noise_aug_strength=spec.noise_aug_strength, decode_chunk_size=spec.decode_chunk_size or None,
                   callback_on_step_end=on_step_end, callback_on_step_end_tensor_inputs=["latents"], **common)
    if should_stop():
        raise Interrupted()
    return out.frames


def make_preview(loaded: LoadedPipeline, latents: Any) -> bytes:
    return latent_preview_jpeg(latents, channels_first_frames=loaded.spec.family is not Family.SVD)


def to_uint8(video_np: np.ndarray) -> np.ndarray:
    """Post-processed float frames in [0, 1] → uint8 (like diffusers' numpy_to_pil)."""
    return (video_np * 255).round().astype(np.uint8)


def decode_latents(
    loaded: LoadedPipeline, latents: Any, spec: GenerationSpec, policy: MemoryPolicy, on_frame: FrameCallback
) -> np.ndarray:
    """Kept latents → (F, H, W, 3) uint8 frames, reporting each decoded frame."""
    import torch

    pipe, family = loaded.pipe, loaded.spec.family
    with torch.no_grad():
        if family is Family.WAN:
            video = _decode_wan(pipe, latents, spec.num_frames, on_frame)
        elif family is Family.SVD:
            chunk = spec.decode_chunk_size or policy.decode_chunk_size or spec.num_frames
            video = _decode_svd(pipe, latents, spec.num_frames, chunk, on_frame)
        else:
            video = _decode_modelscope(pipe, latents, on_frame)
        frames = pipe.video_processor.postprocess_video(video=video, output_type="np")
    return to_uint8(np.asarray(frames)[0])


def _wan_latents(vae: Any, latents: Any) -> Any:
    """Kept latents → what Wan's pipeline hands its VAE (un-normalised, in the VAE's dtype)."""
    import torch

    latents = latents.to(vae.device, dtype=vae.dtype)
    mean = torch.tensor(vae.config.latents_mean).view(1, vae.config.z_dim, 1, 1, 1).to(latents.device, latents.dtype)
    std = 1.0 / torch.tensor(vae.config.latents_std).view(1, vae.config.z_dim, 1, 1, 1).to(
        latents.device, latents.dtype
    )
    return latents / std + mean


def _decode_wan(pipe: Any, latents: Any, total: int, on_frame: FrameCallback) -> Any:
    vae = pipe.vae
    latents = _wan_latents(vae, latents)
    done = [0]
    temporal = int(vae.config.scale_factor_temporal or 4)

    def counted(module: Any, args: Any, output: Any) -> None:
        # The causal VAE decodes one latent frame per decoder call: 1 frame first, then `temporal`.
        upto = min(total, done[0] + (1 if done[0] == 0 else temporal))
        for frame in range(done[0] + 1, upto + 1):
            on_frame(frame, total)
        done[0] = upto

    handle = vae.decoder.register_forward_hook(counted)
    try:
        video = vae.decode(latents, return_dict=False)[0]
    finally:
        handle.remove()
    for frame in range(done[0] + 1, total + 1):  # tiled decode calls the decoder per tile
        on_frame(frame, total)
    return video


def can_stream_decode(loaded: LoadedPipeline) -> bool:
    """Whether `decode_streaming` applies: Wan's VAE on the CPU, untiled (a tiled decode calls the
    decoder once per tile, not once per latent frame). A GPU keeps the one-piece decode."""
    vae = loaded.pipe.vae
    return loaded.spec.family is Family.WAN and vae.device.type == "cpu" and not getattr(vae, "use_tiling", False)


def decode_streaming(
    loaded: LoadedPipeline, latents: Any, spec: GenerationSpec, on_frame: FrameCallback, on_chunk: ChunkCallback
) -> int:
    """Kept latents → frames handed to ``on_chunk`` as Wan's causal VAE decodes them (one decoder
    call per latent frame: 1 frame, then ``scale_factor_temporal``), so they can be encoded while the
    rest decodes. Each chunk gets what `decode_latents` applies to the whole video (unpatchify, clamp,
    the pipeline's postprocess): all per frame, so the frames are the same values. Returns the count."""
    import torch
    from diffusers.models.autoencoders.autoencoder_kl_wan import unpatchify

    pipe = loaded.pipe
    vae = pipe.vae
    latents = _wan_latents(vae, latents)
    patch = vae.config.patch_size
    done = [0]

    def streamed(module: Any, args: Any, output: Any) -> Any:
        video = torch.clamp(unpatchify(output, patch) if patch else output, min=-1.0, max=1.0)
        frames = pipe.video_processor.postprocess_video(video=video, output_type="np")[0]
        on_chunk(frames)
        for frame in range(done[0] + 1, done[0] + len(frames) + 1):
            on_frame(frame, spec.num_frames)
        done[0] += len(frames)
        # The VAE concatenates every decoder output into one video (a copy of all frames so far per
        # latent frame) and clamps it whole: handed none, it assembles an empty video instead.
        return output[:, :, :0]

    with torch.no_grad():
        handle = vae.decoder.register_forward_hook(streamed)
        try:
            vae.decode(latents, return_dict=False)
        finally:
            handle.remove()
    return done[0]


def _decode_svd(pipe: Any, latents: Any, num_frames: int, chunk: int, on_frame: FrameCallback) -> Any:
    vae = pipe.vae
    flat = latents.flatten(0, 1).to(vae.device, dtype=vae.dtype) / vae.config.scaling_factor
    parts = []
    for start in range(0, flat.shape[0], chunk):
        piece = flat[start : start + chunk]
        parts.append(vae.decode(piece, num_frames=piece.shape[0]).sample)
        for frame in range(start + 1, start + piece.shape[0] + 1):
            on_frame(frame, num_frames)
    import torch

    frames = torch.cat(parts, dim=0)
    return frames.reshape(-1, num_frames, *frames.shape[1:]).permute(0, 2, 1, 3, 4).float()


def _decode_modelscope(pipe: Any, latents: Any, on_frame: FrameCallback) -> Any:
    import torch

    vae = pipe.vae
    latents = latents.to(vae.device, dtype=vae.dtype) / vae.config.scaling_factor
    total = latents.shape[2]
    frames = []
    for f in range(total):
        frames.append(vae.decode(latents[:, :, f]).sample)
        on_frame(f + 1, total)
    return torch.stack(frames, dim=2).float()
