"""Storage logic, free of gRPC: reserve -> write object -> verify -> commit, and the reads.

Write order (what makes crashes safe):
  1. a PENDING row is committed before any byte reaches S3 (so every object has a row);
  2. presigned uploads land on the asset's staging key, are copied server-side to the final key,
     the staging object is deleted, and the final object (and its thumbnail) are verified: size,
     sha256, sniffed type, ffprobe, a decoded frame (`promote`). Streamed uploads (UploadAsset,
     StoreAsset) are written by this service straight to the final key, sized, hashed and sniffed
     on the way (no URL to that key exists, so nothing else can have changed the bytes: no copy and
     no second read, issue 20), then probed the same way;
  3. only then the row becomes READY (so a READY row always has its object, exactly as described).
A crash between 2 and 3 leaves a PENDING row with objects: never listed, never downloadable, and
removed by the janitor once expired. No URL handed out can write a final key, so a READY asset's
bytes never change. Deletion writes a DELETING tombstone first, then removes the
objects, then the row; the janitor finishes interrupted deletions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.kit.cube_lut import MAX_LUT_BYTES
from services.kit.db import run_db
from services.kit.errors import ServiceError, Violations
from services.kit.logs import get_logger
from services.kit.pagination import PageTokens
from services.storage import media
from services.storage.config import StorageConfig
from services.storage.keys import asset_prefixes, object_key, sanitize_name, thumbnail_key, with_extension
from services.storage.lut import check_lut, lut_error
from services.storage.models import AssetRow, Origin, State, as_utc, utcnow
from services.storage.objectstore import ObjectStore
from services.storage.promote import Promoter
from services.storage.reads import AssetReads, timestamp
from services.storage.reasons import Reason
from services.storage.store import AssetStore, QuotaExceeded

__all__ = ["Assets", "StepCallback", "UploadSpec", "timestamp"]

_log = get_logger("viarte.storage")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_PARTS = 10_000
MAX_LABELS = 32

# Called after each numbered step of an ingest with (step name, asset id); raising interrupts it.
StepCallback = Callable[[str, str], None]


@dataclass(frozen=True)
class UploadSpec:
    """What a client declares about a file (validated by `Assets.check_spec`)."""

    name: str
    content_type: str
    size_bytes: int = 0
    sha256: str = ""
    request_id: str = ""
    labels: Mapping[str, str] | None = None


@dataclass(frozen=True)
class PresignedUpload:
    row: AssetRow
    url: str
    parts: list[tuple[int, str, int]]
    expire_time: datetime


class Assets(AssetReads):
    def __init__(
        self,
        config: StorageConfig,
        store: AssetStore,
        objects: ObjectStore,
        on_step: StepCallback | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.objects = objects
        self.promoter = Promoter(objects)
        self.on_step = on_step
        self.page_tokens = PageTokens.for_service(config)
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    def _step(self, name: str, asset_id: str) -> None:
        if self.on_step is not None:
            self.on_step(name, asset_id)

    # -- checks ------------------------------------------------------------------------------------
    def check_spec(self, spec: UploadSpec, *, require_size_and_sha: bool) -> tuple[str, str]:
        """1. Validates the declaration; returns (sanitised name, canonical content type)."""
        v = Violations()
        name = sanitize_name(spec.name)
        v.check(bool(name), "name", "must contain at least one usable character")
        v.check(len(spec.request_id) <= 200, "request_id", "at most 200 characters")
        if require_size_and_sha:
            v.check(spec.size_bytes > 0, "size_bytes", "must be positive")
            v.check(bool(_SHA256.match(spec.sha256)), "sha256", "must be 64 lowercase hex digits")
        else:
            v.check(spec.size_bytes >= 0, "size_bytes", "must not be negative")
            v.check(not spec.sha256 or bool(_SHA256.match(spec.sha256)), "sha256", "must be 64 lowercase hex digits")
        labels = spec.labels or {}
        v.check(len(labels) <= MAX_LABELS, "labels", f"at most {MAX_LABELS} labels")
        v.check(all(0 < len(k) <= 63 and len(val) <= 256 for k, val in labels.items()), "labels", "key 1-63, value <= 256 chars")
        v.raise_if_any(Reason.INVALID_ARGUMENT, "invalid upload metadata")
        ctype = media.canonical_type(spec.content_type)
        if ctype not in media.SUPPORTED_TYPES:
            raise ServiceError.invalid_argument(
                Reason.UNSUPPORTED_MEDIA_TYPE,
                f"content type {spec.content_type!r} is not supported",
                metadata={"content_type": spec.content_type, "supported": ",".join(media.SUPPORTED_TYPES)},
            )
        self._check_size(spec.size_bytes)
        if media.kind_of(ctype) == media.LUT and spec.size_bytes > MAX_LUT_BYTES:
            raise lut_error(f"larger than {MAX_LUT_BYTES} bytes")  # refused before any byte is sent
        # The declared type must match the sniffed one (checked on the bytes), so this is its extension.
        return with_extension(name, media.EXTENSIONS[ctype]), ctype

    def _check_size(self, size: int) -> None:
        if size > self.config.max_object_bytes:
            raise ServiceError.resource_exhausted(
                Reason.OBJECT_TOO_LARGE,
                f"objects are limited to {self.config.max_object_bytes} bytes",
                metadata={"max_object_bytes": str(self.config.max_object_bytes), "size_bytes": str(size)},
            )

    def _quota_error(self, exc: QuotaExceeded) -> ServiceError:
        if exc.which == "count":
            return ServiceError.resource_exhausted(
                Reason.QUOTA_COUNT_EXCEEDED,
                f"asset count quota of {self.config.quota_count} reached",
                metadata={"quota_count": str(self.config.quota_count), "count": str(exc.usage.count)},
            )
        return ServiceError.resource_exhausted(
            Reason.QUOTA_BYTES_EXCEEDED,
            f"storage quota of {self.config.quota_bytes} bytes exceeded",
            metadata={"quota_bytes": str(self.config.quota_bytes), "used_bytes": str(exc.usage.bytes)},
        )

    async def _reserve(self, row: AssetRow) -> tuple[AssetRow, bool]:
        try:
            return await run_db(self.store.reserve, row, self.config.quota_bytes, self.config.quota_count)
        except QuotaExceeded as exc:
            raise self._quota_error(exc) from None

    @contextlib.asynccontextmanager
    async def _exclusive(self, asset_id: str) -> AsyncIterator[None]:
        """One operation at a time per asset within this process (complete, retried streams)."""
        entry = self._locks.setdefault(asset_id, (asyncio.Lock(), [0]))
        entry[1][0] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1][0] -= 1
            if entry[1][0] == 0:
                self._locks.pop(asset_id, None)

    def _expire_at(self) -> datetime:
        return utcnow() + timedelta(seconds=self.config.upload_expire_seconds)

    # -- presigned uploads -------------------------------------------------------------------------
    async def create_upload(self, owner_id: str, spec: UploadSpec) -> PresignedUpload:
        name, ctype = self.check_spec(spec, require_size_and_sha=True)
        row = self._new_row(owner_id, spec, name, ctype, Origin.PRESIGNED)
        multipart = spec.size_bytes > self.config.multipart_threshold_bytes
        part_bytes = max(self.config.upload_part_bytes, math.ceil(spec.size_bytes / MAX_PARTS), 5 * 1024 * 1024)
        if multipart:
            row.part_count = math.ceil(spec.size_bytes / part_bytes)
        row, created = await self._reserve(row)
        if not created:
            return self._replay_upload(row, spec, ctype, part_bytes)
        if multipart:
            try:
                upload_id = await self.objects.create_multipart(self.promoter.staging_key(row), ctype)
            except BaseException:
                await run_db(self.store.delete_row, row.id)
                raise
            await run_db(self.store.update, row.id, [State.PENDING], multipart_upload_id=upload_id)
            row.multipart_upload_id = upload_id
        return self._presigned(row, part_bytes)

    def _replay_upload(self, row: AssetRow, spec: UploadSpec, ctype: str, part_bytes: int) -> PresignedUpload:
        """Same request_id again: the same upload, when it declares the same file."""
        if (row.size_bytes, row.sha256, row.content_type) != (spec.size_bytes, spec.sha256, ctype) and (
            row.state == State.PENDING or row.sha256 != spec.sha256
        ):
            raise ServiceError.invalid_argument(
                Reason.INVALID_ARGUMENT, "request_id was already used for a different upload"
            )
        if row.state != State.PENDING:  # already completed: nothing left to upload
            return PresignedUpload(row, "", [], as_utc(row.update_time))
        return self._presigned(row, part_bytes)

    def _presigned(self, row: AssetRow, part_bytes: int) -> PresignedUpload:
        assert row.expire_time is not None
        expire = as_utc(row.expire_time)
        seconds = max(1, int((expire - utcnow()).total_seconds()))
        staged = self.promoter.staging_key(row)  # never the final key: see module docstring
        if not row.multipart_upload_id:
            url = self.objects.presign_put(staged, seconds, row.content_type)
            return PresignedUpload(row, url, [], expire)
        parts = []
        for n in range(1, row.part_count + 1):
            size = min(part_bytes, row.size_bytes - (n - 1) * part_bytes)
            parts.append((n, self.objects.presign_part(staged, row.multipart_upload_id, n, seconds), size))
        return PresignedUpload(row, "", parts, expire)

    async def complete_upload(self, owner_id: str, asset_id: str, parts: list[tuple[int, str]]) -> AssetRow:
        async with self._exclusive(asset_id):
            return await self._complete(owner_id, asset_id, parts)

    async def _complete(self, owner_id: str, asset_id: str, parts: list[tuple[int, str]]) -> AssetRow:
        row = await run_db(self.store.get, asset_id, owner_id)
        if row is None or row.origin != Origin.PRESIGNED or row.state == State.DELETING:
            raise ServiceError.not_found(Reason.UPLOAD_NOT_FOUND, "upload not found", metadata={"asset_id": asset_id})
        if row.state == State.READY:  # completed before: idempotent
            return row
        if row.expire_time is not None and as_utc(row.expire_time) < utcnow():
            await self._discard(row)
            raise ServiceError.failed_precondition(Reason.UPLOAD_EXPIRED, "the upload expired", metadata={"asset_id": asset_id})
        # 1. assemble multipart uploads
        if row.multipart_upload_id:
            await self._finish_multipart(row, parts)
        # 2. something must have been uploaded (nothing yet: the upload stays open)
        size = await self.promoter.stage_size(row)
        # 3. move to the final key, verify, probe, thumbnail; anything wrong deletes the upload
        try:
            if size != row.size_bytes:  # cheap early refusal, before any copy
                raise ServiceError.invalid_argument(
                    Reason.SIZE_MISMATCH,
                    f"uploaded {size} bytes, declared {row.size_bytes}",
                    metadata={"declared": str(row.size_bytes), "actual": str(size)},
                )
            return await self._promote(row, row.size_bytes, row.sha256)
        except ServiceError as exc:
            if exc.reason not in (Reason.S3_UNAVAILABLE, Reason.UPLOAD_INCOMPLETE):
                await self._discard(row)
            raise

    async def _finish_multipart(self, row: AssetRow, parts: list[tuple[int, str]]) -> None:
        assert row.multipart_upload_id is not None
        numbers = sorted(n for n, _ in parts)
        if numbers != list(range(1, row.part_count + 1)):
            raise ServiceError.failed_precondition(
                Reason.UPLOAD_INCOMPLETE,
                f"expected the ETags of parts 1..{row.part_count}",
                metadata={"asset_id": row.id, "part_count": str(row.part_count)},
            )
        from botocore.exceptions import ClientError

        try:
            await self.objects.complete_multipart(self.promoter.staging_key(row), row.multipart_upload_id, parts)
        except ClientError as exc:
            raise ServiceError.failed_precondition(
                Reason.UPLOAD_INCOMPLETE, "S3 refused the parts (missing part or wrong ETag)",
                metadata={"asset_id": row.id, "s3_error": str(exc.response.get("Error", {}).get("Code", ""))},
            ) from None
        await run_db(self.store.update, row.id, [State.PENDING], multipart_upload_id=None)
        row.multipart_upload_id = None

    # -- streamed uploads --------------------------------------------------------------------------
    async def ingest(self, owner_id: str, spec: UploadSpec, chunks: AsyncIterator[bytes]) -> AssetRow:
        """UploadAsset / StoreAsset: 1. check, 2. reserve, 3. stream to S3 (sniff first bytes, enforce
        limits), 4. complete the object, 5. verify declared size/sha256, 6. probe + thumbnail, 7. commit."""
        name, ctype = self.check_spec(spec, require_size_and_sha=False)
        if spec.request_id:
            done = await run_db(self.store.by_request_id, owner_id, spec.request_id)
            if done is not None and done.state == State.READY:
                self._check_same_request(done, spec, name, ctype)
                async for _ in chunks:  # the client sends the bytes again; drop them
                    pass
                return done
        for _ in range(2):
            row, created = await self._reserve(self._new_row(owner_id, spec, name, ctype, Origin.STREAM))
            async with self._exclusive(row.id):
                if created:
                    return await self._stream(row, spec, ctype, chunks)
                self._check_same_request(row, spec, name, ctype)
                # A retry of the same request: we waited for an attempt still running in this
                # process; return its result, or take an abandoned upload over.
                current = await run_db(self.store.get, row.id, owner_id)
                if current is not None and current.state == State.READY:
                    async for _ in chunks:
                        pass
                    return current
                if current is not None and current.state == State.PENDING:
                    return await self._stream(current, spec, ctype, chunks)
            # The earlier attempt failed and was removed meanwhile: reserve afresh.
        raise ServiceError.aborted(Reason.INVALID_ARGUMENT, "concurrent attempts of one request_id; retry")

    @staticmethod
    def _check_same_request(row: AssetRow, spec: UploadSpec, name: str, ctype: str) -> None:
        same = row.origin == Origin.STREAM and row.content_type == ctype and row.name == name
        if row.state == State.READY:
            same = same and (not spec.sha256 or spec.sha256 == row.sha256)
            same = same and (not spec.size_bytes or spec.size_bytes == row.size_bytes)
        if not same:
            raise ServiceError.invalid_argument(
                Reason.INVALID_ARGUMENT, "request_id was already used for a different upload"
            )

    def _new_row(self, owner_id: str, spec: UploadSpec, name: str, ctype: str, origin: Origin) -> AssetRow:
        """A PENDING asset row for an upload (presigned or streamed), expiring if never completed."""
        row = AssetRow(
            owner_id=owner_id,
            name=name,
            content_type=ctype,
            kind=media.kind_of(ctype),
            size_bytes=spec.size_bytes,
            sha256=spec.sha256,
            origin=origin,
            request_id=spec.request_id or None,
            labels_json=json.dumps(dict(spec.labels or {}), sort_keys=True),
            expire_time=self._expire_at(),
        )
        row.object_key = object_key(owner_id, row.id, name)
        return row

    async def _stream(self, row: AssetRow, spec: UploadSpec, ctype: str, chunks: AsyncIterator[bytes]) -> AssetRow:
        owner_id = row.owner_id
        self._step("reserved", row.id)
        writer = self.objects.writer(
            row.object_key, ctype, self.config.stream_part_bytes, self.config.stream_parts_in_flight
        )
        try:
            limit = await self._byte_limit(owner_id, row)
            head = bytearray()
            async for chunk in chunks:
                if len(head) < media.SNIFF_BYTES:
                    head += chunk[: media.SNIFF_BYTES - len(head)]
                    if len(head) >= media.SNIFF_BYTES:
                        self._check_sniffed(bytes(head), ctype)
                if writer.size + len(chunk) > limit:
                    self._over_limit(writer.size + len(chunk), limit)
                await writer.write(chunk)
            if writer.size == 0:
                raise ServiceError.invalid_argument(Reason.INVALID_ARGUMENT, "the upload is empty")
            if len(head) < media.SNIFF_BYTES:
                self._check_sniffed(bytes(head), ctype)
            await writer.close()
            sha = writer.sha256
            self._check_declared(spec, writer.size, sha)
            self._step("object_written", row.id)
            facts, has_thumb = await self._probe(row)
            self._step("verified", row.id)
            committed = await self._commit(row, writer.size, sha, facts, has_thumb)
            self._step("committed", row.id)
            return committed
        except BaseException:
            # Tombstone + delete; with S3 down the tombstone stays for the janitor to finish.
            await writer.abort()
            await self._discard(row)
            raise

    async def _byte_limit(self, owner_id: str, row: AssetRow) -> int:
        usage = await run_db(self.store.usage, owner_id)
        # usage includes this row's declared size; the stream may use the rest of the quota. An early
        # cut-off only: concurrent streams are held to the quota when they commit (`commit_ready`).
        quota_left = self.config.quota_bytes - (usage.bytes - row.size_bytes)
        return min(self.config.max_object_bytes, quota_left)

    def _over_limit(self, size: int, limit: int) -> None:
        if limit >= self.config.max_object_bytes:
            self._check_size(size)
        raise ServiceError.resource_exhausted(
            Reason.QUOTA_BYTES_EXCEEDED,
            f"storage quota of {self.config.quota_bytes} bytes exceeded",
            metadata={"quota_bytes": str(self.config.quota_bytes)},
        )

    @staticmethod
    def _check_declared(spec: UploadSpec, size: int, sha: str) -> None:
        if spec.size_bytes and size != spec.size_bytes:
            raise ServiceError.invalid_argument(
                Reason.SIZE_MISMATCH, f"received {size} bytes, declared {spec.size_bytes}",
                metadata={"declared": str(spec.size_bytes), "actual": str(size)},
            )
        if spec.sha256 and sha != spec.sha256:
            raise ServiceError.invalid_argument(
                Reason.CHECKSUM_MISMATCH, "sha256 of the upload differs from the declared one",
                metadata={"declared": spec.sha256, "actual": sha},
            )

    @staticmethod
    def _check_sniffed(head: bytes, declared: str) -> None:
        sniffed = media.sniff(head)
        if sniffed is None:
            raise ServiceError.invalid_argument(
                Reason.UNSUPPORTED_MEDIA_TYPE, "the file is not a supported image, video, audio, weights or text format",
                metadata={"declared": declared},
            )
        if not media.matches(sniffed, declared):
            raise ServiceError.invalid_argument(
                Reason.CONTENT_TYPE_MISMATCH, f"declared {declared} but the file is {sniffed}",
                metadata={"declared": declared, "sniffed": sniffed},
            )

    # -- shared steps ------------------------------------------------------------------------------
    async def _promote(self, row: AssetRow, size: int, sha: str) -> AssetRow:
        """Staged bytes -> final key; commits only what was verified there (see `promote`)."""
        await self.promoter.move(row)
        size, sha, head = await self.promoter.verify(row, size, sha)
        self._check_sniffed(head, row.content_type)
        facts, has_thumb = await self._probe(row)
        self._step("verified", row.id)
        return await self._commit(row, size, sha, facts, has_thumb)

    async def _probe(self, row: AssetRow) -> tuple[media.MediaFacts, bool]:
        """ffprobe the stored object through a short-lived presigned URL, and a JPEG thumbnail (which
        also proves that a picture actually decodes), taken beside the probe."""
        if row.kind in media.UNPROBED:  # weights, LUTs, text: no media to probe or picture to show
            if row.kind == media.LUT:
                await check_lut(self.objects, row.object_key)
            return media.MediaFacts(), False
        timeout = self.config.media_timeout_seconds
        url = self.objects.internal_get_url(row.object_key, int(timeout) + 60)
        try:
            facts, jpeg = await media.probe_with_thumbnail(
                url, row.kind, row.content_type, max_px=self.config.thumbnail_max_px, ffprobe=self.config.ffprobe_binary,
                ffmpeg=self.config.ffmpeg_binary, time_limit=timeout,
            )
        except media.ThumbnailError as exc:  # headers parse but no picture decodes: a broken file
            raise ServiceError.invalid_argument(
                Reason.UNSUPPORTED_MEDIA_TYPE, f"no picture of the file decodes as {row.content_type}",
                metadata={"declared": row.content_type, "detail": str(exc)[:200]},
            ) from None
        except media.MediaError as exc:
            raise ServiceError.invalid_argument(
                Reason.UNSUPPORTED_MEDIA_TYPE, f"the file does not decode as {row.content_type}",
                metadata={"declared": row.content_type, "detail": str(exc)[:200]},
            ) from None
        if jpeg is None:
            return facts, False
        await self.objects.put(thumbnail_key(row.owner_id, row.id), jpeg, "image/jpeg")
        return facts, True

    async def _commit(
        self, row: AssetRow, size: int, sha: str, facts: media.MediaFacts, has_thumb: bool
    ) -> AssetRow:
        values: dict[str, Any] = {
            "state": State.READY,
            "size_bytes": size,
            "sha256": sha,
            "media_json": facts.to_json(),
            "has_thumbnail": has_thumb,
            "expire_time": None,
            "multipart_upload_id": None,
        }
        try:
            committed_now = await run_db(self.store.commit_ready, row.id, row.owner_id, self.config.quota_bytes, **values)
        except QuotaExceeded as exc:  # concurrent uploads took the room first (callers discard)
            raise self._quota_error(exc) from None
        if not committed_now:
            # The janitor reaped the upload meanwhile (it outlived its expiry).
            await self._discard(row)
            raise ServiceError.failed_precondition(Reason.UPLOAD_EXPIRED, "the upload expired", metadata={"asset_id": row.id})
        committed = await run_db(self.store.get, row.id)
        assert committed is not None
        _log.info("storage.asset_ready", asset_id=row.id, owner_id=row.owner_id, size_bytes=size, content_type=row.content_type)
        return committed

    async def _discard(self, row: AssetRow) -> None:
        """Removes a failed upload: objects first (while the row still points at them), then the row.
        If S3 is down the row stays PENDING/DELETING and the janitor finishes the job."""
        try:
            await run_db(self.store.update, row.id, [State.PENDING, State.READY], state=State.DELETING)
            await self.objects.delete_prefixes(*asset_prefixes(row.owner_id, row.id))
            await run_db(self.store.delete_row, row.id)
        except Exception:
            _log.warning("storage.discard_deferred", asset_id=row.id)
