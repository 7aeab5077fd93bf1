"""JobService: create / get / list / cancel / watch, the scheduler, leases and recovery — one
implementation for every job kind of every service, for one replica or N replicas on one database.

The database is the queue: each replica's scheduler claims the next QUEUED job with a lease
(``JobStore.claim_next``), renews its leases every ``lease_seconds / 3`` and takes over jobs whose
lease expired (their replica died or froze). Other replicas learn about new jobs, events and
cancels through PostgreSQL NOTIFY (``listener``), with a ``poll_seconds`` poll as the fallback;
on SQLite (one replica) the in-process wake-ups are all there is."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, ParamSpec, TypeVar

from sqlalchemy.engine import Engine

from services.kit import tracing
from services.kit.auth import Principal
from services.kit.db import is_database_down, run_db
from services.kit.errors import FieldViolation, ServiceError
from services.kit.jobs import listener as notices
from services.kit.jobs.broker import Broker
from services.kit.jobs.config import DbHealth, JobConfig
from services.kit.jobs.listener import Listener, Notice
from services.kit.jobs.metering import Meter, Metering, admit
from services.kit.jobs.record import JobRecord
from services.kit.jobs.runtime import Executor, JobCancelled, RetryableJobError, RunningJob, cancel_all
from services.kit.jobs.states import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, is_terminal
from services.kit.jobs.store import Fence, JobStore, QueueFull, Transition
from services.kit.jobs.writer import EventWriter, now_us
from services.kit.logs import get_logger
from services.kit.pagination import PageTokens, page_size
from services.kit.prices import Usage
from viarte.type.v1 import job_pb2

__all__ = ["DATABASE_UNAVAILABLE", "JobConfig", "JobService"]

_log = get_logger("viarte.jobs")
P = ParamSpec("P")
T = TypeVar("T")

DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"

# Pause before the scheduler retries after a failed dispatch (database error).
_DISPATCH_RETRY_SECONDS = 0.5
# Pause before claiming again when every queued row was locked by a short write.
_SKIPPED_RETRY_SECONDS = 0.005
# Trace contexts kept for jobs created here (a job run by another replica starts its own trace).
_MAX_TRACES = 10_000


class JobService:
    """The job pattern for one service database. Construct, ``await start()``, ``await stop()``."""

    def __init__(
        self, engine: Engine, executor: Executor, config: JobConfig | None = None, *,
        not_found_reason: str = "JOB_NOT_FOUND", page_tokens: PageTokens | None = None, metering: Metering | None = None,
    ) -> None:
        # Servers pass PageTokens.for_service(config) so tokens survive restarts and replicas.
        self.page_tokens = page_tokens or PageTokens.ephemeral()
        self.config = config or JobConfig()
        self.replica_id = self.config.replica_id or f"{socket.gethostname()}-{os.getpid()}"
        self.executor = executor
        self.broker = Broker(self.config.watcher_buffer)
        self._engine = engine
        self._store = JobStore(engine, self.replica_id, hold_limit_seconds=self.config.lease_seconds,
                               metered=metering is not None)
        self.metering = metering  # records every ended job's outcome with account (issue 16)
        self.meter = Meter(self._store, metering, self.replica_id) if metering is not None else None
        self._lease_us = int(self.config.lease_seconds * 1e6)
        self._not_found = not_found_reason
        self._running: dict[str, RunningJob] = {}
        self._fences: dict[str, Fence] = {}
        self._lost: set[str] = set()
        # Jobs whose run returned and whose outcome is being stored: their lease ends by our own
        # write, so a renewal that no longer finds it RUNNING is not a take-over.
        self._ending: set[str] = set()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        # News of work (a notice, a local create or re-queue, the poll) bumps _news; a claim that saw
        # no more QUEUED work records the _news it started under. The scheduler claims only while they
        # differ: a freed slot costs no empty claim, and news arriving during a claim keeps one due.
        self._news = 1
        self._empty_at = 0
        self._renew_now = asyncio.Event()
        self._positions_changed = asyncio.Event()
        self._background: list[asyncio.Task[None]] = []
        self._lease_loop: asyncio.Task[None] | None = None
        self._sweeping = asyncio.Lock()
        self._listener: Listener | None = None
        self._recovered = False
        self._stopping = False
        self._health = DbHealth(self.replica_id)
        # Trace context of jobs created by this process (a recovered job starts a new trace).
        self._traces: dict[str, tracing.JobTrace] = {}

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        try:
            await self.recover()
        except Exception as exc:  # the scheduler retries it: a replica starts while the DB is down
            if not is_database_down(exc):
                raise
            self._health.failed("recover", exc)
        loop = asyncio.get_running_loop()
        if self._store.postgres:
            self._listener = Listener(self._engine.url, self.replica_id, self._on_notice, self._caught_up,
                                      keepalive_seconds=self.config.poll_seconds)
            self._listener.start()
        self._background = [loop.create_task(self._schedule()), loop.create_task(self._announce_positions())]
        self._lease_loop = loop.create_task(self._keep_leases())
        if self.meter is not None:
            self.meter.start()
        self._wake.set()

    async def recover(self) -> None:
        """Takes over the jobs of replicas that are gone: RUNNING with an expired lease, or this
        replica's own from before a restart (same replica_id); on SQLite (one replica) every
        RUNNING job. Never a live replica's jobs: their leases are being renewed. The scheduler
        claims nothing before the first (startup) sweep has completed: that sweep takes over this
        replica's own RUNNING jobs, and would take one it claimed meanwhile too."""
        async with self._sweeping:  # the scheduler and the lease loop both retry a failed recovery
            await self._sweep(startup=not self._recovered)
            self._recovered = True

    async def stop(self, grace_seconds: float = 5.0) -> None:
        """Stops scheduling; running jobs get ``grace_seconds`` to finish, then go back to QUEUED
        (another replica, or the next start, runs them again). Their leases are renewed and
        cancels from other replicas are heard (LISTEN) until they have finished or been re-queued."""
        self._stopping = True
        await cancel_all(self._background)
        tasks = list(self._tasks.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace_seconds)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await cancel_all([self._lease_loop] if self._lease_loop is not None else [])
        if self._listener is not None:
            await self._listener.stop()
        if self.meter is not None:  # outcomes still pending are due for the next start or another replica
            await self.meter.stop()

    async def _db(self, what: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """A client operation's database call: a database that is down answers UNAVAILABLE
        (never INTERNAL, never the URL), logged once per outage."""
        try:
            out = await run_db(fn, *args, **kwargs)
        except Exception as exc:
            if not is_database_down(exc):  # e.g. a session ended idle in a transaction: down too
                raise
            self._health.failed(what, exc)
            raise ServiceError.unavailable(
                DATABASE_UNAVAILABLE, "the job database is unavailable; retry shortly", retry_after=1.0
            ) from None
        self._health.ok()
        return out

    # -- client operations ----------------------------------------------------------------------
    async def create(
        self, owner: str, kind: str, parameters: bytes, *, request_id: str = "", priority: int = 0,
        caller: Principal | None = None, estimated_credits: int = 0,
    ) -> JobRecord:
        """Queues a job; the same (owner, kind, request_id) returns the existing job, also when two
        replicas receive it at once (the unique index picks one). ``caller``: whose limits admit the
        job at ``estimated_credits`` (``metering.admit``). Servicers call it through ``JobRpc.create``."""
        if not 0 <= priority <= self.config.max_priority:
            raise ServiceError.invalid_argument(
                "INVALID_PARAMETERS", f"priority must be within 0..{self.config.max_priority}",
                violations=(FieldViolation("priority", f"must be within 0..{self.config.max_priority}"),),
            )
        if self.metering is not None and kind not in self.metering.kinds:  # would stay due forever
            raise ValueError(f"job kind {kind!r} has no price (Metering.kinds)")
        if request_id:
            existing = await self._db("find", self._store.find, owner, kind, request_id)
            if existing is not None:
                return existing
        job_id = str(uuid.uuid4())
        ticket = await admit(self.metering, job_id, caller, estimated_credits)  # budgets, limits (issue 16)
        # A cancelled RPC cannot stop the insert's database thread: the admission follows what the
        # insert did (kept by a created job, else back to the lease), not whether the caller waits.
        work = asyncio.ensure_future(self._db(
            "create", self._store.create, owner=owner, kind=kind, request_id=request_id, parameters=parameters,
            priority=priority, now_us=now_us(), job_id=job_id, max_queued=self.config.max_queued,
            api_key_id=caller.api_key_id if caller else "", estimated_credits=estimated_credits))
        work.add_done_callback(lambda t: self._created(t, ticket))
        try:
            transition, record = await asyncio.shield(work)
        except QueueFull as full:
            raise ServiceError.resource_exhausted(
                "QUEUE_FULL", f"the queue holds {full.queued} jobs; retry later",
                retry_after=self.config.queue_full_retry_seconds, metadata={"max_queued": str(self.config.max_queued)},
            ) from None
        if transition is not None:
            self._keep_trace(record.id, tracing.JobTrace(record.id, kind))
            self.broker.publish(record.id, transition.event)  # (_created wakes the scheduler)
        return record

    def _created(self, task: asyncio.Future[Any], ticket: Any) -> None:  # a metering.admit Ticket or None
        created = not task.cancelled() and task.exception() is None and task.result()[0] is not None
        if ticket is not None:
            ticket.done(created)
        if created:  # also when the caller left: the scheduler learns of it now
            self._maybe_work()
            self._positions_changed.set()

    def estimate(self, kind: str, model: str, usage: Usage) -> int:  # credits; 0 without metering
        return self.metering.estimate(kind, model, usage) if self.metering is not None else 0

    async def find(self, owner: str, kind: str, request_id: str) -> JobRecord | None:
        """The owner's job created with ``request_id``, if any (idempotency checks before validation)."""
        return await self._db("find", self._store.find, owner, kind, request_id) if request_id else None

    async def get(self, owner: str | None, kind: str | Sequence[str], job_id: str) -> JobRecord:
        """The job, or NOT_FOUND (absent, another owner's or kind's; ``owner=None``: any owner's)."""
        record = await self._db("get", self._store.get, job_id) if 0 < len(job_id) <= 36 else None
        kinds = (kind,) if isinstance(kind, str) else tuple(kind)
        if record is None or record.kind not in kinds or (owner is not None and record.owner != owner):
            raise ServiceError.not_found(self._not_found, "job not found", metadata={"job_id": job_id})
        return record

    async def queue_positions(self, records: Sequence[JobRecord]) -> dict[str, int]:
        """{job id: position (1 = next on any replica)} of the ones among ``records`` still QUEUED."""
        queued = [(r.id, r.priority, r.create_us) for r in records if r.state == QUEUED]
        return await self._db("positions", self._store.positions, queued) if queued else {}

    async def queue_position(self, job_id: str) -> int:
        """1 = next to run; 0 = not queued (or no such job)."""
        record = await self._db("get", self._store.get, job_id)
        return (await self.queue_positions([record])).get(job_id, 0) if record else 0

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
        records = await self._db("list", self._store.page, owner, kinds, state=state, limit=limit + 1, before=before)
        token = ""
        if len(records) > limit:
            records = records[:limit]
            last = records[-1]
            token = self.page_tokens.encode({"t": last.create_us, "id": last.id}, filters)
        return records, token

    async def cancel(self, owner: str | None, kind: str | Sequence[str], job_id: str) -> JobRecord:
        """A queued job is cancelled at once; a running one is flagged and stops at its next step,
        on whichever replica runs it (notified; its lease renewal reads the flag too). A finished
        job is returned unchanged."""
        record = await self.get(owner, kind, job_id)
        # A job can move QUEUED → RUNNING (claimed) and back (re-queued after a lost lease) between
        # our reads, on any replica: retry until one of the two conditional writes lands.
        while True:
            if record.state == QUEUED:
                done = await self._db("cancel", self._store.transition, job_id, CANCELLED, now_us=now_us(),
                                      expect=frozenset({QUEUED}),
                                      progress=job_pb2.Progress(message="cancelled while queued"))
                if done is not None:
                    self._finished(done)
                    self._positions_changed.set()
                    return done.record
                record = await self.get(owner, kind, job_id)  # a scheduler started it meanwhile
                continue
            if record.state != RUNNING:
                return record
            flagged = await self._db("cancel", self._store.request_cancel, job_id, now_us())
            if flagged is not None and flagged.state == QUEUED:
                record = flagged  # re-queued before the flag landed
                continue
            running = self._running.get(job_id)
            if running is not None:
                running._request_cancel()
            return flagged or record

    async def watch(
        self, owner: str | None, kind: str | Sequence[str], job_id: str, after_sequence: int = 0
    ) -> AsyncIterator[JobRecord | job_pb2.JobEvent]:
        """Yields the job's current record first, then every event with a sequence above
        ``after_sequence`` (stored ones, then live ones) until the job is terminal, whichever
        replica runs it: events written elsewhere are re-read from the log when a notification
        (or, without one, the ``poll_seconds`` poll) says there are new ones."""
        # Subscribe before the one read (no gap); a job that is not the caller's is NOT_FOUND
        # from that read, and leaving the block drops the subscription.
        with self.broker.subscribe(job_id) as sub:
            record = await self.get(owner, kind, job_id)
            yield record
            last = max(after_sequence, 0)
            for stored in await self._db("watch", self._store.events, job_id, last, record.last_sequence):
                yield stored
                last = stored.sequence
            if record.terminal:
                return
            while True:
                try:
                    ev = await asyncio.wait_for(sub.next(), self._watch_poll())
                except TimeoutError:
                    ev = None
                if ev is None:  # lagged, poked or polling: catch up from the log
                    replay = await self._db("watch", self._store.events, job_id, last)
                    for caught_up in replay:
                        yield caught_up
                        last = caught_up.sequence
                        if is_terminal(caught_up.state):
                            return
                    continue
                if ev.sequence <= last:
                    continue
                if ev.sequence > last + 1:
                    # A local event overtook one stored by another replica whose notice has not
                    # arrived yet: the missing ones are already committed (sequences are reserved
                    # under the row lock), so read them from the log first — never a gap.
                    for missed in await self._db("watch", self._store.events, job_id, last, ev.sequence - 1):
                        yield missed
                        last = missed.sequence
                yield ev
                last = ev.sequence
                if is_terminal(ev.state):
                    return

    # -- notifications from other replicas --------------------------------------------------------
    def _watch_poll(self) -> float | None:
        """How long a watcher waits for news before re-reading the log: forever while notices
        arrive (or on SQLite: one process, every event is local), ``poll_seconds`` while LISTEN is down."""
        if self._listener is None or self._listener.connected.is_set():
            return None
        return self.config.poll_seconds

    def _on_notice(self, notice: Notice) -> None:
        if notice.kind == notices.CANCEL:
            running = self._running.get(notice.job_id)
            if running is not None:
                running._request_cancel()
            return
        self.broker.poke(notice.job_id)
        if notice.kind == notices.QUEUED:
            self._maybe_work()

    def _caught_up(self) -> None:
        """The listener (re)connected or dropped: what was sent meanwhile is lost, so look at everything."""
        self._maybe_work()
        self._renew_now.set()  # reads pending cancel flags of the jobs running here
        self.broker.poke()

    # -- scheduling -----------------------------------------------------------------------------
    def _failed(self, what: str, exc: Exception, event: str) -> None:
        """A background loop's database error: an outage is logged once (DbHealth), a bug with its trace."""
        if is_database_down(exc):
            self._health.failed(what, exc)
        else:
            _log.exception(event)

    def _maybe_work(self) -> None:
        """News that QUEUED jobs may be there: the scheduler claims (again)."""
        self._news += 1
        self._wake.set()

    def _keep_trace(self, job_id: str, trace: tracing.JobTrace) -> None:
        self._traces[job_id] = trace
        while len(self._traces) > _MAX_TRACES:  # jobs that another replica ran: forget the oldest
            self._traces.pop(next(iter(self._traces))).dispatched()

    async def _announce_positions(self) -> None:
        """Queued jobs whose position moved get a QUEUED event with the new position; the replica that
        changed the queue announces (``JobStore.announce``: under the row lock, never twice)."""
        while True:
            await self._positions_changed.wait()
            await asyncio.sleep(self.config.announce_gather_seconds)  # one announcement for a burst
            self._positions_changed.clear()  # changes from here on trigger the next one
            try:  # one transaction for every moved job (JobStore.announce)
                for job_id, ev in (await run_db(self._store.announce, self.config.announce_positions, now_us())).items():
                    self.broker.publish(job_id, ev)
            except Exception as exc:
                self._failed("announce", exc, "queue_position_event_failed")

    async def _schedule(self) -> None:
        while not self._stopping:
            try:
                await asyncio.wait_for(self._wake.wait(), self.config.poll_seconds)
            except TimeoutError:  # the poll: a missed notification costs one period
                self._news += 1
            self._wake.clear()
            if not self._recovered and not await self._recovered_now():
                continue
            while len(self._tasks) < self.executor.slots and not self._stopping and self._news != self._empty_at:
                news = self._news
                try:
                    started, skipped, more = await run_db(self._store.claim_next, self.replica_id, self._lease_us,
                                                         now_us(), tuple(self._tasks))
                except Exception as exc:
                    # Nothing was stored (one transaction): the job is still QUEUED in the database
                    # and the scheduler lives on to retry it.
                    self._failed("dispatch", exc, "job_dispatch_failed")
                    await asyncio.sleep(_DISPATCH_RETRY_SECONDS)  # don't hammer a failing database
                    self._wake.set()
                    break
                self._health.ok()
                if not more:  # nothing more QUEUED (for this replica) when this claim ran
                    self._empty_at = news
                if started is None:
                    if skipped:  # queued rows locked by a write right now (an announcement, a cancel)
                        await asyncio.sleep(_SKIPPED_RETRY_SECONDS)
                        self._wake.set()
                    break
                self._positions_changed.set()
                record = started.record
                self.broker.publish(record.id, started.event)
                self._fences[record.id] = Fence(self.replica_id, record.lease_epoch)
                self._tasks[record.id] = asyncio.get_running_loop().create_task(self._run(record))

    async def _recovered_now(self) -> bool:
        """Retries the startup recovery that failed in ``start()`` (the database was down); the
        scheduler claims only once it has completed."""
        try:
            await self.recover()
        except Exception as exc:
            self._failed("recover", exc, "job_recovery_failed")
            await asyncio.sleep(_DISPATCH_RETRY_SECONDS)
            self._wake.set()
            return False
        self._health.ok()
        return True

    # -- running a job --------------------------------------------------------------------------
    async def _run(self, record: JobRecord) -> None:
        # This task is the job's own: the run span stays current for everything the executor does.
        span = (self._traces.pop(record.id, None) or tracing.JobTrace(record.id, record.kind)).run(record.attempts)
        fence = self._fences[record.id]
        writer = EventWriter(self, record.id, fence, self.config.pending_events_limit, self._lease_lost)
        job = RunningJob(record, writer.put)
        job._flush = writer.flush
        job._place = writer.place
        self._running[record.id] = job
        if record.cancel_requested:
            job._request_cancel()
        published = False

        async def outcome(state: int, *, progress: job_pb2.Progress | None = None,
                          error: job_pb2.JobError | None = None, result: bytes | None = None) -> None:
            nonlocal published
            self._ending.add(record.id)
            await writer.close()
            published = await self._outcome(record.id, fence, state, progress=progress, error=error, result=result)

        try:
            result = await self.executor.execute(job)
            await outcome(SUCCEEDED, result=result, progress=job_pb2.Progress(fraction=1.0, message="done"))
        except JobCancelled:
            await outcome(CANCELLED, progress=job_pb2.Progress(message="cancelled"))
        except RetryableJobError as exc:
            if job.cancelled:
                # The owner cancelled while the attempt was failing: honour the cancel, don't retry.
                await outcome(CANCELLED, progress=job_pb2.Progress(message="cancelled"))
            elif record.attempts < self.config.max_attempts and not self._stopping:
                await outcome(QUEUED, progress=job_pb2.Progress(
                    stage=job_pb2.STAGE_QUEUED, message=f"retrying after: {exc.error.message}"))
            else:
                await outcome(FAILED, error=exc.error.to_job_error())
        except ServiceError as exc:
            await outcome(FAILED, error=exc.to_job_error())
        except asyncio.CancelledError:
            if record.id in self._lost:
                return  # another replica owns the job now: nothing more is written from here
            # Service shutdown: back to the queue, for another replica or the next start.
            self._ending.add(record.id)
            with contextlib.suppress(Exception):
                await writer.close()
                requeued = await run_db(self._store.transition, record.id, QUEUED, now_us=now_us(), fence=fence,
                                        expect=frozenset({RUNNING}), progress=job_pb2.Progress(
                                            stage=job_pb2.STAGE_QUEUED, message="re-queued at service shutdown"))
                if requeued is not None:
                    self._finished(requeued)
                    published = True
            raise
        except Exception:
            _log.exception("job_crashed", job_id=record.id, kind=record.kind)
            await outcome(FAILED, error=ServiceError.internal().to_job_error())
        finally:
            if not published:
                # The outcome may be stored without having been published here (the commit's
                # answer was lost and the retry found it done, the service stops, a write failed):
                # this replica's watchers re-read the log instead of waiting for an event that
                # never comes (other replicas' watchers got the commit's NOTIFY).
                self.broker.poke(record.id)
            span.end()
            self._running.pop(record.id, None)
            self._fences.pop(record.id, None)
            if record.id in self._lost:  # re-queued elsewhere: claims skipped it while this task lived
                self._news += 1
            self._lost.discard(record.id)
            self._ending.discard(record.id)
            self._tasks.pop(record.id, None)
            self._wake.set()  # a free slot: a claim follows only on news of work (_news)

    async def _outcome(self, job_id: str, fence: Fence, state: int, *, progress: job_pb2.Progress | None,
                       error: job_pb2.JobError | None, result: bytes | None) -> bool:
        """Stores a run's outcome under its lease; a database outage is waited out (the job keeps
        its lease meanwhile) unless the lease is lost or the service stops. True once stored and
        published here; False when nothing was published (the caller pokes local watchers)."""
        delay = 0.2
        while True:
            try:
                done = await run_db(self._store.transition, job_id, state, now_us=now_us(), expect=frozenset({RUNNING}),
                                    fence=fence, progress=progress, error=error, result=result)
                break
            except Exception as exc:
                if not is_database_down(exc):
                    raise
                self._health.failed("finish", exc)
                if job_id in self._lost or self._stopping:
                    return False
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self._health.ok()
        if done is None:
            _log.warning("job_outcome_fenced", job_id=job_id, replica=self.replica_id,
                         detail="the lease was taken over (or an earlier try whose answer was lost stored it)")
            return False
        self._finished(done)
        if state == QUEUED:
            self._maybe_work()
            self._positions_changed.set()
        return True

    def _finished(self, done: Transition) -> None:
        queued = self._traces.pop(done.record.id, None)
        if queued is not None:
            queued.dispatched()  # cancelled while queued
        self.broker.publish(done.record.id, done.event)
        if self.meter is not None and done.record.terminal:
            self.meter.wake()

    def _lease_lost(self, job_id: str) -> None:
        """Another replica took the job over (this one froze or lost the database for longer than
        the lease): stop the work at once; the fence already refuses its writes."""
        if job_id in self._lost or job_id in self._ending or job_id not in self._tasks:
            return  # the fence still refuses whatever an ending job would write
        self._lost.add(job_id)
        _log.warning("job_lease_lost", job_id=job_id, replica=self.replica_id)
        running = self._running.get(job_id)
        if running is not None:
            running._request_cancel()  # on_cancel callbacks: kill a subprocess, free a worker
        self._tasks[job_id].cancel()

    # -- leases ---------------------------------------------------------------------------------
    async def _keep_leases(self) -> None:
        """Every lease_seconds / 3: renew this replica's leases (and pick up cancel flags: the
        fallback for a lost notification), then take over expired leases of other replicas."""
        period = self.config.lease_seconds / 3
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._renew_now.wait(), period)
            self._renew_now.clear()
            try:
                fences = dict(self._fences)
                if fences:
                    lost, cancelled = await run_db(self._store.renew, self.replica_id,
                                                   {j: f.epoch for j, f in fences.items()}, self._lease_us)
                    for job_id in lost:
                        if self._fences.get(job_id) == fences[job_id]:  # not a job that just ended
                            self._lease_lost(job_id)
                    for job_id in cancelled:
                        running = self._running.get(job_id)
                        if running is not None:
                            running._request_cancel()
                if not self._stopping:  # renewing only, while running jobs get their grace
                    await self.recover()
                self._health.ok()
            except Exception as exc:
                self._failed("lease", exc, "job_lease_loop_failed")

    async def _sweep(self, *, startup: bool) -> None:
        postgres = self._store.postgres
        candidates = await run_db(self._store.expired, also_owner=self.replica_id if startup and postgres else None,
                                  every_running=startup and not postgres)
        for job_id in candidates:
            if job_id in self._tasks:
                continue  # running here: renewed, never taken over by its own replica
            moved = await run_db(
                self._store.take_over, job_id, max_attempts=self.config.max_attempts, now_us=now_us(),
                also_owner=self.replica_id if startup and postgres else None,
                every_running=startup and not postgres,
                **({"message": "re-queued after a service restart"} if startup else {}),
            )
            if moved is not None:
                _log.info("job_taken_over", job_id=job_id, state=moved.record.state, replica=self.replica_id)
                self._finished(moved)
                if moved.record.state == QUEUED:
                    self._maybe_work()
                    self._positions_changed.set()

