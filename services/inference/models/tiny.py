# mypy: disable-error-code="no-untyped-call"
"""Tiny random-weight versions of each model family, built from configs with the real classes.

They are saved with `save_pretrained` and loaded back through the normal `from_pretrained` path,
so tests exercise the same code as real weights. Building is idempotent (a marker file per model).
Imports torch: call only from worker processes, tests and tools.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock

from services.inference.models.registry import ModelRegistry, ModelSpec

__all__ = ["BUILDERS", "build_tiny_model", "build_tiny_models"]

_MARKER = "viarte_tiny.json"
_BUILD_VERSION = 1


def _clip_tokenizer(max_length: int = 16) -> tuple[Any, int]:
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    # Byte-level vocabulary without merges: every prompt tokenises, one token per character.
    chars = list(bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=max_length), len(vocab)


def _t5_like_tokenizer(max_length: int = 32) -> tuple[Any, int]:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = "a an the cat dog bird runs walks flies on in over beach city forest night day red blue".split()
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=max_length
    )
    return fast, 64


def _modelscope() -> Any:
    from diffusers import AutoencoderKL, DDIMScheduler, TextToVideoSDPipeline, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer, vocab_size = _clip_tokenizer()
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=vocab_size, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=16,
            bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1,
        )
    )
    unet = UNet3DConditionModel(
        block_out_channels=(16, 32), layers_per_block=1, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        cross_attention_dim=32, attention_head_dim=4, norm_num_groups=8,
    )
    vae = AutoencoderKL(
        block_out_channels=[16, 32], in_channels=3, out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
        latent_channels=4, norm_num_groups=8, sample_size=64,
    )
    scheduler = DDIMScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False, set_alpha_to_one=False
    )
    return TextToVideoSDPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler)


def _wan() -> Any:
    # Wan 2.2 TI2V layout: one transformer serves text- and image-to-video (expand_timesteps),
    # residual VAE with patch size 2 and 16x spatial compression, like Wan2.2-TI2V-5B.
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    tokenizer, vocab_size = _t5_like_tokenizer()
    text_encoder = UMT5EncoderModel(
        UMT5Config(vocab_size=vocab_size, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                   relative_attention_num_buckets=8)
    )
    vae = AutoencoderKLWan(
        base_dim=3, z_dim=48, in_channels=12, out_channels=12, is_residual=True, patch_size=2,
        latents_mean=[0.0] * 48, latents_std=[1.0] * 48, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
        scale_factor_spatial=16, scale_factor_temporal=4, temperal_downsample=[False, True, True],
    )
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=48, out_channels=48,
        text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", rope_max_seq_len=32,
    )
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0)
    return WanPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, scheduler=scheduler, transformer=transformer,
        expand_timesteps=True,
    )


def _svd() -> Any:
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        StableVideoDiffusionPipeline,
        UNetSpatioTemporalConditionModel,
    )
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    # The pipeline resizes the conditioning image to 224 itself, so the encoder must use 224.
    image_encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(hidden_size=32, projection_dim=32, num_hidden_layers=2, num_attention_heads=4,
                         image_size=224, intermediate_size=37, patch_size=32)
    )
    feature_extractor = CLIPImageProcessor(crop_size=224, size={"shortest_edge": 224})
    unet = UNetSpatioTemporalConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=32, in_channels=8, out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        cross_attention_dim=32, num_attention_heads=(2, 4), addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=24, num_frames=8,
    )
    vae = AutoencoderKLTemporalDecoder(
        block_out_channels=[32, 64], in_channels=3, out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 2, latent_channels=4, layers_per_block=1,
    )
    scheduler = EulerDiscreteScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, interpolation_type="linear",
        num_train_timesteps=1000, prediction_type="v_prediction", sigma_max=700.0, sigma_min=0.002,
        steps_offset=1, timestep_spacing="leading", timestep_type="continuous", use_karras_sigmas=True,
    )
    return StableVideoDiffusionPipeline(
        vae=vae, image_encoder=image_encoder, unet=unet, scheduler=scheduler, feature_extractor=feature_extractor
    )


BUILDERS: dict[str, Callable[[], Any]] = {"modelscope": _modelscope, "wan": _wan, "svd": _svd}


def build_tiny_model(spec: ModelSpec, models_dir: Path, *, seed: int = 0) -> Path:
    """Builds `spec`'s tiny model into its local path unless it is already there.

    Safe across processes that share `models_dir` (the workers of two replicas, a test session beside
    a running mesh): the build runs under a lock file, so the first process builds while the others
    wait and then find it built. Two builders once shared the temporary folder, each removing what
    the other was writing: a generation failed INTERNAL with FileNotFoundError."""
    target = Path(spec.resolve_path(models_dir))
    if _built(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(target.with_name(f".{target.name}.lock")):
        if _built(target):  # the process that held the lock built it
            return target
        import torch

        torch.manual_seed(seed)  # same seed → same random weights on every machine
        pipe = BUILDERS[spec.tiny_builder]()
        tmp = target.with_name(target.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)  # left by a builder that died (the lock is ours)
        pipe.save_pretrained(tmp)
        (tmp / _MARKER).write_text(json.dumps({"version": _BUILD_VERSION, "builder": spec.tiny_builder}))
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)  # atomic: a half-written model is never picked up
    return target


def _built(target: Path) -> bool:
    try:
        return bool(json.loads((target / _MARKER).read_text()).get("version") == _BUILD_VERSION)
    except (OSError, ValueError):  # not built, or being replaced by a newer build version
        return False


def build_tiny_models(registry: ModelRegistry, models_dir: Path) -> dict[str, Path]:
    models_dir.mkdir(parents=True, exist_ok=True)
    return {spec.id: build_tiny_model(spec, models_dir) for spec in registry if spec.tiny}


if __name__ == "__main__":  # python -m services.inference.models.tiny [models_dir]
    import sys

    from services.inference.models.registry import load_registry

    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".cache/models")
    for model_id, path in build_tiny_models(load_registry(), out).items():
        print(model_id, path)
