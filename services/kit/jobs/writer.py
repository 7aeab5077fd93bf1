"""The event writer of one running job: stores its events in order, in batches, off the worker's
path, under the job's lease (a fenced write), then fans them out to local watchers. A failed
write pokes the local watchers (they re-read the log): its commit may have landed anyway."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from services.kit.db import run_db
from services.kit.jobs.broker import Broker
from services.kit.jobs.store import Fence, JobStore
from services.kit.logs import get_logger
from viarte.type.v1 import job_pb2

__all__ = ["EventWriter"]

_log = get_logger("viarte.jobs")


def now_us() -> int:
    return time.time_ns() // 1000


class _Owner(Protocol):
    broker: Broker
    _store: JobStore


class EventWriter:
    """``put`` never blocks; ``flush`` waits until everything put is stored and published. A write
    refused by the fence (another replica took the job over) calls ``on_lost`` and ends the writer:
    a replica that lost its lease writes nothing more."""

    def __init__(self, owner: _Owner, job_id: str, fence: Fence, pending_limit: int,
                 on_lost: Callable[[str], None]) -> None:
        self._owner = owner
        self._job_id = job_id
        self._fence = fence
        self._limit = pending_limit
        self._on_lost = on_lost
        self._pending: deque[tuple[job_pb2.Progress, bool, int, job_pb2.Placement | None]] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False
        self._task = asyncio.get_running_loop().create_task(self._run())

    def put(self, progress: job_pb2.Progress, droppable: bool, time_us: int | None = None,
            placement: job_pb2.Placement | None = None) -> None:
        if self._closed:
            return
        if droppable and len(self._pending) >= self._limit:
            return  # the store is behind: previews are the first thing to give up
        self._pending.append((progress, droppable, time_us or now_us(), placement))
        self._idle.clear()
        self._wake.set()

    async def place(self, placement: job_pb2.Placement, progress: job_pb2.Progress) -> None:
        """A RUNNING event carrying where the attempt runs (it also sets the job's placement), in
        order with the job's other events; returns once it is stored and published."""
        self.put(progress, False, None, placement)
        await self.flush()

    async def flush(self) -> None:
        await self._idle.wait()

    async def close(self) -> None:
        await self.flush()
        self._closed = True
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending and not self._closed:
                batch = list(self._pending)
                self._pending.clear()
                stored: list[job_pb2.JobEvent] | None
                try:
                    stored = await run_db(self._owner._store.append, self._job_id,
                                          [(p, t, where) for p, _, t, where in batch], fence=self._fence)
                except Exception:  # a DB hiccup loses progress events, never the job
                    _log.exception("job_events_store_failed", job_id=self._job_id)
                    # Its commit may have landed (only the answer was lost): local watchers
                    # re-read the log rather than wait for the next event to show the gap.
                    self._owner.broker.poke(self._job_id)
                    stored = []
                if stored is None:  # fenced out: the lease is gone
                    self._closed = True
                    self._pending.clear()
                    self._on_lost(self._job_id)
                    break
                for ev, (_, droppable, _, _) in zip(stored, batch, strict=False):
                    self._owner.broker.publish(self._job_id, ev, droppable=droppable)
            self._idle.set()
