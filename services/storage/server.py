"""Builds the storage service: database + migrations, S3 bucket, reconciliation, servicers, janitor."""

from __future__ import annotations

from pathlib import Path

import grpc

from services.kit.db import make_engine, run_db, upgrade
from services.kit.errors import ServiceError
from services.kit.logs import get_logger
from services.kit.server import Service, add_shutdown_hook, build_server
from services.storage.assets import Assets, StepCallback
from services.storage.config import StorageConfig
from services.storage.janitor import Janitor
from services.storage.objectstore import ObjectStore
from services.storage.servicer import StorageInternalServicer, StorageServicer
from services.storage.store import AssetStore

__all__ = ["MIGRATIONS", "build"]

MIGRATIONS = Path(__file__).parent / "migrations"
_log = get_logger("viarte.storage")


async def build(config: StorageConfig, *, on_step: StepCallback | None = None) -> tuple[grpc.aio.Server, int]:
    """1. database + migrations, 2. bucket (created when missing), 3. reconcile metadata with the
    bucket, 4. servicers on the kit server, 5. the janitor loop."""
    engine = make_engine(config.database())
    await run_db(upgrade, engine, MIGRATIONS)
    store = AssetStore(engine)
    objects = ObjectStore(config)
    janitor = Janitor(config, store, objects)
    try:
        await objects.ensure_bucket()
        await janitor.reconcile()
    except ServiceError as exc:
        # S3 down at startup: serve anyway (reads of metadata work, S3 calls answer UNAVAILABLE);
        # the janitor creates nothing, so the bucket is ensured again on its first successful round.
        _log.warning("storage.s3_unavailable_at_startup", reason=exc.reason)
    assets = Assets(config, store, objects, on_step=on_step)
    server, port = await build_server(
        config,
        [Service(StorageServicer(assets)), Service(StorageInternalServicer(assets), internal=True)],
    )
    janitor.start()

    async def close() -> None:
        await janitor.stop()
        objects.close()
        engine.dispose()

    add_shutdown_hook(server, close)
    return server, port
