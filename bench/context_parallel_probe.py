"""Can diffusers' context parallelism split our Wan transformer over more than 2 devices here?

Issue 15's ``devices`` today is CFG-parallel (services/inference/worker/cfg_parallel.py): the
conditional and unconditional passes on two devices, so 2 is the most by construction. Going past
2 means splitting each pass's sequence (diffusers ``enable_parallelism`` + ``ContextParallelConfig``)
across a torch.distributed group. This probe runs the tiny Wan transformer (tests' tiny-wan
layout: 2 heads, 2 layers) in N spawned CPU processes over gloo and compares one forward pass
with the one-process output. Usage: ``.venv/bin/python bench/context_parallel_probe.py ulysses:2 ring:2``.

Found (diffusers 0.42.1, torch 2.13 CPU): ``enable_parallelism`` needs an accelerator
(``rank % torch.accelerator.device_count()``: ZeroDivisionError on CPU; patched below for the probe
only); Ulysses degree 2 is bit-identical to one process (max abs diff 0.0); ring attention with the
native (CPU) backend refuses (``return_lse`` unsupported: only flash/cuDNN/sage return it, GPU only),
and a rank that fails leaves the others waiting in a collective (a real design needs the group's
timeout). Ulysses' degree must divide the heads (tiny: 2; Wan 2.2 5B: 24, 14B: 40).
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def build() -> Any:
    from diffusers import WanTransformer3DModel

    torch.manual_seed(0)
    return WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=48, out_channels=48,
        text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", rope_max_seq_len=32).eval()


def inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(1, 48, 2, 8, 8, generator=g), torch.tensor([500.0]), torch.randn(1, 16, 32, generator=g)


def worker(rank: int, world: int, kind: str, port: int, q: Any) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.accelerator.device_count = lambda: 1  # type: ignore[assignment]  # probe only (see above)
    from diffusers import ContextParallelConfig

    model = build()
    try:
        model.enable_parallelism(config=ContextParallelConfig(ring_degree=world) if kind == "ring"
                                 else ContextParallelConfig(ulysses_degree=world))
        x, t, enc = inputs()
        with torch.no_grad():
            out = model(hidden_states=x, timestep=t, encoder_hidden_states=enc, return_dict=False)[0]
        if rank == 0:
            q.put(("ok", out))
    except Exception:
        if rank == 0:
            q.put(("error", traceback.format_exc()[-600:]))
    dist.destroy_process_group()


def main() -> None:
    torch.set_num_threads(1)
    x, t, enc = inputs()
    with torch.no_grad():
        ref = build()(hidden_states=x, timestep=t, encoder_hidden_states=enc, return_dict=False)[0]
    for i, arg in enumerate(sys.argv[1:] or ["ulysses:2"]):
        kind, world = arg.split(":")[0], int(arg.split(":")[1])
        ctx = mp.get_context("spawn")
        q = ctx.Queue()
        procs = [ctx.Process(target=worker, args=(r, world, kind, 29600 + i, q)) for r in range(world)]
        for p in procs:
            p.start()
        status, value = q.get(timeout=300)
        for p in procs:
            p.join(5)
            if p.is_alive():  # a rank left waiting in a collective by a failed one
                p.kill()
        if status == "ok":
            print(f"{kind} x{world}: max abs diff vs one process {(value - ref).abs().max().item():.3g}")
        else:
            print(f"{kind} x{world}: failed\n{value}")


if __name__ == "__main__":
    main()
