"""Blocking database operations on the job tables (call them through ``services.kit.db.run_db``).

Sequence numbers come from the row's ``last_sequence`` counter, and every write that appends events
is one transaction whose FIRST statement is ``UPDATE job SET last_sequence = last_sequence + n
WHERE id = ? [AND state IN (...)]``: the database itself reserves the numbers and decides the state
precondition atomically. That UPDATE takes the row lock on PostgreSQL (any number of replicas) and
the database write lock on SQLite before anything is read (SQLite ignores ``FOR UPDATE``, and a
read-then-write transaction there lets two writers read the same counter), so the row read next is
current and stays so until commit. The state change, its event and the counter move together or
not at all: a cancel racing the scheduler, the queue-position announcer or a job's event writer can
never reuse a sequence, lose a write or make an illegal transition.

Leases (N replicas): :meth:`JobStore.claim_next` takes the next QUEUED job (priority, then age) in
ONE statement, ``UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1)``, which also
takes SQLite's write lock first; it stamps the row with this replica's id, an expiry on the
DATABASE clock (replicas on different hosts never compare their own clocks) and ``lease_epoch + 1``.
Every write of a running job then carries a :class:`Fence` (owner + epoch) in its first UPDATE: a
replica that lost the lease (expired and taken over, even if it re-claimed the job since) writes
nothing. On PostgreSQL each write also sends ``pg_notify`` in its transaction (see ``listener``).
"""

from __future__ import annotations

import json
import uuid
import zlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from services.kit.errors import ServiceError
from services.kit.jobs import listener
from services.kit.jobs.record import JobRecord
from services.kit.jobs.states import CANCELLED, FAILED, QUEUED, RUNNING, TERMINAL, check_transition
from services.kit.jobs.tables import JobEventRow, JobRow
from viarte.type.v1 import job_pb2

__all__ = ["EventItem", "Fence", "JobStore", "QueueFull", "Transition"]

# One event to append: (progress, time_us, placement or None).
EventItem = tuple[job_pb2.Progress, int, job_pb2.Placement | None]


# The transaction-scoped advisory lock that makes "count the queue, then insert" one step over
# every replica (PostgreSQL); SQLite's single write lock, taken by the INSERT, does the same there.
_QUEUE_LOCK = zlib.crc32(b"viarte-jobs:queue-cap")


class QueueFull(Exception):
    """``max_queued`` jobs are waiting already (counted over every replica): nothing was inserted."""

    def __init__(self, queued: int) -> None:
        super().__init__(f"{queued} jobs queued")
        self.queued = queued


@dataclass(frozen=True)
class Transition:
    record: JobRecord
    event: job_pb2.JobEvent


@dataclass(frozen=True)
class Fence:
    """The lease a running job's writes hold: they apply only while the row still names both."""

    owner: str
    epoch: int


def _db_now_us(dialect: str) -> sa.ColumnElement[int]:
    """Now on the database clock, in µs since the epoch (lease expiry and take-over compare these)."""
    if dialect == "postgresql":
        return sa.cast(sa.extract("epoch", sa.func.clock_timestamp()) * 1_000_000, sa.BigInteger)
    return sa.cast((sa.func.julianday("now") - 2440587.5) * 86_400_000_000, sa.BigInteger)


def _queue_order() -> list[Any]:
    return [col(JobRow.priority).desc(), col(JobRow.create_us), col(JobRow.id)]


def _ahead_of(priority: int, create_us: int, job_id: str) -> sa.ColumnElement[bool]:
    """QUEUED jobs that run before (priority, create_us, job_id): the claim order, as a filter."""
    p, c, i = col(JobRow.priority), col(JobRow.create_us), col(JobRow.id)
    return sa.and_(col(JobRow.state) == QUEUED, sa.or_(
        p > priority, sa.and_(p == priority, sa.or_(c < create_us, sa.and_(c == create_us, i < job_id)))))


def _event(seq: int, now_us: int, state: int, progress: job_pb2.Progress,
           error: job_pb2.JobError | None = None) -> job_pb2.JobEvent:
    ev = job_pb2.JobEvent(sequence=seq, state=state, progress=progress, error=error)  # type: ignore[arg-type]
    ev.time.FromMicroseconds(now_us)
    return ev


