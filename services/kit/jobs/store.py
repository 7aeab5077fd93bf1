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

import uuid
import zlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from services.kit.errors import ServiceError
from services.kit.jobs import listener
from services.kit.jobs.record import JobRecord
from services.kit.jobs.rows import Row as _Row
from services.kit.jobs.rows import close_stage as _close_stage
from services.kit.jobs.rows import event as _event
from services.kit.jobs.rows import stage_of as _stage_of
from services.kit.jobs.rows import where_stopped as _where_stopped
from services.kit.jobs.rows import without_preview as _without_preview
from services.kit.jobs.states import CANCELLED, FAILED, QUEUED, RUNNING, TERMINAL, check_transition
from services.kit.jobs.tables import JobEventRow, JobRow
from viarte.type.v1 import job_pb2

__all__ = ["EventItem", "Fence", "JobStore", "QueueFull", "Transition"]

# One event to append: (progress, time_us, placement or None).
EventItem = tuple[job_pb2.Progress, int, job_pb2.Placement | None]


# The transaction-scoped advisory lock that makes "count the queue, then insert" one step over
# every replica (PostgreSQL); SQLite's single write lock, taken by the INSERT, does the same there.
_QUEUE_LOCK = zlib.crc32(b"viarte-jobs:queue-cap")
# Serialises the queue-position announcers of every replica (``JobStore.announce``); claims take it
# shared, so none skips the head rows an announcement has locked.
_ANNOUNCE_LOCK = zlib.crc32(b"viarte-jobs:announce")

# SQLAlchemy Core on the tables (no ORM unit of work on the hot paths: see ``_Row``).
_JOB: sa.Table = JobRow.__table__  # type: ignore[attr-defined]
_EVENT: sa.Table = JobEventRow.__table__  # type: ignore[attr-defined]
_C = _JOB.c
# Built once (a statement built per call costs its construction and cache key every time).
_INSERT_EVENT = sa.insert(_EVENT)
_INSERT_EVENT_NOTIFY = sa.insert(_EVENT).returning(sa.func.pg_notify(sa.bindparam("channel"), sa.bindparam("notice")))


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
    return [_C.priority.desc(), _C.create_us, _C.id]


