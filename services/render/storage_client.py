"""Storage on behalf of a job's owner: presigned input URLs (ResolveAsset) and outputs (StoreAsset),
authenticated with a service token (kit ``ServiceCredentials``)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc

from services.kit.auth import ServiceCredentials
from services.kit.errors import ServiceError
from services.render.media import MediaKind, SourceInfo
from services.render.reasons import Reason
from viarte.storage.v1 import storage_pb2, storage_pb2_grpc
from viarte.type.v1 import asset_pb2

__all__ = ["ResolvedAsset", "StorageClient"]

_CHUNK = 1 << 20
_KINDS = {asset_pb2.ASSET_KIND_VIDEO: MediaKind.VIDEO, asset_pb2.ASSET_KIND_IMAGE: MediaKind.IMAGE, asset_pb2.ASSET_KIND_AUDIO: MediaKind.AUDIO}


@dataclass(frozen=True)
class ResolvedAsset:
    asset: storage_pb2.Asset
    url: str

    def info(self) -> SourceInfo | None:
        """Media facts storage probed at upload (None when it has none: probe the URL instead)."""
        kind = _KINDS.get(self.asset.kind)
        m = self.asset.media
        if kind is None or (kind is not MediaKind.IMAGE and m.duration_seconds <= 0):
            return None
        if kind is not MediaKind.AUDIO and (m.width <= 0 or m.height <= 0):
            return None
        return SourceInfo(kind, m.duration_seconds if kind is not MediaKind.IMAGE else 0.0, m.width, m.height, m.fps, m.has_audio)


class StorageClient:
    def __init__(self, channel: grpc.aio.Channel, credentials: ServiceCredentials, url_expire_seconds: int = 3600) -> None:
        self._stub = storage_pb2_grpc.StorageInternalServiceStub(channel)
        self._credentials = credentials
        self._expire = url_expire_seconds

    async def resolve(self, owner: str, asset_id: str) -> ResolvedAsset:
        try:
            answer = await self._stub.ResolveAsset(
                storage_pb2.ResolveAssetRequest(owner_id=owner, asset_id=asset_id, expire_seconds=self._expire),
                metadata=await self._credentials.metadata(),
                timeout=15,
            )
        except grpc.aio.AioRpcError as exc:
            raise _map(exc, asset_id) from None
        return ResolvedAsset(answer.asset, answer.url)

    async def store(
        self,
        owner: str,
        path: Path,
        *,
        name: str,
        content_type: str,
        labels: dict[str, str],
        request_id: str = "",
    ) -> storage_pb2.Asset:
        size, sha256 = await asyncio.to_thread(_digest, path)

        async def messages() -> AsyncIterator[storage_pb2.StoreAssetRequest]:
            upload = storage_pb2.UploadMetadata(
                name=name, content_type=content_type, size_bytes=size, sha256=sha256,
                request_id=request_id, labels=labels,
            )
            yield storage_pb2.StoreAssetRequest(metadata=storage_pb2.StoreAssetMetadata(owner_id=owner, upload=upload))
            f = await asyncio.to_thread(path.open, "rb")
            try:
                while block := await asyncio.to_thread(f.read, _CHUNK):
                    yield storage_pb2.StoreAssetRequest(chunk=block)
            finally:
                f.close()

        try:
            answer = await self._stub.StoreAsset(messages(), metadata=await self._credentials.metadata(), timeout=600)
        except grpc.aio.AioRpcError as exc:
            raise _map(exc, "") from None
        asset: storage_pb2.Asset = answer.asset
        return asset


def _digest(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return path.stat().st_size, digest.hexdigest()


def _map(exc: grpc.aio.AioRpcError, asset_id: str) -> ServiceError:
    code = exc.code()
    if code == grpc.StatusCode.NOT_FOUND:
        return ServiceError.not_found(Reason.ASSET_NOT_FOUND, f"asset {asset_id} not found", metadata={"asset_id": asset_id})
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return ServiceError.unavailable(Reason.STORAGE_UNAVAILABLE, "storage is unavailable", retry_after=2.0)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return ServiceError.resource_exhausted(_reason(exc) or "QUOTA_EXCEEDED", exc.details() or "storage quota exceeded")
    return ServiceError.unavailable(Reason.STORAGE_UNAVAILABLE, f"storage refused: {code.name} {exc.details()}")


def _reason(exc: grpc.aio.AioRpcError) -> str:
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    status = rpc_status.from_call(exc)
    for detail in status.details if status else []:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return str(info.reason)
    return ""
