"""Assembles the inference service: GenerationService + FaceSwapService + AssistantService +
TrainingService / LoraService on one job service, one worker process per device. This process never imports torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from services.inference.assistant.servicer import AssistantServicer
from services.inference.config import InferenceConfig
from services.inference.faceswap.handler import FaceSwapHandler, PoolRunner
from services.inference.faceswap.servicer import FaceSwapServicer
from services.inference.generation import GenerationHandler
from services.inference.latents_sweep import KeptLatentsSweep
from services.inference.metering import metering as inference_metering
from services.inference.models.registry import DEFAULT_REGISTRY_PATH, ModelRegistry, load_registry
from services.inference.servicer import GenerationServicer
from services.inference.training.handler import TrainingHandler
from services.inference.training.servicer import LoraServicer, TrainingServicer
from services.inference.training.store import LoraStore
from services.inference.validation import check_parameters
from services.inference.worker.pool import WorkerPool, WorkRunner
from services.inference.worker.protocol import FaceSwapWork, GenerationWork, TrainingWork, WorkerSetup
from services.kit.account_client import AccountClient
from services.kit.db import make_engine, upgrade
from services.kit.jobs import HandlerExecutor, JobConfig, JobService
from services.kit.logs import get_logger
from services.kit.pagination import PageTokens
from services.kit.server import Service, add_shutdown_hook, build_server
from services.kit.storage_client import StorageClient

__all__ = ["Inference", "build", "build_inference", "worker_setup"]

_log = get_logger("viarte.inference")
MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass
class Inference:
    """The assembled pieces (tests and benches reach in through ``services.inference.server.last``)."""

    config: InferenceConfig
    registry: ModelRegistry
    jobs: JobService
    # WorkerPool (executor "local") or RayRunner (executor "ray").
    pool: WorkRunner
    store: StorageClient
    generation: GenerationServicer
    # Job handlers by kind (tests read `handlers["generation"].model_loads`).
    handlers: dict[str, Any] = field(default_factory=dict)


def _registry(config: InferenceConfig) -> ModelRegistry:
    registry = load_registry(config.registry_path or DEFAULT_REGISTRY_PATH)
    return registry.only(config.models) if config.models else registry


def worker_setup(config: InferenceConfig) -> WorkerSetup:
    """What every device worker starts with (`WorkerPool` sets the device of each)."""
    return WorkerSetup(config.worker, scratch_dir=config.scratch_path, otlp_endpoint=config.otlp_endpoint)


async def _runner(config: InferenceConfig, store: StorageClient) -> WorkRunner:
    """The executor's device side: local worker processes, or actors on a Ray cluster (ray is
    imported only then)."""
    if config.executor == "ray":
        from services.inference.worker.ray_runner import RayRunner

        ray_runner = RayRunner(worker_setup(config), address=config.ray_address, actors=config.ray_actors,
                               gpu_share=config.ray_gpu_share,
                               connect_timeout=config.ray_connect_timeout_seconds,
                               probe_seconds=config.ray_probe_seconds, store=store)
        await ray_runner.start()
        return ray_runner
    pool = WorkerPool(worker_setup(config), config.devices)
    await pool.start()
    return pool


async def build_inference(config: InferenceConfig) -> tuple[grpc.aio.Server, int, Inference]:
    registry = _registry(config)
    engine = make_engine(config.db_url)
    upgrade(engine, MIGRATIONS)
    store = StorageClient(config)
    pool = await _runner(config, store)
    loras = LoraStore(engine)
    generation_handler = GenerationHandler(registry, pool, store, config.scratch_path, loras)
    training_handler = TrainingHandler(pool, store, loras, config.scratch_path)
    # Face swap runs on the same device workers as generation (one process per device).
    face_runner = PoolRunner(pool)
    executor = HandlerExecutor({
        GenerationWork.kind: generation_handler,
        FaceSwapWork.kind: FaceSwapHandler(store, face_runner, config.scratch_path / "faceswap"),
        TrainingWork.kind: training_handler,
    }, slots=lambda: pool.slots)
    account = AccountClient(config)  # every ended job is recorded (issue 16)
    jobs = JobService(engine, executor, JobConfig(
        max_queued=config.max_queued, max_attempts=config.max_attempts,
        queue_full_retry_seconds=config.queue_full_retry_seconds, max_priority=config.max_priority,
        lease_seconds=config.job_lease_seconds, poll_seconds=config.job_poll_seconds, replica_id=config.replica_id,
    ), page_tokens=PageTokens.for_service(config), metering=inference_metering(config, account))
    tokens = PageTokens.for_service(config)
    ready = getattr(pool, "check_available", lambda: None)
    generation = GenerationServicer(registry, jobs, store, loaded_models=lambda: generation_handler.loaded,
                                    face_swap_available=True, executor_ready=ready, loras=loras,
                                    max_devices=lambda: pool.max_devices)
    assistant = AssistantServicer(config.assistant, engine=engine, registry=registry,
                                  validate_generation=lambda p: check_parameters(p, registry))
    services = [Service(generation), Service(FaceSwapServicer(jobs, store, ready)), Service(assistant),
                Service(TrainingServicer(registry, jobs, store, ready)), Service(LoraServicer(loras, tokens))]
    # Kept latents whose job is finished or gone (a replica died mid-job; storage was down at the delete).
    sweep = KeptLatentsSweep(store, jobs, (GenerationWork.kind,), interval=config.kept_latents_sweep_seconds,
                             batch=config.kept_latents_sweep_batch)
    closers: list[Any] = [sweep.stop, face_runner.close, assistant.close, account.close]
    await jobs.start()
    await sweep.start()
    server, port = await build_server(config, services)

    async def shutdown() -> None:
        await jobs.stop(config.grace_period_seconds)
        await pool.stop()
        for close in closers:
            await close()
        await store.close()
        engine.dispose()

    add_shutdown_hook(server, shutdown)
    devices = [w.device for w in pool.workers] if isinstance(pool, WorkerPool) else ["ray"]
    _log.info("inference.ready", executor=config.executor, devices=devices, models=[m.id for m in registry],
              services=[s.full_name for s in services])
    handlers = {GenerationWork.kind: generation_handler, TrainingWork.kind: training_handler}
    return server, port, Inference(config, registry, jobs, pool, store, generation, handlers)


async def build(config: InferenceConfig) -> tuple[grpc.aio.Server, int]:
    server, port, _ = await build_inference(config)
    return server, port
