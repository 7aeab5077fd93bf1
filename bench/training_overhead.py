"""What does the studio cost a LoRA training step? Same tiny model (tiny-wan), image, seed and
parameters:

  - bare:  a diffusers + peft loop (WanPipeline's VAE/text encoder encode the example once, an fp32
           copy of its transformer gets a peft LoRA on the attention projections, AdamW,
           flow-matching loss), reading the loss and grad norm as Python floats like the job does,
           with nothing reported. It runs in its own process started like a device worker running a
           training task (spawned, the worker's OMP_WAIT_POLICY set before torch loads, the training
           steps' torch thread count: `training_threads`, 1 on CPU by default), so both sides run
           the same threads under the same OpenMP settings;
  - cores: the same on the worker's own thread count (every core), what the steps ran on before
           `training_threads`;
  - plain: the same loop as a plain script would run it: torch's default thread count (every
           core) and libgomp's default waiting (what the worker's settings are measured against);
  - job:   CreateTrainingJob + WatchTrainingJob over real loopback servers (auth, storage with
           SeaweedFS, inference with its device worker): per-step events with loss, learning
           rate, grad norm and ETA, checkpoints off. Per-step time = the gap between consecutive
           step events' worker timestamps.

They alternate in --rounds rounds of --steps steps each (bare, cores, plain, job, bare, ...; the servers
and the bare processes stay up), so a machine whose load drifts weighs on all alike. Printed: each
round's medians, the pooled median per-step time of each and the job/bare ratio (goal <= 1.05),
job/cores and job/plain ratios, the CPU seconds per step of each (the job's split into its worker and this process:
servers + client), the load average before and after, and the cost of building + serialising one
step's metrics event in the worker (the streaming cost per step).

With --gradient-checkpointing both sides recompute activations in backward (the job through
TrainingParameters.gradient_checkpointing). --event-batch-seconds sets the worker's event batching
(0 = one pipe write and one server wake per step event, the behaviour before it existed).

    .venv/bin/python bench/training_overhead.py [--steps 30] [--rounds 3] [--size 64] [--rank 16]
                                                [--worker-threads N] [--training-threads N]
                                                [--gradient-checkpointing]
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

from bench.inference_overhead import _cpu_parts, _register
from tests.inference.helpers import png
from viarte.training.v1 import training_pb2 as T
from viarte.training.v1 import training_pb2_grpc
from viarte.type.v1 import job_pb2

MODEL = "tiny-wan"
CAPTION = "vrt a red square"


def bare_process(conn: Any, models_dir: Path, args: argparse.Namespace, side: str) -> None:
    """The bare loop's process, as `side` says: "bare" set up like a device worker running a
    training task (its OpenMP environment before torch loads, the training steps' thread count),
    "cores" the same on the worker's own thread count (every core: what the steps ran on before
    `training_threads`), "plain" as a plain script (torch's and libgomp's defaults); then
    `args.steps` timed steps per request (after one warm-up step), until told to stop."""
    from services.inference.training.worker import training_threads
    from services.inference.worker.config import WorkerConfig
    from services.inference.worker.process import openmp_env, resolve_setup
    from services.inference.worker.protocol import WorkerSetup

    setup = WorkerSetup(config=WorkerConfig(worker_threads=args.worker_threads,
                                            training_threads=args.training_threads), device="cpu")
    if side != "plain":
        os.environ.update(openmp_env(setup))  # before torch loads, as worker_main does
    setup = resolve_setup(setup)
    import torch
    import torch.nn.functional as F
    from diffusers import WanPipeline
    from peft import LoraConfig

    from services.inference.training.trainer import LORA_TARGETS, decode_example
    from services.inference.worker.protocol import TrainingExample

    if side == "bare":
        torch.set_num_threads(training_threads(setup.config, setup.device))
    elif side == "cores":
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
    conn.send(torch.get_num_threads())
    step = 0
    while conn.recv():
        times, cpu = [], []
        for i in range(args.steps + 1):
            t0, c0 = time.perf_counter(), time.process_time()
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
                cpu.append(time.process_time() - c0)
        conn.send((times, cpu))


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
    sides = {}  # bare_process's three sides
    for name in ("bare", "cores", "plain"):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=bare_process, args=(child, models_dir, args, name), daemon=True)
        proc.start()
        sides[name] = (parent, proc)
    threads = {name: parent.recv() for name, (parent, _) in sides.items()}
    load0 = os.getloadavg()
    bare: dict[str, list[list[float]]] = {name: [] for name in sides}
    bare_cpu: dict[str, list[float]] = {name: [] for name in sides}  # CPU s per step (all threads), per round
    job: list[list[float]] = []
    job_cpu: list[tuple[float, float]] = []  # (worker, this process: servers + client) per step, per round
    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        base = Path(tmp)
        async with AsyncExitStack() as stack:
            auth = await stack.enter_async_context(running_auth(test_auth_config(str(base / "auth"))))
            s3 = await stack.enter_async_context(running_s3(base / "s3"))
            storage = await stack.enter_async_context(
                running_storage(test_storage_config(base / "storage", s3, auth), s3))
            extra = {} if args.event_batch_seconds is None else {"event_batch_seconds": args.event_batch_seconds}
            inference = await stack.enter_async_context(running_inference(test_inference_config(
                base / "inference", auth, storage, models=(MODEL,), worker_threads=args.worker_threads,
                training_threads=args.training_threads, **extra)))
            user = await _register(auth.address)
            image = await storage.upload(user, png(args.size, args.size), "still.png", "image/png")
            stub = training_pb2_grpc.TrainingServiceStub(inference.channel)
            worker_pid = inference.parts.pool.workers[0].pid
            for _ in range(args.rounds):
                for name, (parent, _) in sides.items():
                    parent.send(True)
                    times, cpu = await asyncio.to_thread(parent.recv)
                    bare[name].append(times)
                    bare_cpu[name].append(statistics.median(cpu))
                gaps, cpu_per_step = await job_steps(args, stub, user, image, worker_pid)
                job.append(gaps)
                job_cpu.append(cpu_per_step)
    for parent, proc in sides.values():
        parent.send(False)
        proc.join(10)
    load1 = os.getloadavg()
    print(f"model {MODEL} {args.size}x{args.size}, 1 frame, rank {args.rank}, {args.rounds} rounds of {args.steps} "
          f"steps (CPU; torch threads: job and bare {threads['bare']}, cores {threads['cores']}, both with the "
          f"worker's OpenMP environment; plain script {threads['plain']} with the defaults; gradient checkpointing "
          f"{'on' if args.gradient_checkpointing else 'off'}, event batching "
          f"{'default' if args.event_batch_seconds is None else f'{args.event_batch_seconds} s'})")
    print(f"load average before {load0[0]:.1f}, after {load1[0]:.1f} (1 min)")
    for i, (gaps, (w, c)) in enumerate(zip(job, job_cpu, strict=True)):
        walls = ", ".join(f"{name} {statistics.median(bare[name][i]) * 1e3:.1f} ms" for name in sides)
        cpus = ", ".join(f"{name} {bare_cpu[name][i] * 1e3:.1f} ms" for name in sides)
        print(f"  round {i + 1}: wall per step: {walls}, job {statistics.median(gaps) * 1e3:.1f} ms; "
              f"CPU per step: {cpus}, job worker {w * 1e3:.1f} ms + servers/client {c * 1e3:.1f} ms")
    j_all = [t for r in job for t in r]
    j = statistics.median(j_all)
    for name in sides:
        b_all = [t for r in bare[name] for t in r]
        b = statistics.median(b_all)
        print(f"per-step {name:5} vs job: median {b * 1e3:.1f} ms vs {j * 1e3:.1f} ms, ratio job/{name} {j / b:.3f}"
              f"{' (goal <= 1.05)' if name == 'bare' else ''}; min {min(b_all) * 1e3:.1f} ms vs "
              f"{min(j_all) * 1e3:.1f} ms, ratio {min(j_all) / min(b_all):.3f}")
    wc, sc = statistics.median(c[0] for c in job_cpu), statistics.median(c[1] for c in job_cpu)
    for name in sides:
        bc = statistics.median(bare_cpu[name])
        print(f"CPU per step (median of rounds; less sensitive to load than wall time): {name} {bc * 1e3:.1f} ms, "
              f"job worker {wc * 1e3:.1f} ms (ratio {wc / bc:.3f}) + servers/client {sc * 1e3:.1f} ms "
              f"(all: {(wc + sc) / bc:.3f})")
    b = statistics.median(t for r in bare["bare"] for t in r)
    cost = emit_cost_us()
    print(f"streaming one step's metrics event: {cost:.1f} us to build + serialise ({cost / (b * 1e6) * 100:.3f}% of a step)")


async def job_steps(args: argparse.Namespace, stub: Any, user: Any, image: str,
                    worker_pid: int) -> tuple[list[float], tuple[float, float]]:
    """Gaps between consecutive step events' worker timestamps of one training job, and the CPU
    seconds per step of the worker and of this process (servers + client) between the first and the
    last step event's arrival."""
    params = T.TrainingParameters(base_model=MODEL, rank=args.rank, alpha=args.rank, learning_rate=1e-4,
                                  steps=args.steps + 1, width=args.size, height=args.size, seed=3,
                                  gradient_checkpointing=args.gradient_checkpointing)
    params.dataset.examples.add(asset_id=image, caption=CAPTION)
    job = (await stub.CreateTrainingJob(T.CreateTrainingJobRequest(parameters=params), metadata=user.metadata)).job
    stamps: list[float] = []
    cpu: list[tuple[float, float]] = []
    async for message in stub.WatchTrainingJob(T.WatchTrainingJobRequest(id=job.id), metadata=user.metadata):
        ev = message.event
        if message.HasField("event") and "grad_norm" in ev.progress.metrics:
            stamps.append(ev.time.ToMicroseconds() / 1e6)
            own, worker = _cpu_parts([worker_pid])
            cpu.append((worker, own))
    steps = len(cpu) - 1
    per_step = ((cpu[-1][0] - cpu[0][0]) / steps, (cpu[-1][1] - cpu[0][1]) / steps)
    return [b - a for a, b in itertools.pairwise(stamps)], per_step


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
    parser.add_argument("--training-threads", type=int, default=0,
                        help="torch threads of the training steps (0 = the worker default: 1 on CPU)")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--event-batch-seconds", type=float, default=None,
                        help="the worker's event batching (default: the config default)")
    main(parser.parse_args())
