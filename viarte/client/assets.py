"""Images, videos and audio (``viarte.storage.v1.StorageService``): uploads through the service
or straight to S3 with a presigned URL, and downloads that resume or leave nothing behind."""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, Literal

import httpx

from viarte.client._base import Page, SyncResource, _Resource, sync
from viarte.errors import ClientError, Unavailable
from viarte.storage.v1 import storage_pb2, storage_pb2_grpc
from viarte.transport import _DEFAULT
from viarte.type.v1 import asset_pb2

__all__ = ["CHUNK", "Assets", "AsyncAssets", "ProgressCallback", "Source"]

ProgressCallback = Callable[[int, int], None]
"""``(bytes_done, bytes_total)`` for uploads and downloads."""
Source = str | os.PathLike[str] | bytes | IO[bytes]
CHUNK = 256 * 1024


# Types the platform's mimetypes tables do not know, which storage accepts by their extension.
_EXTRA_TYPES = {".cube": "application/x-cube-lut", ".safetensors": "application/vnd.safetensors",
                ".jsonl": "application/jsonl"}  # fmt: skip


def _content_type(name: str) -> str:
    extra = _EXTRA_TYPES.get(Path(name).suffix.lower())
    return extra or mimetypes.guess_type(name)[0] or "application/octet-stream"


def _sha256_and_size(source: bytes | Path | IO[bytes]) -> tuple[str, int]:
    h = hashlib.sha256()
    if isinstance(source, bytes):
        h.update(source)
        return h.hexdigest(), len(source)
    size = 0
    with _open(source) as fh:
        while block := fh.read(1 << 20):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size


class _open:
    """Opens a path (or rewinds a seekable file object) for one pass over the bytes."""

    def __init__(self, source: Path | IO[bytes]) -> None:
        self._source = source
        self._fh: IO[bytes] | None = None

    def __enter__(self) -> IO[bytes]:
        if isinstance(self._source, Path):
            self._fh = self._source.open("rb")
            return self._fh
        self._source.seek(0)
        return self._source

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            self._fh.close()


def _chunks(source: bytes | Path | IO[bytes], size: int, chunk: int, progress: ProgressCallback | None) -> Iterator[bytes]:
    done = 0
    if progress:
        progress(0, size)
    if isinstance(source, bytes):
        for i in range(0, len(source), chunk):
            piece = source[i : i + chunk]
            done += len(piece)
            yield piece
            if progress:
                progress(done, size)
        return
    with _open(source) as fh:
        while piece := fh.read(chunk):
            done += len(piece)
            yield piece
            if progress:
                progress(done, size)