def _ahead_of(priority: int, create_us: int, job_id: str) -> sa.ColumnElement[bool]:
    """QUEUED jobs that run before (priority, create_us, job_id): the claim order, as a filter."""
    p, c, i = _C.priority, _C.create_us, _C.id
    return sa.and_(_C.state == QUEUED, sa.or_(
        p > priority, sa.and_(p == priority, sa.or_(c < create_us, sa.and_(c == create_us, i < job_id)))))


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

    def _guard(self, conn: Connection) -> None:
        """PostgreSQL: a replica frozen inside one of these transactions (SIGSTOP, a VM pause) holds
        the job's row lock; the server ends such a session after ``hold_limit_seconds`` idle (the
        lease), so the take-over of its jobs is delayed, never blocked for good."""
        if self.postgres and self._hold_limit_ms:
            conn.exec_driver_sql(f"SET LOCAL idle_in_transaction_session_timeout = {self._hold_limit_ms}")

    def _claim(self, conn: Connection, job_id: str, events: int, states: Collection[int] | None,
               *, fence: Fence | None = None, where: Sequence[sa.ColumnElement[bool]] = (),
               values: Mapping[str, Any] | None = None) -> _Row | None:
        """Reserves ``events`` sequence numbers (the row's new ``last_sequence`` is the highest) if
        the job exists, is in one of ``states``, still holds ``fence`` and matches ``where``;
        returns the locked, current row (one UPDATE ... RETURNING), else None. Must be the
        transaction's first statement (see the module docstring)."""
        self._guard(conn)
        claim = (sa.update(_JOB).where(_C.id == job_id, *where)
                 .values(last_sequence=_C.last_sequence + events, **(values or {})).returning(*_JOB.c))
        if states is not None:
            claim = claim.where(_C.state.in_(states))
        if fence is not None:
            claim = claim.where(_C.lease_owner == fence.owner, _C.lease_epoch == fence.epoch)
        row = conn.execute(claim).first()
        return _Row.of(row) if row is not None else None

    @staticmethod
    def _save(conn: Connection, row: _Row) -> None:
        changes = row.changes()
        if changes:
            conn.execute(sa.update(_JOB).where(_C.id == row.id).values(**changes))

    def _notify(self, conn: Connection, kind: str, job_id: str) -> None:
        """pg_notify in the write's own transaction (a write that stores no event: a cancel request)."""
        if self.postgres:
            conn.execute(sa.select(sa.func.pg_notify(listener.CHANNEL, listener.encode(kind, self.replica_id, job_id))))

    def _store_events(self, conn: Connection, job_id: str, events: Sequence[job_pb2.JobEvent], notice: str) -> None:
        """One INSERT for every event of the write, after the job row (the foreign key); on
        PostgreSQL the same statement sends the write's ``pg_notify`` (``notice``, naming the last
        event), in its transaction: sent on commit, never for a rollback. Each inserted row returns
        the same notification, which PostgreSQL delivers once per transaction."""
        rows = [{"job_id": job_id, "seq": ev.sequence, "payload": ev.SerializeToString(),
                 "time_us": ev.time.ToMicroseconds()} for ev in events]
        if not self.postgres:
            conn.execute(_INSERT_EVENT, rows)  # executemany of one statement (SQLite: in-process)
            return
        payload = listener.encode(notice, self.replica_id, job_id, events[-1].sequence)
        if len(rows) == 1:  # the common case: a prepared statement, no statement built per write
            conn.execute(_INSERT_EVENT_NOTIFY, {**rows[0], "channel": listener.CHANNEL, "notice": payload}).all()
        else:
            conn.execute(sa.insert(_EVENT).values(rows).returning(
                sa.func.pg_notify(listener.CHANNEL, payload))).all()

    # -- reads ----------------------------------------------------------------------------------
    def _read(self, query: sa.Select[Any]) -> list[JobRecord]:
        with self._reads.connect() as conn:
            return [JobRecord.from_row(r) for r in conn.execute(query)]

    def get(self, job_id: str) -> JobRecord | None:
        found = self._read(sa.select(_JOB).where(_C.id == job_id))
        return found[0] if found else None

    def find(self, owner: str, kind: str, request_id: str) -> JobRecord | None:
        found = self._read(sa.select(_JOB).where(_C.owner == owner, _C.kind == kind, _C.request_id == request_id))
        return found[0] if found else None

    def page(self, owner: str, kinds: Sequence[str], *, state: int, limit: int,
             before: tuple[int, str] | None) -> list[JobRecord]:
        """Newest first; ``before`` is the (create_us, id) of the last job of the previous page."""
        stmt = sa.select(_JOB).where(_C.owner == owner, _C.kind.in_(kinds))
        if state:
            stmt = stmt.where(_C.state == state)
        if before is not None:
            t, jid = before
            stmt = stmt.where(sa.or_(_C.create_us < t, sa.and_(_C.create_us == t, _C.id < jid)))
        return self._read(stmt.order_by(_C.create_us.desc(), _C.id.desc()).limit(limit))

    def in_state(self, state: int) -> list[JobRecord]:
        return self._read(sa.select(_JOB).where(_C.state == state).order_by(_C.create_us))

    def events(self, job_id: str, after: int, upto: int | None = None) -> list[job_pb2.JobEvent]:
        stmt = sa.select(_EVENT.c.payload).where(_EVENT.c.job_id == job_id, _EVENT.c.seq > after)
        if upto is not None:
            stmt = stmt.where(_EVENT.c.seq <= upto)
        with self._reads.connect() as conn:
            return [job_pb2.JobEvent.FromString(p) for p in conn.execute(stmt.order_by(_EVENT.c.seq)).scalars()]

    def queue_counts(self, priority: int) -> tuple[int, int]:
        """(QUEUED jobs in all, those that run before a job created now with ``priority``)."""
        with self._reads.connect() as conn:
            return self._queue_counts(conn, priority)

    @staticmethod
    def _queue_counts(conn: Connection, priority: int, besides: str | None = None) -> tuple[int, int]:
        stmt = sa.select(sa.func.count(), sa.func.count().filter(_C.priority >= priority)).where(_C.state == QUEUED)
        if besides is not None:
            stmt = stmt.where(_C.id != besides)
        total, ahead = conn.execute(stmt).one()
        return int(total), int(ahead)

    def positions(self, jobs: Sequence[tuple[str, int, int]]) -> dict[str, int]:
        """{job id: 1-based queue position} of (id, priority, create_us) jobs still QUEUED: one
        statement (a scalar count per job, NULL for one no longer queued)."""
        if not jobs:
            return {}
        ahead = [sa.case((sa.exists().where(_C.id == jid, _C.state == QUEUED),
                          sa.select(sa.func.count()).where(_ahead_of(p, c, jid)).scalar_subquery()))
                 for jid, p, c in jobs]
        with self._reads.connect() as conn:
            counts = conn.execute(sa.select(*ahead)).one()
        return {jid: int(n) + 1 for (jid, _, _), n in zip(jobs, counts, strict=True) if n is not None}

    def expired(self, *, also_owner: str | None = None, every_running: bool = False) -> list[str]:
        """RUNNING jobs whose lease expired (or never had one), plus ``also_owner``'s, or all."""
        stmt = sa.select(_C.id).where(_C.state == RUNNING)
        if not every_running:
            stmt = stmt.where(self._takeable(also_owner))
        with self._reads.connect() as conn:
            return list(conn.execute(stmt.order_by(_C.create_us)).scalars())

    def _takeable(self, also_owner: str | None) -> sa.ColumnElement[bool]:
        expires = _C.lease_expires_us
        cond = sa.or_(expires.is_(None), expires < self._now)
        return sa.or_(cond, _C.lease_owner == also_owner) if also_owner else cond

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
        values: dict[str, Any] = dict(
            id=job_id or str(uuid.uuid4()), owner=owner, kind=kind, request_id=request_id or None, parameters=parameters,
            state=QUEUED, priority=priority, attempts=0, cancel_requested=False, create_us=now_us, update_us=now_us,
            last_sequence=1, progress=b"", stage_since_us=now_us, stage_durations="{}", lease_epoch=0,
            api_key_id=api_key_id, estimated_credits=estimated_credits,
        )
        try:
            with self._engine.connect() as conn:
                if self.postgres:
                    # Held until commit or rollback; the row is inserted (with its position) at commit.
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_QUEUE_LOCK)))
                    queued, ahead = self._queue_counts(conn, priority)
                else:
                    conn.execute(sa.insert(_JOB).values(values))  # takes SQLite's write lock before the count
                    queued, ahead = self._queue_counts(conn, priority, besides=values["id"])
                if max_queued is not None and queued >= max_queued:
                    conn.rollback()
                    raise QueueFull(queued)
                if progress is None:
                    progress = job_pb2.Progress(stage=job_pb2.STAGE_QUEUED, queue_position=ahead + 1)
                values["progress"] = _without_preview(progress)
                if self.postgres:
                    conn.execute(sa.insert(_JOB).values(values))
                else:
                    conn.execute(sa.update(_JOB).where(_C.id == values["id"]).values(progress=values["progress"]))
                ev = _event(1, now_us, QUEUED, progress)
                self._store_events(conn, values["id"], [ev], listener.QUEUED)
                record = JobRecord.from_row(SimpleNamespace(**{c.name: values.get(c.name) for c in _JOB.c}))
                conn.commit()
        except IntegrityError:
            existing = self.find(owner, kind, request_id)
            if existing is None:
                raise
            return None, existing
        return Transition(record, ev), record

    def _apply(self, conn: Connection, row: _Row, new_state: int, *, now_us: int,
               progress: job_pb2.Progress | None = None, error: job_pb2.JobError | None = None,
               result: bytes | None = None) -> Transition:
        """The state change of a claimed row, its event (sequence ``row.last_sequence``) and its
        notification; commits."""
        check_transition(row.state, new_state)  # raises: the connection rolls the claim back
        progress = progress if progress is not None else job_pb2.Progress()
        if new_state == CANCELLED and row.progress and not progress.stage:
            # Keep how far the work got (step and frame counters; not the stage, which would read
            # as a job still at work): a cancelled job pays for the work done before the cancel.
            progress = _where_stopped(job_pb2.Progress.FromString(row.progress), progress)
        _close_stage(row, now_us, _stage_of(row), None if new_state in TERMINAL else progress.stage)
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
        self._save(conn, row)
        ev = _event(row.last_sequence, now_us, new_state, progress, error)
        self._store_events(conn, row.id, [ev], listener.QUEUED if new_state == QUEUED else listener.EVENTS)
        record = JobRecord.from_row(row)  # as of this transition, not re-read after the commit
        conn.commit()
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
        with self._engine.connect() as conn:
            values = {"attempts": _C.attempts + 1} if count_attempt else None
            row = self._claim(conn, job_id, 1, expect, fence=fence, values=values)
            if row is None:
                return None
            return self._apply(conn, row, new_state, now_us=now_us, progress=progress, error=error, result=result)

    def claim_next(
        self, owner: str, lease_us: int, now_us: int, busy: Sequence[str] = ()
    ) -> tuple[Transition | None, bool, bool]:
        """Starts the next QUEUED job (highest priority, then oldest) under a lease for ``owner``:
        RUNNING, attempts + 1, lease_epoch + 1, its RUNNING event — one UPDATE ... RETURNING, one
        INSERT. Returns (the start or None, whether QUEUED jobs were skipped because another
        transaction holds their row right now: SKIP LOCKED never waits for them, so the caller
        tries again shortly, whether more QUEUED jobs were there besides the one started: the
        caller claims again only then, or on news of work)."""
        waiting = sa.select(_C.id).where(_C.state == QUEUED)
        if busy:
            # Jobs this replica still has a task for (a lease it lost while the database was away,
            # re-queued by another replica): claiming one again would give two tasks one job id.
            waiting = waiting.where(_C.id.not_in(list(busy)))
        nxt = waiting.order_by(*_queue_order()).limit(1)
        if self.postgres:
            nxt = nxt.with_for_update(skip_locked=True)
        # In the statement's snapshot the claimed row is still QUEUED: "others" excludes it by id
        # (spelled out: SQLite's RETURNING renders column names unqualified, ``id != id``).
        other = _JOB.alias("other")
        more = sa.exists().where(other.c.state == QUEUED, other.c.id != sa.literal_column("job.id"))
        if busy:
            more = more.where(other.c.id.not_in(list(busy)))
        progress = job_pb2.Progress(message="starting")
        check_transition(QUEUED, RUNNING)
        claim = (sa.update(_JOB).where(_C.id == nxt.scalar_subquery(), _C.state == QUEUED)
                 .values(last_sequence=_C.last_sequence + 1, attempts=_C.attempts + 1, state=RUNNING,
                         lease_owner=owner, lease_epoch=_C.lease_epoch + 1, placement=None,
                         lease_expires_us=self._now + lease_us, update_us=now_us, start_us=now_us,
                         progress=_without_preview(progress),
                         # _close_stage of a QUEUED row: no duration counted, the RUNNING stage starts now
                         stage_since_us=sa.case((_C.stage_since_us > now_us, _C.stage_since_us), else_=now_us))
                 .returning(*_JOB.c, more.label("more")))
        with self._engine.connect() as conn:
            self._guard(conn)
            if self.postgres:
                # An announcement holds the head's row locks until it commits: SKIP LOCKED would pass
                # over the whole head and start a later job. Claims share the announcers' lock, so a
                # claim waits those few ms instead (announce takes it exclusively before any row lock).
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock_shared(_ANNOUNCE_LOCK)))
            row = conn.execute(claim).first()
            if row is None:
                skipped = self.postgres and conn.execute(waiting.limit(1)).first() is not None
                conn.rollback()
                return None, skipped, skipped
            ev = _event(row.last_sequence, now_us, RUNNING, progress)
            self._store_events(conn, row.id, [ev], listener.EVENTS)
            conn.commit()
            return Transition(JobRecord.from_row(row), ev), False, bool(row.more)

    def renew(self, owner: str, leases: dict[str, int], lease_us: int) -> tuple[set[str], set[str]]:
        """Extends this replica's leases {job id: epoch}; returns (lost, cancel requested)."""
        lost: set[str] = set()
        cancelled: set[str] = set()
        with self._engine.connect() as conn:
            self._guard(conn)
            for job_id, epoch in leases.items():
                got = conn.execute(
                    sa.update(_JOB)
                    .where(_C.id == job_id, _C.state == RUNNING, _C.lease_owner == owner, _C.lease_epoch == epoch)
                    .values(lease_expires_us=self._now + lease_us)
                    .returning(_C.cancel_requested)
                ).first()
                if got is None:
                    lost.add(job_id)
                elif got[0]:
                    cancelled.add(job_id)
            conn.commit()
        return lost, cancelled

    def take_over(self, job_id: str, *, max_attempts: int, now_us: int, also_owner: str | None = None,
                  every_running: bool = False, message: str = "re-queued after its replica stopped renewing its lease",
                  ) -> Transition | None:
        """Ends the lease of a RUNNING job whose replica is gone (lease expired, or ``also_owner``'s
        from a previous life; ``every_running``: SQLite's single replica at start). Decided under the
        row lock, so a lease renewed meanwhile is left alone: CANCELLED if a cancel was pending,
        FAILED WORKER_CRASHED once ``attempts >= max_attempts``, else QUEUED again."""
        where = () if every_running else (self._takeable(also_owner),)
        with self._engine.connect() as conn:
            if self.postgres and conn.execute(
                sa.select(_C.id).where(_C.id == job_id).with_for_update(skip_locked=True)
            ).first() is None:
                return None  # its replica is inside a write right now (or frozen in one): next round
            row = self._claim(conn, job_id, 1, (RUNNING,), where=where, values={"lease_epoch": _C.lease_epoch + 1})
            if row is None:
                return None
            if row.cancel_requested:
                return self._apply(conn, row, CANCELLED, now_us=now_us, progress=job_pb2.Progress(message="cancelled"))
            if row.attempts >= max_attempts:
                err = ServiceError.internal(
                    "WORKER_CRASHED", f"the job was interrupted {row.attempts} times; giving up").to_job_error()
                return self._apply(conn, row, FAILED, now_us=now_us, error=err)
            return self._apply(conn, row, QUEUED, now_us=now_us,
                               progress=job_pb2.Progress(stage=job_pb2.STAGE_QUEUED, message=message))

    def append(self, job_id: str, items: Sequence[EventItem],
               state: int = RUNNING, fence: Fence | None = None) -> list[job_pb2.JobEvent] | None:
        """Appends (progress, time_us, placement or None) events of a job in ``state`` holding
        ``fence``; an event with a placement also sets the job's ``placement`` (where the running
        attempt runs). None once it left that state or lost the lease (nothing stored)."""
        if not items:
            return []
        with self._engine.connect() as conn:
            row = self._claim(conn, job_id, len(items), (state,), fence=fence)
            if row is None:
                return None
            events = self._append_items(conn, row, state, items)
            conn.commit()
            return events

    def _append_items(self, conn: Connection, row: _Row, state: int,
                      items: Sequence[EventItem]) -> list[job_pb2.JobEvent]:
        events = []
        current = _stage_of(row)
        for seq, (progress, time_us, placement) in enumerate(items, row.last_sequence - len(items) + 1):
            # Each event's stage is current for the next one (a batch may span several stages).
            _close_stage(row, time_us, current, progress.stage)
            current = progress.stage
            ev = _event(seq, time_us, state, progress)
            if placement is not None:
                ev.placement.CopyFrom(placement)
                row.placement = placement.SerializeToString()
            events.append(ev)
        row.progress = _without_preview(items[-1][0])
        row.update_us = items[-1][1]
        self._save(conn, row)
        self._store_events(conn, row.id, events, listener.EVENTS)
        return events

    def announce(self, limit: int, now_us: int) -> dict[str, job_pb2.JobEvent]:
        """A QUEUED event with its current position for each of the first ``limit`` QUEUED jobs
        whose row shows another one: ONE transaction for them all (a cancel at the head moves every
        job behind it). PostgreSQL: announcers of every replica take one advisory lock, then read
        the head, so whichever writes last read after every change before it (each queue change
        triggers an announcement after its commit); SQLite has one replica, whose one announcer
        task runs them one after the other. Returns {job id: event}."""
        head = sa.select(_C.id, _C.progress).where(_C.state == QUEUED).order_by(*_queue_order()).limit(limit)
        with self._reads.connect() as conn:  # mostly nothing moved: one read, no transaction
            moved = self._moved(conn.execute(head))  # (SQLite: before its write lock, as it must)
        if not moved:
            return {}
        with self._engine.connect() as conn:
            if self.postgres:
                self._guard(conn)
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_ANNOUNCE_LOCK)))
                moved = self._moved(conn.execute(head))
                if not moved:
                    conn.rollback()
                    return {}
            slim = {jid: _without_preview(job_pb2.Progress(stage=job_pb2.STAGE_QUEUED, queue_position=pos))
                    for jid, pos in moved.items()}
            bumped = conn.execute(
                sa.update(_JOB).where(_C.id.in_(list(moved)), _C.state == QUEUED)
                .values(last_sequence=_C.last_sequence + 1, update_us=now_us,
                        progress=sa.case(slim, value=_C.id))
                .returning(_C.id, _C.last_sequence)).all()
            out: dict[str, job_pb2.JobEvent] = {}
            for jid, seq in bumped:
                out[jid] = _event(seq, now_us, QUEUED, job_pb2.Progress(stage=job_pb2.STAGE_QUEUED,
                                                                       queue_position=moved[jid]))
            if out:
                conn.execute(sa.insert(_EVENT).values([
                    {"job_id": jid, "seq": ev.sequence, "payload": ev.SerializeToString(), "time_us": now_us}
                    for jid, ev in out.items()]))
                if self.postgres:
                    conn.execute(sa.select(*(sa.func.pg_notify(listener.CHANNEL, listener.encode(
                        listener.EVENTS, self.replica_id, jid, ev.sequence)) for jid, ev in out.items())))
            conn.commit()
            return out

    @staticmethod
    def _moved(head: Any) -> dict[str, int]:
        """{job id: position} of the head's jobs whose stored position is another one."""
        out = {}
        for position, (job_id, progress) in enumerate(head, 1):
            if (job_pb2.Progress.FromString(progress).queue_position if progress else 0) != position:
                out[job_id] = position
        return out

    # -- metering (issue 16) ----------------------------------------------------------------------
    def meter_claim(self, now_us: int, retry_us: int, limit: int) -> list[JobRecord]:
        """Up to ``limit`` ended jobs whose outcome is due to be recorded, claimed for this replica
        by pushing their due time ``retry_us`` ahead in ONE conditional UPDATE (PostgreSQL: SKIP
        LOCKED; SQLite: its write lock): another replica claims other rows, and a claim that dies
        with its replica is simply due again later."""
        due = (sa.select(_C.id).where(_C.meter_due_us.is_not(None), _C.meter_due_us <= now_us)
               .order_by(_C.meter_due_us).limit(limit))
        if self.postgres:
            due = due.with_for_update(skip_locked=True)
        claim = (sa.update(_JOB).where(_C.id.in_(due.scalar_subquery()), _C.meter_due_us <= now_us)
                 .values(meter_due_us=now_us + retry_us).returning(*_JOB.c))
        with self._engine.connect() as conn:
            rows = conn.execute(claim).all()
            conn.commit()
        return sorted((JobRecord.from_row(r) for r in rows), key=lambda r: (r.end_us or 0, r.id))

    def meter_done(self, charged: Mapping[str, int]) -> None:
        """Account accepted these outcomes {job id: credits}: store the charges and clear the
        pending markers, one transaction for the batch."""
        if not charged:
            return
        with self._engine.connect() as conn:
            # One statement, executemany (psycopg pipelines it): not one compile and round trip per job.
            done = sa.update(_JOB).where(_C.id == sa.bindparam("job_id")).values(
                meter_due_us=None, credits=sa.bindparam("charge"))
            conn.execute(done, [{"job_id": jid, "charge": credits} for jid, credits in sorted(charged.items())])
            conn.commit()

    def created_since(self, owner: str, api_key_id: str, since_us: int) -> list[tuple[str, int]]:
        """(id, estimated credits) of the jobs ``owner`` created with ``api_key_id`` since ``since_us``:
        what an expired admission lease of that caller admitted (``kit.jobs.leases``)."""
        query = sa.select(_C.id, _C.estimated_credits).where(
            _C.owner == owner, _C.api_key_id == api_key_id, _C.create_us >= since_us)
        with self._engine.connect() as conn:
            return [(str(r[0]), int(r[1])) for r in conn.execute(query)]

    def request_cancel(self, job_id: str, now_us: int) -> JobRecord | None:
        """Flags a RUNNING job for cancellation (once) and tells its replica; returns the job as it is now."""
        with self._engine.connect() as conn:
            self._guard(conn)
            # One conditional UPDATE, the same atomic check-and-set on every backend; it returns the
            # row (current: under the write lock), else the row is read as it is.
            row = conn.execute(
                sa.update(_JOB).where(_C.id == job_id, _C.state == RUNNING, ~_C.cancel_requested)
                .values(cancel_requested=True, update_us=now_us).returning(*_JOB.c)).first()
            if row is not None:
                self._notify(conn, listener.CANCEL, job_id)
            else:
                row = conn.execute(sa.select(_JOB).where(_C.id == job_id)).first()
            conn.commit()
            return JobRecord.from_row(row) if row is not None else None
