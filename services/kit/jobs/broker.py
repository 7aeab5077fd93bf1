"""In-process fan-out of live job events to watchers (events of jobs running on other replicas
arrive as a ``poke``: the watcher re-reads the stored log, see ``listener``).

One bounded buffer per watcher. Publishing never blocks: when a watcher's buffer is full a
droppable event (a preview) is dropped; any other event marks the watcher as lagged, and the
watcher catches up from the stored event log instead. A slow watcher never slows the worker.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque

from viarte.type.v1 import job_pb2

__all__ = ["Broker", "Subscription"]


class Subscription:
    def __init__(self, broker: Broker, job_id: str, capacity: int) -> None:
        self._broker = broker
        self.job_id = job_id
        self._capacity = capacity
        self._items: deque[job_pb2.JobEvent] = deque()
        self._ready = asyncio.Event()
        self.lagged = False
        self.dropped = 0

    def _offer(self, event: job_pb2.JobEvent, droppable: bool) -> None:
        if self.lagged:
            return  # the watcher re-reads the log anyway
        if len(self._items) >= self._capacity:
            if droppable:
                self.dropped += 1
                return
            self.lagged = True
            self._items.clear()
        else:
            self._items.append(event)
        self._ready.set()

    def _reread(self) -> None:
        self.lagged = True
        self._items.clear()
        self._ready.set()

    async def next(self) -> job_pb2.JobEvent | None:
        """The next live event, or None when the watcher lagged and must re-read the log."""
        while not self._items and not self.lagged:
            self._ready.clear()
            await self._ready.wait()
        if self.lagged:
            self.lagged = False
            return None
        return self._items.popleft()

    def close(self) -> None:
        self._broker._unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Broker:
    def __init__(self, watcher_buffer: int = 64) -> None:
        self._capacity = watcher_buffer
        self._subs: defaultdict[str, set[Subscription]] = defaultdict(set)

    def subscribe(self, job_id: str) -> Subscription:
        sub = Subscription(self, job_id, self._capacity)
        self._subs[job_id].add(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.job_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.job_id]

    def publish(self, job_id: str, event: job_pb2.JobEvent, *, droppable: bool = False) -> None:
        for sub in tuple(self._subs.get(job_id, ())):
            sub._offer(event, droppable)

    def poke(self, job_id: str | None = None) -> None:
        """New events of ``job_id`` (all jobs: None) were stored elsewhere (another replica): its
        watchers re-read the log after the last sequence they sent (gap-free, no duplicates)."""
        subs = self._subs.get(job_id, ()) if job_id is not None else [s for v in self._subs.values() for s in v]
        for sub in tuple(subs):
            sub._reread()

    def watchers(self, job_id: str) -> int:
        return len(self._subs.get(job_id, ()))
