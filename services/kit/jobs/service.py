"""JobService: create / get / list / cancel / watch, the priority queue, the scheduler and
startup recovery — one implementation for every job kind of every service."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from services.kit import tracing
from services.kit.db import run_db
from services.kit.errors import FieldViolation, ServiceError
from services.kit.jobs.broker import Broker
from services.kit.jobs.record import JobRecord
from services.kit.jobs.runtime import Executor, JobCancelled, RetryableJobError, RunningJob
from services.kit.jobs.states import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, is_terminal
from services.kit.jobs.store import JobStore, Transition
from services.kit.logs import get_logger
from services.kit.pagination import PageTokens, page_size
from viarte.type.v1 import job_pb2

__all__ = ["JobConfig", "JobService"]

_log = get_logger("viarte.jobs")


@dataclass(frozen=True)
class JobConfig:
    """The job service's limits; each service fills it from its own config dataclass."""

    # Jobs waiting in the queue (all owners and kinds) before Create answers QUEUE_FULL.
    max_queued: int = 100
    # Worker starts per job (crash retries and restarts count) before it fails for good.
    max_attempts: int = 3
    # RetryInfo delay suggested with QUEUE_FULL.
    queue_full_retry_seconds: float = 5.0
    # Live events buffered per watcher before previews are dropped / the watcher re-reads the log.
    watcher_buffer: int = 256
    # Events waiting to be stored per running job before previews are dropped.
    pending_events_limit: int = 512
    # Highest priority a caller may ask for (0..max_priority).
    max_priority: int = 10
    # Queued jobs (the first N) that get an event whenever their queue position changes.
    announce_positions: int = 20


# Pause before the scheduler retries after a failed dispatch (database error).
_DISPATCH_RETRY_SECONDS = 0.5


def _now_us() -> int:
    return time.time_ns() // 1000


class _EventWriter:
    """Stores and publishes one running job's events in order, in batches, off the worker's path."""

    def __init__(self, service: JobService, job_id: str) -> None:
        self._service = service
        self._job_id = job_id
        self._pending: deque[tuple[job_pb2.Progress, bool, int]] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False
        self._task = asyncio.get_running_loop().create_task(self._run())

    def put(self, progress: job_pb2.Progress, droppable: bool, time_us: int | None = None) -> None:
        if self._closed:
            return
        if droppable and len(self._pending) >= self._service.config.pending_events_limit:
            return  # the store is behind: previews are the first thing to give up
        self._pending.append((progress, droppable, time_us or _now_us()))
        self._idle.clear()
        self._wake.set()

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
            while self._pending:
                batch = list(self._pending)
                self._pending.clear()
                try:
                    events = await run_db(self._service._store.append, self._job_id, [(p, t) for p, _, t in batch])
                except Exception:  # a DB hiccup loses progress events, never the job
                    _log.exception("job_events_store_failed", job_id=self._job_id)
                    events = []
                for ev, (_, droppable, _) in zip(events, batch, strict=False):
                    self._service.broker.publish(self._job_id, ev, droppable=droppable)
            self._idle.set()


