"""Budgets and request limits (issue 16): the shared store every job service asks before a create
(``AdmitJob``) and, for limited callers, before a job read (``CheckRead``).

Why here: the month's charges are account's usage records, and one database serves every replica
of every job service, so a user's budget holds over generation, face swap, render and upscale at
once. The limits themselves travel with the caller (auth's VerifyApiKey answer: the key's and its
user's); a caller without limits never reaches this module.

Every decision is one transaction under the user's lock (PostgreSQL: a transaction-scoped
advisory lock per user; SQLite: the database write lock, taken by the first statement, a write),
so N concurrent creates on N replicas never pass a cap together:

- budget (QUOTA_EXCEEDED, nothing admitted): credits of the subject's records ending this UTC
  month + estimates of its open admissions (jobs admitted and not yet recorded) + this estimate
  must be within ``monthly_credit_budget``. RecordJobOutcome closes the job's admission in its own
  transaction, so the charge replaces the estimate at once.
- concurrency (RATE_LIMITED): open admissions of the subject < ``max_concurrent_jobs``.
- rates (RATE_LIMITED with RetryInfo = the wait for the next token): a token bucket per (class,
  subject) of capacity N and refill N per minute, in ``account_rate_bucket``. A refused call takes
  no token.
Subjects: the API key (its own limits) and its user (the user's, over all of the user's keys).
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import col

from services.account.common import database
from services.account.models import AdmissionRow, RateBucketRow, UsageRecordRow, utcnow
from services.account.reasons import Reason
from services.kit.errors import ServiceError
from services.kit.limits import Limits

__all__ = ["CONCURRENCY_RETRY_SECONDS", "Admission", "Admissions", "Caller", "LimitStore"]

# A job slot frees when one of the caller's jobs ends: no telling when; retry after this.
CONCURRENCY_RETRY_SECONDS = 5.0


@dataclass(frozen=True)
class Caller:
    user_id: str
    api_key_id: str
    key: Limits
    user: Limits

    def subjects(self) -> list[tuple[str, Limits, str, str]]:
        """(name, limits, column, value) of the key (if any) and of the user: the subject's
        admissions and usage records are those whose ``column`` (api_key_id / user_id) is ``value``."""
        out = [(f"key:{self.api_key_id}", self.key, "api_key_id", self.api_key_id)] if self.api_key_id else []
        out.append((f"user:{self.user_id}", self.user, "user_id", self.user_id))
        return out


def _totals(column: str) -> sa.Select[Any]:
    """One round trip for a subject: its open admissions, their estimates, its charges since
    ``since``. Built once per column (statement building and its cache key cost more than the query)."""
    a, u = AdmissionRow.__table__.c, UsageRecordRow.__table__.c  # type: ignore[attr-defined]
    value: sa.BindParameter[Any] = sa.bindparam("value")
    open_ = sa.and_(a[column] == value, a.open.is_(True))
    return sa.select(  # slots: 1 per job, a lease's block size (``leases``)
        sa.select(sa.func.coalesce(sa.func.sum(a.slots), 0)).where(open_).scalar_subquery(),
        sa.select(sa.func.coalesce(sa.func.sum(a.credits), 0)).where(open_).scalar_subquery(),
        sa.select(sa.func.coalesce(sa.func.sum(u.credits), 0))
        .where(u[column] == value, u.end_time >= sa.bindparam("since")).scalar_subquery(),
    )


_TOTALS = {column: _totals(column) for column in ("api_key_id", "user_id")}


def _month_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class Admission:
    """One AdmitJob request: ``job_id`` admitted for ``caller`` at ``estimate`` credits."""

    job_id: str
    caller: Caller
    estimate: int


class _Subject:
    """A subject's open admissions and month's spend, read once per decision transaction and
    kept current while the transaction decides its batch in order."""

    def __init__(self, running: int, spent: int) -> None:
        self.running = running
        self.spent = spent


class LimitStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        self._turns: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def turn(self, user_id: str) -> AsyncIterator[None]:
        """One decision per user at a time in this process: the database lock serialises them
        anyway, and threads queueing on it (SQLite's busy handler sleeps up to 100 ms between
        tries) cost far more than waiting here. Across replicas the database lock still decides."""
        lock, users = self._turns.get(user_id) or (asyncio.Lock(), 0)
        self._turns[user_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._turns[user_id]
            if users == 1:
                del self._turns[user_id]  # nobody else holds or waits for it: keep the map small
            else:
                self._turns[user_id] = (lock, users - 1)

    def _lock(self, conn: sa.Connection, user_id: str, first_write: sa.Executable, params: dict[str, Any]) -> None:
        """The user's lock, first thing in the transaction (see the module docstring)."""
        if self.postgres:
            conn.execute(_ADVISORY_LOCK, {"lock_key": zlib.crc32(f"limits:{user_id}".encode())})
        conn.execute(first_write, params)  # SQLite: takes the write lock before anything is read

    # -- buckets -------------------------------------------------------------------------------
    @staticmethod
    def _take(conn: sa.Connection, klass: str, caller: Caller, now: float, per: str,
              buckets: dict[str, list[float]]) -> None:
        """Takes one token of ``klass`` from every limited subject, or raises RATE_LIMITED taking
        none. ``buckets``: key → [tokens as of ``now``, whether its row exists, whether changed],
        read on first use; ``_store_buckets`` writes the changed ones."""
        taken = []
        for name, limits, _, _ in caller.subjects():
            per_minute = getattr(limits, per)
            if not per_minute:
                continue
            key = f"{klass}:{name}"
            rate = per_minute / 60.0
            if key not in buckets:
                got = conn.execute(_BUCKET, {"b_key": key}).first()
                tokens = float(per_minute) if got is None else got[0] + max(0.0, now - got[1]) * rate
                buckets[key] = [tokens, got is not None, False]
            tokens = min(float(per_minute), buckets[key][0])
            if tokens < 1.0:
                raise ServiceError.resource_exhausted(
                    Reason.RATE_LIMITED, f"more than {per_minute} {klass}s per minute for this {name.split(':')[0]}",
                    retry_after=(1.0 - tokens) / rate, metadata={"limit": str(per_minute), "per": "minute", "class": klass},
                )
            taken.append((key, tokens - 1.0))
        for key, tokens in taken:
            buckets[key][0], buckets[key][2] = tokens, True

    @staticmethod
    def _store_buckets(conn: sa.Connection, buckets: dict[str, list[float]], now: float) -> None:
        updates = [{"b_key": k, "b_tokens": t, "b_updated": now} for k, (t, exists, changed) in buckets.items()
                   if changed and exists]  # fmt: skip
        inserts = [{"key": k, "tokens": t, "updated": now} for k, (t, exists, changed) in buckets.items()
                   if changed and not exists]  # fmt: skip
        if updates:
            conn.execute(_BUCKET_UPDATE, updates)
        if inserts:
            conn.execute(_BUCKET_INSERT, inserts)

    # -- decisions -----------------------------------------------------------------------------
    def admit(self, job_id: str, caller: Caller, estimate: int, now: datetime | None = None) -> bool:
        """Admits the job or raises QUOTA_EXCEEDED / RATE_LIMITED (nothing stored). True when
        admitted now, False when it was admitted before (idempotent)."""
        (out,) = self.admit_many([Admission(job_id, caller, estimate)], now)
        if isinstance(out, ServiceError):
            raise out
        return out

    def admit_many(self, batch: Sequence[Admission], now: datetime | None = None) -> list[bool | ServiceError]:
        """Decides a batch of one user's admissions in one transaction under the user's lock, in
        order, each exactly as if it were decided alone after the ones before it: per admission
        True (admitted now), False (admitted before) or the refusal (QUOTA_EXCEEDED / RATE_LIMITED;
        nothing stored for it). Core statements, each subject's totals and buckets read once: the
        cost of a decision is shared by every admission waiting for the user's turn."""
        now = now or utcnow()
        user_id = batch[0].caller.user_id
        assert all(a.caller.user_id == user_id for a in batch), "one user per batch"
        ids = [a.job_id for a in batch]
        with self.engine.begin() as conn:
            self._lock(conn, user_id, _TOUCH_ADMISSIONS, {"ids": ids})
            # Known: admitted before, or already ended and recorded (its closed row may be pruned).
            known = set(conn.execute(_KNOWN_ADMISSIONS, {"ids": ids}).scalars()) | recorded(conn, ids)
            subjects: dict[str, _Subject] = {}
            for a in batch:  # every subject some admission limits by budget or concurrency, read once
                for name, limits, column, value in a.caller.subjects():
                    if name in subjects or not (limits.monthly_credit_budget or limits.max_concurrent_jobs):
                        continue
                    totals = conn.execute(_TOTALS[column], {"value": value, "since": _month_start(now)}).one()
                    running, pending, charged = totals[0], totals[1], totals[2]
                    subjects[name] = _Subject(int(running), int(charged) + int(pending))
            buckets: dict[str, list[float]] = {}
            out: list[bool | ServiceError] = []
            rows = []
            for a in batch:
                if a.job_id in known:
                    out.append(False)
                    continue
                try:
                    for name, limits, _, _ in a.caller.subjects():
                        if name in subjects:
                            _check(name, limits, subjects[name], a.estimate)
                    self._take(conn, "create", a.caller, now.timestamp(), "creates_per_minute", buckets)
                except ServiceError as refused:
                    out.append(refused)
                    continue
                for name, _, _, _ in a.caller.subjects():
                    if name in subjects:
                        subjects[name].running += 1
                        subjects[name].spent += a.estimate
                known.add(a.job_id)
                rows.append({"job_id": a.job_id, "user_id": user_id, "api_key_id": a.caller.api_key_id,
                             "credits": a.estimate, "open": True, "create_time": now})  # fmt: skip
                out.append(True)
            if rows:
                conn.execute(_ADMISSION_INSERT, rows)
            self._store_buckets(conn, buckets, now.timestamp())
        return out

    def release(self, job_id: str) -> bool:
        with self.engine.begin() as conn:
            return bool(conn.execute(sa.delete(AdmissionRow).where(col(AdmissionRow.job_id) == job_id)).rowcount)

    def check_read(self, caller: Caller, now: datetime | None = None) -> None:
        now = now or utcnow()
        with self.engine.begin() as conn:
            self._lock(conn, caller.user_id, _BUCKET_UPDATE, {"b_key": "", "b_tokens": 0.0, "b_updated": 0.0})
            buckets: dict[str, list[float]] = {}
            self._take(conn, "read", caller, now.timestamp(), "reads_per_minute", buckets)
            self._store_buckets(conn, buckets, now.timestamp())


