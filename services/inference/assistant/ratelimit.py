"""Per-user token buckets, kept in the inference database so that every replica draws from one bucket
(N replicas must not give a user N times the rate).

A bucket is one row (`inference_rate_bucket`: tokens left as of `updated`, wall-clock seconds). Taking
a token locks the row (`insert_missing` + ``SELECT ... FOR UPDATE``), refills it for the time passed,
and writes it back in one transaction, so concurrent calls on any replicas never take more tokens
than the bucket holds. Wall-clock time, not monotonic: the times are compared across processes.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, col

from services.kit.db import insert_missing
from services.kit.errors import ServiceError

__all__ = ["RateBucket", "UserRateLimiter"]


class RateBucket(SQLModel, table=True):
    __tablename__ = "inference_rate_bucket"

    key: str = Field(primary_key=True, max_length=200)  # "<scope>:<user id>"
    tokens: float
    updated: float = Field(index=True)  # seconds since the epoch


class UserRateLimiter:
    """`per_minute` requests per user, bursting up to `per_minute`; 0 disables the limit.
    Synchronous (database): the servicer calls `acquire` through `run_db`."""

    def __init__(
        self,
        engine: Engine,
        per_minute: int,
        scope: str = "assistant",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.scope = scope
        self._engine = engine
        self._clock = clock
        self._next_purge = 0.0

    def acquire(self, user_id: str) -> None:
        """Take one request; RESOURCE_EXHAUSTED RATE_LIMITED (with RetryInfo) when the bucket is empty."""
        if self.capacity <= 0:
            return
        now = self._clock()
        key = f"{self.scope}:{user_id}"
        with Session(self._engine) as s, s.begin():
            bucket = self._locked(s, key, now)
            # A replica whose clock runs behind never refills a bucket backwards.
            tokens = min(self.capacity, bucket.tokens + max(0.0, now - bucket.updated) * self.rate)
            if tokens >= 1.0:
                bucket.tokens, bucket.updated = tokens - 1.0, max(bucket.updated, now)
        if tokens < 1.0:  # nothing written: the refill is a function of the stored time
            wait = (1.0 - tokens) / self.rate
            raise ServiceError.resource_exhausted(
                "RATE_LIMITED", "too many assistant requests; slow down", retry_after=round(wait, 3)
            )
        if now >= self._next_purge:
            self._next_purge = now + 60.0
            self.purge()

    def _locked(self, s: Session, key: str, now: float) -> RateBucket:
        """The bucket's row, created full if missing, locked until the transaction ends."""
        while True:
            insert_missing(s, RateBucket, "key", key=key, tokens=self.capacity, updated=now)
            bucket = s.get(RateBucket, key, with_for_update=True, populate_existing=True)
            if bucket is not None:
                return bucket
            # `purge` on another replica removed the (full) bucket between the two statements.

    def purge(self) -> int:
        """Drops buckets that have refilled completely (they carry no state worth keeping)."""
        full_after = self.capacity / self.rate if self.rate > 0 else 0.0
        cutoff = self._clock() - full_after
        with Session(self._engine) as s, s.begin():
            done = s.execute(
                sa.delete(RateBucket).where(
                    col(RateBucket.key).startswith(f"{self.scope}:"), col(RateBucket.updated) < cutoff
                )
            )
        return int(getattr(done, "rowcount", 0))
