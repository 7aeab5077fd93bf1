"""Storage on behalf of a job's owner: StorageInternalService.ResolveAsset (metadata + presigned GET
URL) for inputs and StoreAsset (streamed) for outputs, with a service token from auth."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx

from services.kit.auth import ServiceCredentials
from services.kit.channels import insecure_channel
from services.kit.config import ServiceConfig
from services.kit.errors import ServiceError
from viarte.storage.v1 import storage_pb2, storage_pb2_grpc

__all__ = ["AssetStore"]

_CHUNK = 1024 * 1024
_TIMEOUT = 30.0


class AssetStore:
    def __init__(self, config: ServiceConfig, credentials: ServiceCredentials | None = None) -> None:
        self._channel = insecure_channel(config.storage_address)
        self._stub = storage_pb2_grpc.StorageInternalServiceStub(self._channel)
        self._creds = credentials or ServiceCredentials(config)
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(_TIMEOUT, read=120.0))

    async def close(self) -> None:
        await self._http.aclose()
        await self._channel.close()

    async def resolve(self, owner: str, asset_id: str) -> tuple[storage_pb2.Asset, str]:
        """The owner's asset and a GET URL; NOT_FOUND ASSET_NOT_FOUND for missing or foreign ones."""
        try:
            answer = await self._stub.ResolveAsset(
                storage_pb2.ResolveAssetRequest(owner_id=owner, asset_id=asset_id, expire_seconds=900),
                metadata=await self._creds.metadata(),
                timeout=_TIMEOUT,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise ServiceError.not_found(
                    "ASSET_NOT_FOUND", "asset not found", metadata={"asset_id": asset_id}
                ) from None
            raise _unavailable(exc) from exc
        return answer.asset, answer.url

    async def download(self, url: str, path: Path) -> None:
        try:
            async with self._http.stream("GET", url) as response:
                response.raise_for_status()
                out = await asyncio.to_thread(path.open, "wb")
                try:
                    async for chunk in response.aiter_bytes(_CHUNK):
                        await asyncio.to_thread(out.write, chunk)
                finally:
                    out.close()
        except httpx.HTTPError as exc:
            raise ServiceError.unavailable("STORAGE_UNAVAILABLE", f"cannot download an input: {exc}") from exc

    async def fetch(self, owner: str, asset_id: str, path: Path) -> storage_pb2.Asset:
        asset, url = await self.resolve(owner, asset_id)
        await self.download(url, path)
        return asset

    async def store(
        self, owner: str, path: Path, name: str, content_type: str, labels: dict[str, str], request_id: str = ""
    ) -> storage_pb2.Asset:
        """Streams a local file into the owner's storage (bounded memory)."""
        size = (await asyncio.to_thread(path.stat)).st_size
        metadata = storage_pb2.StoreAssetMetadata(
            owner_id=owner,
            upload=storage_pb2.UploadMetadata(
                name=name, content_type=content_type, size_bytes=size, request_id=request_id, labels=labels
            ),
        )

        async def requests() -> AsyncIterator[storage_pb2.StoreAssetRequest]:
            yield storage_pb2.StoreAssetRequest(metadata=metadata)
            f = await asyncio.to_thread(path.open, "rb")
            try:
                while chunk := await asyncio.to_thread(f.read, _CHUNK):
                    yield storage_pb2.StoreAssetRequest(chunk=chunk)
            finally:
                f.close()

        try:
            answer = await self._stub.StoreAsset(requests(), metadata=await self._creds.metadata(), timeout=300)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INVALID_ARGUMENT):
                # Quota or media checks of the owner's storage: the owner must see storage's reason.
                raise ServiceError(exc.code(), _reason(exc) or "STORAGE_REJECTED", exc.details() or "") from None
            raise _unavailable(exc) from exc
        stored: storage_pb2.Asset = answer.asset
        return stored


def _reason(exc: grpc.aio.AioRpcError) -> str:
    from viarte.errors import from_rpc_error

    return from_rpc_error(exc).reason or ""


def _unavailable(exc: grpc.aio.AioRpcError) -> ServiceError:
    return ServiceError.unavailable("STORAGE_UNAVAILABLE", f"storage failed: {exc.code().name}")
