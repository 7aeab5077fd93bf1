"""Builds the render service: database + migrations, the shared job service with the render and
upscale handlers, the storage client, and the RenderService / UpscaleService / ProjectService
servicers on the kit server."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from pathlib import Path

import grpc

from services.kit.account_client import AccountClient
from services.kit.auth import Authenticator, ServiceCredentials
from services.kit.channels import insecure_channel
from services.kit.db import make_engine, run_db, upgrade
from services.kit.jobs import HandlerExecutor, JobConfig, JobService
from services.kit.pagination import PageTokens
from services.kit.server import Service, add_shutdown_hook, build_server
from services.kit.storage_client import StorageClient
from services.render.capabilities import capabilities
from services.render.config import RenderConfig
from services.render.handlers import RENDER, UPSCALE, RenderContext, handle_render, handle_upscale
from services.render.metering import metering as render_metering
from services.render.playback import DraftCache
from services.render.projects import ProjectServicer, ProjectStore
from services.render.reasons import Reason
from services.render.servicer import RenderServicer, UpscaleServicer
from services.render.upscale.pool import UpscalePool

__all__ = ["MIGRATIONS", "build"]

MIGRATIONS = Path(__file__).parent / "migrations"


async def build(config: RenderConfig) -> tuple[grpc.aio.Server, int]:
    """1. database + migrations, 2. storage client, 3. job service (recovery + scheduler),
    4. servicers on the kit server."""
    engine = make_engine(config.resolved_database_url)
    await run_db(upgrade, engine, MIGRATIONS)
    config.resolved_work_dir.mkdir(parents=True, exist_ok=True)
    auth_channel = insecure_channel(config.auth_address)
    credentials = ServiceCredentials(config, channel=auth_channel)
    pool = UpscalePool(config.upscale_worker_idle_seconds)
    storage = StorageClient(config, credentials=credentials, url_expire_seconds=config.input_url_expire_seconds)
    ray = None
    if config.executor == "ray":
        # ray is imported only now (the actors import torch in their own processes, never here)
        from services.render.ray_runner import RenderRay

        ray = RenderRay(config)
        await ray.start()  # unreachable: the server still starts; Create answers RAY_UNAVAILABLE
    # What the installed ffmpeg offers (transitions, filters, encoders), asked once, now.
    await asyncio.to_thread(capabilities, config.ffmpeg_binary)
    ctx = RenderContext(config, storage, pool, ray=ray)
    # Slots: local workers, or the live Ray actors (a job is claimed only when one is free).
    slots: int | Callable[[], int] = (lambda: ray.slots) if ray is not None else max(1, config.render_workers)
    executor = HandlerExecutor(
        {RENDER: functools.partial(handle_render, ctx), UPSCALE: functools.partial(handle_upscale, ctx)},
        slots=slots,
    )
    account = AccountClient(config, credentials=credentials)  # every ended job is recorded (issue 16)
    jobs = JobService(engine, executor, JobConfig(
        max_queued=config.max_queued_jobs, lease_seconds=config.job_lease_seconds,
        poll_seconds=config.job_poll_seconds, replica_id=config.replica_id,
    ), not_found_reason=Reason.JOB_NOT_FOUND, page_tokens=PageTokens.for_service(config),
        metering=render_metering(config, account))
    await jobs.start()
    authenticator = Authenticator(config, channel=auth_channel)
    # Playback's draft segments, in the database so that every replica shares them (issue 19).
    drafts = DraftCache(engine, config.draft_cache_max_bytes)
    server, port = await build_server(
        config,
        [
            Service(RenderServicer(ctx, jobs, drafts)),
            Service(UpscaleServicer(ctx, jobs)),
            Service(ProjectServicer(
                ProjectStore(engine), PageTokens.for_service(config), max_tracks=config.max_tracks, max_clips=config.max_clips
            )),
        ],
        authenticator=authenticator,
    )

    async def _close() -> None:
        await jobs.stop(config.grace_period_seconds)
        await pool.close()
        if ray is not None:
            await ray.stop()
        await storage.close()
        await account.close()
        await auth_channel.close()
        await run_db(engine.dispose)

    add_shutdown_hook(server, _close)
    server.render_jobs = jobs  # exposed for tests (not part of the API)
    server.render_drafts = drafts
    server.render_storage = storage
    server.render_ray = ray
    return server, port
