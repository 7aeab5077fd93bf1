"""LoRA training on a Wan transformer with diffusers + peft (worker side: imports torch).

Flow matching as Wan is trained: x_t = (1 - t) x0 + t noise, the transformer predicts
noise - x0 at timestep 1000 t. Latents and text embeddings are computed once up front with the
warm pipeline's VAE and text encoder (they stay frozen), then the training copy of the
transformer (LoRA on the attention projections) runs `steps` optimizer steps.

Precision (`weights_dtype`): "fp32" keeps the whole copy in fp32 (CPU's default: bf16 matmuls on
a CPU are emulated or slow, and the tiny tests compare fp32 losses); "bf16" is diffusers' mixed
precision LoRA recipe (train_dreambooth_lora_*: the frozen weights in bf16, the model's
`_keep_in_fp32_modules` — Wan's norms, time embedder, rope — in fp32, the LoRA parameters cast
back to fp32 with `cast_training_params`, so AdamW's updates and state stay fp32): half the frozen
weights' memory and bf16 tensor-core matmuls on a GPU. peft's LoRA layer runs its A/B in fp32 and
adds the result to the bf16 base output.

Every step draws its noise and timesteps from a generator seeded with (seed, step), so a run
resumed from a checkpoint (adapter + AdamW state) continues exactly as the uninterrupted run.
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from services.inference.worker.protocol import TrainingExample as Example
from services.kit.media_input import media_input

__all__ = ["LORA_TARGETS", "Example", "LoraTrainer", "decode_example"]

# Wan attention projections (self- and cross-attention).
LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
_CHECKPOINT_FORMAT = "viarte-lora-checkpoint-1"
_DTYPES = {"fp32": "float32", "bf16": "bfloat16"}
_NAMES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


def decode_example(example: Example, width: int, height: int, frames: int) -> np.ndarray:
    """(F, H, W, 3) uint8, scaled and centre-cropped to width x height (images: one frame)."""
    inp = media_input(example.content_type, "-")
    vf = f"scale={width}:{height}:force_original_aspect_ratio=increase,crop={width}:{height}"
    count = frames if example.is_video else 1
    out = subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", *inp.ffmpeg_args(), "-vf", vf, "-frames:v", str(count),
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        check=True, capture_output=True, input=example.data,
    ).stdout
    return np.frombuffer(out, dtype=np.uint8).reshape(-1, height, width, 3)[:count]


def _cast(model: Any, dtype: Any) -> Any:
    """`model` in `dtype`, except the parameters and buffers its class keeps in fp32 — matched by
    name as diffusers' from_pretrained does with `torch_dtype` (`k in name.split(".")`; Wan's list
    names modules such as norm1 and rope, and the parameter scale_shift_table). Those are never cast
    down and back, so they keep every fp32 bit."""
    import torch

    keep = getattr(model, "_keep_in_fp32_modules", None) or []
    with torch.no_grad():  # (the copy may come from a bf16 inference pipeline: fp32 is a cast too)
        for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
            if tensor.is_floating_point():
                kept = any(k in name.split(".") for k in keep)
                tensor.data = tensor.data.to(torch.float32 if kept else dtype)
    return model


class LoraTrainer:
    def __init__(self, pipe: Any, *, rank: int, alpha: float, learning_rate: float, seed: int,
                 batch_size: int, device: str, gradient_checkpointing: bool = False,
                 weights_dtype: str = "fp32") -> None:
        import torch
        from diffusers.training_utils import cast_training_params
        from peft import LoraConfig

        if weights_dtype not in _DTYPES:
            raise ValueError(f"weights_dtype {weights_dtype!r} is not one of {', '.join(_DTYPES)}")
        self.pipe, self.device, self.seed, self.batch_size = pipe, device, seed, batch_size
        self.dtype = getattr(torch, _DTYPES[weights_dtype])
        # A training copy: the warm pipeline (bf16/fp16, shared with generation) is untouched.
        self.transformer = _cast(copy.deepcopy(pipe.transformer).to(device=device), self.dtype)
        if getattr(self.transformer, "peft_config", None):
            # Adapters that generations loaded into the warm pipeline: train on the bare base weights.
            self.transformer.unload_lora()
        self.transformer.requires_grad_(False)
        if gradient_checkpointing:
            # Blocks keep only their inputs for backward and recompute the rest: activation memory
            # drops from every block's intermediates to one block's (figures: training/vram.py).
            self.transformer.enable_gradient_checkpointing()
        self.gradient_checkpointing = gradient_checkpointing
        # peft annotates lora_alpha as int; it only divides by it (scaling = alpha / r), so a float is fine.
        self.config = LoraConfig(r=rank, lora_alpha=alpha, init_lora_weights=True,
                                 target_modules=LORA_TARGETS)
        torch.manual_seed(seed)  # peft draws lora_A's init from the global generator
        self.transformer.add_adapter(self.config)
        # peft creates the LoRA weights in the base layer's dtype: trainable parameters in fp32.
        cast_training_params(self.transformer, dtype=torch.float32)
        self.transformer.eval()  # no dropout: a step depends only on (seed, step) and the state
        self.named = [(n, p) for n, p in self.transformer.named_parameters() if p.requires_grad]
        self.params = [p for _, p in self.named]
        self.optimizer = torch.optim.AdamW(self.params, lr=learning_rate, weight_decay=0.0)
        self.data: list[tuple[Any, Any]] = []

    # -- data -------------------------------------------------------------------------------------
    def prepare(self, videos: list[np.ndarray], captions: list[str]) -> None:
        """Latents and text embeddings of every example, once (frozen VAE and text encoder)."""
        import torch

        pipe, vae = self.pipe, self.pipe.vae
        mean = torch.tensor(vae.config.latents_mean).view(1, vae.config.z_dim, 1, 1, 1)
        std = torch.tensor(vae.config.latents_std).view(1, vae.config.z_dim, 1, 1, 1)
        with torch.no_grad():
            for frames, caption in zip(videos, captions, strict=True):
                x = torch.from_numpy(frames.copy()).float().div(127.5).sub(1.0)
                x = x.permute(3, 0, 1, 2).unsqueeze(0).to(self.device, vae.dtype)  # (1, C, F, H, W)
                latents = vae.encode(x).latent_dist.mode().float().cpu()
                latents = (latents - mean) / std
                emb = pipe.encode_prompt(caption, do_classifier_free_guidance=False, device=self.device)[0]
                # Latents stay fp32 (the noise and the target are built from them); the transformer's
                # input is cast to its weights' dtype at each step.
                self.data.append((latents.to(self.device), emb.to(self.device, self.dtype)))

    # -- steps ------------------------------------------------------------------------------------
    def step(self, step: int) -> tuple[float, float]:
        """One optimizer step (1-based); returns (loss, grad norm before clipping)."""
        import torch
        import torch.nn.functional as F

        gen = torch.Generator().manual_seed((self.seed * 1_000_003 + step) % 2**63)
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        if self.transformer.training:  # set once in __init__: eval() walks every module (~1 ms a step)
            self.transformer.eval()  # no dropout: a step depends only on (seed, step) and the state
        for j in range(self.batch_size):
            x0, emb = self.data[((step - 1) * self.batch_size + j) % len(self.data)]
            noise = torch.randn(x0.shape, generator=gen).to(self.device)
            t = torch.rand((1,), generator=gen).to(self.device)
            xt = ((1.0 - t) * x0 + t * noise).to(self.dtype)
            pred = self.transformer(hidden_states=xt, timestep=t * 1000.0, encoder_hidden_states=emb,
                                    return_dict=False)[0]
            loss = F.mse_loss(pred.float(), (noise - x0).float()) / self.batch_size
            loss.backward()
            total += float(loss.detach())
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, max_norm=1.0))
        self.optimizer.step()
        return total, grad_norm

    @property
    def weights_dtype(self) -> str:
        """The frozen projection weights' dtype as the copy holds it ("fp32", "bf16")."""
        weight = next(p for n, p in self.transformer.named_parameters() if n.endswith("base_layer.weight"))
        return _NAMES[str(weight.dtype).removeprefix("torch.")]

    @property
    def learning_rate(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    # -- state ------------------------------------------------------------------------------------
    def save_checkpoint(self, path: Path, step: int, loss: float) -> None:
        """Adapter + AdamW state in one safetensors file."""
        from safetensors.torch import save_file

        tensors: dict[str, Any] = {f"adapter.{n}": p.detach().cpu().contiguous() for n, p in self.named}
        for i, p in enumerate(self.params):
            for key, value in self.optimizer.state.get(p, {}).items():
                tensors[f"optim.{i}.{key}"] = value.detach().cpu().contiguous().reshape(value.shape)
        meta = {"format": _CHECKPOINT_FORMAT, "step": str(step), "loss": repr(loss),
                "param_groups": json.dumps(self.optimizer.state_dict()["param_groups"])}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_file(tensors, str(tmp), metadata=meta)
        tmp.replace(path)

    def load_checkpoint(self, path: Path) -> int:
        """Restores adapter and optimizer state; returns the checkpoint's step."""
        import torch
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata()
            if meta.get("format") != _CHECKPOINT_FORMAT:
                raise ValueError("not a training checkpoint")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        with torch.no_grad():
            for n, p in self.named:
                p.copy_(tensors[f"adapter.{n}"])
        state: dict[int, dict[str, Any]] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, index, name = key.split(".", 2)
                state.setdefault(int(index), {})[name] = value.to(self.device)
        self.optimizer.load_state_dict({"state": state, "param_groups": json.loads(meta["param_groups"])})
        return int(meta["step"])

    def save_lora(self, folder: Path) -> Path:
        """The adapter as a diffusers LoRA file (loads with `pipe.load_lora_weights`)."""
        from diffusers import WanPipeline
        from peft.utils import get_peft_model_state_dict

        layers = {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(self.transformer).items()}
        meta = {"r": self.config.r, "lora_alpha": self.config.lora_alpha, "target_modules": LORA_TARGETS}
        folder.mkdir(parents=True, exist_ok=True)
        WanPipeline.save_lora_weights(folder, transformer_lora_layers=layers, transformer_lora_adapter_metadata=meta)
        return folder / "pytorch_lora_weights.safetensors"