class AsyncAssets(_Resource):
    """Images, videos and audio (``viarte.storage.v1.StorageService``)."""

    @property
    def _stub(self) -> storage_pb2_grpc.StorageServiceStub:
        return self._t.stub(storage_pb2_grpc.StorageServiceStub, "storage")

    async def upload(
        self,
        source: Source,
        *,
        name: str | None = None,
        content_type: str | None = None,
        labels: Mapping[str, str] | None = None,
        method: Literal["stream", "presigned"] = "stream",
        progress: ProgressCallback | None = None,
        request_id: str | None = None,
        chunk_size: int = CHUNK,
        timeout: float | None = 600.0,  # noqa: ASYNC109 - a gRPC deadline
    ) -> storage_pb2.Asset:
        """Uploads a file, bytes or a seekable binary file object; returns the READY asset.

        ``stream`` sends the bytes through the storage service (``UploadAsset``); ``presigned``
        PUTs them straight to S3 (``CreateUpload`` → HTTP PUT → ``CompleteUpload``), as browsers do.
        Both send the size and sha256, which the service verifies, and a ``request_id`` so a retry
        after a dropped connection returns the same asset.
        """
        data, name = self._normalise(source, name)
        content_type = content_type or _content_type(name)
        sha256, size = await asyncio.to_thread(_sha256_and_size, data)
        request_id = request_id or uuid.uuid4().hex
        if method == "presigned":
            return await self._upload_presigned(data, name, content_type, size, sha256, request_id, progress, timeout)
        if method != "stream":
            raise ClientError("method must be 'stream' or 'presigned'")
        meta = storage_pb2.UploadMetadata(
            name=name, content_type=content_type, size_bytes=size, sha256=sha256, request_id=request_id,
            labels=dict(labels or {}),
        )

        def requests() -> Iterator[storage_pb2.UploadAssetRequest]:
            yield storage_pb2.UploadAssetRequest(metadata=meta)
            for piece in _chunks(data, size, chunk_size, progress):
                yield storage_pb2.UploadAssetRequest(chunk=piece)

        resp: storage_pb2.UploadAssetResponse = await self._t.stream_unary(
            self._stub.UploadAsset, requests, retry=True, timeout=timeout
        )
        return resp.asset

    @staticmethod
    def _normalise(source: Source, name: str | None) -> tuple[bytes | Path | IO[bytes], str]:
        if isinstance(source, bytes):
            if not name:
                raise ClientError("name= is required when uploading bytes")
            return source, name
        if isinstance(source, str | os.PathLike):
            path = Path(source)
            if not path.is_file():
                raise ClientError(f"no such file: {path}")
            return path, name or path.name
        if not source.seekable():
            raise ClientError("file objects must be seekable (the SDK hashes them before sending)")
        return source, name or Path(getattr(source, "name", "upload.bin")).name

    async def _upload_presigned(
        self, data: bytes | Path | IO[bytes], name: str, content_type: str, size: int, sha256: str,
        request_id: str, progress: ProgressCallback | None, timeout: float | None,  # noqa: ASYNC109 - a gRPC deadline
    ) -> storage_pb2.Asset:
        req = storage_pb2.CreateUploadRequest(
            name=name, content_type=content_type, size_bytes=size, sha256=sha256, request_id=request_id
        )
        up = await self._t.unary(self._stub.CreateUpload, req, retry=True)
        headers = {"content-type": content_type, **dict(up.required_headers)}
        parts: list[storage_pb2.CompletedPart] = []
        async with httpx.AsyncClient(timeout=timeout, trust_env=False) as http:
            if up.url:
                body = await asyncio.to_thread(_read_all, data)
                await _put(http, up.url, body, headers, progress, 0, size)
            else:
                body = await asyncio.to_thread(_read_all, data)
                offset = 0
                for part in sorted(up.parts, key=lambda p: p.part_number):
                    piece = body[offset : offset + part.size_bytes]
                    etag = await _put(http, part.url, piece, headers, progress, offset, size)
                    parts.append(storage_pb2.CompletedPart(part_number=part.part_number, etag=etag))
                    offset += part.size_bytes
        done: storage_pb2.CompleteUploadResponse = await self._t.unary(
            self._stub.CompleteUpload, storage_pb2.CompleteUploadRequest(asset_id=up.asset_id, parts=parts), retry=True
        )
        return done.asset

    async def get(self, asset_id: str, *, timeout: Any = _DEFAULT) -> storage_pb2.Asset:  # noqa: ASYNC109 - a gRPC deadline
        req = storage_pb2.GetAssetRequest(asset_id=asset_id)
        resp: storage_pb2.GetAssetResponse = await self._t.unary(self._stub.GetAsset, req, retry=True, timeout=timeout)
        return resp.asset

    async def list(
        self, *, kind: Literal["image", "video", "audio", "lut"] | None = None, page_size: int = 50, page_token: str = ""
    ) -> Page[storage_pb2.Asset]:
        kinds = {
            None: asset_pb2.ASSET_KIND_UNSPECIFIED,
            "image": asset_pb2.ASSET_KIND_IMAGE,
            "video": asset_pb2.ASSET_KIND_VIDEO,
            "audio": asset_pb2.ASSET_KIND_AUDIO,
            "lut": asset_pb2.ASSET_KIND_LUT,
        }
        req = storage_pb2.ListAssetsRequest(page_size=page_size, page_token=page_token, kind=kinds[kind])
        resp = await self._t.unary(self._stub.ListAssets, req, retry=True)
        return Page(list(resp.assets), resp.next_page_token)

    async def list_all(self, *, kind: Literal["image", "video", "audio", "lut"] | None = None) -> AsyncIterator[storage_pb2.Asset]:
        token = ""
        while True:
            page = await self.list(kind=kind, page_token=token)
            for item in page.items:
                yield item
            if not page.next_page_token:
                return
            token = page.next_page_token

    async def delete(self, asset_id: str) -> None:
        await self._t.unary(self._stub.DeleteAsset, storage_pb2.DeleteAssetRequest(asset_id=asset_id), retry=True)

    async def url(
        self, asset_id: str, *, expire_seconds: int = 0, attachment: bool = False, thumbnail: bool = False
    ) -> str:
        req = storage_pb2.GetDownloadUrlRequest(
            asset_id=asset_id, expire_seconds=expire_seconds, attachment=attachment, thumbnail=thumbnail
        )
        resp: storage_pb2.GetDownloadUrlResponse = await self._t.unary(self._stub.GetDownloadUrl, req, retry=True)
        return resp.url

    async def stream(
        self, asset_id: str, *, thumbnail: bool = False, offset: int = 0, max_resumes: int = 5,
        progress: ProgressCallback | None = None,
    ) -> AsyncIterator[bytes]:
        """The asset's bytes in chunks. A stream dropped midway resumes from the byte it reached."""
        total, resumes = 0, 0
        while True:
            req = storage_pb2.DownloadAssetRequest(asset_id=asset_id, offset=offset, thumbnail=thumbnail)
            try:
                async for msg in self._t.unary_stream(self._stub.DownloadAsset, req):
                    if msg.HasField("asset") and not total:
                        total = msg.asset.size_bytes if not thumbnail else 0
                    if msg.chunk:
                        offset += len(msg.chunk)
                        yield msg.chunk
                        if progress:
                            progress(offset, total or offset)
                return
            except Unavailable:
                resumes += 1
                if resumes > max_resumes:
                    raise
                await asyncio.sleep(self._t.retry.delay(resumes))

    async def read(self, asset_id: str, *, thumbnail: bool = False) -> bytes:
        return b"".join([chunk async for chunk in self.stream(asset_id, thumbnail=thumbnail)])

    async def download(
        self,
        asset_id: str,
        dest: str | os.PathLike[str] | None = None,
        *,
        thumbnail: bool = False,
        progress: ProgressCallback | None = None,
        method: Literal["stream", "url"] = "stream",
    ) -> Path:
        """Writes the asset to ``dest`` (a file, or a folder to keep the asset's name; default the
        current folder) through a temporary file, so a failed download leaves nothing behind."""
        target = Path(dest) if dest is not None else Path.cwd()
        if target.is_dir():
            asset = await self.get(asset_id)
            target = target / (Path(asset.name).name if not thumbnail else f"{Path(asset.name).stem}.jpg")
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            with partial.open("wb") as fh:
                if method == "url":
                    await self._download_url(asset_id, thumbnail, fh, progress)
                else:
                    async for chunk in self.stream(asset_id, thumbnail=thumbnail, progress=progress):
                        await asyncio.to_thread(fh.write, chunk)
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
        return target

    async def _download_url(
        self, asset_id: str, thumbnail: bool, fh: IO[bytes], progress: ProgressCallback | None
    ) -> None:
        url = await self.url(asset_id, thumbnail=thumbnail)
        async with httpx.AsyncClient(timeout=600, trust_env=False) as http, http.stream("GET", url) as resp:
            if resp.status_code != 200:
                raise Unavailable(f"download URL answered HTTP {resp.status_code}", reason="S3_UNAVAILABLE")
            total = int(resp.headers.get("content-length", 0))
            done = 0
            async for chunk in resp.aiter_bytes(CHUNK):
                fh.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total or done)


