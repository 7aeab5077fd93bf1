"""Training memory per model (the registry's `training:` figures): what a LoRA training step keeps
for the backward pass, with and without gradient checkpointing, measured on the real transformer
architectures (random weights: memory depends on shapes, not values) on CPU.

Method: a `WanTransformer3DModel` of the model's real config with 1 and 2 blocks (the difference
is one block; the rest is the embedders and the output head), fp32 with the trainer's LoRA (rank
16 on to_q/to_k/to_v/to_out.0), one forward under `saved_tensors_hooks` summing the distinct
storages autograd keeps (parameters excluded), at two token counts (activations are linear in
tokens with flash/memory-efficient attention). Extrapolated to `layers` blocks and the model's
default width x height x frames:
  without checkpointing: rest + layers x block + one block (the gradients in flight in backward)
  with checkpointing:    the block inputs kept + two blocks (one recomputed, its gradients)
Parameters are counted on the meta device (no memory).

    .venv/bin/python bench/training_vram.py [--model wan2.1-t2v-1.3b] [--write]
--write prints the YAML `training:` block to paste into models/registry.yaml.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

COMMON: dict[str, Any] = dict(patch_size=(1, 2, 2), attention_head_dim=128, text_dim=4096, freq_dim=256,
                              cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024)
# The transformers of the registry's Wan models (their diffusers configs) and their VAEs' compression.
CONFIGS: dict[str, tuple[dict[str, Any], int]] = {
    "wan2.1-t2v-1.3b": (dict(num_attention_heads=12, in_channels=16, out_channels=16, ffn_dim=8960, num_layers=30), 8),
    "wan2.2-ti2v-5b": (dict(num_attention_heads=24, in_channels=48, out_channels=48, ffn_dim=14336, num_layers=30), 16),
    "tiny-wan": (dict(num_attention_heads=2, attention_head_dim=12, in_channels=48, out_channels=48, text_dim=32,
                      ffn_dim=32, num_layers=2, rope_max_seq_len=32), 16),
}
TEXT_TOKENS = 512  # Wan pads prompts to 512 tokens


def _model(config: dict[str, Any], layers: int, device: str = "cpu") -> Any:
    import torch
    from diffusers import WanTransformer3DModel

    with torch.device(device):
        return WanTransformer3DModel(**{**COMMON, **config, "num_layers": layers})


def saved_bytes(config: dict[str, Any], layers: int, grid: tuple[int, int, int], checkpointing: bool) -> int:
    """Bytes autograd keeps after one forward at a latent grid (frames, height, width)."""
    import torch
    from peft import LoraConfig

    from services.inference.training.trainer import LORA_TARGETS

    torch.manual_seed(0)
    model = _model(config, layers).float()
    model.requires_grad_(False)
    model.add_adapter(LoraConfig(r=16, lora_alpha=16, target_modules=LORA_TARGETS))
    if checkpointing:
        model.enable_gradient_checkpointing()
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept: dict[int, int] = {}

    def pack(t: Any) -> Any:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            kept[storage.data_ptr()] = max(kept.get(storage.data_ptr(), 0), storage.nbytes())
        return t

    f, h, w = grid
    x = torch.randn(1, config["in_channels"], f, h * 2, w * 2)
    text = torch.randn(1, TEXT_TOKENS, config.get("text_dim", COMMON["text_dim"]))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(hidden_states=x, timestep=torch.tensor([500.0]), encoder_hidden_states=text, return_dict=False)[0]
    del out
    return sum(kept.values())


def transformer_params(config: dict[str, Any]) -> int:
    return sum(p.numel() for p in _model(config, config["num_layers"], "meta").parameters())


def footprint(model_id: str, width: int, height: int, frames: int) -> dict[str, Any]:
    config, spatial = CONFIGS[model_id]
    config = {**COMMON, **config}
    layers = config["num_layers"]
    side = spatial * 2
    tokens = ((frames - 1) // 4 + 1) * (height // side) * (width // side)
    grids = [(1, 16, 16), (1, 16, 32)]  # 256 and 512 tokens
    fits = {}
    for ckpt in (False, True):
        one = [saved_bytes(config, 1, g, ckpt) for g in grids]
        two = [saved_bytes(config, 2, g, ckpt) for g in grids]
        at = []
        for (f, h, w), a, b in zip(grids, one, two, strict=True):
            block = b - a
            rest = a - block
            at.append((f * h * w, rest, block))
        (t0, r0, b0), (t1, r1, b1) = at
        # Linear in tokens: extrapolate rest and block to the target token count.
        rest = r0 + (r1 - r0) * (tokens - t0) / (t1 - t0)
        block = b0 + (b1 - b0) * (tokens - t0) / (t1 - t0)
        fits[ckpt] = (rest, block)
    rest, block = fits[False]
    full = rest + layers * block + block
    ckpt_rest, ckpt_block = fits[True]
    checkpointed = ckpt_rest + layers * ckpt_block + 2 * block
    return {
        "transformer_params": transformer_params(config), "dim": config["num_attention_heads"] *
        config["attention_head_dim"], "layers": layers, "spatial_compression": spatial, "temporal_compression": 4,
        "patch": 2, "activation_bytes_per_token": round(full / tokens, 1),
        "checkpointed_bytes_per_token": round(checkpointed / tokens, 1), "_tokens": tokens,
        "_full_gib": full / 2**30, "_checkpointed_gib": checkpointed / 2**30,
    }


def main(args: argparse.Namespace) -> None:
    import torch

    from services.inference.models.registry import load_registry

    torch.set_num_threads(args.threads)
    registry = load_registry()
    for model_id in args.model or [m for m in CONFIGS if m != "tiny-wan"] + ["tiny-wan"]:
        lim = registry.get(model_id).limits  # type: ignore[union-attr]
        fp = footprint(model_id, lim.default_width, lim.default_height, lim.default_frames)
        print(f"{model_id} at {lim.default_width}x{lim.default_height}x{lim.default_frames} ({fp['_tokens']} tokens):"
              f" activations {fp['_full_gib']:.2f} GiB, with gradient checkpointing {fp['_checkpointed_gib']:.2f} GiB;"
              f" transformer {fp['transformer_params'] / 1e9:.3f} B parameters")
        if args.write:
            print("    training:")
            for key, value in fp.items():
                if not key.startswith("_"):
                    print(f"      {key}: {value}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", choices=sorted(CONFIGS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--write", action="store_true")
    main(parser.parse_args())
