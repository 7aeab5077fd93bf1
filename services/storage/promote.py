"""The one way bytes become an asset: a staged upload is copied (server-side) to the asset's final
key, the staging object is deleted, and then size and sha256 are verified on the final key itself
(the caller then sniffs the returned first bytes and probes the final key).

Why verify after the copy: a presigned PUT URL stays valid until it expires, so the client may
replace the staging object at any moment, even while we copy it. Reading size, sha256 and the
sniffed type from the final key (one streamed read) and probing that key means the metadata we
commit describes exactly the bytes that are served, and nothing outside storage can write there.
"""

from __future__ import annotations

from botocore.exceptions import ClientError

from services.kit.errors import ServiceError
from services.storage import media
from services.storage.keys import staging_key
from services.storage.models import AssetRow
from services.storage.objectstore import ObjectStore
from services.storage.reasons import Reason

__all__ = ["Promoter"]


def _incomplete(row: AssetRow, message: str = "nothing was uploaded yet") -> ServiceError:
    return ServiceError.failed_precondition(Reason.UPLOAD_INCOMPLETE, message, metadata={"asset_id": row.id})


class Promoter:
    def __init__(self, objects: ObjectStore) -> None:
        self.objects = objects

    def staging_key(self, row: AssetRow) -> str:
        return staging_key(row.owner_id, row.id, row.name)

    async def stage_size(self, row: AssetRow) -> int:
        """Size of what is waiting for `row`: the staging object, else (a completion that stopped
        after its copy, retried) the final object. UPLOAD_INCOMPLETE when neither exists."""
        info = await self.objects.head(self.staging_key(row)) or await self.objects.head(row.object_key)
        if info is None:
            raise _incomplete(row)
        return info.size

    async def move(self, row: AssetRow) -> None:
        """Staging object -> final key (server-side copy), then the staging object is deleted so the
        upload's URLs no longer lead anywhere that matters. Idempotent: without a staging object (a
        retry after a completed copy) the final object is taken as it is (and verified next)."""
        staged = self.staging_key(row)
        info = await self.objects.head(staged)
        if info is None:
            if await self.objects.head(row.object_key) is None:
                raise _incomplete(row)
            return
        try:
            await self.objects.copy(staged, row.object_key, row.content_type, info.size)
        except ClientError:  # replaced or deleted mid-copy (a part range past its new end, ...)
            raise _incomplete(row, "the upload changed while it was being completed; upload it again") from None
        await self.objects.delete(staged)

    async def verify(self, row: AssetRow, expected_size: int, expected_sha: str) -> tuple[int, str, bytes]:
        """(size, sha256, first bytes to sniff) from one read of the final key, size and sha256
        checked against what was declared or received."""
        size, sha, head = await self.objects.digest(row.object_key, head_bytes=media.SNIFF_BYTES)
        if size != expected_size:
            raise ServiceError.invalid_argument(
                Reason.SIZE_MISMATCH, f"uploaded {size} bytes, declared {expected_size}",
                metadata={"declared": str(expected_size), "actual": str(size)},
            )
        if sha != expected_sha:
            raise ServiceError.invalid_argument(
                Reason.CHECKSUM_MISMATCH, "sha256 of the upload differs from the declared one",
                metadata={"declared": expected_sha, "actual": sha},
            )
        return size, sha, head
