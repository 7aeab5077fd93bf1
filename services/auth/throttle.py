"""Login throttling: failed attempts per account and per client address, with lockouts."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["LoginThrottle", "ThrottleRule"]


# Suggested wait when the budget is taken by attempts still in flight (they finish within a second).
_BUSY_RETRY_SECONDS = 1.0


@dataclass(frozen=True)
class ThrottleRule:
    """`max_failures` within `window_seconds` locks the key for `lockout_seconds`."""

    max_failures: int
    window_seconds: float
    lockout_seconds: float


@dataclass
class _Entry:
    failures: list[float]
    locked_until: float = 0.0


class _Counter:
    """Sliding-window failure counter per key, bounded in memory (oldest keys are evicted)."""

    def __init__(self, rule: ThrottleRule, clock: Callable[[], float], max_keys: int) -> None:
        self.rule = rule
        self._clock = clock
        self._max_keys = max_keys
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._in_flight: dict[str, int] = {}

    def retry_after(self, key: str) -> float:
        now = self._clock()
        entry = self._entries.get(key)
        locked = max(0.0, entry.locked_until - now) if entry is not None else 0.0
        if locked > 0:
            return locked
        # Attempts still being verified count as failures-to-be: a burst of concurrent guesses
        # cannot all slip past the check before the first of them is recorded.
        cutoff = now - self.rule.window_seconds
        recent = sum(1 for t in entry.failures if t > cutoff) if entry is not None else 0
        if recent + self._in_flight.get(key, 0) >= self.rule.max_failures:
            return _BUSY_RETRY_SECONDS
        return 0.0

    def begin(self, key: str) -> None:
        self._in_flight[key] = self._in_flight.get(key, 0) + 1

    def end(self, key: str) -> None:
        left = self._in_flight.get(key, 0) - 1
        if left > 0:
            self._in_flight[key] = left
        else:
            self._in_flight.pop(key, None)

    def fail(self, key: str) -> float:
        """Record one failure; the lockout it triggers in seconds, or 0."""
        now = self._clock()
        entry = self._entries.pop(key, None) or _Entry(failures=[])
        self._entries[key] = entry
        cutoff = now - self.rule.window_seconds
        entry.failures = [t for t in entry.failures if t > cutoff]
        entry.failures.append(now)
        if len(entry.failures) >= self.rule.max_failures:
            entry.locked_until = now + self.rule.lockout_seconds
            entry.failures.clear()
        while len(self._entries) > self._max_keys:
            self._entries.popitem(last=False)
        return max(0.0, entry.locked_until - now)

    def reset(self, key: str) -> None:
        self._entries.pop(key, None)


class LoginThrottle:
    """Per-account and per-address lockouts.

    Accounts are keyed by the normalised email whether or not it exists, so a lockout reveals
    nothing. A successful login clears the account's counter but not the address's, so one address
    cannot spray passwords across accounts. State is per process: one auth replica per database
    today; a shared store (Redis, DB table) slots in behind the same three methods.
    """

    def __init__(
        self,
        account: ThrottleRule,
        address: ThrottleRule,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self._account = _Counter(account, clock, max_keys)
        self._address = _Counter(address, clock, max_keys)

    def retry_after(self, email: str, address: str) -> float:
        """Seconds until a login for this account from this address may be tried; 0 = allowed now."""
        wait = max(self._account.retry_after(email), self._address.retry_after(address))
        return float(math.ceil(wait)) if wait > 0 else 0.0

    def begin(self, email: str, address: str) -> None:
        """An attempt is being verified; pair with `end` (in a finally)."""
        self._account.begin(email)
        self._address.begin(address)

    def end(self, email: str, address: str) -> None:
        self._account.end(email)
        self._address.end(address)

    def record_failure(self, email: str, address: str) -> float:
        wait = max(self._account.fail(email), self._address.fail(address))
        return float(math.ceil(wait)) if wait > 0 else 0.0

    def address_retry_after(self, address: str) -> float:
        wait = self._address.retry_after(address)
        return float(math.ceil(wait)) if wait > 0 else 0.0

    def record_address_failure(self, address: str) -> float:
        """A failure that must not count against any account (e.g. probing Register for taken emails)."""
        wait = self._address.fail(address)
        return float(math.ceil(wait)) if wait > 0 else 0.0

    def record_success(self, email: str) -> None:
        self._account.reset(email)
