"""Metering (issue 16): every ended job's outcome reaches the account service, reliably.

The transaction that ends a job (any path: a run's outcome, a cancel while queued, a take-over that
fails or cancels it) also sets the row's ``meter_due_us`` ("outcome not yet recorded", see
``JobStore.meter_claim``): a crash can never lose it. A :class:`Meter` loop on every replica then
claims due rows (a conditional UPDATE that pushes their due time ``retry_seconds`` ahead, so two
replicas never send the same job at once and a claim that dies with its replica is due again
later), sends them in one ``RecordJobOutcomes`` call (one account transaction for the batch;
idempotent on the job id, so a retry after a lost answer is harmless), and stores the charges and
clears the markers of those recorded. Account down → the rows stay
due and are retried every ``retry_seconds``, across restarts and by any replica. The job itself
never waits: ending a job only wakes the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import grpc

from services.kit.account_client import JobOutcome
from services.kit.auth import Principal
from services.kit.db import is_database_down, run_db
from services.kit.errors import ServiceError
from services.kit.jobs.leases import Leases, Ticket
from services.kit.jobs.record import JobRecord
from services.kit.jobs.store import JobStore
from services.kit.jobs.writer import now_us
from services.kit.logs import get_logger
from services.kit.prices import PriceList, Usage
from viarte.account.v1 import account_pb2

__all__ = ["Meter", "Metering", "OutcomeSink", "admit", "check_read", "limited", "outcome_of"]

_log = get_logger("viarte.jobs.meter")


class OutcomeSink(Protocol):
    """What records outcomes and admits jobs: ``services.kit.account_client.AccountClient``."""

    async def record_outcomes(self, outcomes: Sequence[JobOutcome]) -> list[account_pb2.RecordJobOutcomeResult]: ...

    async def lease(self, request: account_pb2.LeaseAdmissionsRequest) -> account_pb2.LeaseAdmissionsResponse: ...

    async def settle_lease(self, request: account_pb2.SettleLeaseRequest) -> None: ...

    async def expired_leases(self, holder: str, older_than_seconds: float) -> list[account_pb2.ExpiredLease]: ...

    async def check_read(self, caller: Principal) -> None: ...


def limited(caller: Principal | None, *, read: bool = False) -> bool:
    """Whether ``caller`` carries limits that a create (or a read) must be checked against."""
    if caller is None:
        return False
    if read:
        return bool(caller.key_limits.reads_per_minute or caller.user_limits.reads_per_minute)
    return caller.key_limits.on_create or caller.user_limits.on_create


async def admit(metering: Metering | None, job_id: str, caller: Principal | None, estimate: int) -> Ticket | None:
    """Admits a job about to be created under the caller's budget and limits, from a block leased
    from account (``leases``: QUOTA_EXCEEDED / RATE_LIMITED, UNAVAILABLE while account is down).
    The ticket's ``done(created)`` keeps the admission or returns it; callers without limits cost
    nothing (None)."""
    if metering is None or caller is None or not limited(caller):
        return None
    return await metering.leases.admit(job_id, caller, estimate)


async def check_read(metering: Metering | None, caller: Principal | None) -> None:
    """Counts a job read against the caller's read rate (RATE_LIMITED); free for callers without one.
    Account down: the read goes through (reads never change anything a budget protects)."""
    if metering is None or not limited(caller, read=True):
        return
    try:
        await metering.sink.check_read(caller)  # type: ignore[arg-type]
    except ServiceError as err:
        if err.code != grpc.StatusCode.UNAVAILABLE:
            raise


@dataclass(frozen=True)
class Metering:
    """A job service's metering: where outcomes go and how its jobs describe themselves.

    ``describe(record)`` turns an ended job into the ``JobOutcome`` account prices (its kind,
    model, measured quantities, result assets); the service knows its parameters and results.
    ``prices`` and ``kinds`` (job kind → ``account_pb2.JobKind``) price estimates at create."""

    sink: OutcomeSink
    describe: Callable[[JobRecord], JobOutcome]
    prices: PriceList
    kinds: Mapping[str, int]
    retry_seconds: float = 5.0
    poll_seconds: float = 5.0
    batch: int = 100  # outcomes per RecordJobOutcomes call (at most 500)
    # After a job ends the meter waits this long before claiming, so the jobs that end meanwhile go
    # in the same call and account transaction (a burst costs a few calls, not one per job); the
    # only price is this much more delay before the record and its webhooks.
    gather_seconds: float = 0.02
    # Admission leases (``leases``): a block's time-to-live at account (spent for half of it, then
    # settled; reconciled a whole ttl after its expiry) and how long an unused block is kept.
    lease_ttl_seconds: float = 30.0
    lease_idle_seconds: float = 1.0
    leases: Leases = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 1 <= self.batch <= 500:  # account refuses a longer RecordJobOutcomes: outcomes would retry for ever
            raise ValueError(f"Metering.batch must be in [1, 500], not {self.batch}")
        # The holder of this service's leases: its job kinds name it for every replica alike.
        holder = ",".join(sorted(self.kinds))
        object.__setattr__(self, "leases", Leases(self.sink, holder, ttl_seconds=self.lease_ttl_seconds,
                                                  idle_seconds=self.lease_idle_seconds))  # fmt: skip

    def estimate(self, kind: str, model: str, usage: Usage) -> int:
        """The credits ``usage`` would cost a job of ``kind`` (the estimate shown at create)."""
        return self.prices.price(self.kinds[kind], model, usage).credits


def outcome_of(record: JobRecord, kind: int, *, model: str = "", quantities: Usage = Usage(),
               result_asset_ids: Sequence[str] = ()) -> JobOutcome:
    """The fields every job's outcome shares, from its record; the service adds what it measured."""
    end = datetime.fromtimestamp(record.end_us / 1e6, tz=UTC) if record.end_us else None
    return JobOutcome(
        job_id=record.id, kind=kind, user_id=record.owner, state=record.state, model=model,
        api_key_id=record.api_key_id, quantities=quantities.to_proto(),
        result_asset_ids=[a for a in result_asset_ids if a],
        error_reason=record.error.reason if record.error is not None else "", end_time=end,
    )