def _without_preview(progress: job_pb2.Progress) -> bytes:
    if not progress.preview_jpeg:
        return bytes(progress.SerializeToString())
    slim = job_pb2.Progress()
    slim.CopyFrom(progress)
    slim.ClearField("preview_jpeg")
    return bytes(slim.SerializeToString())


def _where_stopped(last: job_pb2.Progress, final: job_pb2.Progress) -> job_pb2.Progress:
    out = job_pb2.Progress(step=last.step, total_steps=last.total_steps, frame=last.frame,
                           total_frames=last.total_frames, fraction=last.fraction)
    out.MergeFrom(final)
    return out


def _close_stage(row: JobRow, now_us: int, next_stage: int | None) -> None:
    """Adds the time spent in the row's current stage when the stage changes (or the job ends)."""
    current = job_pb2.Progress.FromString(row.progress).stage if row.progress else 0
    if next_stage is not None and next_stage == current:
        return
    if current and row.stage_since_us is not None and row.state == RUNNING:
        durations = json.loads(row.stage_durations or "{}")
        name = job_pb2.Stage.Name(current).removeprefix("STAGE_").lower()
        durations[name] = durations.get(name, 0.0) + max(0, now_us - row.stage_since_us) / 1e6
        row.stage_durations = json.dumps(durations)
    row.stage_since_us = max(now_us, row.stage_since_us or 0)


