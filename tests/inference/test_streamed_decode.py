"""Issue 20: on the CPU, Wan's VAE hands each chunk it decodes to ffmpeg at once (x264 runs while
the rest decodes). The frames and the MP4 bytes are those of the pipeline's own decode followed by
the encode; the events keep their order; a cancel, a failed ffmpeg and a decode out of memory end
the stream cleanly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from services.inference.engine.cache import ModelCache
from services.inference.engine.diffusion import can_stream_decode, decode_latents, denoise, to_uint8
from services.inference.engine.encode import EncodeError, Mp4Encoder, encode_mp4
from services.inference.engine.policy import choose_policy
from services.inference.models.registry import Task
from services.inference.worker import generate
from services.inference.worker.context import TaskContext
from services.inference.worker.protocol import GenerationSpec, TaskCancelled, WorkerSetup
from viarte.type.v1 import job_pb2

GIB = 1024**3
S = job_pb2


@pytest.fixture(scope="module")
def loaded(tiny_models: Any) -> Any:
    cache = ModelCache(tiny_models.models_dir, "cpu", 2 * GIB)
    policy = choose_policy("default", "bf16", estimated_bytes=0, free_bytes=None)
    return cache.get(tiny_models.registry.get("tiny-wan"), Task.TEXT_TO_VIDEO, policy), policy


def _spec(**kw: Any) -> GenerationSpec:
    # 96x64, 13 frames: 4 latent frames, so the VAE's chunks are 1, 4, 4, 4 frames.
    values: dict[str, Any] = dict(model_id="tiny-wan", task=Task.TEXT_TO_VIDEO, prompt="a cat", negative_prompt="",
                                  width=96, height=64, num_frames=13, fps=8, steps=2, guidance_scale=5.0, seed=3)
    values.update(kw)
    return GenerationSpec(**values)


def _latents(loaded: Any, spec: GenerationSpec) -> Any:
    return denoise(loaded[0], spec, image_png=None, on_step=lambda *a: None, should_stop=lambda: False)


def _progress(sent: list[Any]) -> list[job_pb2.Progress]:
    return [job_pb2.Progress.FromString(e.progress) for e in sent]


def test_streamed_decode_gives_the_pipeline_frames_and_mp4_bytes(loaded: Any, tmp_path: Path) -> None:
    import torch

    entry, policy = loaded
    spec = _spec()
    assert can_stream_decode(entry)
    latents = _latents(loaded, spec)
    one_piece = decode_latents(entry, latents, spec, policy, lambda f, n: None)
    # The plain diffusers call (denoise + its own decode + postprocess), as a script would make it.
    generate_frames = entry.pipe(
        prompt=spec.prompt, height=spec.height, width=spec.width, num_frames=spec.num_frames,
        num_inference_steps=spec.steps, guidance_scale=spec.guidance_scale, output_type="np",
        generator=torch.Generator(device="cpu").manual_seed(spec.seed)).frames[0]
    assert np.array_equal(one_piece, to_uint8(generate_frames))
    encode_mp4(iter(one_piece), tmp_path / "plain.mp4", width=spec.width, height=spec.height, fps=spec.fps,
               total=len(one_piece))

    sent: list[Any] = []
    ctx = TaskContext("t1", WorkerSetup(scratch_dir=tmp_path), sent.append, {})
    chunks: list[int] = []
    hook = entry.pipe.vae.decoder.register_forward_hook(lambda m, a, out: chunks.append(out.shape[2]))
    timings: dict[str, float] = {}
    try:
        encoder = Mp4Encoder(tmp_path / "streamed.mp4", width=spec.width, height=spec.height, fps=spec.fps)
        total = generate._decode_and_encode(ctx, entry, latents, spec, encoder, timings)
    finally:
        hook.remove()
    assert total == 13 and len(chunks) == 4 and {"decoding", "encode"} <= set(timings)
    assert (tmp_path / "streamed.mp4").read_bytes() == (tmp_path / "plain.mp4").read_bytes()
    events = _progress(sent)
    # Every frame decoded, then every frame encoded (never interleaved), fractions only growing.
    assert [(e.stage, e.frame) for e in events] == (
        [(S.STAGE_DECODING, i) for i in range(1, 14)] + [(S.STAGE_ENCODING, i) for i in range(1, 14)])
    assert [e.fraction for e in events] == sorted(e.fraction for e in events)
    # The VAE itself was handed nothing to assemble: the next one-piece decode is unaffected.
    assert np.array_equal(decode_latents(entry, latents, spec, policy, lambda f, n: None), one_piece)


def test_a_cancel_during_the_streamed_decode_stops_ffmpeg(loaded: Any, tmp_path: Path) -> None:
    entry, _ = loaded
    spec = _spec()
    latents = _latents(loaded, spec)
    sent: list[Any] = []
    ctx = TaskContext("t2", WorkerSetup(scratch_dir=tmp_path), sent.append, {})

    def send(event: Any) -> None:
        sent.append(event)
        if len(sent) == 5:
            ctx._cancel.set()

    ctx.send = send
    encoder = Mp4Encoder(tmp_path / "cancelled.mp4", width=spec.width, height=spec.height, fps=spec.fps)
    with pytest.raises(TaskCancelled):
        generate._decode_and_encode(ctx, entry, latents, spec, encoder, {})
    assert encoder.proc.poll() is not None  # ffmpeg is gone, not left waiting for frames
    assert [e.frame for e in _progress(sent)] == [1, 2, 3, 4, 5]  # stopped at the next frame


def test_a_failed_ffmpeg_fails_the_streamed_encode(loaded: Any, tmp_path: Path) -> None:
    entry, _ = loaded
    spec = _spec()
    latents = _latents(loaded, spec)
    ctx = TaskContext("t3", WorkerSetup(scratch_dir=tmp_path), lambda e: None, {})
    encoder = Mp4Encoder(tmp_path / "no-such-folder" / "out.mp4", width=spec.width, height=spec.height, fps=spec.fps)
    with pytest.raises(EncodeError):
        generate._decode_and_encode(ctx, entry, latents, spec, encoder, {})
    assert encoder.proc.poll() is not None


def test_a_streamed_decode_out_of_memory_leaves_it_to_the_ladder(loaded: Any, tmp_path: Path) -> None:
    entry, _ = loaded
    spec = _spec()
    latents = _latents(loaded, spec)
    ctx = TaskContext("t4", WorkerSetup(scratch_dir=tmp_path), lambda e: None, {})
    vae = entry.pipe.vae
    calls = [0]

    def short_of_memory(module: Any, args: Any, output: Any) -> None:
        calls[0] += 1
        if calls[0] == 3:  # two chunks already went to ffmpeg
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 2147483648 bytes")

    hook = vae.decoder.register_forward_hook(short_of_memory)
    encoder = Mp4Encoder(tmp_path / "oom.mp4", width=spec.width, height=spec.height, fps=spec.fps)
    try:
        assert generate._decode_and_encode(ctx, entry, latents, spec, encoder, {}) is None
    finally:
        hook.remove()
    assert encoder.proc.poll() is not None