class Meter:
    """The loop that records ended jobs' outcomes with account (one per replica)."""

    def __init__(self, store: JobStore, metering: Metering, replica_id: str) -> None:
        self._store = store
        self._metering = metering
        self._replica = replica_id
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._down = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())
        self._wake.set()  # outcomes left pending by a previous life, or by a replica that died

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._metering.leases.close()  # this replica's blocks: settled now, not at their expiry

    async def _run(self) -> None:
        m = self._metering
        reconciled = 0.0
        while True:
            with contextlib.suppress(TimeoutError):  # the poll: other replicas' leftovers, retries
                await asyncio.wait_for(self._wake.wait(), m.poll_seconds)
            if m.gather_seconds > 0:  # the jobs ending meanwhile join this batch: one call for them all
                await asyncio.sleep(m.gather_seconds)
            self._wake.clear()
            try:
                while await self.record_due():
                    pass
                if time.monotonic() - reconciled >= m.lease_ttl_seconds / 2:  # leases of replicas gone
                    reconciled = time.monotonic()
                    await m.leases.reconcile(self._store)
            except ServiceError as err:  # account down: the next round
                if err.code != grpc.StatusCode.UNAVAILABLE:
                    _log.error("job_lease_reconcile_refused", reason=err.reason, detail=err.message)
            except Exception as exc:
                if not is_database_down(exc):
                    _log.exception("job_meter_failed", replica=self._replica)

    async def record_due(self) -> bool:
        """Claims one batch, records its outcomes with one RecordJobOutcomes call (one account
        transaction for the batch) and clears them in one write; True when the batch was full and
        all went through (more may be due). Public for tests."""
        m = self._metering
        claimed = await run_db(self._store.meter_claim, now_us(), int(m.retry_seconds * 1e6), m.batch)
        charges = await self._record(claimed) if claimed else []
        await run_db(self._store.meter_done, {r.id: c for r, c in zip(claimed, charges, strict=True) if c is not None})
        if claimed and all(c is not None for c in charges):
            if self._down:
                _log.info("job_meter_account_recovered", replica=self._replica)
            self._down = False
        # Not recorded (account down, a refusal): due again after retry_seconds (the claim pushed it).
        return len(claimed) == m.batch and all(c is not None for c in charges)

    async def _record(self, records: Sequence[JobRecord]) -> list[int | None]:
        """Per record, the credits account charged, or None when its outcome could not be recorded now."""
        outcomes: list[JobOutcome] = []
        described: list[JobRecord] = []
        for record in records:
            try:
                outcomes.append(self._metering.describe(record))
                described.append(record)
            except Exception:
                _log.exception("job_meter_describe_failed", job_id=record.id)
        charged: dict[str, int] = {}
        try:
            results = await self._metering.sink.record_outcomes(outcomes) if outcomes else []
        except ServiceError as err:
            if err.code == grpc.StatusCode.UNAVAILABLE:
                if not self._down:
                    _log.warning("job_meter_account_unavailable", replica=self._replica, jobs=len(outcomes),
                                 retry_seconds=self._metering.retry_seconds)
                self._down = True
            else:  # the whole call refused: a bug on one side, kept and retried, logged each time
                _log.error("job_meter_refused", jobs=len(outcomes), reason=err.reason, detail=err.message)
            return [None] * len(records)
        for record, result in zip(described, results, strict=True):
            if result.code:
                # A refusal is a bug on one side (a job that cannot be described): kept and retried
                # every retry_seconds, logged each time so it is seen, never dropped silently.
                _log.error("job_meter_refused", job_id=record.id, reason=result.reason, detail=result.message)
            else:
                charged[record.id] = int(result.record.credits)
        return [charged.get(r.id) for r in records]
