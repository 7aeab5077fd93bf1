"""What does the studio cost a LoRA training step? Same tiny model (tiny-wan), image, seed and
parameters:

  - bare: a diffusers + peft loop in this process (WanPipeline's VAE/text encoder encode the
          example once, an fp32 copy of its transformer gets a peft LoRA on the attention
          projections, AdamW, flow-matching loss) with nothing reported;
  - job:  CreateTrainingJob + WatchTrainingJob over real loopback servers (auth, storage with
          SeaweedFS, inference with its device worker): per-step events with loss, learning
          rate, grad norm and ETA, checkpoints off. Per-step time = the median gap between
          consecutive step events' worker timestamps.

Printed: median per-step time of each and the job/bare ratio (goal <= 1.05), and the cost of
building + serialising one step's metrics event in the worker (the streaming cost per step).

With --gradient-checkpointing both sides recompute activations in backward (the job through
TrainingParameters.gradient_checkpointing), and the bare loop's time per step with/without it is
printed too (what checkpointing costs in time; bench/training_vram.py says what it saves in memory).

    .venv/bin/python bench/training_overhead.py [--steps 40] [--size 64] [--rank 16] [--worker-threads N]
                                                [--gradient-checkpointing]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import os
import statistics
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import itertools

from bench.inference_overhead import _register
from tests.inference.helpers import png
from viarte.training.v1 import training_pb2 as T
from viarte.training.v1 import training_pb2_grpc
from viarte.type.v1 import job_pb2

MODEL = "tiny-wan"
CAPTION = "vrt a red square"


def bare_steps(models_dir: Path, args: argparse.Namespace, threads: int, checkpointing: bool = False) -> list[float]:
    """Seconds per step of the plain loop (after one warm-up step)."""
    import torch
    import torch.nn.functional as F
    from diffusers import WanPipeline
    from peft import LoraConfig

    from services.inference.training.trainer import LORA_TARGETS, decode_example
    from services.inference.worker.protocol import TrainingExample

    torch.set_num_threads(threads)
    pipe = WanPipeline.from_pretrained(str(models_dir / MODEL), torch_dtype=torch.bfloat16)
    frames = decode_example(TrainingExample(png(args.size, args.size), "image/png", False, CAPTION),
                            args.size, args.size, 1)
    vae = pipe.vae
    with torch.no_grad():
        x = torch.from_numpy(frames.copy()).float().div(127.5).sub(1.0).permute(3, 0, 1, 2)[None]
        mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)
        std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)
        x0 = (vae.encode(x.to(vae.dtype)).latent_dist.mode().float() - mean) / std
        emb = pipe.encode_prompt(CAPTION, do_classifier_free_guidance=False, device="cpu")[0].float()
    model = copy.deepcopy(pipe.transformer).float()
    model.requires_grad_(False)
    torch.manual_seed(3)
    model.add_adapter(LoraConfig(r=args.rank, lora_alpha=args.rank, target_modules=LORA_TARGETS))
    if checkpointing:
        model.enable_gradient_checkpointing()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    times = []
    for step in range(args.steps + 1):
        t0 = time.perf_counter()
        gen = torch.Generator().manual_seed(step)
        noise, t = torch.randn(x0.shape, generator=gen), torch.rand((1,), generator=gen)
        opt.zero_grad(set_to_none=True)
        pred = model(hidden_states=(1 - t) * x0 + t * noise, timestep=t * 1000, encoder_hidden_states=emb,
                     return_dict=False)[0]
        F.mse_loss(pred.float(), noise - x0).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step:
            times.append(time.perf_counter() - t0)
    return times


def emit_cost_us(rounds: int = 20000) -> float:
    """Building and serialising one step event (what the worker adds per step besides the pipe)."""
    t0 = time.perf_counter()
    for i in range(rounds):
        p = job_pb2.Progress(stage=job_pb2.STAGE_TRAINING, step=i, total_steps=rounds, fraction=0.5,
                             metrics={"loss": 1.0, "learning_rate": 1e-4, "grad_norm": 0.5})
        p.eta.FromNanoseconds(i * 1000)
        p.SerializeToString()
    return (time.perf_counter() - t0) / rounds * 1e6


async def job_steps(args: argparse.Namespace) -> tuple[list[float], int]:
    from tests.fixtures.auth import running_auth, test_auth_config
    from tests.fixtures.inference import running_inference, test_inference_config
    from tests.fixtures.storage import running_s3, running_storage, test_storage_config

    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        base = Path(tmp)
        async with AsyncExitStack() as stack:
            auth = await stack.enter_async_context(running_auth(test_auth_config(str(base / "auth"))))
            s3 = await stack.enter_async_context(running_s3(base / "s3"))
            storage = await stack.enter_async_context(
                running_storage(test_storage_config(base / "storage", s3, auth), s3))
            inference = await stack.enter_async_context(running_inference(test_inference_config(
                base / "inference", auth, storage, models=(MODEL,), worker_threads=args.worker_threads)))
            user = await _register(auth.address)
            image = await storage.upload(user, png(args.size, args.size), "still.png", "image/png")
            params = T.TrainingParameters(base_model=MODEL, rank=args.rank, alpha=args.rank, learning_rate=1e-4,
                                          steps=args.steps + 1, width=args.size, height=args.size, seed=3,
                                          gradient_checkpointing=args.gradient_checkpointing)
            params.dataset.examples.add(asset_id=image, caption=CAPTION)
            stub = training_pb2_grpc.TrainingServiceStub(inference.channel)
            job = (await stub.CreateTrainingJob(T.CreateTrainingJobRequest(parameters=params),
                                                metadata=user.metadata)).job
            stamps = []
            async for message in stub.WatchTrainingJob(T.WatchTrainingJobRequest(id=job.id), metadata=user.metadata):
                ev = message.event
                if message.HasField("event") and "grad_norm" in ev.progress.metrics:
                    stamps.append(ev.time.ToMicroseconds() / 1e6)
            pid = inference.parts.pool.workers[0].pid
    return [b - a for a, b in itertools.pairwise(stamps)], pid


def main(args: argparse.Namespace) -> None:
    from services.inference.models.registry import load_registry
    from services.inference.models.tiny import build_tiny_models
    from tests.fixtures.inference import TINY_MODELS_DIR

    build_tiny_models(load_registry(), TINY_MODELS_DIR)
    threads = args.worker_threads or max(1, (os.cpu_count() or 2) - 1)  # the worker's default
    job, _ = asyncio.run(job_steps(args))
    bare = bare_steps(TINY_MODELS_DIR, args, threads, args.gradient_checkpointing)
    b, j = statistics.median(bare), statistics.median(job)
    print(f"model {MODEL} {args.size}x{args.size}, 1 frame, rank {args.rank}, {args.steps} steps "
          f"(CPU, {threads} torch threads on both sides, gradient checkpointing "
          f"{'on' if args.gradient_checkpointing else 'off'})")
    if args.gradient_checkpointing:
        plain = statistics.median(bare_steps(TINY_MODELS_DIR, args, threads, False))
        print(f"bare loop per step: {b * 1e3:.1f} ms with gradient checkpointing, {plain * 1e3:.1f} ms without "
              f"(ratio {b / plain:.3f})")
    print(f"per-step median: bare {b * 1e3:.1f} ms, job {j * 1e3:.1f} ms, ratio job/bare {j / b:.3f} (goal <= 1.05)")
    print(f"per-step min:    bare {min(bare) * 1e3:.1f} ms, job {min(job) * 1e3:.1f} ms, ratio {min(job) / min(bare):.3f}")
    print(f"streaming one step's metrics event: {emit_cost_us():.1f} us to build + serialise "
          f"({emit_cost_us() / (b * 1e6) * 100:.3f}% of a step)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--worker-threads", type=int, default=0, help="torch threads (0 = the worker default)")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    main(parser.parse_args())
