from __future__ import annotations

from typing import Any


async def test_upload_download_roundtrip(storage_service: Any, user_factory: Any, samples: Any) -> None:
    user = await user_factory()
    ctype, data = samples["image.png"]
    asset_id = await storage_service.upload(user, data, "pic.png", ctype)
    assert await storage_service.download(user, asset_id) == data
