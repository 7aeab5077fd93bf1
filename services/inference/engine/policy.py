"""Memory policies: how a pipeline is placed on a device, from fastest to most frugal.

The starting policy comes from config and the device's free memory; after an out-of-memory error
the generation work retries once with the next stricter policy of the ladder.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

__all__ = [
    "LADDER",
    "MemoryPolicy",
    "OutOfMemory",
    "apply_policy",
    "choose_policy",
    "is_oom",
    "next_policy",
    "torch_dtype",
]


class OutOfMemory(Exception):
    """Raised by code that detects on its own that a device is out of memory."""


def is_oom(exc: BaseException) -> bool:
    """Whether `exc` means the device ran out of memory (the ladder's cue for the next policy)."""
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError | OutOfMemory):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


@dataclass(frozen=True)
class MemoryPolicy:
    name: str
    dtype: str = "bf16"  # "fp32" | "bf16" | "fp16"
    offload: str = "none"  # "none" | "model" | "sequential"
    vae_slicing: bool = False
    vae_tiling: bool = False
    attention_slicing: bool = False
    # SVD: frames decoded at once (0 = the pipeline's default of num_frames).
    decode_chunk_size: int = 0

    @property
    def label(self) -> str:
        parts = [self.dtype]
        if self.offload != "none":
            parts.append(f"{self.offload}_offload")
        parts += [n for n, on in (("vae_slicing", self.vae_slicing), ("vae_tiling", self.vae_tiling),
                                  ("attention_slicing", self.attention_slicing)) if on]
        if self.decode_chunk_size:
            parts.append(f"decode_chunk_{self.decode_chunk_size}")
        return "+".join(parts)


# Each step trades speed for memory.
LADDER: tuple[MemoryPolicy, ...] = (
    MemoryPolicy("default"),
    MemoryPolicy("vae_tiling", vae_slicing=True, vae_tiling=True, decode_chunk_size=4),
    MemoryPolicy("model_offload", offload="model", vae_slicing=True, vae_tiling=True, attention_slicing=True,
                 decode_chunk_size=2),
    MemoryPolicy("sequential_offload", offload="sequential", vae_slicing=True, vae_tiling=True,
                 attention_slicing=True, decode_chunk_size=1),
)
_BY_NAME = {p.name: p for p in LADDER}


def choose_policy(name: str, dtype: str, *, estimated_bytes: int, free_bytes: int | None) -> MemoryPolicy:
    """``name`` "auto" picks by free device memory (None = CPU, where RAM is the limit)."""
    if name != "auto":
        return replace(_BY_NAME[name], dtype=dtype)
    if free_bytes is None or estimated_bytes <= 0 or estimated_bytes * 1.2 <= free_bytes:
        return replace(LADDER[0], dtype=dtype)
    if estimated_bytes <= free_bytes * 1.6:
        return replace(LADDER[1], dtype=dtype)
    if estimated_bytes <= free_bytes * 4:
        return replace(LADDER[2], dtype=dtype)
    return replace(LADDER[3], dtype=dtype)


def next_policy(policy: MemoryPolicy) -> MemoryPolicy | None:
    names = [p.name for p in LADDER]
    i = names.index(policy.name)
    return replace(LADDER[i + 1], dtype=policy.dtype) if i + 1 < len(LADDER) else None


def torch_dtype(name: str) -> Any:
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def apply_policy(pipe: Any, policy: MemoryPolicy, device: str) -> None:
    """Places ``pipe`` on ``device`` under ``policy`` (offload hooks need the device on CPU too)."""
    if policy.offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif policy.offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    else:
        pipe.to(device)
    vae = getattr(pipe, "vae", None)
    if vae is not None:
        for flag, on_name, off_name in ((policy.vae_slicing, "enable_slicing", "disable_slicing"),
                                        (policy.vae_tiling, "enable_tiling", "disable_tiling")):
            method = getattr(vae, on_name if flag else off_name, None)
            if callable(method):
                method()
    if policy.attention_slicing and hasattr(pipe, "enable_attention_slicing"):
        pipe.enable_attention_slicing()
