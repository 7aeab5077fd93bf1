"""Admission leases on the job service side (issue 16): creates of a limited caller are admitted
from a block of admissions this replica leased from account (``services/account/leases.py``),
instead of one AdmitJob round trip and transaction each.

- ``admit`` takes one admission (one slot, the job's estimate in credits) from the caller's current
  block, or leases a new one first (one leasing call per caller at a time; the creates that queued
  meanwhile share it). The block size follows demand: the creates waiting, or twice the last block
  when that one was used up (at most ``max_block``); a block the limits cut short resets it to 1,
  so a replica never sits on admissions another replica's caller could use while limits bind.
- ``Ticket.done(created)``: a created job stays in the block's list (settled into its own admission
  row); one that was not created goes back to the block at once (a caller that went away between
  admission and insert costs nothing).
- A block is settled (``SettleLease``: created jobs, and the unused rest returned) when it is
  replaced (in the same call as the next lease), idle for ``idle_seconds``, half-way to its expiry
  or at stop. A replica that dies leaves it to expire; ``reconcile`` (any replica of the same job
  service, from the meter loop) settles it from the job database after ``ttl_seconds`` more.

A block is only spent before half its time-to-live has passed, and an expired lease is reconciled
only a whole time-to-live after its expiry: a create would have to stall ~1.5 x ttl between its
admission and its insert to be missed by the reconciliation (then its job runs unadmitted).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc

from services.kit.auth import Principal
from services.kit.errors import ServiceError
from services.kit.logs import get_logger
from viarte.account.v1 import account_pb2

if TYPE_CHECKING:
    from services.kit.jobs.store import JobStore

__all__ = ["Leases", "Ticket"]

_log = get_logger("viarte.jobs.leases")


@dataclass(eq=False)  # hashed by identity (_settling)
class _Block:
    id: str
    caller: Principal
    left: int  # admissions not taken
    credits: int  # credits not taken
    deadline: float  # monotonic: taken from only before this
    granted: int
    used: list[tuple[str, int]] = field(default_factory=list)  # created jobs: (id, estimate)
    inflight: int = 0  # taken, not yet created or returned
    last_use: float = field(default_factory=time.monotonic)
    retired: bool = False

    def fits(self, estimate: int, now: float) -> bool:
        return not self.retired and self.left >= 1 and self.credits >= estimate and now < self.deadline

    def settlement(self) -> account_pb2.SettleLeaseRequest:
        c = self.caller
        return account_pb2.SettleLeaseRequest(
            lease_id=self.id, user_id=c.user_id, api_key_id=c.api_key_id, key_limits=c.key_limits.to_proto(),
            user_limits=c.user_limits.to_proto(),
            jobs=[account_pb2.LeasedJob(job_id=j, estimated_credits=e) for j, e in self.used],
        )  # fmt: skip


@dataclass
class Ticket:
    """One admission taken from a block: ``done(created)`` once the create knows."""

    block: _Block
    job_id: str
    estimate: int
    on_free: Callable[[_Block], None]

    def done(self, created: bool) -> None:
        b = self.block
        b.inflight -= 1
        if created:
            b.used.append((self.job_id, self.estimate))
        elif not b.retired:  # back to the block (a retired block returns the unused rest when settled)
            b.left += 1
            b.credits += self.estimate
        if b.retired and b.inflight == 0:
            self.on_free(b)


def _key(caller: Principal) -> tuple[Any, ...]:
    return (caller.user_id, caller.api_key_id, caller.key_limits, caller.user_limits)


class Leases:
    def __init__(self, sink: Any, holder: str, *, ttl_seconds: float = 30.0, idle_seconds: float = 1.0,
                 max_block: int = 64) -> None:  # fmt: skip
        self.sink = sink  # AccountClient: lease, settle_lease, expired_leases
        self.holder = holder
        self.ttl = ttl_seconds
        self.idle = idle_seconds
        self.max_block = max_block
        self._blocks: dict[tuple[Any, ...], _Block] = {}
        self._locks: dict[tuple[Any, ...], asyncio.Lock] = {}
        self._waiting: dict[tuple[Any, ...], int] = {}
        self._next: dict[tuple[Any, ...], int] = {}
        self._unsettled: list[_Block] = []  # retired, free, settle failed or not tried yet
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._settling: dict[_Block, asyncio.Task[None]] = {}

    async def admit(self, job_id: str, caller: Principal, estimate: int) -> Ticket:
        key = _key(caller)
        block = self._blocks.get(key)
        if block is None or not block.fits(estimate, time.monotonic()):
            self._waiting[key] = self._waiting.get(key, 0) + 1
            try:
                async with self._locks.setdefault(key, asyncio.Lock()):
                    block = self._blocks.get(key)
                    if block is None or not block.fits(estimate, time.monotonic()):  # nobody renewed meanwhile
                        block = await self._renew(key, caller, estimate)
            finally:
                self._waiting[key] -= 1
                if not self._waiting[key]:
                    del self._waiting[key]
                    lock = self._locks.get(key)
                    if lock is not None and not lock.locked():
                        del self._locks[key]
        block.left -= 1
        block.credits -= estimate
        block.inflight += 1
        block.last_use = time.monotonic()
        return Ticket(block, job_id, estimate, self._free)

    async def _renew(self, key: tuple[Any, ...], caller: Principal, estimate: int) -> _Block:
        old = self._blocks.pop(key, None)
        previous = None
        if old is not None:
            old.retired = True
            if old.inflight == 0:  # else settled once its last ticket is done
                previous = old  # settled in the same transaction as the new lease
        # This caller's blocks retired earlier: settled before the decision (their jobs may have
        # ended, their unused rest may be what the new lease needs), the last in the same call.
        ours = [b for b in self._unsettled if _key(b.caller) == key]
        self._unsettled = [b for b in self._unsettled if _key(b.caller) != key]
        await asyncio.gather(*(t for b, t in self._settling.items() if _key(b.caller) == key), return_exceptions=True)
        if previous is not None:
            ours.append(previous)
        previous = ours.pop() if ours else None
        for block in ours:
            try:
                await self.sink.settle_lease(block.settlement())
            except Exception:
                self._unsettled.append(block)
        size = min(self.max_block, max(self._waiting.get(key, 1), self._next.get(key, 1)))
        request = account_pb2.LeaseAdmissionsRequest(
            lease_id=f"lease:{uuid.uuid4().hex}", user_id=caller.user_id, api_key_id=caller.api_key_id,
            key_limits=caller.key_limits.to_proto(), user_limits=caller.user_limits.to_proto(), count=size,
            estimated_credits_each=estimate, holder=self.holder, ttl_seconds=self.ttl,
        )  # fmt: skip
        if previous is not None:
            request.previous.CopyFrom(previous.settlement())
        started = time.monotonic()
        try:
            answer = await self.sink.lease(request)
        except ServiceError as err:
            # Only account's refusal settled it; a RESOURCE_EXHAUSTED of gRPC's own (message size,
            # concurrent streams) carries no such reason and settled nothing.
            refused = err.code == grpc.StatusCode.RESOURCE_EXHAUSTED and err.reason in ("QUOTA_EXCEEDED", "RATE_LIMITED")
            if previous is not None and not refused:
                self._free(previous)  # account down or slow: settle it later (idempotent)
            raise
        except BaseException:
            if previous is not None:
                self._free(previous)
            raise
        granted = int(answer.granted)
        # Used up before it is replaced: a full block doubles the next; limits cutting it short reset it.
        self._next[key] = min(self.max_block, granted * 2) if granted >= size else 1
        block = _Block(request.lease_id, caller, granted, granted * estimate, started + self.ttl / 2, granted)
        self._blocks[key] = block
        self._start_sweeper()
        return block

    def _free(self, block: _Block) -> None:
        """A retired block with nothing in flight: settle it now (in the background; retried by the sweeper)."""
        self._unsettled.append(block)
        self._start_sweeper()
        self._wake.set()

    def _start_sweeper(self) -> None:
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def _sweep(self) -> None:
        """Settles idle, old and retired blocks; ends when there is none left."""
        while self._blocks or self._unsettled:
            await self._settle_unsettled()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(self.idle, self.ttl / 4))
            self._wake.clear()
            now = time.monotonic()
            for key, block in list(self._blocks.items()):
                if now >= block.deadline or (block.inflight == 0 and now - block.last_use >= self.idle):
                    del self._blocks[key]
                    block.retired = True
                    if block.inflight == 0:
                        self._unsettled.append(block)
            await self._settle_unsettled()

    async def _settle_unsettled(self) -> None:
        pending, self._unsettled = self._unsettled, []
        loop = asyncio.get_running_loop()
        for b in pending:  # awaited by a renewal of the same caller (_renew)
            self._settling[b] = loop.create_task(self.sink.settle_lease(b.settlement()))
        results = await asyncio.gather(*(self._settling[b] for b in pending), return_exceptions=True)
        for b in pending:
            del self._settling[b]
        for block, result in zip(pending, results, strict=True):
            if isinstance(result, BaseException):
                # Kept for the next sweep; past its expiry the reconciliation settles it anyway.
                if time.monotonic() < block.deadline + 2 * self.ttl:
                    self._unsettled.append(block)
                _log.warning("job_lease_settle_failed", lease_id=block.id, error=repr(result))

    async def close(self) -> None:
        """Settles every block (a stopping replica); what fails is left to the reconciliation."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for block in self._blocks.values():
            block.retired = True
            if block.inflight == 0:
                self._unsettled.append(block)
        self._blocks.clear()
        with contextlib.suppress(Exception):
            await self._settle_unsettled()

    async def reconcile(self, store: JobStore) -> int:
        """Settles this job service's leases that expired a whole ttl ago (their replica went away)
        with the caller's jobs created since the lease began; the number settled."""
        from services.kit.db import run_db

        expired = await self.sink.expired_leases(self.holder, self.ttl)
        for lease in expired:
            since_us = lease.create_time.ToMicroseconds() - 1_000_000  # clock skew between the databases
            jobs = await run_db(store.created_since, lease.user_id, lease.api_key_id, since_us)
            await self.sink.settle_lease(account_pb2.SettleLeaseRequest(
                lease_id=lease.lease_id, user_id=lease.user_id, api_key_id=lease.api_key_id,
                jobs=[account_pb2.LeasedJob(job_id=j, estimated_credits=e) for j, e in jobs]))  # fmt: skip
            _log.info("job_lease_reconciled", lease_id=lease.lease_id, jobs=len(jobs))
        return len(expired)
