"""gRPC servicers: StorageService (users) and StorageInternalService (service principals only)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

import grpc

from services.kit.auth import current_principal
from services.kit.errors import ServiceError, Violations
from services.storage.assets import Assets, UploadSpec, timestamp
from services.storage.internal_objects import InternalObjects
from services.storage.reasons import Reason
from viarte.storage.v1 import storage_pb2, storage_pb2_grpc

__all__ = ["StorageInternalServicer", "StorageServicer"]

def _user() -> str:
    # API-key scopes were checked by the edge interceptor (services/kit/scopes.py) before this runs.
    return current_principal().user_id


def _spec(meta: storage_pb2.UploadMetadata) -> UploadSpec:
    return UploadSpec(
        name=meta.name,
        content_type=meta.content_type,
        size_bytes=meta.size_bytes,
        sha256=meta.sha256.lower(),
        request_id=meta.request_id,
        labels=dict(meta.labels),
    )


class _Chunked(Protocol):
    def HasField(self, name: str) -> bool: ...

    chunk: bytes


async def _split(requests: AsyncIterator[Any], what: str) -> tuple[Any, AsyncIterator[bytes]]:
    """First message must carry `metadata`; the rest are `chunk`s."""
    first = await anext(aiter(requests), None)
    if first is None or not first.HasField("metadata"):
        raise ServiceError.invalid_argument(Reason.INVALID_ARGUMENT, f"the first message must carry {what}")

    async def chunks() -> AsyncIterator[bytes]:
        async for message in requests:
            if message.HasField("metadata"):
                raise ServiceError.invalid_argument(Reason.INVALID_ARGUMENT, "metadata may only be sent first")
            if message.chunk:
                yield message.chunk

    return first.metadata, chunks()


class StorageServicer(storage_pb2_grpc.StorageServiceServicer):  # type: ignore[misc]
    def __init__(self, assets: Assets) -> None:
        self.assets = assets

    async def CreateUpload(
        self, request: storage_pb2.CreateUploadRequest, context: grpc.aio.ServicerContext
    ) -> storage_pb2.CreateUploadResponse:
        owner = _user()
        spec = UploadSpec(
            name=request.name,
            content_type=request.content_type,
            size_bytes=request.size_bytes,
            sha256=request.sha256.lower(),
            request_id=request.request_id,
        )
        upload = await self.assets.create_upload(owner, spec)
        response = storage_pb2.CreateUploadResponse(
            asset_id=upload.row.id, url=upload.url, expire_time=timestamp(upload.expire_time)
        )
        for number, url, size in upload.parts:
            response.parts.add(part_number=number, url=url, size_bytes=size)
        if upload.url:
            response.required_headers["content-type"] = upload.row.content_type
        return response

    async def CompleteUpload(
        self, request: storage_pb2.CompleteUploadRequest, context: grpc.aio.ServicerContext
    ) -> storage_pb2.CompleteUploadResponse:
        owner = _user()
        parts = [(p.part_number, p.etag) for p in request.parts]
        row = await self.assets.complete_upload(owner, request.asset_id, parts)
        return storage_pb2.CompleteUploadResponse(asset=self.assets.to_proto(row))

    async def UploadAsset(
        self, request_iterator: AsyncIterator[storage_pb2.UploadAssetRequest], context: grpc.aio.ServicerContext
    ) -> storage_pb2.UploadAssetResponse:
        owner = _user()
        meta, chunks = await _split(request_iterator, "metadata")
        row = await self.assets.ingest(owner, _spec(meta), chunks)
        return storage_pb2.UploadAssetResponse(asset=self.assets.to_proto(row))

    async def DownloadAsset(
        self, request: storage_pb2.DownloadAssetRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[storage_pb2.DownloadAssetResponse]:
        owner = _user()
        row, chunks = await self.assets.open_download(
            owner, request.asset_id, request.offset, request.length, request.thumbnail
        )
        first = True
        async for chunk in chunks:
            if first:
                yield storage_pb2.DownloadAssetResponse(asset=self.assets.to_proto(row), chunk=chunk)
                first = False
            else:
                yield storage_pb2.DownloadAssetResponse(chunk=chunk)

    async def GetAsset(
        self, request: storage_pb2.GetAssetRequest, context: grpc.aio.ServicerContext
    ) -> storage_pb2.GetAssetResponse:
        owner = _user()
        row = await self.assets.get(owner, request.asset_id, ready_only=False)
        return storage_pb2.GetAssetResponse(asset=self.assets.to_proto(row))

    async def ListAssets(
        self, request: storage_pb2.ListAssetsRequest, context: grpc.aio.ServicerContext
    ) -> storage_pb2.ListAssetsResponse:
        owner = _user()
        rows, token, total = await self.assets.list(owner, request.kind, request.page_size, request.page_token)
        return storage_pb2.ListAssetsResponse(
            assets=[self.assets.to_proto(r) for r in rows], next_page_token=token, total_bytes=total
        )

    async def DeleteAsset(
        self, request: storage_pb2.DeleteAssetRequest, context: grpc.aio.ServicerContext
    ) -> storage_pb2.DeleteAssetResponse:
        owner = _user()
        await self.assets.delete(owner, request.asset_id)
        return storage_pb2.DeleteAssetResponse()

    async def GetDownloadUrl(
        self, request: storage_pb2.GetDownloadUrlRequest, context: grpc.aio.ServicerContext
    ) -> storage_pb2.GetDownloadUrlResponse:
        owner = _user()
        row = await self.assets.get(owner, request.asset_id)
        url, expire = self.assets.download_url(row, request.expire_seconds, request.attachment, request.thumbnail)
        return storage_pb2.GetDownloadUrlResponse(url=url, expire_time=timestamp(expire))


class StorageInternalServicer(storage_pb2_grpc.StorageInternalServiceServicer):  # type: ignore[misc]
    """Registered with `Service(..., internal=True)`: the kit admits only SERVICE principals."""

    def __init__(self, assets: Assets) -> None:
        self.assets = assets
        self.internal = InternalObjects(assets)

    @staticmethod
    def _owner(owner_id: str) -> str:
        v = Violations()
        v.check(bool(owner_id) and len(owner_id) <= 64 and "/" not in owner_id, "owner_id", "a user id is required")
        v.raise_if_any(Reason.INVALID_ARGUMENT, "invalid owner")
        return owner_id

    async def StoreAsset(
        self, request_iterator: AsyncIterator[storage_pb2.StoreAssetRequest], context: grpc.aio.ServicerContext
    ) -> storage_pb2.StoreAssetResponse:
        meta, chunks = await _split(request_iterator, "metadata")
        owner = self._owner(meta.owner_id)
        row = await self.assets.ingest(owner, _spec(meta.upload), chunks)
        return storage_pb2.StoreAssetResponse(asset=self.assets.to_proto(row))

    async def ResolveAsset(
        self, request: storage_pb2.ResolveAssetRequest, context: grpc.aio.ServicerContext
    ) -> storage_pb2.ResolveAssetResponse:
        owner = self._owner(request.owner_id)
        row = await self.assets.get(owner, request.asset_id)
        url, _ = self.assets.internal_url(row, request.expire_seconds)
        return storage_pb2.ResolveAssetResponse(asset=self.assets.to_proto(row), url=url)

    async def PutObject(
        self, request_iterator: AsyncIterator[storage_pb2.PutObjectRequest], context: grpc.aio.ServicerContext
    ) -> storage_pb2.PutObjectResponse:
        first = await anext(aiter(request_iterator), None)
        if first is None or not first.HasField("key"):
            raise ServiceError.invalid_argument(Reason.INVALID_ARGUMENT, "the first message must carry the key")

        async def chunks() -> AsyncIterator[bytes]:
            async for message in request_iterator:
                if message.HasField("key"):
                    raise ServiceError.invalid_argument(Reason.INVALID_ARGUMENT, "the key may only be sent first")
                yield message.chunk

        return storage_pb2.PutObjectResponse(size_bytes=await self.internal.put(first.key, chunks()))

    async def ResolveObject(
        self, request: storage_pb2.ResolveObjectRequest, context: grpc.aio.ServicerContext
    ) -> storage_pb2.ResolveObjectResponse:
        url, size = await self.internal.resolve(request.key, request.expire_seconds)
        return storage_pb2.ResolveObjectResponse(url=url, size_bytes=size)

    async def DeleteObject(
        self, request: storage_pb2.DeleteObjectRequest, context: grpc.aio.ServicerContext
    ) -> storage_pb2.DeleteObjectResponse:
        await self.internal.delete(request.key)
        return storage_pb2.DeleteObjectResponse()

    async def ListObjects(
        self, request: storage_pb2.ListObjectsRequest, context: grpc.aio.ServicerContext
    ) -> storage_pb2.ListObjectsResponse:
        found = await self.internal.list_keys(request.prefix, request.start_after, request.limit)
        return storage_pb2.ListObjectsResponse(objects=[storage_pb2.ObjectEntry(key=k, size_bytes=n) for k, n in found])