class _Queue:
    """Priority queue of QUEUED job ids: higher priority first, then creation order."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, str]] = []
        # id -> its live heap entry; entries of discarded (or re-pushed) ids are skipped lazily.
        self._members: dict[str, tuple[int, int, str]] = {}

    def __len__(self) -> int:
        return len(self._members)

    def push(self, record: JobRecord) -> None:
        if record.id not in self._members:
            entry = (-record.priority, record.create_us, record.id)
            self._members[record.id] = entry
            heapq.heappush(self._heap, entry)

    def discard(self, job_id: str) -> bool:
        return self._members.pop(job_id, None) is not None

    def pop(self) -> tuple[int, int, str] | None:
        """The next entry, (-priority, create_us, job_id), removed from the queue."""
        while self._heap:
            entry = heapq.heappop(self._heap)
            if self._members.get(entry[2]) is entry:
                del self._members[entry[2]]
                return entry
        return None

    def restore(self, entry: tuple[int, int, str]) -> None:
        """Puts a popped entry back in its place (its dispatch failed)."""
        if entry[2] not in self._members:
            self._members[entry[2]] = entry
            heapq.heappush(self._heap, entry)

    def position(self, job_id: str) -> int:
        if job_id not in self._members:
            return 0
        return next(i for i, jid in enumerate(self.ordered(), 1) if jid == job_id)

    def ordered(self, limit: int | None = None) -> list[str]:
        return [e[2] for e in sorted(self._members.values())[:limit]]

    def ahead_of_new(self, priority: int) -> int:
        """How many queued jobs run before a job created now with ``priority``."""
        return sum(1 for p, _, _ in self._members.values() if -p >= priority)


class JobService:
    """The job pattern for one service database. Construct, ``await start()``, ``await stop()``."""

    def __init__(
        self,
        engine: Engine,
        executor: Executor,
        config: JobConfig | None = None,
        *,
        not_found_reason: str = "JOB_NOT_FOUND",
        page_tokens: PageTokens | None = None,
    ) -> None:
        # Servers pass PageTokens.for_service(config) so tokens survive restarts and replicas.
        self.page_tokens = page_tokens or PageTokens.ephemeral()
        self.config = config or JobConfig()
        self.executor = executor
        self.broker = Broker(self.config.watcher_buffer)
        self._store = JobStore(engine)
        self._queue = _Queue()
        self._not_found = not_found_reason
        self._running: dict[str, RunningJob] = {}
        # Ids being created -> finished (cancelled) before create() could queue them.
        self._creating: dict[str, bool] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._positions: dict[str, int] = {}
        self._positions_changed = asyncio.Event()
        self._announcer: asyncio.Task[None] | None = None
        self._scheduler: asyncio.Task[None] | None = None
        self._stopping = False
        # Trace context of jobs created by this process (a recovered job starts a new trace).
        self._traces: dict[str, tracing.JobTrace] = {}

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        await self.recover()
        loop = asyncio.get_running_loop()
        self._scheduler = loop.create_task(self._schedule())
        self._announcer = loop.create_task(self._announce_positions())

    async def recover(self) -> None:
        """Jobs left RUNNING by a dead process go back to the queue (or fail past max_attempts);
        queued jobs are loaded into the in-memory queue."""
        for record in await run_db(self._store.in_state, RUNNING):
            if record.cancel_requested:
                await self._finish(record.id, CANCELLED, progress=job_pb2.Progress(message="cancelled"))
            elif record.attempts >= self.config.max_attempts:
                err = ServiceError.internal(
                    "WORKER_CRASHED", f"the job was interrupted {record.attempts} times; giving up"
                ).to_job_error()
                await self._finish(record.id, FAILED, error=err)
            else:
                await self._requeue(record.id, "re-queued after a service restart")
        for record in await run_db(self._store.in_state, QUEUED):
            self._queue.push(record)
            self._positions[record.id] = record.progress.queue_position
        self._queue_changed()

    async def stop(self, grace_seconds: float = 5.0) -> None:
        """Stops scheduling; running jobs get ``grace_seconds`` to finish, then go back to QUEUED
        (the next start runs them again)."""
        self._stopping = True
        for background in (self._scheduler, self._announcer):
            if background is not None:
                background.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await background
        tasks = list(self._tasks.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace_seconds)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    # -- client operations ----------------------------------------------------------------------
    async def create(
        self, owner: str, kind: str, parameters: bytes, *, request_id: str = "", priority: int = 0
    ) -> JobRecord:
        """Queues a job; the same (owner, kind, request_id) returns the existing job."""
        if not 0 <= priority <= self.config.max_priority:
            raise ServiceError.invalid_argument(
                "INVALID_PARAMETERS", f"priority must be within 0..{self.config.max_priority}",
                violations=(FieldViolation("priority", f"must be within 0..{self.config.max_priority}"),),
            )
        if request_id:
            existing = await run_db(self._store.find, owner, kind, request_id)
            if existing is not None:
                return existing
        if len(self._queue) >= self.config.max_queued:
            raise ServiceError.resource_exhausted(
                "QUEUE_FULL", f"the queue holds {len(self._queue)} jobs; retry later",
                retry_after=self.config.queue_full_retry_seconds,
                metadata={"max_queued": str(self.config.max_queued)},
            )
        position = self._queue.ahead_of_new(priority) + 1
        progress = job_pb2.Progress(stage=job_pb2.STAGE_QUEUED, queue_position=position)
        # The job is visible (List, find by request id) from its commit on, before this coroutine
        # resumes: a cancel may finish it in between. Knowing the id up front lets _finish mark it,
        # so a job that already ended is never pushed into the queue.
        job_id = str(uuid.uuid4())
        self._creating[job_id] = False
        try:
            transition, record = await run_db(
                self._store.create, owner=owner, kind=kind, request_id=request_id, parameters=parameters,
                priority=priority, now_us=_now_us(), progress=progress, job_id=job_id,
            )
        finally:
            finished_meanwhile = self._creating.pop(job_id)
        if transition is not None:
            self._traces[record.id] = tracing.JobTrace(record.id, kind)
            self.broker.publish(record.id, transition.event)
            if not finished_meanwhile:
                self._queue.push(record)
                self._positions[record.id] = position
                self._queue_changed()
        return record

    async def find(self, owner: str, kind: str, request_id: str) -> JobRecord | None:
        """The owner's job created with ``request_id``, if any (idempotency checks before validation)."""
        return await run_db(self._store.find, owner, kind, request_id) if request_id else None

    async def get(self, owner: str | None, kind: str | Sequence[str], job_id: str) -> JobRecord:
        """The job, or NOT_FOUND when it does not exist, is another owner's or another kind's.
        ``owner=None`` skips the owner check (service principals, admins)."""
        record = await run_db(self._store.get, job_id) if _looks_like_id(job_id) else None
        kinds = (kind,) if isinstance(kind, str) else tuple(kind)
        if record is None or record.kind not in kinds or (owner is not None and record.owner != owner):
            raise ServiceError.not_found(self._not_found, "job not found", metadata={"job_id": job_id})
        return record

    def queue_position(self, job_id: str) -> int:
        """1 = next to run; 0 = not queued."""
        return self._queue.position(job_id)

    async def list(
        self, owner: str, kind: str | Sequence[str], *, state: int = 0, page_size_requested: int = 0,
        page_token: str = "",
    ) -> tuple[list[JobRecord], str]:
        """The owner's jobs newest first, optionally in one state; returns (jobs, next_page_token)."""
        kinds = [kind] if isinstance(kind, str) else list(kind)
        filters = {"owner": owner, "kinds": kinds, "state": state}
        cursor = self.page_tokens.decode(page_token, filters, {"t": int, "id": str})
        limit = page_size(page_size_requested)
        before = (cursor["t"], cursor["id"]) if cursor else None
        records = await run_db(self._store.page, owner, kinds, state=state, limit=limit + 1, before=before)
        token = ""
        if len(records) > limit:
            records = records[:limit]
            last = records[-1]
            token = self.page_tokens.encode({"t": last.create_us, "id": last.id}, filters)
        return records, token

    async def cancel(self, owner: str | None, kind: str | Sequence[str], job_id: str) -> JobRecord:
        """A queued job is cancelled at once; a running one is flagged and stops at its next step.
        A finished job is returned unchanged."""
        record = await self.get(owner, kind, job_id)
        if record.state == QUEUED:
            done = await self._finish(job_id, CANCELLED, expect=frozenset({QUEUED}),
                                      progress=job_pb2.Progress(message="cancelled while queued"))
            if done is not None:
                return done.record
            record = await self.get(owner, kind, job_id)  # the scheduler started it meanwhile
        if record.state == RUNNING:
            flagged = await run_db(self._store.request_cancel, job_id, _now_us())
            running = self._running.get(job_id)
            if running is not None:
                running._request_cancel()
            return flagged or record
        return record

    async def watch(
        self, owner: str | None, kind: str | Sequence[str], job_id: str, after_sequence: int = 0
    ) -> AsyncIterator[JobRecord | job_pb2.JobEvent]:
        """Yields the job's current record first, then every event with a sequence above
        ``after_sequence`` (stored ones, then live ones) until the job is terminal."""
        await self.get(owner, kind, job_id)
        with self.broker.subscribe(job_id) as sub:  # subscribe before reading: no gap
            record = await self.get(owner, kind, job_id)
            yield record
            last = max(after_sequence, 0)
            for stored in await run_db(self._store.events, job_id, last, record.last_sequence):
                yield stored
                last = stored.sequence
            if record.terminal:
                return
            while True:
                ev = await sub.next()
                if ev is None:  # lagged: catch up from the log
                    replay = await run_db(self._store.events, job_id, last)
                    for caught_up in replay:
                        yield caught_up
                        last = caught_up.sequence
                        if is_terminal(caught_up.state):
                            return
                    continue
                if ev.sequence <= last:
                    continue
                yield ev
                last = ev.sequence
                if is_terminal(ev.state):
                    return

    # -- scheduling -----------------------------------------------------------------------------
    def _queue_changed(self) -> None:
        self._wake.set()
        self._positions_changed.set()

    async def _announce_positions(self) -> None:
        """Queued jobs whose position moved (one started, was cancelled, or a higher priority job
        arrived) get a QUEUED event with the new position, so watchers see the queue move."""
        while True:
            await self._positions_changed.wait()
            self._positions_changed.clear()
            await asyncio.sleep(0)  # coalesce a burst of queue changes
            ordered = self._queue.ordered(self.config.announce_positions)
            for gone in set(self._positions) - set(ordered):
                del self._positions[gone]
            for position, job_id in enumerate(ordered, 1):
                if self._positions.get(job_id) == position:
                    continue
                self._positions[job_id] = position
                progress = job_pb2.Progress(stage=job_pb2.STAGE_QUEUED, queue_position=position)
                try:
                    events = await run_db(self._store.append, job_id, [(progress, _now_us())], QUEUED)
                except Exception:
                    _log.exception("queue_position_event_failed", job_id=job_id)
                    continue
                for ev in events:
                    self.broker.publish(job_id, ev)

    async def _schedule(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            while len(self._tasks) < self.executor.slots:
                entry = self._queue.pop()
                if entry is None:
                    break
                job_id = entry[2]
                try:
                    started = await run_db(
                        self._store.transition, job_id, RUNNING, now_us=_now_us(), expect=frozenset({QUEUED}),
                        progress=job_pb2.Progress(message="starting"), count_attempt=True,
                    )
                except Exception:
                    # Nothing was stored (one transaction): the job is still QUEUED in the database,
                    # so it goes back into the queue and the scheduler lives on to retry it.
                    _log.exception("job_dispatch_failed", job_id=job_id)
                    self._queue.restore(entry)
                    await asyncio.sleep(_DISPATCH_RETRY_SECONDS)  # don't hammer a failing database
                    self._wake.set()
                    break
                self._positions_changed.set()
                if started is None:
                    continue  # cancelled while queued
                self.broker.publish(job_id, started.event)
                self._tasks[job_id] = asyncio.get_running_loop().create_task(self._run(started.record))

    async def _run(self, record: JobRecord) -> None:
        # This task is the job's own: the run span stays current for everything the executor does.
        span = (self._traces.pop(record.id, None) or tracing.JobTrace(record.id, record.kind)).run(record.attempts)
        writer = _EventWriter(self, record.id)
        job = RunningJob(record, writer.put)
        job._flush = writer.flush
        self._running[record.id] = job
        if record.cancel_requested:
            job._request_cancel()
        try:
            result = await self.executor.execute(job)
            await writer.close()
            await self._finish(record.id, SUCCEEDED, result=result,
                               progress=job_pb2.Progress(fraction=1.0, message="done"))
        except JobCancelled:
            await writer.close()
            await self._finish(record.id, CANCELLED, progress=job_pb2.Progress(message="cancelled"))
        except RetryableJobError as exc:
            await writer.close()
            if job.cancelled:
                # The owner cancelled while the attempt was failing: honour the cancel, don't retry.
                await self._finish(record.id, CANCELLED, progress=job_pb2.Progress(message="cancelled"))
            elif record.attempts < self.config.max_attempts and not self._stopping:
                await self._requeue(record.id, f"retrying after: {exc.error.message}")
            else:
                await self._finish(record.id, FAILED, error=exc.error.to_job_error())
        except ServiceError as exc:
            await writer.close()
            await self._finish(record.id, FAILED, error=exc.to_job_error())
        except asyncio.CancelledError:
            # Service shutdown: leave the job for the next start.
            with contextlib.suppress(Exception):
                await writer.close()
                await self._requeue(record.id, "re-queued at service shutdown", push=False)
            raise
        except Exception:
            _log.exception("job_crashed", job_id=record.id, kind=record.kind)
            await writer.close()
            await self._finish(record.id, FAILED, error=ServiceError.internal().to_job_error())
        finally:
            span.end()
            self._running.pop(record.id, None)
            self._tasks.pop(record.id, None)
            self._wake.set()

    async def _requeue(self, job_id: str, message: str, *, push: bool = True) -> None:
        moved = await run_db(
            self._store.transition, job_id, QUEUED, now_us=_now_us(), expect=frozenset({RUNNING}),
            progress=job_pb2.Progress(stage=job_pb2.STAGE_QUEUED, message=message),
        )
        if moved is not None:
            self.broker.publish(job_id, moved.event)
            if push:
                self._queue.push(moved.record)
                self._queue_changed()

    async def _finish(
        self, job_id: str, state: int, *, expect: frozenset[int] | None = None,
        progress: job_pb2.Progress | None = None, error: job_pb2.JobError | None = None,
        result: bytes | None = None,
    ) -> Transition | None:
        done = await run_db(
            self._store.transition, job_id, state, now_us=_now_us(),
            expect=expect or frozenset({QUEUED, RUNNING}), progress=progress, error=error, result=result,
        )
        if done is not None:
            if job_id in self._creating:
                self._creating[job_id] = True  # create() must not queue it
            queued = self._traces.pop(job_id, None)
            if queued is not None:
                queued.dispatched()  # cancelled while queued
            if self._queue.discard(job_id):
                self._positions_changed.set()
            self.broker.publish(job_id, done.event)
        return done


def _looks_like_id(job_id: str) -> bool:
    return 0 < len(job_id) <= 36

