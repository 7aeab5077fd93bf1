"""A storage process that dies (os._exit, no cleanup of any kind) right after one ingest step.

    python -m tests.storage.crash_ingest CONFIG_JSON OWNER_ID FILE CONTENT_TYPE STEP

CONFIG_JSON holds StorageConfig fields; the process builds the same components as the service
(database, object store, Assets) and streams FILE as an UploadAsset would.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from services.kit.config import Secret
from services.kit.db import make_engine, run_db, upgrade
from services.storage.assets import Assets, UploadSpec
from services.storage.config import StorageConfig
from services.storage.objectstore import ObjectStore
from services.storage.server import MIGRATIONS
from services.storage.store import AssetStore

CRASH_EXIT = 77


async def main(values: dict[str, object], owner_id: str, path: str, data: bytes, content_type: str, step: str) -> None:
    values["s3_secret_key"] = Secret(str(values["s3_secret_key"]))
    values["internal_secret"] = Secret(str(values["internal_secret"]))
    config = StorageConfig(**values)  # type: ignore[arg-type]
    engine = make_engine(config.database())
    await run_db(upgrade, engine, MIGRATIONS)

    def crash(name: str, asset_id: str) -> None:
        print(f"{name} {asset_id}", flush=True)
        if name == step:
            os._exit(CRASH_EXIT)

    assets = Assets(config, AssetStore(engine), ObjectStore(config), on_step=crash)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(data), 64 * 1024):
            yield data[i : i + 64 * 1024]

    await assets.ingest(owner_id, UploadSpec(name=Path(path).name, content_type=content_type), chunks())


if __name__ == "__main__":
    config_json, owner, file, ctype, crash_step = sys.argv[1:6]
    asyncio.run(main(json.loads(Path(config_json).read_text()), owner, file, Path(file).read_bytes(), ctype, crash_step))
    sys.exit(0)
