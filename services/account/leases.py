"""Admission leases (issue 16): a block of a caller's admissions reserved by one job service replica.

Why: admitting each create with its own AdmitJob costs every create one more RPC and one more
transaction under the user's lock. A lease decides a block at once, in the same transaction and
under the same lock as an admission (``limits``), and the replica spends it locally, so a burst of
N creates costs about two transactions (grant, settle) per block instead of N.

Exact across replicas, because a lease is itself an admission row (``account_admission``) holding
``slots`` concurrency slots and ``credits`` (``granted * each``) that every decision counts, and
its create tokens are taken from the buckets when it is granted. So the sum of every replica's
blocks and every open job never passes a cap; a replica only admits what its block holds.

Settling (``SettleLease``, the replica's, when the block is used up, idle or near its expiry):
the jobs created under the lease get their own admission rows (the primary key on the job id
orders this against a RecordJobOutcome that came first: its closed row wins), the lease row goes,
and its unused create tokens return to the buckets. A replica that dies leaves its lease to expire;
any replica of the same job service (``holder``) then settles it from its own job database: the
caller's jobs created since the lease's create time (``ListExpiredLeases``), so jobs that were
never created (the caller went away between admission and insert) cost nothing after the bound,
and ones that were keep their admissions. Settling twice is harmless (no lease row: nothing to
return; job rows: inserted once).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from services.account.limits import (
    _ADVISORY_LOCK,
    _BUCKET,
    _TOTALS,
    Caller,
    LimitStore,
    _check,
    _month_start,
    _Subject,
    recorded,
    upsert,
)
from services.account.models import AdmissionRow, RateBucketRow, utcnow
from services.kit.errors import ServiceError

__all__ = ["LeaseGrant", "LeaseRequest", "LeaseStore", "Settlement"]


@dataclass(frozen=True)
class Settlement:
    lease_id: str
    user_id: str
    api_key_id: str
    jobs: Sequence[tuple[str, int]]  # (job id, estimated credits) created under the lease
    caller: Caller | None = None  # its limits: where unused create tokens go back (None: dropped)


@dataclass(frozen=True)
class LeaseRequest:
    lease_id: str
    caller: Caller
    count: int
    each: int  # estimated credits of one admission
    holder: str
    ttl_seconds: float
    previous: Settlement | None = None


@dataclass(frozen=True)
class LeaseGrant:
    granted: int
    expire_time: datetime


_A = AdmissionRow.__table__.c  # type: ignore[attr-defined]
_B = RateBucketRow.__table__  # type: ignore[attr-defined]
_LEASE = sa.select(_A.slots, _A.expire_time).where(_A.job_id == sa.bindparam("id"), _A.expire_time.is_not(None))
_DELETE = sa.delete(AdmissionRow.__table__).where(_A.job_id == sa.bindparam("id"))  # type: ignore[attr-defined]
_SAVE_BUCKET = sa.update(_B).where(_B.c.key == sa.bindparam("b_key")).values(
    tokens=sa.bindparam("b_tokens"), updated=sa.bindparam("b_updated"))
_EXPIRED = (sa.select(_A.job_id, _A.user_id, _A.api_key_id, _A.create_time)
            .where(_A.holder == sa.bindparam("holder"), _A.expire_time < sa.bindparam("before"))
            .order_by(_A.expire_time).limit(sa.bindparam("limit")))  # fmt: skip


class LeaseStore:
    def __init__(self, limits: LimitStore) -> None:
        self.limits = limits
        self._job_rows = upsert(limits.engine.dialect.name)  # a job's own row, unless it has one

    def _lock(self, conn: sa.Connection, user_id: str, lease_id: str) -> None:
        if self.limits.postgres:
            conn.execute(_ADVISORY_LOCK, {"lock_key": zlib.crc32(f"limits:{user_id}".encode())})
        # SQLite: the write lock, before anything is read (a no-op write of the lease row).
        conn.execute(sa.update(AdmissionRow.__table__).where(_A.job_id == lease_id).values(open=_A.open))  # type: ignore[attr-defined]

    def lease(self, r: LeaseRequest, now: datetime | None = None) -> LeaseGrant:
        """Grants the most of ``r.count`` admissions that fit every limit (≥ 1), or raises the
        refusal AdmitJob would (QUOTA_EXCEEDED / RATE_LIMITED). ``r.previous`` is settled first
        (committed also when the new lease is refused)."""
        now = now or utcnow()
        caller, stamp = r.caller, now.timestamp()
        refusal: ServiceError | None = None
        with self.limits.engine.begin() as conn:
            self._lock(conn, caller.user_id, r.lease_id)
            if r.previous is not None:
                self._settle(conn, r.previous, now)
            known = conn.execute(_LEASE, {"id": r.lease_id}).first()
            if known is not None:  # a retry of a granted lease
                return LeaseGrant(int(known[0]), known[1])
            granted = r.count
            subjects: dict[str, _Subject] = {}
            for name, limits, column, value in caller.subjects():
                if limits.monthly_credit_budget or limits.max_concurrent_jobs:
                    totals = conn.execute(_TOTALS[column], {"value": value, "since": _month_start(now)}).one()
                    subject = subjects[name] = _Subject(int(totals[0]), int(totals[2]) + int(totals[1]))
                    if limits.monthly_credit_budget:
                        room = limits.monthly_credit_budget - subject.spent
                        granted = min(granted, room // r.each if r.each else (granted if room >= 0 else 0))
                    if limits.max_concurrent_jobs:
                        granted = min(granted, limits.max_concurrent_jobs - subject.running)
            buckets: dict[str, float] = {}
            for name, limits, _, _ in caller.subjects():
                if limits.creates_per_minute:
                    key = f"create:{name}"
                    buckets[key] = self._tokens(conn, key, limits.creates_per_minute, stamp)
                    granted = min(granted, math.floor(buckets[key]))
            if granted < 1:  # the refusal one admission would get, with its reason and RetryInfo
                try:
                    for name, limits, _, _ in caller.subjects():
                        if name in subjects:
                            _check(name, limits, subjects[name], r.each)
                    LimitStore._take(conn, "create", caller, stamp, "creates_per_minute", {})
                except ServiceError as refused:
                    refusal = refused
                else:
                    raise AssertionError("a lease of none that no limit refuses")
            else:
                for key, tokens in buckets.items():
                    conn.execute(_SAVE_BUCKET, {"b_key": key, "b_tokens": tokens - granted, "b_updated": stamp})
                expire = now + timedelta(seconds=r.ttl_seconds)
                conn.execute(sa.insert(AdmissionRow.__table__), {  # type: ignore[attr-defined]
                    "job_id": r.lease_id, "user_id": caller.user_id, "api_key_id": caller.api_key_id,
                    "credits": granted * r.each, "open": True, "create_time": now, "slots": granted,
                    "holder": r.holder, "expire_time": expire})  # fmt: skip
        if refusal is not None:  # raised once the transaction (r.previous's settlement) committed
            raise refusal
        return LeaseGrant(granted, expire)

    @staticmethod
    def _tokens(conn: sa.Connection, key: str, per_minute: int, now: float) -> float:
        """A bucket's tokens as of ``now`` (a missing bucket is full; it is created, to be written)."""
        got = conn.execute(_BUCKET, {"b_key": key}).first()
        if got is None:
            conn.execute(sa.insert(_B), {"key": key, "tokens": float(per_minute), "updated": now})
            return float(per_minute)
        return min(float(per_minute), float(got[0]) + max(0.0, now - float(got[1])) * per_minute / 60.0)

    def settle(self, s: Settlement, now: datetime | None = None) -> None:
        now = now or utcnow()
        with self.limits.engine.begin() as conn:
            self._lock(conn, s.user_id, s.lease_id)
            self._settle(conn, s, now)

    def _settle(self, conn: sa.Connection, s: Settlement, now: datetime) -> None:
        lease = conn.execute(_LEASE, {"id": s.lease_id}).first()
        # Also when the lease is gone: a job's row is the truth, inserted once. A job already
        # recorded gets none (its closed row may have been pruned: ``prune_closed``); one whose
        # record commits meanwhile is ordered by the primary key against its closed row.
        done = recorded(conn, [job_id for job_id, _ in s.jobs])
        jobs = sorted((job_id, credits) for job_id, credits in s.jobs if job_id not in done)  # job id order: store.record_outcomes
        if jobs:
            conn.execute(self._job_rows, [
                {"job_id": job_id, "user_id": s.user_id, "api_key_id": s.api_key_id,
                 "credits": credits, "open": True, "create_time": now, "slots": 1, "holder": ""}
                for job_id, credits in jobs])  # fmt: skip
        if lease is None:
            return
        conn.execute(_DELETE, {"id": s.lease_id})
        unused = int(lease[0]) - len(s.jobs)
        if unused <= 0 or s.caller is None:
            return
        stamp = now.timestamp()
        for name, limits, _, _ in s.caller.subjects():  # the tokens taken for admissions never made
            if limits.creates_per_minute:
                tokens = self._tokens(conn, f"create:{name}", limits.creates_per_minute, stamp)
                conn.execute(_SAVE_BUCKET, {"b_key": f"create:{name}", "b_updated": stamp,
                                            "b_tokens": min(float(limits.creates_per_minute), tokens + unused)})

    def expired(self, holder: str, older_than_seconds: float, limit: int, now: datetime | None = None) -> list[Any]:
        """(lease id, user id, api key id, create time) of ``holder``'s leases expired before
        ``now - older_than_seconds``, oldest first."""
        before = (now or utcnow()) - timedelta(seconds=older_than_seconds)
        with self.limits.engine.connect() as conn:
            return list(conn.execute(_EXPIRED, {"holder": holder, "before": before, "limit": limit}).all())
