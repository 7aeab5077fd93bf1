"""Storage on behalf of a job's owner: ``StorageInternalService.ResolveAsset`` (metadata + presigned
GET URL) for inputs and ``StoreAsset`` (streamed) for outputs, authenticated with a service token
(``ServiceCredentials``). The one client every service (render, inference, face swap) uses; also
service-owned objects (``PutObject``/``ResolveObject``/``DeleteObject``: kept latents).

Errors reach callers as ``ServiceError``: NOT_FOUND → ASSET_NOT_FOUND (also for another owner's
asset), storage down or too slow → UNAVAILABLE STORAGE_UNAVAILABLE, anything storage refused
(quota, media checks, ...) keeps its code and reason so the owner sees why.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx

from services.kit.auth import ServiceCredentials
from services.kit.channels import insecure_channel
from services.kit.config import ServiceConfig
from services.kit.errors import FieldViolation, ServiceError
from viarte.errors import from_rpc_error
from viarte.storage.v1 import storage_pb2, storage_pb2_grpc

__all__ = ["ResolvedAsset", "StorageClient"]

_CHUNK = 1 << 20
# Codes that say storage (or the mesh's credentials for it) is not usable right now: nothing the
# owner can fix, so they all read as "storage unavailable".
_UNAVAILABLE = frozenset({
    grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED,
})


@dataclass(frozen=True)
class ResolvedAsset:
    asset: storage_pb2.Asset
    url: str  # presigned GET URL, valid for the client's ``url_expire_seconds``


class StorageClient:
    """Owns its storage channel and HTTP client (``close()`` releases both)."""

    def __init__(
        self,
        config: ServiceConfig,
        *,
        credentials: ServiceCredentials | None = None,
        url_expire_seconds: int = 900,
        rpc_timeout: float = 30.0,
        store_timeout: float = 600.0,
    ) -> None:
        self._channel = insecure_channel(config.storage_address)
        self._stub = storage_pb2_grpc.StorageInternalServiceStub(self._channel)
        self._credentials = credentials or ServiceCredentials(config)
        self._expire = url_expire_seconds
        self._rpc_timeout = rpc_timeout
        self._store_timeout = store_timeout
        self._http: httpx.AsyncClient | None = None  # created on the first download

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
        await self._channel.close()

    async def resolve(self, owner: str, asset_id: str) -> ResolvedAsset:
        """The owner's asset and a GET URL; NOT_FOUND ASSET_NOT_FOUND for missing or foreign ones."""
        try:
            answer = await self._stub.ResolveAsset(
                storage_pb2.ResolveAssetRequest(owner_id=owner, asset_id=asset_id, expire_seconds=self._expire),
                metadata=await self._credentials.metadata(),
                timeout=self._rpc_timeout,
            )
        except grpc.aio.AioRpcError as exc:
            raise _map(exc, asset_id) from None
        return ResolvedAsset(answer.asset, answer.url)

    async def download(self, resolved: ResolvedAsset, path: Path) -> None:
        """Streams the asset's bytes from its presigned URL into ``path`` (bounded memory)."""
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=httpx.Timeout(self._rpc_timeout, read=120.0))
        try:
            async with self._http.stream("GET", resolved.url) as response:
                response.raise_for_status()
                out = await asyncio.to_thread(path.open, "wb")
                try:
                    async for chunk in response.aiter_bytes(_CHUNK):
                        await asyncio.to_thread(out.write, chunk)
                finally:
                    out.close()
        except httpx.HTTPError as exc:
            raise ServiceError.unavailable(
                "STORAGE_UNAVAILABLE", f"cannot download asset {resolved.asset.id}: {exc}", retry_after=2.0
            ) from exc

    async def fetch(self, owner: str, asset_id: str, path: Path) -> storage_pb2.Asset:
        """``resolve`` + ``download``: the owner's asset, its bytes written to ``path``."""
        resolved = await self.resolve(owner, asset_id)
        await self.download(resolved, path)
        return resolved.asset

    async def store(
        self,
        owner: str,
        path: Path,
        name: str,
        content_type: str,
        labels: Mapping[str, str] | None = None,
        *,
        request_id: str = "",
    ) -> storage_pb2.Asset:
        """Streams a local file into the owner's storage in chunks. The sha256 is computed while
        streaming (one read of the file) and checked against the stored asset's afterwards."""
        size = (await asyncio.to_thread(path.stat)).st_size
        upload = storage_pb2.UploadMetadata(
            name=name, content_type=content_type, size_bytes=size, request_id=request_id, labels=dict(labels or {})
        )
        digest = hashlib.sha256()
        sent = 0

        async def requests() -> AsyncIterator[storage_pb2.StoreAssetRequest]:
            nonlocal sent
            yield storage_pb2.StoreAssetRequest(metadata=storage_pb2.StoreAssetMetadata(owner_id=owner, upload=upload))
            f = await asyncio.to_thread(path.open, "rb")
            try:
                while chunk := await asyncio.to_thread(f.read, _CHUNK):
                    digest.update(chunk)
                    sent += len(chunk)
                    yield storage_pb2.StoreAssetRequest(chunk=chunk)
            finally:
                f.close()

        try:
            answer = await self._stub.StoreAsset(
                requests(), metadata=await self._credentials.metadata(), timeout=self._store_timeout
            )
        except grpc.aio.AioRpcError as exc:
            raise _map(exc, "") from None
        stored: storage_pb2.Asset = answer.asset
        _check_stored(stored, sent, digest.hexdigest())
        return stored


    # -- service-owned objects (no user's asset: kept latents between a job's attempts) ---------------
    async def put_object(self, key: str, data: bytes) -> None:
        """Stores ``data`` under the service object ``key`` (replacing what was there)."""

        async def requests() -> AsyncIterator[storage_pb2.PutObjectRequest]:
            yield storage_pb2.PutObjectRequest(key=key)
            for offset in range(0, len(data), _CHUNK):
                yield storage_pb2.PutObjectRequest(chunk=data[offset : offset + _CHUNK])

        try:
            await self._stub.PutObject(requests(), metadata=await self._credentials.metadata(),
                                       timeout=self._store_timeout)
        except grpc.aio.AioRpcError as exc:
            raise _map(exc, "") from None

    async def resolve_object(self, key: str) -> str | None:
        """A GET URL for the service object ``key`` (any node can read it), None when there is none."""
        try:
            answer = await self._stub.ResolveObject(
                storage_pb2.ResolveObjectRequest(key=key, expire_seconds=self._expire),
                metadata=await self._credentials.metadata(), timeout=self._rpc_timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise _map(exc, "") from None
        return str(answer.url)

    async def delete_object(self, key: str) -> None:
        try:
            await self._stub.DeleteObject(storage_pb2.DeleteObjectRequest(key=key),
                                          metadata=await self._credentials.metadata(), timeout=self._rpc_timeout)
        except grpc.aio.AioRpcError as exc:
            raise _map(exc, "") from None

    async def list_objects(self, prefix: str, *, start_after: str = "", limit: int = 0) -> list[str]:
        """Keys of the service objects ``<prefix>/...`` after ``start_after`` (at most ``limit``, 0 =
        storage's page size), in key order."""
        try:
            answer = await self._stub.ListObjects(
                storage_pb2.ListObjectsRequest(prefix=prefix, start_after=start_after, limit=limit),
                metadata=await self._credentials.metadata(), timeout=self._rpc_timeout)
        except grpc.aio.AioRpcError as exc:
            raise _map(exc, "") from None
        return [o.key for o in answer.objects]


def _check_stored(asset: storage_pb2.Asset, size: int, sha256: str) -> None:
    # Storage verified the declared size; a different sha256 means other bytes than the file's
    # (e.g. a request_id reused for another output, answered with the earlier asset).
    if asset.sha256 != sha256 or asset.size_bytes != size:
        raise ServiceError(
            grpc.StatusCode.DATA_LOSS, "CHECKSUM_MISMATCH", "the stored asset differs from the file sent",
            metadata={"asset_id": asset.id, "sent_sha256": sha256, "stored_sha256": asset.sha256},
        )


def _map(exc: grpc.aio.AioRpcError, asset_id: str) -> ServiceError:
    code = exc.code()
    if code == grpc.StatusCode.NOT_FOUND:
        what = f"asset {asset_id}" if asset_id else "asset"
        return ServiceError.not_found("ASSET_NOT_FOUND", f"{what} not found", metadata={"asset_id": asset_id})
    if code in _UNAVAILABLE:
        return ServiceError.unavailable("STORAGE_UNAVAILABLE", f"storage is unavailable: {code.name}", retry_after=2.0)
    err = from_rpc_error(exc)
    return ServiceError(
        code, err.reason or "STORAGE_REJECTED", err.message or f"storage refused: {code.name}",
        metadata=err.metadata, retry_after=err.retry_after, domain=err.domain or None,
        field_violations=[FieldViolation(v.field, v.description) for v in err.field_violations],
    )
