"""What does the studio cost a LoRA training step? Same tiny model (tiny-wan), image, seed and
parameters:

  - bare: a diffusers + peft loop (WanPipeline's VAE/text encoder encode the example once, an fp32
          copy of its transformer gets a peft LoRA on the attention projections, AdamW,
          flow-matching loss), reading the loss and grad norm as Python floats like the job does,
          with nothing reported. It runs in its own process started like a device worker (spawned,
          the worker's OMP_WAIT_POLICY set before torch loads, the worker's torch thread count), so
          both sides run the same threads under the same OpenMP settings;
  - job:  CreateTrainingJob + WatchTrainingJob over real loopback servers (auth, storage with
          SeaweedFS, inference with its device worker): per-step events with loss, learning
          rate, grad norm and ETA, checkpoints off. Per-step time = the gap between consecutive
          step events' worker timestamps.

The two alternate in --rounds rounds of --steps steps each (bare, job, bare, job, ...; the servers
and the bare process stay up), so a machine whose load drifts weighs on both alike. Printed: each
round's median, the pooled median per-step time of each and the job/bare ratio (goal <= 1.05), the
load average before and after, and the cost of building + serialising one step's metrics event in
the worker (the streaming cost per step).

With --gradient-checkpointing both sides recompute activations in backward (the job through
TrainingParameters.gradient_checkpointing). --event-batch-seconds sets the worker's event batching
(0 = one pipe write and one server wake per step event, the behaviour before it existed).

    .venv/bin/python bench/training_overhead.py [--steps 30] [--rounds 3] [--size 64] [--rank 16]
                                                [--worker-threads N] [--gradient-checkpointing]
                                                [--event-batch-seconds S]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import itertools

from bench.inference_overhead import _register
from tests.inference.helpers import png
from viarte.training.v1 import training_pb2 as T
from viarte.training.v1 import training_pb2_grpc
from viarte.type.v1 import job_pb2

MODEL = "tiny-wan"
CAPTION = "vrt a red square"


def bare_process(conn: Any, models_dir: Path, args: argparse.Namespace) -> None:
    """The bare loop's process: set up like a device worker, then `args.steps` timed steps per
    request (after one warm-up step), until told to stop."""
    from services.inference.worker.config import WorkerConfig
    from services.inference.worker.process import openmp_env, resolve_setup
    from services.inference.worker.protocol import WorkerSetup

    setup = WorkerSetup(config=WorkerConfig(worker_threads=args.worker_threads), device="cpu")
    os.environ.update(openmp_env(setup))  # before torch loads, as worker_main does
    setup = resolve_setup(setup)
    import torch
    import torch.nn.functional as F
    from diffusers import WanPipeline
    from peft import LoraConfig

    from services.inference.training.trainer import LORA_TARGETS, decode_example
    from services.inference.worker.protocol import TrainingExample

    torch.set_num_threads(setup.config.worker_threads)
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
    if args.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    conn.send(setup.config.worker_threads)
    step = 0
    while conn.recv():
        times = []
        for i in range(args.steps + 1):
            t0 = time.perf_counter()
            gen = torch.Generator().manual_seed(step)
            step += 1
            noise, t = torch.randn(x0.shape, generator=gen), torch.rand((1,), generator=gen)
            opt.zero_grad(set_to_none=True)
            pred = model(hidden_states=(1 - t) * x0 + t * noise, timestep=t * 1000, encoder_hidden_states=emb,
                         return_dict=False)[0]
            loss = F.mse_loss(pred.float(), noise - x0)
            loss.backward()
            # The numbers each job step reports (on a GPU these are the synchronisations it pays).
            float(loss.detach()), float(torch.nn.utils.clip_grad_norm_(params, 1.0))
            opt.step()
            if i:
                times.append(time.perf_counter() - t0)
        conn.send(times)


def emit_cost_us(rounds: int = 20000) -> float:
    """Building and serialising one step event (what the worker adds per step besides the pipe)."""
    t0 = time.perf_counter()
    for i in range(rounds):
        p = job_pb2.Progress(stage=job_pb2.STAGE_TRAINING, step=i, total_steps=rounds, fraction=0.5,
                             metrics={"loss": 1.0, "learning_rate": 1e-4, "grad_norm": 0.5})
        p.eta.FromNanoseconds(i * 1000)
        p.SerializeToString()
    return (time.perf_counter() - t0) / rounds * 1e6


async def run(args: argparse.Namespace, models_dir: Path) -> None:
    from tests.fixtures.auth import running_auth, test_auth_config
    from tests.fixtures.inference import running_inference, test_inference_config
    from tests.fixtures.storage import running_s3, running_storage, test_storage_config

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    bare_proc = ctx.Process(target=bare_process, args=(child, models_dir, args), daemon=True)
    bare_proc.start()
    threads = parent.recv()
    load0 = os.getloadavg()
    bare: list[list[float]] = []
    job: list[list[float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        base = Path(tmp)
        async with AsyncExitStack() as stack:
            auth = await stack.enter_async_context(running_auth(test_auth_config(str(base / "auth"))))
            s3 = await stack.enter_async_context(running_s3(base / "s3"))
            storage = await stack.enter_async_context(
                running_storage(test_storage_config(base / "storage", s3, auth), s3))
            extra = {} if args.event_batch_seconds is None else {"event_batch_seconds": args.event_batch_seconds}
            inference = await stack.enter_async_context(running_inference(test_inference_config(
                base / "inference", auth, storage, models=(MODEL,), worker_threads=args.worker_threads, **extra)))
            user = await _register(auth.address)
            image = await storage.upload(user, png(args.size, args.size), "still.png", "image/png")
            stub = training_pb2_grpc.TrainingServiceStub(inference.channel)
            for _ in range(args.rounds):
                parent.send(True)
                bare.append(await asyncio.to_thread(parent.recv))
                job.append(await job_steps(args, stub, user, image))
    parent.send(False)
    bare_proc.join(10)
    load1 = os.getloadavg()
    print(f"model {MODEL} {args.size}x{args.size}, 1 frame, rank {args.rank}, {args.rounds} rounds of {args.steps} "
          f"steps (CPU, {threads} torch threads on both sides, gradient checkpointing "
          f"{'on' if args.gradient_checkpointing else 'off'}, event batching "
          f"{'default' if args.event_batch_seconds is None else f'{args.event_batch_seconds} s'})")
    print(f"load average before {load0[0]:.1f}, after {load1[0]:.1f} (1 min)")
    for i, (b, j) in enumerate(zip(bare, job, strict=True)):
        print(f"  round {i + 1}: bare {statistics.median(b) * 1e3:.1f} ms, job {statistics.median(j) * 1e3:.1f} ms")
    b_all, j_all = [t for r in bare for t in r], [t for r in job for t in r]
    b, j = statistics.median(b_all), statistics.median(j_all)
    print(f"per-step median: bare {b * 1e3:.1f} ms, job {j * 1e3:.1f} ms, ratio job/bare {j / b:.3f} (goal <= 1.05)")
    print(f"per-step min:    bare {min(b_all) * 1e3:.1f} ms, job {min(j_all) * 1e3:.1f} ms, "
          f"ratio {min(j_all) / min(b_all):.3f}")
    cost = emit_cost_us()
    print(f"streaming one step's metrics event: {cost:.1f} us to build + serialise ({cost / (b * 1e6) * 100:.3f}% of a step)")


async def job_steps(args: argparse.Namespace, stub: Any, user: Any, image: str) -> list[float]:
    """Gaps between consecutive step events' worker timestamps of one training job."""
    params = T.TrainingParameters(base_model=MODEL, rank=args.rank, alpha=args.rank, learning_rate=1e-4,
                                  steps=args.steps + 1, width=args.size, height=args.size, seed=3,
                                  gradient_checkpointing=args.gradient_checkpointing)
    params.dataset.examples.add(asset_id=image, caption=CAPTION)
    job = (await stub.CreateTrainingJob(T.CreateTrainingJobRequest(parameters=params), metadata=user.metadata)).job
    stamps = []
    async for message in stub.WatchTrainingJob(T.WatchTrainingJobRequest(id=job.id), metadata=user.metadata):
        ev = message.event
        if message.HasField("event") and "grad_norm" in ev.progress.metrics:
            stamps.append(ev.time.ToMicroseconds() / 1e6)
    return [b - a for a, b in itertools.pairwise(stamps)]


def main(args: argparse.Namespace) -> None:
    from services.inference.models.registry import load_registry
    from services.inference.models.tiny import build_tiny_models
    from tests.fixtures.inference import TINY_MODELS_DIR

    build_tiny_models(load_registry(), TINY_MODELS_DIR)
    asyncio.run(run(args, TINY_MODELS_DIR))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--worker-threads", type=int, default=0, help="torch threads (0 = the worker default)")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--event-batch-seconds", type=float, default=None,
                        help="the worker's event batching (default: the config default)")
    main(parser.parse_args())
