"""The read side of storage assets (lookups, listings, downloads, URLs, deletion, the proto view),
kept apart from the ingest path in ``assets.py``; ``Assets`` inherits it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from services.kit.db import run_db
from services.kit.errors import ServiceError, Violations
from services.kit.pagination import PageTokens, page_size
from services.storage import media
from services.storage.config import StorageConfig
from services.storage.keys import asset_prefixes, thumbnail_key
from services.storage.models import AssetRow, Origin, State, as_utc, utcnow
from services.storage.objectstore import ObjectStore
from services.storage.promote import Promoter
from services.storage.reasons import Reason
from services.storage.store import AssetStore
from viarte.storage.v1 import storage_pb2

__all__ = ["AssetReads", "timestamp"]


def timestamp(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(as_utc(value))
    return ts


class AssetReads:
    config: StorageConfig
    store: AssetStore
    objects: ObjectStore
    promoter: Promoter
    page_tokens: PageTokens

    # -- reads -------------------------------------------------------------------------------------
    async def get(self, owner_id: str, asset_id: str, *, ready_only: bool = True) -> AssetRow:
        # Ids are UUIDs: anything longer is not one of ours and needs no database lookup.
        row = await run_db(self.store.get, asset_id, owner_id) if 0 < len(asset_id) <= 64 else None
        visible = row is not None and (
            row.state == State.READY
            or (not ready_only and row.state == State.PENDING and row.origin == Origin.PRESIGNED)
        )
        if row is None or not visible:
            raise ServiceError.not_found(Reason.ASSET_NOT_FOUND, "asset not found", metadata={"asset_id": asset_id})
        return row

    async def list(
        self, owner_id: str, kind: int, size: int, token: str
    ) -> tuple[list[AssetRow], str, int]:
        filters = {"owner": owner_id, "kind": kind}
        cursor = self.page_tokens.decode(token, filters, {"t": datetime, "id": str})
        limit = page_size(size)
        after = (cursor["t"], cursor["id"]) if cursor is not None else None
        rows = await run_db(self.store.list_ready, owner_id, kind, after, limit + 1)
        next_token = ""
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            next_token = self.page_tokens.encode({"t": as_utc(last.create_time), "id": last.id}, filters)
        total = await run_db(self.store.ready_bytes, owner_id)
        return rows, next_token, total

    async def delete(self, owner_id: str, asset_id: str) -> None:
        row = await self.get(owner_id, asset_id, ready_only=False)
        # Tombstone first: from here on the asset is gone for the user, whatever happens next.
        if not await run_db(self.store.update, row.id, [State.READY, State.PENDING], state=State.DELETING):
            raise ServiceError.not_found(Reason.ASSET_NOT_FOUND, "asset not found", metadata={"asset_id": asset_id})
        if row.multipart_upload_id:
            await self.objects.abort_multipart(self.promoter.staging_key(row), row.multipart_upload_id)
        await self.objects.delete_prefixes(*asset_prefixes(row.owner_id, row.id))
        await run_db(self.store.delete_row, row.id)

    def _target(self, row: AssetRow, thumbnail: bool) -> tuple[str, str, str]:
        """(key, content type, file name) of the asset or of its thumbnail."""
        if not thumbnail:
            return row.object_key, row.content_type, row.name
        if not row.has_thumbnail:
            raise ServiceError.not_found(
                Reason.ASSET_NOT_FOUND, "the asset has no thumbnail", metadata={"asset_id": row.id}
            )
        stem = row.name.rsplit(".", 1)[0] or "thumbnail"
        return thumbnail_key(row.owner_id, row.id), "image/jpeg", f"{stem}.jpg"

    async def open_download(
        self, owner_id: str, asset_id: str, offset: int, length: int, thumbnail: bool
    ) -> tuple[AssetRow, AsyncIterator[bytes]]:
        row = await self.get(owner_id, asset_id)
        key, _, _ = self._target(row, thumbnail)
        size = row.size_bytes
        if thumbnail:
            info = await self.objects.head(key)
            if info is None:
                raise ServiceError.not_found(Reason.ASSET_NOT_FOUND, "thumbnail missing", metadata={"asset_id": row.id})
            size = info.size
        if offset < 0 or length < 0 or offset >= size:
            raise ServiceError.out_of_range(
                Reason.INVALID_RANGE, f"range starts outside the {size}-byte object",
                metadata={"size_bytes": str(size), "offset": str(offset), "length": str(length)},
            )
        span = size - offset if length == 0 else min(length, size - offset)
        return row, self.objects.iter_chunks(key, offset, span, self.config.download_chunk_bytes)

    def _url_seconds(self, expire_seconds: int) -> int:
        if expire_seconds < 0 or expire_seconds > self.config.download_url_max_expire_seconds:
            v = Violations()
            v.add("expire_seconds", f"must be between 0 and {self.config.download_url_max_expire_seconds}")
            v.raise_if_any(Reason.INVALID_ARGUMENT, "expiry out of range")
        return expire_seconds or self.config.download_url_expire_seconds

    def internal_url(self, row: AssetRow, expire_seconds: int) -> tuple[str, datetime]:
        """A GET URL on the internal S3 endpoint, for services (ResolveAsset): they reach S3
        directly, not through the browser-facing endpoint (s3_public_endpoint, e.g. Envoy)."""
        seconds = self._url_seconds(expire_seconds)
        return self.objects.internal_get_url(row.object_key, seconds), utcnow() + timedelta(seconds=seconds)

    def download_url(
        self, row: AssetRow, expire_seconds: int, attachment: bool, thumbnail: bool
    ) -> tuple[str, datetime]:
        seconds = self._url_seconds(expire_seconds)
        key, ctype, name = self._target(row, thumbnail)
        url = self.objects.presign_get(key, seconds, name=name, content_type=ctype, attachment=attachment)
        return url, utcnow() + timedelta(seconds=seconds)

    # -- proto -------------------------------------------------------------------------------------
    @staticmethod
    def to_proto(row: AssetRow) -> storage_pb2.Asset:
        state = storage_pb2.ASSET_STATE_READY if row.state == State.READY else storage_pb2.ASSET_STATE_PENDING
        asset = storage_pb2.Asset(
            id=row.id,
            owner_id=row.owner_id,
            name=row.name,
            kind=row.kind,  # type: ignore[arg-type]
            content_type=row.content_type,
            size_bytes=row.size_bytes,
            sha256=row.sha256,
            state=state,
            has_thumbnail=row.has_thumbnail,
            create_time=timestamp(row.create_time),
            labels=json.loads(row.labels_json or "{}"),
        )
        if row.media_json:
            asset.media.CopyFrom(media.MediaFacts.from_json(row.media_json).to_proto())
        return asset
