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
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from services.kit.jobs.record import JobRecord
from services.kit.jobs.states import QUEUED, RUNNING, TERMINAL, check_transition
from services.kit.jobs.tables import JobEventRow, JobRow
from viarte.type.v1 import job_pb2

__all__ = ["JobStore", "Transition"]


@dataclass(frozen=True)
class Transition:
    record: JobRecord
    event: job_pb2.JobEvent


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
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _claim(self, session: Session, job_id: str, events: int,
               states: Collection[int] | None) -> JobRow | None:
        """Reserves ``events`` sequence numbers (the row's new ``last_sequence`` is the highest) if
        the job exists and is in one of ``states``; returns the locked, current row, else None.
        Must be the transaction's first statement (see the module docstring)."""
        claim = (sa.update(JobRow).where(col(JobRow.id) == job_id)
                 .values(last_sequence=col(JobRow.last_sequence) + events)
                 # No ORM synchronisation: it could read the row BEFORE the UPDATE takes the lock.
                 .execution_options(synchronize_session=False))
        if states is not None:
            claim = claim.where(col(JobRow.state).in_(states))
        if session.exec(claim).rowcount != 1:
            return None
        return session.exec(
            select(JobRow).where(JobRow.id == job_id).execution_options(populate_existing=True)
        ).one()

    def _append(self, session: Session, row: JobRow, ev: job_pb2.JobEvent) -> None:
        session.add(JobEventRow(job_id=row.id, seq=ev.sequence, payload=ev.SerializeToString(),
                                time_us=ev.time.ToMicroseconds()))

    # -- reads ----------------------------------------------------------------------------------
    def get(self, job_id: str) -> JobRecord | None:
        with Session(self._engine) as session:
            row = session.get(JobRow, job_id)
            return JobRecord.from_row(row) if row else None

    def find(self, owner: str, kind: str, request_id: str) -> JobRecord | None:
        with Session(self._engine) as session:
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
        with Session(self._engine) as session:
            return [JobRecord.from_row(r) for r in session.exec(stmt)]

    def in_state(self, state: int) -> list[JobRecord]:
        with Session(self._engine) as session:
            rows = session.exec(select(JobRow).where(JobRow.state == state).order_by(col(JobRow.create_us)))
            return [JobRecord.from_row(r) for r in rows]

    def events(self, job_id: str, after: int, upto: int | None = None) -> list[job_pb2.JobEvent]:
        stmt = select(JobEventRow).where(JobEventRow.job_id == job_id, JobEventRow.seq > after)
        if upto is not None:
            stmt = stmt.where(JobEventRow.seq <= upto)
        with Session(self._engine) as session:
            rows = session.exec(stmt.order_by(col(JobEventRow.seq)))
            return [job_pb2.JobEvent.FromString(r.payload) for r in rows]

    # -- writes ---------------------------------------------------------------------------------
    def create(self, *, owner: str, kind: str, request_id: str, parameters: bytes, priority: int,
               now_us: int, progress: job_pb2.Progress,
               job_id: str | None = None) -> tuple[Transition | None, JobRecord]:
        """Inserts a QUEUED job (id ``job_id``, default a new UUID) with event #1; an existing
        (owner, kind, request_id) job is returned instead (with no transition)."""
        if request_id:
            existing = self.find(owner, kind, request_id)
            if existing:
                return None, existing
        check_transition(job_pb2.JOB_STATE_UNSPECIFIED, QUEUED)
        row = JobRow(
            id=job_id or str(uuid.uuid4()), owner=owner, kind=kind, request_id=request_id or None, parameters=parameters,
            state=QUEUED, priority=priority, create_us=now_us, update_us=now_us, last_sequence=1,
            progress=_without_preview(progress), stage_since_us=now_us,
        )
        ev = _event(1, now_us, QUEUED, progress)
        try:
            with Session(self._engine) as session:
                session.add(row)
                session.flush()
                self._append(session, row, ev)
                record = JobRecord.from_row(row)
                session.commit()
        except IntegrityError:
            existing = self.find(owner, kind, request_id)
            if existing is None:
                raise
            return None, existing
        return Transition(record, ev), record

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
    ) -> Transition | None:
        """Moves a job to ``new_state`` with an event; None when its state is not in ``expect``."""
        with Session(self._engine) as session:
            row = self._claim(session, job_id, 1, expect)
            if row is None:
                return None
            check_transition(row.state, new_state)  # raises: the session rolls the claim back
            progress = progress if progress is not None else job_pb2.Progress()
            _close_stage(row, now_us, None if new_state in TERMINAL else progress.stage)
            row.state = new_state
            row.update_us = now_us
            row.progress = _without_preview(progress)
            if count_attempt:
                row.attempts += 1
            if new_state == RUNNING:
                row.start_us = now_us
            if new_state in TERMINAL:
                row.end_us = now_us
            if error is not None:
                row.error = error.SerializeToString()
            if result is not None:
                row.result = result
            ev = _event(row.last_sequence, now_us, new_state, progress, error)
            self._append(session, row, ev)
            session.add(row)
            record = JobRecord.from_row(row)  # as of this transition, not re-read after the commit
            session.commit()
            return Transition(record, ev)

    def append(self, job_id: str, items: Sequence[tuple[job_pb2.Progress, int]],
               state: int = RUNNING) -> list[job_pb2.JobEvent]:
        """Appends (progress, time_us) events of a job in ``state`` (dropped once it left it):
        RUNNING jobs' progress, QUEUED jobs' queue positions."""
        if not items:
            return []
        with Session(self._engine) as session:
            row = self._claim(session, job_id, len(items), (state,))
            if row is None:
                return []
            events = []
            for seq, (progress, time_us) in enumerate(items, row.last_sequence - len(items) + 1):
                _close_stage(row, time_us, progress.stage)
                ev = _event(seq, time_us, state, progress)
                self._append(session, row, ev)
                events.append(ev)
            row.progress = _without_preview(items[-1][0])
            row.update_us = items[-1][1]
            session.add(row)
            session.commit()
            return events

    def request_cancel(self, job_id: str, now_us: int) -> JobRecord | None:
        """Flags a RUNNING job for cancellation (once); returns the job as it is now."""
        with Session(self._engine) as session:
            # One conditional UPDATE, the same atomic check-and-set on every backend.
            session.exec(
                sa.update(JobRow)
                .where(col(JobRow.id) == job_id, col(JobRow.state) == RUNNING, ~col(JobRow.cancel_requested))
                .values(cancel_requested=True, update_us=now_us)
                .execution_options(synchronize_session=False)
            )
            row = session.get(JobRow, job_id, populate_existing=True)  # under the write lock: current
            record = JobRecord.from_row(row) if row else None
            session.commit()
            return record
