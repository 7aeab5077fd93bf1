"""Reconciliation between the metadata and the bucket, run at startup and then periodically.

1. PENDING rows past their expiry (abandoned uploads, or a crash between the S3 write and the
   READY commit): abort their multipart upload, delete their objects, delete the row.
2. DELETING tombstones (a deletion interrupted by a crash or by S3 being down): finish them.
3. Staging objects and multipart uploads (`staging/`) of any asset that is not PENDING: a presigned
   URL re-used after completion (it stays valid until it expires), or a staging delete that failed.
   They never become part of an asset; removed every round, whatever their age.
4. Objects and multipart uploads under `users/` or `staging/` whose asset id has no row at all,
   older than the grace period: delete them (they can only come from outside the write protocol).
Each step is idempotent; a failing step (S3 down) is retried on the next round.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from services.kit.db import run_db
from services.kit.errors import ServiceError
from services.kit.logs import get_logger
from services.storage.config import StorageConfig
from services.storage.keys import PREFIXES, STAGING, asset_id_of, asset_prefixes, staging_key
from services.storage.models import State, as_utc, utcnow
from services.storage.objectstore import ObjectStore
from services.storage.store import AssetStore

__all__ = ["Janitor", "ReconcileReport"]

_log = get_logger("viarte.storage.janitor")


@dataclass
class ReconcileReport:
    expired_uploads: list[str] = field(default_factory=list)
    finished_deletions: list[str] = field(default_factory=list)
    orphan_objects: list[str] = field(default_factory=list)
    orphan_multipart_uploads: list[str] = field(default_factory=list)
    stale_staging: list[str] = field(default_factory=list)


class Janitor:
    def __init__(self, config: StorageConfig, store: AssetStore, objects: ObjectStore) -> None:
        self.config = config
        self.store = store
        self.objects = objects
        self._task: asyncio.Task[None] | None = None
        self._last_sweep = float("-inf")

    async def reconcile(
        self, *, orphan_grace_seconds: float | None = None, now: datetime | None = None, sweep_orphans: bool = True
    ) -> ReconcileReport:
        """One round; `now` may be moved forward (operators draining uploads, tests)."""
        report = ReconcileReport()
        now = now or utcnow()
        for row in await run_db(self.store.in_state, State.PENDING, now):
            # Tombstone first, so a concurrent CompleteUpload cannot commit what is being removed.
            if await run_db(self.store.update, row.id, [State.PENDING], state=State.DELETING):
                await self._remove(row.id, row.owner_id, row.name, row.multipart_upload_id)
                report.expired_uploads.append(row.id)
        for row in await run_db(self.store.in_state, State.DELETING):
            await self._remove(row.id, row.owner_id, row.name, row.multipart_upload_id)
            report.finished_deletions.append(row.id)
        await self._stale_staging(report)
        if sweep_orphans:
            grace = self.config.orphan_grace_seconds if orphan_grace_seconds is None else orphan_grace_seconds
            await self._orphans(now - timedelta(seconds=grace), report)
            self._last_sweep = time.monotonic()
        if any((report.expired_uploads, report.finished_deletions, report.orphan_objects,
                report.orphan_multipart_uploads, report.stale_staging)):
            _log.info(
                "storage.reconciled",
                expired_uploads=len(report.expired_uploads),
                finished_deletions=len(report.finished_deletions),
                orphan_objects=len(report.orphan_objects),
                orphan_multipart_uploads=len(report.orphan_multipart_uploads),
                stale_staging=len(report.stale_staging),
            )
        return report

    async def _remove(self, asset_id: str, owner_id: str, name: str, upload_id: str | None) -> None:
        if upload_id:  # presigned multipart uploads live on the staging key
            await self.objects.abort_multipart(staging_key(owner_id, asset_id, name), upload_id)
        await self.objects.delete_prefixes(*asset_prefixes(owner_id, asset_id))
        await run_db(self.store.delete_row, asset_id)

    async def _stale_staging(self, report: ReconcileReport) -> None:
        """Staging leftovers of assets that are no longer PENDING (READY or DELETING). Rows that do
        not exist are left to the orphan sweep and its grace period."""
        objects = await self.objects.list_objects(f"{STAGING}/")
        uploads = await self.objects.list_multipart_uploads(f"{STAGING}/")
        ids = {i for i in (*(asset_id_of(o.key) for o in objects), *(asset_id_of(u[0]) for u in uploads)) if i is not None}
        if not ids:
            return
        done = await run_db(self.store.ids_not_in_state, ids, State.PENDING)
        stale = [o.key for o in objects if asset_id_of(o.key) in done]
        for i in range(0, len(stale), 1000):
            await self.objects.delete(*stale[i : i + 1000])
        report.stale_staging += stale
        for key, upload_id, _ in uploads:
            if asset_id_of(key) in done:
                await self.objects.abort_multipart(key, upload_id)
                report.stale_staging.append(upload_id)

    async def _orphans(self, older_than: datetime, report: ReconcileReport) -> None:
        objects = [o for p in PREFIXES for o in await self.objects.list_objects(p) if as_utc(o.last_modified) < older_than]
        uploads = [
            u for p in PREFIXES for u in await self.objects.list_multipart_uploads(p) if as_utc(u[2]) < older_than
        ]
        ids = {i for i in (asset_id_of(o.key) for o in objects) if i} | {
            i for i in (asset_id_of(u[0]) for u in uploads) if i
        }
        known = await run_db(self.store.existing_ids, ids)
        stale = [o.key for o in objects if asset_id_of(o.key) not in known]
        for i in range(0, len(stale), 1000):
            await self.objects.delete(*stale[i : i + 1000])
        report.orphan_objects += stale
        for key, upload_id, _ in uploads:
            if asset_id_of(key) not in known:
                await self.objects.abort_multipart(key, upload_id)
                report.orphan_multipart_uploads.append(upload_id)

    # -- background loop ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="storage-janitor")

    async def _loop(self) -> None:
        while True:
            due = time.monotonic() - self._last_sweep >= self.config.orphan_sweep_interval_seconds
            try:
                await self.reconcile(sweep_orphans=due)
            except ServiceError as exc:  # S3 down: the next round retries
                _log.warning("storage.janitor_deferred", reason=exc.reason)
            except Exception:
                _log.exception("storage.janitor_failed")
            await asyncio.sleep(self.config.janitor_interval_seconds)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
