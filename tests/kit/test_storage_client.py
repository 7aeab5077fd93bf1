"""The kit's storage client against the real storage service (SeaweedFS) with a real service token."""

from __future__ import annotations

import hashlib
import io
import uuid
import wave
from pathlib import Path
from typing import Any

import grpc
import pytest

from services.kit.config import ServiceConfig
from services.kit.errors import ServiceError
from services.kit.storage_client import StorageClient


def _wav(seed: int, frames: int = 4000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes((seed * 7 + i) % 256 for i in range(frames * 2)))
    return out.getvalue()


def _config(auth_service: Any, storage_address: str) -> ServiceConfig:
    return ServiceConfig(
        port=0, auth_address=auth_service.address, storage_address=storage_address,
        internal_secret=auth_service.config.internal_secret,
    )


async def test_store_resolve_download(auth_service: Any, storage_service: Any, user_factory: Any, tmp_path: Path) -> None:
    owner, other = await user_factory(), await user_factory()
    data = _wav(1)
    (tmp_path / "in.wav").write_bytes(data)
    client = StorageClient(_config(auth_service, storage_service.address))
    try:
        stored = await client.store(owner.id, tmp_path / "in.wav", "in.wav", "audio/wav", {"job_id": "j1"}, request_id="r1")
        assert (stored.size_bytes, stored.sha256) == (len(data), hashlib.sha256(data).hexdigest())
        assert dict(stored.labels) == {"job_id": "j1"}
        assert await storage_service.download(owner, stored.id) == data

        resolved = await client.resolve(owner.id, stored.id)
        assert resolved.asset.id == stored.id and resolved.url.startswith("http")
        await client.download(resolved, tmp_path / "out.wav")
        assert (tmp_path / "out.wav").read_bytes() == data
        fetched = await client.fetch(owner.id, stored.id, tmp_path / "again.wav")
        assert fetched.id == stored.id and (tmp_path / "again.wav").read_bytes() == data

        for who, asset_id in ((other.id, stored.id), (owner.id, str(uuid.uuid4()))):
            with pytest.raises(ServiceError) as info:
                await client.resolve(who, asset_id)
            assert (info.value.code, info.value.reason) == (grpc.StatusCode.NOT_FOUND, "ASSET_NOT_FOUND")
            assert info.value.metadata["asset_id"] == asset_id
    finally:
        await client.close()


async def test_store_refusals(auth_service: Any, storage_service: Any, user_factory: Any, tmp_path: Path) -> None:
    owner = await user_factory()
    client = StorageClient(_config(auth_service, storage_service.address))
    try:
        (tmp_path / "a.wav").write_bytes(_wav(2))
        # Storage's own refusal keeps its code and reason (the owner must see why).
        with pytest.raises(ServiceError) as info:
            await client.store(owner.id, tmp_path / "a.wav", "a.png", "image/png", {})
        assert (info.value.code, info.value.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "CONTENT_TYPE_MISMATCH")

        # Same request_id, same size, other bytes: storage answers with the earlier asset, which the
        # sha256 computed while streaming catches.
        first = await client.store(owner.id, tmp_path / "a.wav", "a.wav", "audio/wav", {}, request_id="same")
        (tmp_path / "b.wav").write_bytes(_wav(3))
        with pytest.raises(ServiceError) as info:
            await client.store(owner.id, tmp_path / "b.wav", "a.wav", "audio/wav", {}, request_id="same")
        assert (info.value.code, info.value.reason) == (grpc.StatusCode.DATA_LOSS, "CHECKSUM_MISMATCH")
        assert info.value.metadata["asset_id"] == first.id
        # The same bytes again are the idempotent replay.
        again = await client.store(owner.id, tmp_path / "a.wav", "a.wav", "audio/wav", {}, request_id="same")
        assert again.id == first.id
    finally:
        await client.close()


async def test_storage_down_is_unavailable(auth_service: Any, user_factory: Any, tmp_path: Path) -> None:
    owner = await user_factory()
    (tmp_path / "a.wav").write_bytes(_wav(4))
    client = StorageClient(_config(auth_service, "127.0.0.1:1"))
    try:
        for call in (client.resolve(owner.id, str(uuid.uuid4())), client.store(owner.id, tmp_path / "a.wav", "a.wav", "audio/wav")):
            with pytest.raises(ServiceError) as info:
                await call
            assert (info.value.code, info.value.reason) == (grpc.StatusCode.UNAVAILABLE, "STORAGE_UNAVAILABLE")
    finally:
        await client.close()
