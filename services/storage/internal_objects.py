"""Service-owned objects (``StorageInternalService.PutObject/ResolveObject/DeleteObject``): bytes a
service must find again from any replica or node that are no user's asset, such as the latents an
inference job keeps between denoise and decode so that a retry on another node skips denoising.

They live under ``internal/<key>`` in the bucket: no asset row, no user lists them, no quota. The
janitor only sweeps ``users/`` and ``staging/``; the owning service deletes its objects when done,
and sweeps what it left behind (``ListObjects``, a page at a time: inference's kept-latents sweep).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from services.kit.errors import ServiceError
from services.storage.assets import Assets
from services.storage.reasons import Reason

__all__ = ["INTERNAL", "InternalObjects", "internal_key"]

INTERNAL = "internal"
MAX_LIST = 1000  # objects per ListObjects answer (one S3 LIST page)
_SEGMENT = re.compile(r"[A-Za-z0-9._-]{1,100}")


def internal_key(key: str) -> str:
    """The bucket key of a service object; INVALID_ARGUMENT for anything but safe path segments."""
    parts = key.split("/")
    if not key or len(key) > 200 or not all(_SEGMENT.fullmatch(p) and p not in (".", "..") for p in parts):
        raise ServiceError.invalid_argument(
            Reason.INVALID_ARGUMENT, "key: [A-Za-z0-9._-] segments joined by '/', at most 200 characters",
            metadata={"key": key[:200]})
    return f"{INTERNAL}/{key}"


class InternalObjects:
    def __init__(self, assets: Assets) -> None:
        self.objects, self.config = assets.objects, assets.config

    async def put(self, key: str, chunks: AsyncIterator[bytes]) -> int:
        full = internal_key(key)
        config = self.config
        writer = self.objects.writer(full, "application/octet-stream", config.stream_part_bytes,
                                     config.stream_parts_in_flight)
        try:
            async for chunk in chunks:
                if writer.size + len(chunk) > config.max_object_bytes:
                    raise ServiceError.resource_exhausted(
                        Reason.OBJECT_TOO_LARGE, f"objects are limited to {config.max_object_bytes} bytes",
                        metadata={"max_object_bytes": str(config.max_object_bytes)})
                await writer.write(chunk)
            await writer.close()
        except BaseException:
            await writer.abort()
            raise
        return writer.size

    async def resolve(self, key: str, expire_seconds: int) -> tuple[str, int]:
        full = internal_key(key)
        info = await self.objects.head(full)
        if info is None:
            raise ServiceError.not_found(Reason.OBJECT_NOT_FOUND, f"no object {key!r}", metadata={"key": key})
        seconds = expire_seconds if expire_seconds > 0 else 900
        return self.objects.internal_get_url(full, seconds), info.size

    async def delete(self, key: str) -> None:
        await self.objects.delete(internal_key(key))

    async def list_keys(self, prefix: str, start_after: str, limit: int) -> list[tuple[str, int]]:
        """(key, size) of the objects ``<prefix>/...`` after ``start_after``, at most ``limit``."""
        if not 0 <= limit <= MAX_LIST:
            raise ServiceError.invalid_argument(Reason.INVALID_ARGUMENT, f"limit: within [0, {MAX_LIST}]",
                                                metadata={"limit": str(limit)})
        full = internal_key(prefix) + "/"
        after = internal_key(start_after) if start_after else ""
        found = await self.objects.list_page(full, after, limit or MAX_LIST)
        return [(info.key.removeprefix(f"{INTERNAL}/"), info.size) for info in found]
