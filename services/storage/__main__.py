"""`python -m services.storage`: run the storage service from environment config (VIARTE_STORAGE_*).

With VIARTE_STORAGE_S3_EMBEDDED=true it first starts SeaweedFS (data in <data_dir>/s3) on the port
of s3_endpoint with the configured credentials, and stops it after the service.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlparse

from services.kit.config import load_config
from services.kit.server import serve
from services.storage.config import StorageConfig
from services.storage.s3server import start_s3_server
from services.storage.server import build


async def main() -> None:
    config = load_config(StorageConfig)
    if not config.s3_embedded:
        await serve(config, build)
        return
    port = urlparse(config.s3_endpoint).port or 8333
    s3 = await start_s3_server(
        Path(config.data_dir) / "s3", port, config.s3_access_key, config.s3_secret_key.reveal()
    )
    try:
        await serve(config, build)
    finally:
        await s3.stop()


if __name__ == "__main__":
    asyncio.run(main())