class JobStore:
    def __init__(self, engine: Engine, replica_id: str = "", hold_limit_seconds: float = 0.0,
                 *, metered: bool = False) -> None:
        self._engine = engine
        # Metered: every terminal transition marks the job's outcome as not yet recorded (the meter
        # loop's outbox); every kind is priced (JobService.create refuses one that is not).
        self.metered = metered
        self.replica_id = replica_id
        self.dialect = engine.dialect.name
        self.postgres = self.dialect == "postgresql"
        self._now = _db_now_us(self.dialect)
        self._hold_limit_ms = int(hold_limit_seconds * 1000)
        # Reads run outside a transaction on PostgreSQL: each statement is its own snapshot, and
        # the BEGIN and ROLLBACK around it would be two more round trips per read. (SQLite: in-process.)
        self._reads = engine.execution_options(isolation_level="AUTOCOMMIT") if self.postgres else engine

    def _guard(self, session: Session) -> None:
        """PostgreSQL: a replica frozen inside one of these transactions (SIGSTOP, a VM pause) holds
        the job's row lock; the server ends such a session after ``hold_limit_seconds`` idle (the
        lease), so the take-over of its jobs is delayed, never blocked for good."""
        if self.postgres and self._hold_limit_ms:
            session.connection().exec_driver_sql(
                f"SET LOCAL idle_in_transaction_session_timeout = {self._hold_limit_ms}")

    def _claim(self, session: Session, job_id: str, events: int, states: Collection[int] | None,
               *, fence: Fence | None = None, where: Sequence[sa.ColumnElement[bool]] = (),
               values: Mapping[str, Any] | None = None) -> JobRow | None:
        """Reserves ``events`` sequence numbers (the row's new ``last_sequence`` is the highest) if
        the job exists, is in one of ``states``, still holds ``fence`` and matches ``where``;
        returns the locked, current row, else None. Must be the transaction's first statement (see
        the module docstring)."""
        self._guard(session)
        claim = (sa.update(JobRow).where(col(JobRow.id) == job_id, *where)
                 .values(last_sequence=col(JobRow.last_sequence) + events, **(values or {}))
                 # No ORM synchronisation: it could read the row BEFORE the UPDATE takes the lock.
                 .execution_options(synchronize_session=False))
        if states is not None:
            claim = claim.where(col(JobRow.state).in_(states))
        if fence is not None:
            claim = claim.where(col(JobRow.lease_owner) == fence.owner, col(JobRow.lease_epoch) == fence.epoch)
        if session.exec(claim).rowcount != 1:
            return None
        return self._reread(session, job_id)

    @staticmethod
    def _reread(session: Session, job_id: str) -> JobRow:
        return session.exec(
            select(JobRow).where(JobRow.id == job_id).execution_options(populate_existing=True)
        ).one()

    def _notify(self, session: Session, kind: str, job_id: str, sequence: int = 0) -> None:
        """pg_notify in the write's own transaction: sent on commit, never for a rollback."""
        if self.postgres:
            payload = listener.encode(kind, self.replica_id, job_id, sequence)
            session.connection().execute(sa.select(sa.func.pg_notify(listener.CHANNEL, payload)))

    def _append(self, session: Session, row: JobRow, ev: job_pb2.JobEvent) -> None:
        session.add(JobEventRow(job_id=row.id, seq=ev.sequence, payload=ev.SerializeToString(),
                                time_us=ev.time.ToMicroseconds()))

    # -- reads ----------------------------------------------------------------------------------
    def get(self, job_id: str) -> JobRecord | None:
        with Session(self._reads) as session:
            row = session.get(JobRow, job_id)
            return JobRecord.from_row(row) if row else None

    def find(self, owner: str, kind: str, request_id: str) -> JobRecord | None:
        with Session(self._reads) as session:
            row = session.exec(
                select(JobRow).where(JobRow.owner == owner, JobRow.kind == kind, JobRow.request_id == request_id)
            ).first()
            return JobRecord.from_row(row) if row else None

    def page(self, owner: str, kinds: Sequence[str], *, state: int, limit: int,
             before: tuple[int, str] | None) -> list[JobRecord]:
        """Newest first; ``before`` is the (create_us, id) of the last job of the previous page."""
        stmt = select(JobRow).where(JobRow.owner == owner, col(JobRow.kind).in_(kinds))
        if state:
            stmt = stmt.where(JobRow.state == state)
        if before is not None:
            t, jid = before
            created, ident = col(JobRow.create_us), col(JobRow.id)
            stmt = stmt.where(sa.or_(created < t, sa.and_(created == t, ident < jid)))
        stmt = stmt.order_by(col(JobRow.create_us).desc(), col(JobRow.id).desc()).limit(limit)
        with Session(self._reads) as session:
            return [JobRecord.from_row(r) for r in session.exec(stmt)]

    def in_state(self, state: int) -> list[JobRecord]:
        with Session(self._reads) as session:
            rows = session.exec(select(JobRow).where(JobRow.state == state).order_by(col(JobRow.create_us)))
            return [JobRecord.from_row(r) for r in rows]

    def events(self, job_id: str, after: int, upto: int | None = None) -> list[job_pb2.JobEvent]:
        stmt = select(JobEventRow).where(JobEventRow.job_id == job_id, JobEventRow.seq > after)
        if upto is not None:
            stmt = stmt.where(JobEventRow.seq <= upto)
        with Session(self._reads) as session:
            rows = session.exec(stmt.order_by(col(JobEventRow.seq)))
            return [job_pb2.JobEvent.FromString(r.payload) for r in rows]

    def queue_counts(self, priority: int) -> tuple[int, int]:
        """(QUEUED jobs in all, those that run before a job created now with ``priority``)."""
        with Session(self._reads) as session:
            return self._queue_counts(session, priority)

    @staticmethod
    def _queue_counts(session: Session, priority: int, besides: str | None = None) -> tuple[int, int]:
        stmt = select(sa.func.count(), sa.func.count().filter(col(JobRow.priority) >= priority))
        stmt = stmt.where(col(JobRow.state) == QUEUED)
        if besides is not None:
            stmt = stmt.where(col(JobRow.id) != besides)
        total, ahead = session.exec(stmt).one()
        return int(total), int(ahead)

    def positions(self, jobs: Sequence[tuple[str, int, int]]) -> dict[str, int]:
        """{job id: 1-based queue position} of (id, priority, create_us) jobs still QUEUED."""
        out: dict[str, int] = {}
        with Session(self._reads) as session:
            for job_id, priority, create_us in jobs:
                queued = session.exec(select(JobRow.id).where(JobRow.id == job_id, JobRow.state == QUEUED)).first()
                if queued is not None:
                    ahead = session.exec(select(sa.func.count()).where(_ahead_of(priority, create_us, job_id))).one()
                    out[job_id] = int(ahead) + 1
        return out

    def queue_head(self, limit: int) -> list[tuple[str, int]]:
        """The first ``limit`` QUEUED jobs in claim order, with the position their row last announced."""
        stmt = select(JobRow.id, JobRow.progress).where(JobRow.state == QUEUED).order_by(*_queue_order()).limit(limit)
        with Session(self._reads) as session:
            return [(jid, job_pb2.Progress.FromString(p).queue_position if p else 0) for jid, p in session.exec(stmt)]

    def expired(self, *, also_owner: str | None = None, every_running: bool = False) -> list[str]:
        """RUNNING jobs whose lease expired (or never had one), plus ``also_owner``'s, or all."""
        stmt = select(JobRow.id).where(JobRow.state == RUNNING)
        if not every_running:
            stmt = stmt.where(self._takeable(also_owner))
        with Session(self._reads) as session:
            return list(session.exec(stmt.order_by(col(JobRow.create_us))))

    def _takeable(self, also_owner: str | None) -> sa.ColumnElement[bool]:
        expires = col(JobRow.lease_expires_us)
        cond = sa.or_(expires.is_(None), expires < self._now)
        return sa.or_(cond, col(JobRow.lease_owner) == also_owner) if also_owner else cond

    # -- writes ---------------------------------------------------------------------------------
    def create(self, *, owner: str, kind: str, request_id: str, parameters: bytes, priority: int,
               now_us: int, progress: job_pb2.Progress | None = None, job_id: str | None = None,
               max_queued: int | None = None, api_key_id: str = "",
               estimated_credits: int = 0) -> tuple[Transition | None, JobRecord]:
        """Inserts a QUEUED job (id ``job_id``, default a new UUID) with event #1 (``progress``,
        default its queue position); an existing (owner, kind, request_id) job is returned instead
        (with no transition), also when another replica inserts it concurrently (the unique index
        decides; the loser reads the winner's). Raises :class:`QueueFull` when ``max_queued`` jobs
        wait already: counted and inserted in one transaction under one lock (the PostgreSQL
        advisory lock; SQLite's write lock), so concurrent creates on N replicas never pass it."""
        # No look-up first: the unique index decides (JobService.create looks before admitting).
        check_transition(job_pb2.JOB_STATE_UNSPECIFIED, QUEUED)
        row = JobRow(
            id=job_id or str(uuid.uuid4()), owner=owner, kind=kind, request_id=request_id or None, parameters=parameters,
            state=QUEUED, priority=priority, create_us=now_us, update_us=now_us, last_sequence=1,
            progress=b"", stage_since_us=now_us, api_key_id=api_key_id, estimated_credits=estimated_credits,
        )
        try:
            with Session(self._engine) as session:
                if self.postgres:
                    # Held until commit or rollback; the row is inserted (with its position) at commit.
                    session.connection().execute(sa.select(sa.func.pg_advisory_xact_lock(_QUEUE_LOCK)))
                    queued, ahead = self._queue_counts(session, priority)
                else:
                    session.add(row)
                    session.flush()  # the INSERT takes SQLite's write lock before the count
                    queued, ahead = self._queue_counts(session, priority, besides=row.id)
                if max_queued is not None and queued >= max_queued:
                    session.rollback()
                    raise QueueFull(queued)
                if progress is None:
                    progress = job_pb2.Progress(stage=job_pb2.STAGE_QUEUED, queue_position=ahead + 1)
                row.progress = _without_preview(progress)
                session.add(row)
                session.flush()  # the job before its event (the foreign key)
                ev = _event(1, now_us, QUEUED, progress)
                self._append(session, row, ev)
                self._notify(session, listener.QUEUED, row.id, 1)
                record = JobRecord.from_row(row)
                session.commit()
        except IntegrityError:
            existing = self.find(owner, kind, request_id)
            if existing is None:
                raise
            return None, existing
        return Transition(record, ev), record

    def _apply(self, session: Session, row: JobRow, new_state: int, *, now_us: int,
               progress: job_pb2.Progress | None = None, error: job_pb2.JobError | None = None,
               result: bytes | None = None) -> Transition:
        """The state change of a claimed row, its event (sequence ``row.last_sequence``) and its
        notification; commits."""
        check_transition(row.state, new_state)  # raises: the session rolls the claim back
        progress = progress if progress is not None else job_pb2.Progress()
        if new_state == CANCELLED and row.progress and not progress.stage:
            # Keep how far the work got (step and frame counters; not the stage, which would read
            # as a job still at work): a cancelled job pays for the work done before the cancel.
            progress = _where_stopped(job_pb2.Progress.FromString(row.progress), progress)
        _close_stage(row, now_us, None if new_state in TERMINAL else progress.stage)
        row.state = new_state
        row.update_us = now_us
        row.progress = _without_preview(progress)
        if new_state == RUNNING:
            row.start_us = now_us
        else:  # the lease ends with the run; the epoch stays (fencing outlives it)
            row.lease_owner = None
            row.lease_expires_us = None
        if new_state in TERMINAL:
            row.end_us = now_us
            if self.metered:  # committed with the end itself: no job ends unrecorded
                row.meter_due_us = now_us
        if error is not None:
            row.error = error.SerializeToString()
        if result is not None:
            row.result = result
        ev = _event(row.last_sequence, now_us, new_state, progress, error)
        self._append(session, row, ev)
        self._notify(session, listener.QUEUED if new_state == QUEUED else listener.EVENTS, row.id, ev.sequence)
        session.add(row)
        record = JobRecord.from_row(row)  # as of this transition, not re-read after the commit
        session.commit()
        return Transition(record, ev)

    def transition(
        self,
        job_id: str,
        new_state: int,
        *,
        now_us: int,
        expect: frozenset[int] | None = None,
        progress: job_pb2.Progress | None = None,
        error: job_pb2.JobError | None = None,
        result: bytes | None = None,
        count_attempt: bool = False,
        fence: Fence | None = None,
    ) -> Transition | None:
        """Moves a job to ``new_state`` with an event; None when its state is not in ``expect`` or
        it no longer holds ``fence``."""
        with Session(self._engine) as session:
            values = {"attempts": col(JobRow.attempts) + 1} if count_attempt else None
            row = self._claim(session, job_id, 1, expect, fence=fence, values=values)
            if row is None:
                return None
            return self._apply(session, row, new_state, now_us=now_us, progress=progress, error=error, result=result)

    def claim_next(
        self, owner: str, lease_us: int, now_us: int, busy: Sequence[str] = ()
    ) -> tuple[Transition | None, bool]:
        """Starts the next QUEUED job (highest priority, then oldest) under a lease for ``owner``:
        RUNNING, attempts + 1, lease_epoch + 1. Returns (the start or None, whether QUEUED jobs were
        skipped because another transaction holds their row right now: SKIP LOCKED never waits for
        them, so the caller tries again shortly instead of waiting for the next wake-up)."""
        waiting = select(JobRow.id).where(JobRow.state == QUEUED)
        if busy:
            # Jobs this replica still has a task for (a lease it lost while the database was away,
            # re-queued by another replica): claiming one again would give two tasks one job id.
            waiting = waiting.where(col(JobRow.id).not_in(list(busy)))
        nxt = waiting.order_by(*_queue_order()).limit(1)
        if self.postgres:
            nxt = nxt.with_for_update(skip_locked=True)
        claim = (sa.update(JobRow).where(col(JobRow.id) == nxt.scalar_subquery(), col(JobRow.state) == QUEUED)
                 .values(last_sequence=col(JobRow.last_sequence) + 1, attempts=col(JobRow.attempts) + 1,
                         lease_owner=owner, lease_epoch=col(JobRow.lease_epoch) + 1, placement=None,
                         lease_expires_us=self._now + lease_us)
                 .returning(col(JobRow.id)))
        with Session(self._engine) as session:
            self._guard(session)
            job_id = session.connection().execute(claim).scalar_one_or_none()
            if job_id is None:
                skipped = self.postgres and session.exec(waiting.limit(1)).first() is not None
                return None, skipped
            row = self._reread(session, job_id)
            return self._apply(session, row, RUNNING, now_us=now_us,
                               progress=job_pb2.Progress(message="starting")), False

    def renew(self, owner: str, leases: dict[str, int], lease_us: int) -> tuple[set[str], set[str]]:
        """Extends this replica's leases {job id: epoch}; returns (lost, cancel requested)."""
        lost: set[str] = set()
        cancelled: set[str] = set()
        with Session(self._engine) as session:
            self._guard(session)
            conn = session.connection()
            for job_id, epoch in leases.items():
                got = conn.execute(
                    sa.update(JobRow)
                    .where(col(JobRow.id) == job_id, col(JobRow.state) == RUNNING,
                           col(JobRow.lease_owner) == owner, col(JobRow.lease_epoch) == epoch)
                    .values(lease_expires_us=self._now + lease_us)
                    .returning(col(JobRow.cancel_requested))
                ).first()
                if got is None:
                    lost.add(job_id)
                elif got[0]:
                    cancelled.add(job_id)
            session.commit()
        return lost, cancelled

    def take_over(self, job_id: str, *, max_attempts: int, now_us: int, also_owner: str | None = None,
                  every_running: bool = False, message: str = "re-queued after its replica stopped renewing its lease",
                  ) -> Transition | None:
        """Ends the lease of a RUNNING job whose replica is gone (lease expired, or ``also_owner``'s
        from a previous life; ``every_running``: SQLite's single replica at start). Decided under the
        row lock, so a lease renewed meanwhile is left alone: CANCELLED if a cancel was pending,
        FAILED WORKER_CRASHED once ``attempts >= max_attempts``, else QUEUED again."""
        where = () if every_running else (self._takeable(also_owner),)
        with Session(self._engine) as session:
            if self.postgres and session.exec(
                select(JobRow.id).where(JobRow.id == job_id).with_for_update(skip_locked=True)
            ).first() is None:
                return None  # its replica is inside a write right now (or frozen in one): next round
            row = self._claim(session, job_id, 1, (RUNNING,), where=where,
                              values={"lease_epoch": col(JobRow.lease_epoch) + 1})
            if row is None:
                return None
            if row.cancel_requested:
                return self._apply(session, row, CANCELLED, now_us=now_us, progress=job_pb2.Progress(message="cancelled"))
            if row.attempts >= max_attempts:
                err = ServiceError.internal(
                    "WORKER_CRASHED", f"the job was interrupted {row.attempts} times; giving up").to_job_error()
                return self._apply(session, row, FAILED, now_us=now_us, error=err)
            return self._apply(session, row, QUEUED, now_us=now_us,
                               progress=job_pb2.Progress(stage=job_pb2.STAGE_QUEUED, message=message))

    def append(self, job_id: str, items: Sequence[EventItem],
               state: int = RUNNING, fence: Fence | None = None) -> list[job_pb2.JobEvent] | None:
        """Appends (progress, time_us, placement or None) events of a job in ``state`` holding
        ``fence``; an event with a placement also sets the job's ``placement`` (where the running
        attempt runs). None once it left that state or lost the lease (nothing stored)."""
        if not items:
            return []
        with Session(self._engine) as session:
            row = self._claim(session, job_id, len(items), (state,), fence=fence)
            if row is None:
                return None
            events = self._append_items(session, row, state, items)
            session.commit()
            return events

    def _append_items(self, session: Session, row: JobRow, state: int,
                      items: Sequence[EventItem]) -> list[job_pb2.JobEvent]:
        events = []
        for seq, (progress, time_us, placement) in enumerate(items, row.last_sequence - len(items) + 1):
            _close_stage(row, time_us, progress.stage)
            ev = _event(seq, time_us, state, progress)
            if placement is not None:
                ev.placement.CopyFrom(placement)
                row.placement = placement.SerializeToString()
            self._append(session, row, ev)
            events.append(ev)
        row.progress = _without_preview(items[-1][0])
        row.update_us = items[-1][1]
        session.add(row)
        self._notify(session, listener.EVENTS, row.id, row.last_sequence)
        return events

    def announce(self, job_id: str, now_us: int) -> list[job_pb2.JobEvent]:
        """A QUEUED event with the job's current position, unless its row shows it already. The
        position is counted under the row lock, so announcers of several replicas never leave an
        older position last: whichever writes last counted after every change before it."""
        with Session(self._engine) as session:
            row = self._claim(session, job_id, 1, (QUEUED,))
            if row is None:
                return []
            ahead = session.exec(select(sa.func.count()).where(_ahead_of(row.priority, row.create_us, row.id))).one()
            position = int(ahead) + 1
            stored = job_pb2.Progress.FromString(row.progress).queue_position if row.progress else 0
            if stored == position:
                session.rollback()
                return []
            progress = job_pb2.Progress(stage=job_pb2.STAGE_QUEUED, queue_position=position)
            events = self._append_items(session, row, QUEUED, [(progress, now_us, None)])
            session.commit()
            return events

    # -- metering (issue 16) ----------------------------------------------------------------------
    def meter_claim(self, now_us: int, retry_us: int, limit: int) -> list[JobRecord]:
        """Up to ``limit`` ended jobs whose outcome is due to be recorded, claimed for this replica
        by pushing their due time ``retry_us`` ahead in ONE conditional UPDATE (PostgreSQL: SKIP
        LOCKED; SQLite: its write lock): another replica claims other rows, and a claim that dies
        with its replica is simply due again later."""
        due = (select(JobRow.id).where(col(JobRow.meter_due_us).is_not(None), col(JobRow.meter_due_us) <= now_us)
               .order_by(col(JobRow.meter_due_us)).limit(limit))
        if self.postgres:
            due = due.with_for_update(skip_locked=True)
        claim = (sa.update(JobRow).where(col(JobRow.id).in_(due.scalar_subquery()),
                                         col(JobRow.meter_due_us) <= now_us)
                 .values(meter_due_us=now_us + retry_us).returning(col(JobRow.id))
                 .execution_options(synchronize_session=False))
        with Session(self._engine) as session:
            ids = list(session.connection().execute(claim).scalars())
            session.commit()
            if not ids:
                return []
            rows = session.exec(select(JobRow).where(col(JobRow.id).in_(ids)).order_by(col(JobRow.end_us)))
            return [JobRecord.from_row(r) for r in rows]

    def meter_done(self, charged: Mapping[str, int]) -> None:
        """Account accepted these outcomes {job id: credits}: store the charges and clear the
        pending markers, one transaction for the batch."""
        if not charged:
            return
        with Session(self._engine) as session:
            for job_id, credits in charged.items():
                session.exec(sa.update(JobRow).where(col(JobRow.id) == job_id)
                             .values(meter_due_us=None, credits=credits)
                             .execution_options(synchronize_session=False))
            session.commit()

    def created_since(self, owner: str, api_key_id: str, since_us: int) -> list[tuple[str, int]]:
        """(id, estimated credits) of the jobs ``owner`` created with ``api_key_id`` since ``since_us``:
        what an expired admission lease of that caller admitted (``kit.jobs.leases``)."""
        t = JobRow.__table__.c  # type: ignore[attr-defined]
        query = sa.select(t.id, t.estimated_credits).where(
            t.owner == owner, t.api_key_id == api_key_id, t.create_us >= since_us)
        with self._engine.connect() as conn:
            return [(str(r[0]), int(r[1])) for r in conn.execute(query)]

    def request_cancel(self, job_id: str, now_us: int) -> JobRecord | None:
        """Flags a RUNNING job for cancellation (once) and tells its replica; returns the job as it is now."""
        with Session(self._engine) as session:
            self._guard(session)
            # One conditional UPDATE, the same atomic check-and-set on every backend.
            flagged = session.exec(
                sa.update(JobRow)
                .where(col(JobRow.id) == job_id, col(JobRow.state) == RUNNING, ~col(JobRow.cancel_requested))
                .values(cancel_requested=True, update_us=now_us)
                .execution_options(synchronize_session=False)
            ).rowcount
            row = session.get(JobRow, job_id, populate_existing=True)  # under the write lock: current
            record = JobRecord.from_row(row) if row else None
            if flagged:
                self._notify(session, listener.CANCEL, job_id)
            session.commit()
            return record
