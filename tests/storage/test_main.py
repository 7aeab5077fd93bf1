"""`python -m services.storage` from environment config, with the embedded SeaweedFS, stops cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from services.kit.probe import check
from services.storage.s3server import free_port
from viarte.storage.v1 import storage_pb2

from .helpers import wait_until

pytestmark = pytest.mark.timeout(120)
REPO = Path(__file__).resolve().parents[2]


def _weed_running(data_dir: Path) -> bool:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    return any(line.startswith(str(Path(sys.executable).parent / "weed")) and str(data_dir) in line for line in out.splitlines())


async def test_main_runs_from_environment_with_embedded_s3(tmp_path: Path, auth_service: Any, user_factory: Any, samples: Any) -> None:
    port, s3_port = free_port(), free_port()
    env = {
        **os.environ,
        "VIARTE_STORAGE_PORT": str(port),
        "VIARTE_STORAGE_METRICS_PORT": "-1",
        "VIARTE_STORAGE_DATA_DIR": str(tmp_path),
        "VIARTE_STORAGE_LOG_LEVEL": "WARNING",
        "VIARTE_STORAGE_AUTH_ADDRESS": auth_service.address,
        "VIARTE_STORAGE_INTERNAL_SECRET": auth_service.config.internal_secret.reveal(),
        "VIARTE_STORAGE_S3_EMBEDDED": "true",
        "VIARTE_STORAGE_S3_ENDPOINT": f"http://127.0.0.1:{s3_port}",
        "VIARTE_STORAGE_S3_SECRET_KEY": "main-test-secret",
    }
    proc = subprocess.Popen([sys.executable, "-m", "services.storage"], cwd=REPO, env=env)  # noqa: ASYNC220
    try:
        address = f"127.0.0.1:{port}"
        await wait_until(lambda: proc.poll() is None and check(address, "", 0.5), 60)
        from tests.fixtures.storage import StorageService

        client = StorageService(address=address, config=None)  # type: ignore[arg-type]
        owner = await user_factory()
        asset_id = await client.upload(owner, samples["audio.ogg"][1], "a.ogg", "audio/ogg")
        assert await client.download(owner, asset_id) == samples["audio.ogg"][1]
        got = await client.stub.GetAsset(storage_pb2.GetAssetRequest(asset_id=asset_id), metadata=owner.metadata)
        assert got.asset.media.audio_codec == "vorbis"
        await client.close()
        assert (tmp_path / "s3" / "data").is_dir() and (tmp_path / "storage.db").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 30)
    assert proc.returncode == 0
    await wait_until(lambda: not _weed_running(tmp_path), 15)