# Statements built once (with bind parameters): building one and its cache key costs more than
# running it on SQLite. Core tables, not the ORM classes: no ORM compile step either.
_A = AdmissionRow.__table__.c  # type: ignore[attr-defined]
_B = RateBucketRow.__table__  # type: ignore[attr-defined]
_ADVISORY_LOCK = sa.select(sa.func.pg_advisory_xact_lock(sa.bindparam("lock_key")))
# A no-op write of the batch's rows (none, usually): SQLite takes its write lock with it.
_TOUCH_ADMISSIONS = sa.update(AdmissionRow.__table__).where(  # type: ignore[attr-defined]
    _A.job_id.in_(sa.bindparam("ids", expanding=True))).values(open=_A.open)
_KNOWN_ADMISSIONS = sa.select(_A.job_id).where(_A.job_id.in_(sa.bindparam("ids", expanding=True)))
_ADMISSION_INSERT = sa.insert(AdmissionRow.__table__)  # type: ignore[attr-defined]
_BUCKET = sa.select(_B.c.tokens, _B.c.updated).where(_B.c.key == sa.bindparam("b_key"))
# The key "" never exists: as CheckRead's first write it changes nothing.
_BUCKET_UPDATE = sa.update(_B).where(_B.c.key == sa.bindparam("b_key")).values(
    tokens=sa.bindparam("b_tokens"), updated=sa.bindparam("b_updated"))
