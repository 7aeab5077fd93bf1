"""Per-user token buckets (in process: one inference server answers a user's assistant calls)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from services.kit.errors import ServiceError

__all__ = ["UserRateLimiter"]

_MAX_USERS = 10_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class UserRateLimiter:
    """`per_minute` requests per user, bursting up to `per_minute`; 0 disables the limit."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def acquire(self, user_id: str) -> None:
        """Take one request; RESOURCE_EXHAUSTED RATE_LIMITED (with RetryInfo) when the bucket is empty."""
        if self.capacity <= 0:
            return
        now = self._clock()
        bucket = self._buckets.get(user_id)
        if bucket is None:
            self._prune(now)
            bucket = self._buckets[user_id] = _Bucket(self.capacity, now)
        bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens < 1.0:
            wait = (1.0 - bucket.tokens) / self.rate
            raise ServiceError.resource_exhausted(
                "RATE_LIMITED", "too many assistant requests; slow down", retry_after=round(wait, 3)
            )
        bucket.tokens -= 1.0

    def _prune(self, now: float) -> None:
        if len(self._buckets) < _MAX_USERS:
            return
        # Buckets that refilled completely carry no state worth keeping.
        full = [u for u, b in self._buckets.items() if b.tokens + (now - b.updated) * self.rate >= self.capacity]
        for user in full:
            del self._buckets[user]
