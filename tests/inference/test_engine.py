"""The engine in-process on the tiny models: policies, seeds, cancel between steps, and a decode
that runs out of memory retried from the kept latents (no re-denoising)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from services.inference.engine.cache import ModelCache
from services.inference.engine.diffusion import Interrupted, decode_latents, denoise
from services.inference.engine.encode import EncodeError, encode_mp4
from services.inference.engine.policy import LADDER, choose_policy, next_policy
from services.inference.models.registry import Task, load_registry
from services.inference.worker import generate
from services.inference.worker.context import TaskContext
from services.inference.worker.protocol import GenerationSpec, WorkerSetup
from viarte.type.v1 import job_pb2

GIB = 1024**3


def test_policy_ladder_by_free_memory() -> None:
    assert choose_policy("auto", "bf16", estimated_bytes=8 * GIB, free_bytes=None).name == "default"  # CPU
    assert choose_policy("auto", "fp16", estimated_bytes=8 * GIB, free_bytes=80 * GIB).name == "default"
    assert choose_policy("auto", "fp16", estimated_bytes=8 * GIB, free_bytes=6 * GIB).name == "vae_tiling"
    assert choose_policy("auto", "fp16", estimated_bytes=20 * GIB, free_bytes=6 * GIB).name == "model_offload"
    assert choose_policy("auto", "fp16", estimated_bytes=40 * GIB, free_bytes=6 * GIB).name == "sequential_offload"
    names = []
    policy: Any = choose_policy("default", "fp16", estimated_bytes=0, free_bytes=None)
    while policy is not None:
        names.append(policy.name)
        assert policy.dtype == "fp16"
        policy = next_policy(policy)
    assert names == [p.name for p in LADDER]


def test_registry_has_real_and_tiny_models() -> None:
    registry = load_registry()
    sources = {m.id: m.source for m in registry}
    assert sources["modelscope-t2v-1.7b"] == "damo-vilab/text-to-video-ms-1.7b"
    assert sources["wan2.1-t2v-1.3b"] == "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
    assert sources["wan2.2-ti2v-5b"] == "Wan-AI/Wan2.2-TI2V-5B-Diffusers"
    assert sources["svd-xt"] == "stabilityai/stable-video-diffusion-img2vid-xt"
    wan22 = registry.get("wan2.2-ti2v-5b")
    assert wan22 is not None and wan22.pipeline_class(Task.IMAGE_TO_VIDEO) == "WanImageToVideoPipeline"
    assert wan22.resolve_path(Path("/nonexistent")) == "Wan-AI/Wan2.2-TI2V-5B-Diffusers"  # HF id when not local


@pytest.fixture(scope="module")
def loaded(tiny_models: Any) -> Any:
    cache = ModelCache(tiny_models.models_dir, "cpu", 2 * GIB)
    spec = tiny_models.registry.get("tiny-wan")
    policy = choose_policy("default", "bf16", estimated_bytes=0, free_bytes=None)
    return cache, cache.get(spec, Task.TEXT_TO_VIDEO, policy), policy


def _spec(**kw: Any) -> GenerationSpec:
    values: dict[str, Any] = dict(model_id="tiny-wan", task=Task.TEXT_TO_VIDEO, prompt="a cat", negative_prompt="",
                                  width=64, height=64, num_frames=9, fps=8, steps=3, guidance_scale=5.0, seed=11)
    values.update(kw)
    return GenerationSpec(**values)


def test_seeded_denoise_and_cancel_between_steps(loaded: Any) -> None:
    _, pipe, _ = loaded
    steps: list[int] = []
    a = denoise(pipe, _spec(), image_png=None, on_step=lambda s, n, lat: steps.append(s), should_stop=lambda: False)
    b = denoise(pipe, _spec(), image_png=None, on_step=lambda *a: None, should_stop=lambda: False)
    c = denoise(pipe, _spec(seed=12), image_png=None, on_step=lambda *a: None, should_stop=lambda: False)
    assert steps == [1, 2, 3] and (a == b).all() and not (a == c).all()
    seen: list[int] = []
    with pytest.raises(Interrupted):
        denoise(pipe, _spec(steps=10), image_png=None, on_step=lambda s, n, lat: seen.append(s),
                should_stop=lambda: len(seen) >= 2)
    assert seen == [1, 2]  # interrupt honoured at the next step


def test_decode_out_of_memory_is_retried_from_kept_latents(loaded: Any, tmp_path: Path) -> None:
    cache, pipe, policy = loaded
    spec = _spec()
    latents = denoise(pipe, spec, image_png=None, on_step=lambda *a: None, should_stop=lambda: False)
    expected = decode_latents(pipe, latents, spec, policy, lambda f, n: None)
    sent: list[Any] = []
    ctx = TaskContext("t1", WorkerSetup(scratch_dir=tmp_path), sent.append, {})
    real = pipe.pipe.vae.decode
    calls = [0]

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == 1:  # what a too-large decode does on a GPU
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(*args, **kwargs)

    pipe.pipe.vae.decode = flaky
    try:
        frames, used = generate._decode(ctx, cache, pipe, latents, spec, policy, {})
    finally:
        pipe.pipe.vae.decode = real
        pipe.pipe.vae.disable_tiling()
        pipe.pipe.vae.disable_slicing()
    assert calls[0] == 2 and used.name == "vae_tiling"
    assert frames.shape == (9, 64, 64, 3) and np.abs(frames.astype(int) - expected.astype(int)).max() <= 2
    messages = [job_pb2.Progress.FromString(e.progress).message for e in sent]
    assert any("retrying with" in m for m in messages)


def test_model_cache_evicts_least_recently_used_and_reports_missing_weights(tiny_models: Any, tmp_path: Path) -> None:
    from services.kit.errors import ServiceError

    registry = tiny_models.registry
    policy = choose_policy("default", "bf16", estimated_bytes=0, free_bytes=None)
    probe = ModelCache(tiny_models.models_dir, "cpu", 1 << 40)
    wan = probe.get(registry.get("tiny-wan"), Task.TEXT_TO_VIDEO, policy).nbytes
    svd = probe.get(registry.get("tiny-svd"), Task.IMAGE_TO_VIDEO, policy).nbytes
    cache = ModelCache(tiny_models.models_dir, "cpu", max(wan, svd) + min(wan, svd) // 2)  # room for one
    cache.get(registry.get("tiny-wan"), Task.TEXT_TO_VIDEO, policy)
    cache.get(registry.get("tiny-svd"), Task.IMAGE_TO_VIDEO, policy)
    assert cache.loaded_ids() == {"tiny-svd"} and cache.used_bytes() <= cache.budget_bytes
    # A registry model whose weights are not here (offline, no download): a clear job error.
    offline = ModelCache(tmp_path, "cpu", 1 << 40, allow_download=False)
    with pytest.raises(ServiceError) as err:
        offline.get(registry.get("wan2.1-t2v-1.3b"), Task.TEXT_TO_VIDEO, policy)
    assert err.value.reason == "MODEL_UNAVAILABLE" and err.value.code.name == "FAILED_PRECONDITION"
    no_build = ModelCache(tmp_path, "cpu", 1 << 40, build_tiny=False)
    with pytest.raises(ServiceError) as err:
        no_build.get(registry.get("tiny-wan"), Task.TEXT_TO_VIDEO, policy)
    assert err.value.reason == "MODEL_UNAVAILABLE"


@pytest.mark.parametrize(("model", "task"), [("tiny-svd", Task.IMAGE_TO_VIDEO), ("tiny-modelscope", Task.TEXT_TO_VIDEO)])
def test_cancel_without_pipeline_interrupt(tiny_models: Any, model: str, task: Task) -> None:
    """SVD (callback_on_step_end, no interrupt flag) and ModelScope (legacy callback) stop too."""
    from tests.inference.helpers import png

    cache = ModelCache(tiny_models.models_dir, "cpu", 2 * GIB)
    policy = choose_policy("default", "bf16", estimated_bytes=0, free_bytes=None)
    loaded_pipe = cache.get(tiny_models.registry.get(model), task, policy)
    spec = _spec(model_id=model, task=task, steps=8, num_frames=4, prompt="" if model == "tiny-svd" else "a cat")
    seen: list[int] = []
    with pytest.raises(Interrupted):
        denoise(loaded_pipe, spec, image_png=png() if task is Task.IMAGE_TO_VIDEO else None,
                on_step=lambda s, n, lat: seen.append(s), should_stop=lambda: len(seen) >= 2)
    assert seen == [1, 2]


@pytest.mark.gpu
def test_cuda_policies_run_the_same_pipeline(tiny_models: Any) -> None:
    """On a CUDA machine: fp16 by default, then each stricter policy of the ladder still runs."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    registry = tiny_models.registry
    for name in ("default", "vae_tiling", "model_offload", "sequential_offload"):
        cache = ModelCache(tiny_models.models_dir, "cuda:0", 8 * GIB)
        policy = choose_policy(name, "fp16", estimated_bytes=0, free_bytes=None)
        pipe = cache.get(registry.get("tiny-wan"), Task.TEXT_TO_VIDEO, policy)
        latents = denoise(pipe, _spec(), image_png=None, on_step=lambda *a: None, should_stop=lambda: False)
        frames = decode_latents(pipe, latents, _spec(), policy, lambda f, n: None)
        assert frames.shape == (9, 64, 64, 3)
        cache.clear()


