"""Throttling of password logins and service-secret guesses: exponential backoff, never a lockout.

Keys (in the `auth_throttle` table, so every auth replica shares them):
- ``login:<email>|<address>``: failed logins for one account from one client address. Guessing
  from another address does not slow the owner down, so nobody can lock the owner out.
- ``address:<address>``: all failed logins and taken-email Register probes from one address (the
  budget that stops password spraying across accounts).
- ``service-secret:<address>``: wrong `IssueServiceToken` secrets from one address; never keyed by
  the service name, so anonymous callers cannot throttle a service's identity.

An attempt is charged *before* the password is checked, atomically, so a burst of concurrent
guesses gets no more than the free ones, on one replica or many; a success clears the account key
and refunds the address. After `free_failures` failures every further one doubles the wait
(`base_delay`, capped at `max_delay`); a key that has seen no failure for `forget_after` starts over.
The client address comes from the direct peer, or from the hop a trusted proxy (Envoy) appended to
x-forwarded-for when, and only when, the peer is one of `trusted_proxies` (CIDRs). The dev runner
makes Envoy connect from its own loopback address (127.0.0.2) so that it alone is trusted.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import grpc
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from services.auth.models import ThrottleEntry, as_utc, utcnow
from services.kit.db import insert_missing

__all__ = ["BackoffRule", "LoginThrottle", "Network", "client_address", "parse_networks"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Sequence[str]) -> tuple[Network, ...]:
    """`trusted_proxies` entries ("172.28.0.10", "10.0.0.0/8", "::1"); a bad one fails startup."""
    try:
        return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in values if v.strip())
    except ValueError as exc:
        raise ValueError(f"trusted_proxies: {exc}") from None


def _peer_ip(peer: str) -> str:
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    if kind == "ipv6":
        return rest.rsplit(":", 1)[0].strip("[]")
    return peer


def client_address(context: grpc.aio.ServicerContext, trusted: Sequence[Network]) -> str:
    """The caller's IP. Only when the direct peer is a trusted proxy: the last x-forwarded-for hop,
    the one the proxy appended (Envoy: use_remote_address, xff_num_trusted_hops 0). Not
    x-envoy-external-address: Envoy passes that header through from clients it deems internal
    (private or loopback addresses, e.g. behind a NAT), so a client could choose it."""
    address = _peer_ip(context.peer() or "")
    try:
        peer = ipaddress.ip_address(address)
    except ValueError:
        return address
    if not any(peer in net for net in trusted):
        return address
    headers = {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
    candidate = headers.get("x-forwarded-for", "").split(",")[-1]
    try:
        return str(ipaddress.ip_address(candidate.strip()))
    except ValueError:
        return address


@dataclass(frozen=True)
class BackoffRule:
    free_failures: int
    base_delay: float
    max_delay: float
    forget_after: float

    def delay(self, failures: int) -> float:
        """Seconds the next attempt waits after `failures` failures."""
        over = failures - self.free_failures
        if over < 0:
            return 0.0
        return float(min(self.max_delay, self.base_delay * 2 ** min(over, 40)))


def _wait(seconds: float) -> float:
    return float(math.ceil(seconds)) if seconds > 0 else 0.0


class LoginThrottle:
    """Synchronous (database); the servicer calls it through `run_db`."""

    def __init__(
        self,
        engine: Engine,
        account: BackoffRule,
        address: BackoffRule,
        service: BackoffRule,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._engine = engine
        self._rules = {"login": account, "address": address, "service-secret": service}
        self._clock = clock

    def _rule(self, key: str) -> BackoffRule:
        return self._rules[key.split(":", 1)[0]]

    # -- keys ------------------------------------------------------------------------------------
    @staticmethod
    def login_keys(email: str, address: str) -> tuple[str, str]:
        return f"login:{email[:320]}|{address}", f"address:{address}"

    @staticmethod
    def address_key(address: str) -> str:
        return f"address:{address}"

    @staticmethod
    def service_key(address: str) -> str:
        return f"service-secret:{address}"

    # -- operations ------------------------------------------------------------------------------
    def attempt(self, *keys: str) -> float:
        """Charges one failure to every key, unless one of them is waiting: then charges nothing
        and returns the wait in seconds. A success is settled with `succeeded`."""
        now = self._clock()
        with Session(self._engine) as s, s.begin():
            rows = self._lock(s, keys, now)
            wait = max((self._blocked_for(row, now) for row in rows), default=0.0)
            if wait > 0:
                return _wait(wait)
            for row in rows:
                self._charge(row, now)
        return 0.0

    def waiting(self, key: str) -> float:
        """The wait of one key, charging nothing."""
        now = self._clock()
        with Session(self._engine) as s:
            row = s.get(ThrottleEntry, key)
            return _wait(self._blocked_for(row, now)) if row is not None else 0.0

    def charge(self, key: str) -> None:
        """One failure that was not announced by `attempt` (e.g. a taken email at Register)."""
        now = self._clock()
        with Session(self._engine) as s, s.begin():
            for row in self._lock(s, (key,), now):
                self._charge(row, now)

    def succeeded(self, clear: str, refund: str) -> None:
        """The attempt was good: forget `clear` (the account from this address) and give back the
        failure charged to `refund` (the address budget)."""
        with Session(self._engine) as s, s.begin():
            s.execute(sa.delete(ThrottleEntry).where(col(ThrottleEntry.key) == clear))
            row = s.get(ThrottleEntry, refund, with_for_update=True)
            if row is not None and row.failures > 0:
                row.failures -= 1
                if self._rule(refund).delay(row.failures) == 0:
                    row.blocked_until = None

    def purge(self) -> int:
        """Drops keys idle longer than their rule's `forget_after` (they would start over anyway)."""
        longest = max(r.forget_after for r in self._rules.values())
        cutoff = self._clock() - timedelta(seconds=longest)
        with Session(self._engine) as s, s.begin():
            done = s.execute(sa.delete(ThrottleEntry).where(col(ThrottleEntry.last_failure_time) < cutoff))
        return int(getattr(done, "rowcount", 0))

    # -- internals -------------------------------------------------------------------------------
    def _lock(self, s: Session, keys: Sequence[str], now: datetime) -> list[ThrottleEntry]:
        """The rows of `keys`, created if missing and locked for this transaction (`insert_missing`)."""
        for key in sorted(set(keys)):  # a fixed order: two transactions never wait on each other
            insert_missing(s, ThrottleEntry, "key", key=key, failures=0, last_failure_time=now, blocked_until=None)
        rows = []
        for key in keys:
            row = s.get(ThrottleEntry, key, with_for_update=True, populate_existing=True)
            while row is None:  # `purge` on another replica removed an idle key in between
                insert_missing(s, ThrottleEntry, "key", key=key, failures=0, last_failure_time=now, blocked_until=None)
                row = s.get(ThrottleEntry, key, with_for_update=True, populate_existing=True)
            last = as_utc(row.last_failure_time)
            if last is not None and (now - last).total_seconds() > self._rule(key).forget_after:
                row.failures, row.blocked_until = 0, None
            rows.append(row)
        return rows

    @staticmethod
    def _blocked_for(row: ThrottleEntry, now: datetime) -> float:
        until = as_utc(row.blocked_until)
        return (until - now).total_seconds() if until is not None and until > now else 0.0

    def _charge(self, row: ThrottleEntry, now: datetime) -> None:
        row.failures += 1
        row.last_failure_time = now
        delay = self._rule(row.key).delay(row.failures)
        row.blocked_until = now + timedelta(seconds=delay) if delay > 0 else None