def _read_all(data: bytes | Path | IO[bytes]) -> bytes:
    if isinstance(data, bytes):
        return data
    with _open(data) as fh:
        return fh.read()


async def _put(
    http: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str], progress: ProgressCallback | None,
    base: int, total: int,
) -> str:
    async def content() -> AsyncIterator[bytes]:
        for i in range(0, len(body), CHUNK):
            yield body[i : i + CHUNK]
            if progress:
                progress(base + min(i + CHUNK, len(body)), total)

    headers = {**headers, "content-length": str(len(body))}
    try:
        resp = await http.put(url, content=content(), headers=headers)
    except httpx.TransportError as exc:
        raise Unavailable(f"upload PUT failed: {exc}", reason="S3_UNAVAILABLE") from exc
    if resp.status_code >= 300:
        raise Unavailable(f"upload PUT answered HTTP {resp.status_code}: {resp.text[:200]}", reason="S3_UNAVAILABLE")
    return str(resp.headers.get("etag", "")).strip('"')


class Assets(SyncResource[AsyncAssets]):
    """The sync :class:`AsyncAssets`."""

    upload = sync(AsyncAssets.upload)
    get = sync(AsyncAssets.get)
    list = sync(AsyncAssets.list)
    list_all = sync(AsyncAssets.list_all)
    delete = sync(AsyncAssets.delete)
    url = sync(AsyncAssets.url)
    read = sync(AsyncAssets.read)
    download = sync(AsyncAssets.download)
