"""The orphan kept-latents sweep (issue 15): latents a generation keeps in S3 between its attempts
(``kept-latents/<job id>/<spec>``, stored through storage by the Ray executor) are deleted by the
attempt that finishes the job. Some outlive it: a replica that died mid-job (another replica then
failed the job for good without running it), storage down at the delete. This sweep deletes the
kept latents whose job is finished (a terminal state) or gone (no such job), and keeps those of a
queued or running job (its retry resumes from them).

Bounded: one run lists at most ``batch`` objects (one storage page) and goes on from there next
run, starting over at the end, so a large backlog is swept in rounds. Idempotent across replicas:
every replica may sweep at once; a delete of an object already deleted is no error, and a job's
state comes from the shared job table, so two replicas decide alike. Storage or the database down:
the run is skipped (logged), the next one tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Sequence

import grpc

from services.kit.errors import ServiceError
from services.kit.jobs import JobService
from services.kit.logs import get_logger
from services.kit.storage_client import StorageClient

__all__ = ["PREFIX", "KeptLatentsSweep"]

_log = get_logger("viarte.inference.latents_sweep")
PREFIX = "kept-latents"


class KeptLatentsSweep:
    def __init__(self, store: StorageClient, jobs: JobService, kinds: Sequence[str], *, interval: float,
                 batch: int = 500) -> None:
        self.store, self.jobs, self.kinds = store, jobs, tuple(kinds)
        self.interval, self.batch = interval, batch
        self._after = ""  # where the next run goes on (the last key seen)
        self._task: asyncio.Task[None] | None = None

    async def sweep_once(self) -> list[str]:
        """One bounded run; the keys it deleted."""
        keys = await self.store.list_objects(PREFIX, start_after=self._after, limit=self.batch)
        self._after = keys[-1] if len(keys) >= self.batch else ""  # the end: start over next run
        by_job: dict[str, list[str]] = {}
        for key in keys:
            parts = key.split("/")
            by_job.setdefault(parts[1] if len(parts) > 2 else "", []).append(key)
        deleted: list[str] = []
        for job_id, held in by_job.items():
            if not await self._done_with(job_id):
                continue
            for key in held:
                await self.store.delete_object(key)
                deleted.append(key)
        if deleted:
            _log.info("kept_latents_swept", deleted=len(deleted), jobs=len({k.split("/")[1] for k in deleted}))
        return deleted

    async def _done_with(self, job_id: str) -> bool:
        """Finished or gone: nothing will resume from the job's latents any more."""
        if not job_id:
            return True  # not a job's key: nothing of ours resumes from it
        try:
            record = await self.jobs.get(None, self.kinds, job_id)
        except ServiceError as exc:
            if exc.code == grpc.StatusCode.NOT_FOUND:
                return True
            raise
        return record.terminal

    async def start(self) -> None:
        if self.interval > 0:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="kept-latents-sweep")

    async def _loop(self) -> None:
        while True:
            # Spread over replicas (they all sweep alike; the jitter keeps their LISTs apart).
            await asyncio.sleep(self.interval * random.uniform(0.8, 1.2))
            try:
                await self.sweep_once()
            except ServiceError as exc:  # storage or the database down: next time
                _log.warning("kept_latents_sweep_deferred", reason=exc.reason, error=exc.message[:200])
            except Exception:
                _log.exception("kept_latents_sweep_failed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None
