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
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from services.account.models import AdmissionRow, RateBucketRow, UsageRecordRow, utcnow
from services.account.reasons import Reason
from services.kit.errors import ServiceError
from services.kit.limits import Limits

__all__ = ["CONCURRENCY_RETRY_SECONDS", "Caller", "LimitStore"]

# A job slot frees when one of the caller's jobs ends: no telling when; retry after this.
CONCURRENCY_RETRY_SECONDS = 5.0


@dataclass(frozen=True)
class Caller:
    user_id: str
    api_key_id: str
    key: Limits
    user: Limits

    def subjects(self) -> list[tuple[str, Limits, sa.ColumnElement[bool], sa.ColumnElement[bool]]]:
        """(name, limits, admission filter, usage filter) of the key (if any) and of the user."""
        out = []
        if self.api_key_id:
            out.append((f"key:{self.api_key_id}", self.key, col(AdmissionRow.api_key_id) == self.api_key_id,
                        col(UsageRecordRow.api_key_id) == self.api_key_id))  # fmt: skip
        out.append((f"user:{self.user_id}", self.user, col(AdmissionRow.user_id) == self.user_id,
                    col(UsageRecordRow.user_id) == self.user_id))  # fmt: skip
        return out


def _month_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


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

    def _lock(self, s: Session, user_id: str, first_write: sa.Executable) -> None:
        """The user's lock, first thing in the transaction (see the module docstring)."""
        if self.postgres:
            s.connection().execute(sa.select(sa.func.pg_advisory_xact_lock(zlib.crc32(f"limits:{user_id}".encode()))))
        s.connection().execute(first_write)  # SQLite: takes the write lock before anything is read

    # -- buckets -------------------------------------------------------------------------------
    @staticmethod
    def _bucket(s: Session, key: str, per_minute: int, now: float) -> tuple[float, bool, float]:
        """(tokens refilled to ``now``, whether the row exists, the wait for one token: 0 = there)."""
        got = s.connection().execute(
            sa.select(col(RateBucketRow.tokens), col(RateBucketRow.updated)).where(col(RateBucketRow.key) == key)
        ).first()
        rate = per_minute / 60.0
        tokens = float(per_minute) if got is None else min(float(per_minute), got[0] + max(0.0, now - got[1]) * rate)
        return tokens, got is not None, 0.0 if tokens >= 1.0 else (1.0 - tokens) / rate

    def _take(self, s: Session, klass: str, caller: Caller, now: float, per: str) -> None:
        """Takes one token of ``klass`` from every limited subject, or raises RATE_LIMITED taking none."""
        buckets = []
        for name, limits, _, _ in caller.subjects():
            per_minute = getattr(limits, per)
            if not per_minute:
                continue
            key = f"{klass}:{name}"
            tokens, exists, wait = self._bucket(s, key, per_minute, now)
            if wait > 0:
                raise ServiceError.resource_exhausted(
                    Reason.RATE_LIMITED, f"more than {per_minute} {klass}s per minute for this {name.split(':')[0]}",
                    retry_after=wait, metadata={"limit": str(per_minute), "per": "minute", "class": klass},
                )
            buckets.append((key, tokens - 1.0, exists))
        conn = s.connection()
        for key, tokens, exists in buckets:
            if exists:
                conn.execute(sa.update(RateBucketRow).where(col(RateBucketRow.key) == key)
                             .values(tokens=tokens, updated=now))  # fmt: skip
            else:
                conn.execute(sa.insert(RateBucketRow).values(key=key, tokens=tokens, updated=now))

    # -- decisions -----------------------------------------------------------------------------
    def admit(self, job_id: str, caller: Caller, estimate: int, now: datetime | None = None) -> bool:
        """Admits the job or raises QUOTA_EXCEEDED / RATE_LIMITED (nothing stored). True when
        admitted now, False when it was admitted before (idempotent)."""
        now = now or utcnow()
        with Session(self.engine) as s, s.begin():
            self._lock(s, caller.user_id, sa.update(AdmissionRow).where(col(AdmissionRow.job_id) == job_id)
                       .values(open=col(AdmissionRow.open)))  # fmt: skip
            if s.get(AdmissionRow, job_id) is not None:
                return False
            for name, limits, admitted, recorded in caller.subjects():
                if not (limits.monthly_credit_budget or limits.max_concurrent_jobs):
                    continue
                running, pending = s.exec(select(sa.func.count(), sa.func.coalesce(sa.func.sum(AdmissionRow.credits), 0))
                                          .where(admitted, col(AdmissionRow.open).is_(True))).one()  # fmt: skip
                if limits.monthly_credit_budget:
                    charged = s.exec(select(sa.func.coalesce(sa.func.sum(UsageRecordRow.credits), 0)).where(
                        recorded, col(UsageRecordRow.end_time) >= _month_start(now))).one()
                    spent = int(charged) + int(pending)
                    if spent + estimate > limits.monthly_credit_budget:
                        raise ServiceError.resource_exhausted(
                            Reason.QUOTA_EXCEEDED,
                            f"this job ({estimate} credits) would exceed the monthly budget of this "
                            f"{name.split(':')[0]}: {spent} of {limits.monthly_credit_budget} credits used",
                            metadata={"budget": str(limits.monthly_credit_budget), "used": str(spent),
                                      "estimate": str(estimate)},
                        )  # fmt: skip
                if limits.max_concurrent_jobs:
                    if int(running) >= limits.max_concurrent_jobs:
                        raise ServiceError.resource_exhausted(
                            Reason.RATE_LIMITED,
                            f"{running} jobs of this {name.split(':')[0]} are queued or running "
                            f"(at most {limits.max_concurrent_jobs})",
                            retry_after=CONCURRENCY_RETRY_SECONDS,
                            metadata={"max_concurrent_jobs": str(limits.max_concurrent_jobs)},
                        )
            self._take(s, "create", caller, now.timestamp(), "creates_per_minute")
            s.add(AdmissionRow(job_id=job_id, user_id=caller.user_id, api_key_id=caller.api_key_id,
                               credits=estimate, open=True, create_time=now))  # fmt: skip
        return True

    def release(self, job_id: str) -> bool:
        with Session(self.engine) as s, s.begin():
            return bool(s.exec(sa.delete(AdmissionRow).where(col(AdmissionRow.job_id) == job_id)).rowcount)

    def check_read(self, caller: Caller, now: datetime | None = None) -> None:
        now = now or utcnow()
        with Session(self.engine) as s, s.begin():
            self._lock(s, caller.user_id, sa.update(RateBucketRow).where(col(RateBucketRow.key) == "")
                       .values(tokens=col(RateBucketRow.tokens)))  # fmt: skip
            self._take(s, "read", caller, now.timestamp(), "reads_per_minute")


def close_admission(s: Session, job_id: str) -> None:
    """In RecordJobOutcome's transaction: the job's charge replaces its estimate."""
    s.exec(sa.update(AdmissionRow).where(col(AdmissionRow.job_id) == job_id).values(open=False))
