"""Assembles the inference service: GenerationService + FaceSwapService + AssistantService on one
job service, one worker process per device. This process never imports torch."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from services.inference.config import InferenceConfig
from services.inference.generation import KIND as GENERATION
from services.inference.generation import GenerationHandler
from services.inference.models.registry import DEFAULT_REGISTRY_PATH, ModelRegistry, load_registry
from services.inference.servicer import GenerationServicer
from services.inference.worker.pool import WorkerPool
from services.inference.worker.protocol import WorkerSettings
from services.kit.db import make_engine, upgrade
from services.kit.jobs import HandlerExecutor, JobService, JobSettings
from services.kit.logs import get_logger
from services.kit.pagination import PageTokens
from services.kit.server import Service, add_shutdown_hook, build_server
from services.kit.storage_client import StorageClient

__all__ = ["Inference", "build", "build_inference"]

_log = get_logger("viarte.inference")
MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass
class Inference:
    """The assembled pieces (tests and benches reach in through ``services.inference.server.last``)."""

    config: InferenceConfig
    registry: ModelRegistry
    jobs: JobService
    pool: WorkerPool
    store: Any
    generation: GenerationServicer


def _registry(config: InferenceConfig) -> ModelRegistry:
    registry = load_registry(config.registry_path or DEFAULT_REGISTRY_PATH)
    return registry.only(config.models) if config.models else registry


def worker_settings(config: InferenceConfig) -> WorkerSettings:
    return WorkerSettings(
        models_dir=config.models_path,
        registry_path=Path(config.registry_path) if config.registry_path else None,
        scratch_dir=config.scratch_path,
        cache_budget_bytes=int(config.model_cache_gib * 1024**3),
        memory_policy=config.memory_policy,
        dtype=config.dtype,
        allow_download=config.allow_download,
        build_tiny_models=config.build_tiny_models,
        threads=config.worker_threads,
        stall_timeout=config.worker_stall_timeout_seconds,
        cancel_grace=config.worker_cancel_grace_seconds,
        crash_at_stage=config.fault_crash_at_stage,
        stall_at_stage=config.fault_stall_at_stage,
        stall_seconds=config.fault_stall_seconds,
        face_models_dir=config.face_models_dir,
        face_pack=config.face_pack,
        face_swapper=config.face_swapper,
        face_use_tiny=config.face_use_tiny,
        face_det_size=config.face_det_size,
        face_providers=config.face_providers,
    )


def _optional(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError:
        return None


async def build_inference(config: InferenceConfig) -> tuple[grpc.aio.Server, int, Inference]:
    registry = _registry(config)
    engine = make_engine(config.db_url)
    upgrade(engine, MIGRATIONS)
    store = StorageClient(config)
    pool = WorkerPool(worker_settings(config), config.devices)
    await pool.start()
    handler = GenerationHandler(registry, pool, store, config.scratch_path)
    executor = HandlerExecutor({GENERATION: handler}, slots=pool.slots)
    jobs = JobService(engine, executor, JobSettings(
        max_queued=config.max_queued, max_attempts=config.max_attempts,
        queue_full_retry_seconds=config.queue_full_retry_seconds, max_priority=config.max_priority,
    ), page_tokens=PageTokens.for_service(config))
    face_task, face_servicer = _optional("services.inference.faceswap.task"), _optional("services.inference.faceswap.servicer")
    generation = GenerationServicer(registry, jobs, store, loaded_models=lambda: handler.loaded,
                                    face_swap_available=face_task is not None)
    services = [Service(generation)]
    closers: list[Any] = []
    if face_task is not None and face_servicer is not None:
        # Face swap runs on the same device workers as generation (one process per device).
        runner = face_task.PoolRunner(pool) if hasattr(face_task, "PoolRunner") else face_task.ProcessRunner(config)
        executor.add_handler(face_task.KIND, face_task.FaceSwapJobHandler(store, runner, config.scratch_path / "faceswap"))
        services.append(Service(face_servicer.FaceSwapServicer(jobs, store)))
        closers.append(runner.close)
    assistant = _optional("services.inference.assistant.servicer")
    if assistant is not None:
        from services.inference.validation import check_parameters

        servicer = assistant.AssistantServicer(config, engine=engine, registry=registry,
                                               validate_generation=lambda p: check_parameters(p, registry))
        services.append(Service(servicer))
        closers.append(servicer.close)
    await jobs.start()
    server, port = await build_server(config, services)

    async def shutdown() -> None:
        await jobs.stop(config.grace_period_seconds)
        await pool.stop()
        for close in closers:
            await close()
        await store.close()
        engine.dispose()

    add_shutdown_hook(server, shutdown)
    _log.info("inference.ready", devices=[w.device for w in pool.workers], models=[m.id for m in registry],
              services=[s.full_name for s in services])
    return server, port, Inference(config, registry, jobs, pool, store, generation)


async def build(config: InferenceConfig) -> tuple[grpc.aio.Server, int]:
    server, port, _ = await build_inference(config)
    return server, port