def test_a_failed_encode_names_no_host_path(tmp_path: Path) -> None:
    """Issue 21: ffmpeg's stderr quotes the output path; EncodeError (a job error) does not."""
    out = tmp_path / "secret-scratch" / "missing" / "out.mp4"  # its folder does not exist: ffmpeg fails
    frames = [np.zeros((32, 32, 3), np.uint8)] * 2
    with pytest.raises(EncodeError) as err:
        encode_mp4(iter(frames), out, width=32, height=32, fps=8, total=2)
    message = str(err.value)
    assert message.startswith("ffmpeg failed:") and "<path>" in message, message
    assert str(tmp_path) not in message and "secret-scratch" not in message, message


def test_wan_prompt_embeddings_are_cached_and_change_nothing(loaded: Any) -> None:
    """The negative prompt (the same for most jobs) and a repeated prompt are encoded once; the
    latents are bit-identical to the pipeline encoding the prompts itself."""
    import torch

    from services.inference.engine.diffusion import _fresh_scheduler

    _, entry, _ = loaded
    pipe = entry.pipe
    entry.prompt_embeds.clear()
    encodes: list[int] = []
    hook = pipe.text_encoder.register_forward_hook(lambda *a: encodes.append(1))

    def reference(spec: GenerationSpec) -> Any:  # the pipeline's own path: it encodes both prompts
        _fresh_scheduler(entry, spec)
        return pipe(prompt=spec.prompt, negative_prompt=spec.negative_prompt or None, height=spec.height,
                    width=spec.width, num_frames=spec.num_frames, num_inference_steps=spec.steps,
                    guidance_scale=spec.guidance_scale, output_type="latent",
                    generator=torch.Generator(device="cpu").manual_seed(spec.seed)).frames

    try:
        counts = []
        for spec in (_spec(prompt="a cat"), _spec(prompt="a dog", seed=5), _spec(prompt="a cat", seed=6),
                     _spec(prompt="a cat", negative_prompt="blurry", seed=7)):
            before = len(encodes)
            got = denoise(entry, spec, image_png=None, on_step=lambda *a: None, should_stop=lambda: False)
            counts.append(len(encodes) - before)
            assert torch.equal(got, reference(spec)), spec
        # a cat + "" ; a dog (negative kept) ; a cat again: nothing ; a new negative only
        assert counts == [2, 1, 0, 1]
        assert list(entry.prompt_embeds) == ["a dog", "", "a cat", "blurry"]  # least recently used first
    finally:
        hook.remove()