_BUCKET_INSERT = sa.insert(_B)


def _check(name: str, limits: Limits, subject: _Subject, estimate: int) -> None:
    """The subject's budget and concurrency cap for one more job of ``estimate`` credits."""
    what = name.split(":")[0]
    if limits.monthly_credit_budget and subject.spent + estimate > limits.monthly_credit_budget:
        raise ServiceError.resource_exhausted(
            Reason.QUOTA_EXCEEDED,
            f"this job ({estimate} credits) would exceed the monthly budget of this {what}: "
            f"{subject.spent} of {limits.monthly_credit_budget} credits used",
            metadata={"budget": str(limits.monthly_credit_budget), "used": str(subject.spent), "estimate": str(estimate)},
        )
    if limits.max_concurrent_jobs and subject.running >= limits.max_concurrent_jobs:
        raise ServiceError.resource_exhausted(
            Reason.RATE_LIMITED,
            f"{subject.running} jobs of this {what} are queued or running (at most {limits.max_concurrent_jobs})",
            retry_after=CONCURRENCY_RETRY_SECONDS, metadata={"max_concurrent_jobs": str(limits.max_concurrent_jobs)},
        )


class Admissions:
    """AdmitJob's way in: concurrent admissions of one user wait for the user's turn anyway (one
    decision at a time, module docstring), so whatever queued meanwhile is decided together, in
    arrival order, in one transaction (``LimitStore.admit_many``, at most ``max_batch``). One
    user's burst then costs one decision per batch instead of one per job; every batch still
    takes the user's database lock, so replicas stay exact."""

    def __init__(self, limits: LimitStore, max_batch: int = 64) -> None:
        self.limits = limits
        self.max_batch = max_batch
        self._waiting: dict[str, list[tuple[Admission, asyncio.Future[bool]]]] = {}
        self._draining: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def admit(self, admission: Admission) -> bool:
        user_id = admission.caller.user_id
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(user_id, []).append((admission, future))
        if user_id not in self._draining:
            self._draining.add(user_id)
            task = asyncio.get_running_loop().create_task(self._drain(user_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self, user_id: str) -> None:
        try:
            while self._waiting.get(user_id):
                queue = self._waiting.pop(user_id)
                batch, rest = queue[: self.max_batch], queue[self.max_batch :]
                if rest:
                    self._waiting[user_id] = rest
                try:
                    async with self.limits.turn(user_id):  # CheckRead of the same user in this process
                        results: list[bool | BaseException] = list(
                            await database(self.limits.admit_many, [a for a, _ in batch]))
                except asyncio.CancelledError:
                    for _, future in batch:
                        future.cancel()
                    raise
                except Exception as exc:  # the database is down: every waiter gets the error
                    results = [exc] * len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():  # its caller went away; a made admission stays until released
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._draining.discard(user_id)
            for _, future in self._waiting.pop(user_id, []):  # left only when cancelled (shutdown)
                future.cancel()


def upsert(engine_or_dialect: str, *, update: dict[str, Any] | None = None) -> sa.Insert:
    """An insert of admission rows that a row of the same job id turns into ``update`` (or nothing)."""
    insert = (postgresql.insert if engine_or_dialect == "postgresql" else sqlite.insert)(AdmissionRow.__table__)  # type: ignore[attr-defined]
    if update:
        return insert.on_conflict_do_update(index_elements=["job_id"], set_=update)
    return insert.on_conflict_do_nothing(index_elements=["job_id"])


def close_admissions(conn: sa.Connection, rows: Sequence[tuple[str, str, str]], now: datetime) -> None:
    """In the transaction that records the jobs' outcomes: each job's charge replaces its estimate
    (``rows``: job id, user id, api key id). An upsert: a job created under a lease has no row of its
    own until its lease is settled, and the settlement's insert then finds this closed one and adds
    nothing (the primary key orders the two, also between concurrent transactions). A closed row's
    ``create_time`` is when it closed: ``prune_closed`` removes it once no settlement can race it."""
    conn.execute(_CLOSE[conn.dialect.name == "postgresql"], [
        {"job_id": job_id, "user_id": user_id, "api_key_id": api_key_id, "credits": 0, "open": False,
         "create_time": now, "slots": 1, "holder": ""} for job_id, user_id, api_key_id in rows])  # fmt: skip


def prune_closed(conn: sa.Connection, before: datetime) -> int:
    """Deletes the closed admission rows closed before ``before``: no limit decision counts them
    (budgets count the usage record instead, concurrency only open rows). A closed row only orders
    a settlement racing the job's record (``close_admissions``); once the record has been committed
    for a while, a settlement finds the record itself (``settled_jobs``) and adds nothing, and an
    AdmitJob retry finds it too (``_KNOWN``). So the table holds open admissions, leases and the
    last ``admission_retention_seconds`` of closed rows, not one row per job ever run."""
    return int(conn.execute(_PRUNE, {"before": before}).rowcount or 0)


def recorded(conn: sa.Connection, job_ids: Sequence[str]) -> set[str]:
    """Which of ``job_ids`` have a usage record (ended and recorded: never to be admitted again)."""
    if not job_ids:
        return set()
    return set(conn.execute(_RECORDED, {"ids": list(job_ids)}).scalars())


def _close(postgres: bool) -> sa.Insert:
    insert = (postgresql.insert if postgres else sqlite.insert)(AdmissionRow.__table__)  # type: ignore[attr-defined]
    return insert.on_conflict_do_update(index_elements=["job_id"],
                                        set_={"open": False, "create_time": insert.excluded.create_time})


_CLOSE = {postgres: _close(postgres) for postgres in (False, True)}
# At most PRUNE_BATCH rows per statement: the first prune after an upgrade (or a long outage) does
# not delete a table's worth of rows in one transaction inside a RecordJobOutcomes call.
PRUNE_BATCH = 2000
_PRUNE = sa.delete(AdmissionRow.__table__).where(  # type: ignore[attr-defined]
    _A.job_id.in_(sa.select(_A.job_id).where(_A.open.is_(False), _A.create_time < sa.bindparam("before"))
                  .limit(PRUNE_BATCH).scalar_subquery()))
_RECORDED = sa.select(UsageRecordRow.__table__.c.job_id).where(  # type: ignore[attr-defined]
    UsageRecordRow.__table__.c.job_id.in_(sa.bindparam("ids", expanding=True)))  # type: ignore[attr-defined]
