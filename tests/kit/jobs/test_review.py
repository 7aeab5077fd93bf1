"""Review findings of the leased job layer (issue 14), each on a real PostgreSQL (the backend of N
replicas) with in-process JobService replicas: several services on one database are replicas like
separate processes are (distinct replica ids, one LISTEN connection each). Faults are injected at the
store boundary (a commit whose answer is lost, a read that fails once) with real writes behind them."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from services.kit import auth as kit_auth
from services.kit.auth import Principal, PrincipalKind
from services.kit.db import is_database_down, make_engine, upgrade
from services.kit.errors import ServiceError
from services.kit.jobs import (
    CANCELLED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    HandlerExecutor,
    JobConfig,
    JobRecord,
    JobRpc,
    JobService,
    RunningJob,
)
from services.kit.jobs.listener import Notice
from services.kit.jobs.store import Fence, JobStore
from viarte.inference.v1 import generation_pb2 as G
from viarte.type.v1 import job_pb2

pytestmark = pytest.mark.postgres

MIGRATIONS = Path(__file__).parent / "migrations"
BOUND = 10.0  # seconds: generous bound for waits that pass at once on working code


@pytest.fixture
async def engine(postgres_database: Callable[[], str]) -> AsyncIterator[Engine]:
    eng = make_engine(postgres_database())
    upgrade(eng, MIGRATIONS)
    yield eng
    eng.dispose()


class Held:
    """Jobs emit ``steps`` events, then wait until released or cancelled."""

    def __init__(self, steps: int = 1) -> None:
        self.steps = steps
        self.started: asyncio.Queue[str] = asyncio.Queue()
        self.release = asyncio.Event()

    async def __call__(self, job: RunningJob) -> bytes:
        for i in range(1, self.steps + 1):
            job.emit(job_pb2.Progress(stage=job_pb2.STAGE_DENOISING, step=i, total_steps=self.steps))
        await self.started.put(job.id)
        await job.unless_cancelled(self.release.wait())
        return b"done"


async def _replica(engine: Engine, name: str, handler: Any = None, *, slots: int = 1, **config: Any) -> JobService:
    executor = HandlerExecutor({"demo": handler} if handler else {}, slots=slots if handler else 0)
    svc = JobService(engine, executor, JobConfig(replica_id=name, **config))
    await svc.start()
    return svc


class Follower:
    """A Watch on one replica, collecting events in the background."""

    def __init__(self, svc: JobService, job_id: str, after: int = 0) -> None:
        self.events: list[job_pb2.JobEvent] = []
        self.changed = asyncio.Event()
        self.task = asyncio.create_task(self._run(svc, job_id, after))

    async def _run(self, svc: JobService, job_id: str, after: int) -> None:
        async for item in svc.watch(None, "demo", job_id, after):
            if not isinstance(item, JobRecord):
                self.events.append(item)
                self.changed.set()

    async def until(self, probe: Callable[[list[job_pb2.JobEvent]], bool], what: str, bound: float = BOUND) -> None:
        deadline = time.monotonic() + bound
        while not probe(self.events):
            self.changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"{what}: the watcher saw {[(e.sequence, e.state) for e in self.events]}")
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except TimeoutError:
                pass

    def close(self) -> None:
        self.task.cancel()


def _lost_answer(real: Callable[..., Any], when: Callable[..., bool]) -> tuple[Callable[..., Any], list[str]]:
    """``real``, except that once, when ``when(*args, **kwargs)``, it commits and then raises the
    error of a connection that died before the answer arrived."""
    fired: list[str] = []

    def call(*args: Any, **kwargs: Any) -> Any:
        out = real(*args, **kwargs)
        if not fired and when(*args, **kwargs):
            fired.append(real.__name__)
            raise OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))
        return out

    return call, fired


# -- 1. a locally finished job whose outcome is stored but not published ----------------------------
async def test_an_outcome_stored_but_not_answered_reaches_a_watcher_on_the_same_replica(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = Held()
    a = await _replica(engine, "A", held, poll_seconds=60)  # no poll to hide a missing wake-up
    try:
        job = await a.create("alice", "demo", b"x")
        await asyncio.wait_for(held.started.get(), BOUND)
        watcher = Follower(a, job.id)
        await watcher.until(lambda evs: any(e.state == RUNNING for e in evs), "no RUNNING event")
        lost, fired = _lost_answer(a._store.transition, lambda _job, state, **_: state == SUCCEEDED)
        monkeypatch.setattr(a._store, "transition", lost)
        held.release.set()
        # The outcome's retry finds the job already SUCCEEDED (its own first try): nothing to publish.
        await watcher.until(lambda evs: evs[-1].state == SUCCEEDED, "the outcome never reached the watcher")
        assert fired == ["transition"]
        seqs = [e.sequence for e in watcher.events]
        assert seqs == list(range(1, seqs[-1] + 1))
    finally:
        held.release.set()
        await a.stop()


async def test_events_stored_by_a_write_whose_answer_was_lost_reach_a_local_watcher(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = Held(steps=1)  # one event, then the job waits: no later event would reveal the gap
    a = await _replica(engine, "A", held, poll_seconds=60)
    try:
        lost, fired = _lost_answer(a._store.append, lambda *_a, **_k: True)
        monkeypatch.setattr(a._store, "append", lost)
        job = await a.create("alice", "demo", b"x")
        watcher = Follower(a, job.id)
        await asyncio.wait_for(held.started.get(), BOUND)
        await watcher.until(lambda evs: any(e.progress.stage == job_pb2.STAGE_DENOISING for e in evs),
                            "the stored progress event never reached the watcher")
        assert fired == ["append"]
        assert (await a.get(None, "demo", job.id)).state == RUNNING  # while the job still runs
    finally:
        held.release.set()
        await a.stop()


async def test_a_job_requeued_at_shutdown_reaches_a_watcher_on_the_same_replica(engine: Engine) -> None:
    held = Held()
    a = await _replica(engine, "A", held, poll_seconds=60)
    job = await a.create("alice", "demo", b"x")
    await asyncio.wait_for(held.started.get(), BOUND)
    watcher = Follower(a, job.id)
    try:
        await watcher.until(lambda evs: any(e.state == RUNNING for e in evs), "no RUNNING event")
        await a.stop(grace_seconds=0.1)
        await watcher.until(lambda evs: evs[-1].state == QUEUED, "the re-queue never reached the watcher")
        assert watcher.events[-1].progress.message == "re-queued at service shutdown"
    finally:
        watcher.close()


# -- 2. no claim before the startup recovery has completed ------------------------------------------
async def test_after_a_failed_startup_recovery_the_replica_never_takes_over_its_own_new_claims(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The startup sweep takes over this replica's RUNNING jobs from before a restart (same
    replica id). Run late (recovery failed at start: the database was away), it must not find the
    jobs the replica claimed since: claims wait until recovery has completed."""
    queued = JobStore(engine).create(owner="alice", kind="demo", request_id="", parameters=b"x", priority=0,
                                     now_us=time.time_ns() // 1000, progress=job_pb2.Progress())[1]
    took_over = threading.Event()
    real_expired, real_take_over, real_claim = JobStore.expired, JobStore.take_over, JobStore.claim_next
    fails: list[str] = []

    def expired(self: JobStore, **kwargs: Any) -> Any:
        if not fails:  # start()'s recovery: the database is unreachable
            fails.append("expired")
            raise OperationalError("SELECT job.id ...", {}, Exception("connection refused"))
        return real_expired(self, **kwargs)

    def take_over(self: JobStore, *args: Any, **kwargs: Any) -> Any:
        try:
            return real_take_over(self, *args, **kwargs)
        finally:
            took_over.set()

    def claim_next(self: JobStore, *args: Any) -> Any:
        out = real_claim(self, *args)
        if out[0] is not None:  # claimed: give a sweep running meanwhile every chance to see it
            took_over.wait(1.5)
        return out

    monkeypatch.setattr(JobStore, "expired", expired)
    monkeypatch.setattr(JobStore, "take_over", take_over)
    monkeypatch.setattr(JobStore, "claim_next", claim_next)
    held = Held()
    held.release.set()
    # The lease outlives claim_next's 1.5 s hold with room for a loaded machine: a lease that expired
    # before the claim even returned would be a (correct) take-over, not the bug this test is about.
    a = await _replica(engine, "A", held, lease_seconds=6.0, poll_seconds=0.5)
    try:
        deadline = time.monotonic() + 3 * BOUND
        while (record := await a.get(None, "demo", queued.id)).state != SUCCEEDED:
            assert time.monotonic() < deadline, f"the job never finished: {record}"
            await asyncio.sleep(0.05)
        assert fails == ["expired"]
        assert record.attempts == 1
        events = JobStore(engine).events(queued.id, 0)
        assert not [e for e in events if "restart" in e.progress.message]
    finally:
        await a.stop()


# -- 3. stop() keeps renewing and listening while running jobs get their grace ---------------------
async def test_leases_are_renewed_during_the_shutdown_grace(engine: Engine) -> None:
    held = Held()
    a = await _replica(engine, "A", held, lease_seconds=1.0, poll_seconds=0.5)
    job = await a.create("alice", "demo", b"x")
    await asyncio.wait_for(held.started.get(), BOUND)
    b = await _replica(engine, "B", lease_seconds=1.0, poll_seconds=0.5)  # sweeps expired leases
    stopping = asyncio.create_task(a.stop(grace_seconds=60))
    try:
        await asyncio.sleep(3 * 1.0)  # three leases: an unrenewed one is long taken over by B
        during = await b.get(None, "demo", job.id)
        assert (during.state, during.attempts) == (RUNNING, 1), during
        held.release.set()
        await asyncio.wait_for(stopping, BOUND)
        done = await b.get(None, "demo", job.id)
        assert (done.state, done.attempts, done.result) == (SUCCEEDED, 1, b"done")
    finally:
        held.release.set()
        await asyncio.wait_for(stopping, BOUND)
        await b.stop()


async def test_a_cancel_from_another_replica_reaches_a_job_in_its_shutdown_grace_within_1s(engine: Engine) -> None:
    held = Held()
    # A 60 s lease: renewals (the fallback that also reads cancel flags) come every 20 s, so only
    # the LISTEN connection can deliver the cancel in time.
    a = await _replica(engine, "A", held, lease_seconds=60, poll_seconds=60)
    job = await a.create("alice", "demo", b"x")
    await asyncio.wait_for(held.started.get(), BOUND)
    b = await _replica(engine, "B", lease_seconds=60, poll_seconds=60)
    stopping = asyncio.create_task(a.stop(grace_seconds=60))
    try:
        await asyncio.sleep(0.2)  # A is in its grace period now
        assert not stopping.done()
        sent = time.monotonic()
        flagged = await b.cancel(None, "demo", job.id)
        assert flagged.state == RUNNING and flagged.cancel_requested
        await asyncio.wait_for(stopping, 5)  # the cancelled job ended: stop() returned
        elapsed = time.monotonic() - sent
        done = await b.get(None, "demo", job.id)
        assert done.state == CANCELLED and elapsed < 1.0, f"{done.state} after {elapsed:.2f}s"
    finally:
        held.release.set()
        await asyncio.wait_for(stopping, BOUND)
        await b.stop()


# -- 4. a session the server ended (idle in transaction) is UNAVAILABLE, not INTERNAL ---------------
async def test_an_idle_in_transaction_timeout_answers_unavailable(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    a = await _replica(engine, "A")
    try:
        job = await a.create("alice", "demo", b"x")
        seen: list[BaseException] = []

        def frozen_get(job_id: str) -> Any:
            """A read whose replica froze inside its transaction past the server's limit."""
            with engine.connect() as conn:
                conn.execute(text("SET LOCAL idle_in_transaction_session_timeout = 100"))
                conn.execute(text("SELECT 1"))
                time.sleep(0.6)
                try:
                    conn.execute(text("SELECT id FROM job WHERE id = :id"), {"id": job_id})
                except Exception as exc:
                    seen.append(exc)
                    raise
            raise AssertionError("the server did not end the session")

        monkeypatch.setattr(a._store, "get", frozen_get)
        with pytest.raises(ServiceError) as err:
            await a.get(None, "demo", job.id)
        assert (err.value.code, err.value.reason) == (grpc.StatusCode.UNAVAILABLE, "DATABASE_UNAVAILABLE")
        # What PostgreSQL and psycopg really raise: SQLAlchemy's InternalError, not OperationalError.
        assert type(seen[0]).__name__ == "InternalError" and getattr(getattr(seen[0], "orig", None), "sqlstate", "") == "25P03"
        assert is_database_down(seen[0])
        monkeypatch.undo()
        assert (await a.get(None, "demo", job.id)).id == job.id  # the pool replaced the connection
    finally:
        await a.stop()


# -- 7. Watch gap-fill and the Cancel retry loop ----------------------------------------------------
def _now_us() -> int:
    return time.time_ns() // 1000


async def test_a_local_event_overtaking_one_another_replica_stored_leaves_no_gap(engine: Engine) -> None:
    a = await _replica(engine, "A", poll_seconds=60)  # slots 0: the job stays queued here
    late: list[Notice] = []
    assert a._listener is not None
    deliver = a._listener._on_notice
    a._listener._on_notice = late.append  # other replicas' notices arrive late (held back here)
    try:
        job = await a.create("alice", "demo", b"x")
        watcher = Follower(a, job.id)
        await watcher.until(lambda evs: len(evs) == 1, "no QUEUED event")
        other = JobStore(engine, "B")  # another replica stores an event of the job: sequence 2
        stored = other.append(job.id, [(job_pb2.Progress(stage=job_pb2.STAGE_QUEUED, queue_position=1,
                                                         message="stored by B"), _now_us(), None)], state=QUEUED)
        assert stored is not None and [e.sequence for e in stored] == [2]
        await a.cancel(None, "demo", job.id)  # a local event, sequence 3, published here at once
        await watcher.until(lambda evs: evs[-1].state == CANCELLED, "no CANCELLED event")
        assert [e.sequence for e in watcher.events] == [1, 2, 3]  # 2 read from the log, before 3
        assert watcher.events[1].progress.message == "stored by B"
        assert [n.sequence for n in late if n.job_id == job.id] == [2]  # its notice never came in time
    finally:
        a._listener._on_notice = deliver
        await a.stop()


async def test_cancel_retries_while_the_job_moves_between_queued_and_running_on_other_replicas(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between Cancel's read and each conditional write, another replica claims the job (QUEUED →
    RUNNING), then re-queues it (its attempt failed and is retried): the cancel still lands."""
    a = await _replica(engine, "A", poll_seconds=60)
    other = JobStore(engine, "B")
    moves: list[str] = []
    real_transition, real_request_cancel = a._store.transition, a._store.request_cancel

    def transition(job_id: str, new_state: int, **kwargs: Any) -> Any:
        if new_state == CANCELLED and "claimed" not in moves:
            started, _, _ = other.claim_next("B", 60_000_000, _now_us())  # B starts it first
            assert started is not None and started.record.id == job_id
            moves.append("claimed")
        return real_transition(job_id, new_state, **kwargs)

    def request_cancel(job_id: str, now_us: int) -> Any:
        if "requeued" not in moves:  # B's attempt fails and goes back to the queue first
            row = other.get(job_id)
            assert row is not None
            back = other.transition(job_id, QUEUED, now_us=_now_us(), expect=frozenset({RUNNING}),
                                    fence=Fence("B", row.lease_epoch), progress=job_pb2.Progress(message="retry"))
            assert back is not None
            moves.append("requeued")
        return real_request_cancel(job_id, now_us)

    try:
        job = await a.create("alice", "demo", b"x")
        monkeypatch.setattr(a._store, "transition", transition)
        monkeypatch.setattr(a._store, "request_cancel", request_cancel)
        answer = await a.cancel(None, "demo", job.id)
        assert moves == ["claimed", "requeued"]
        assert answer.state == CANCELLED
        assert (await a.get(None, "demo", job.id)).state == CANCELLED
        states = [e.state for e in other.events(job.id, 0)]
        assert states == [QUEUED, RUNNING, QUEUED, CANCELLED]
    finally:
        await a.stop()


# -- 8. placement as a Watch event ------------------------------------------------------------------
async def test_watchers_on_every_replica_see_the_placement_on_a_running_event(engine: Engine) -> None:
    class Placed(Held):
        async def __call__(self, job: RunningJob) -> bytes:
            job.emit(job_pb2.Progress(stage=job_pb2.STAGE_MODEL_LOADING, message="loading"))
            await job.place(executor="ray", node="node-b", device="gpu:1")
            return await super().__call__(job)

    held = Placed()
    a = await _replica(engine, "A", held)
    b = await _replica(engine, "B")
    rpc = JobRpc(b, "demo", G.GenerationJob, G.GenerationParameters, G.GenerationResult)
    token = kit_auth._principal.set(Principal("alice", PrincipalKind.USER))
    try:
        job = await a.create("alice", "demo", G.GenerationParameters().SerializeToString())
        local = Follower(a, job.id)
        responses = [r async for r in _rpc_watch_until_placed(rpc, job.id)]  # B: the RPC path
        await asyncio.wait_for(held.started.get(), BOUND)
        where = job_pb2.Placement(executor="ray", node="node-b", device="gpu:1")
        await local.until(lambda evs: any(e.HasField("placement") for e in evs), "no placement event")
        placed = next(e for e in local.events if e.HasField("placement"))
        assert placed.state == RUNNING and placed.placement == where
        assert placed.progress.stage == job_pb2.STAGE_MODEL_LOADING  # in order, after the emitted one
        # Gap-free up to the placement (the held job's step event may already follow it).
        assert [e.sequence for e in local.events][: placed.sequence] == list(range(1, placed.sequence + 1))
        remote = [r.event for r in responses if r.WhichOneof("payload") == "event"]
        assert remote[-1] == placed  # the same stored event, through WatchGenerationJob's messages
        assert (await b.get(None, "demo", job.id)).status().placement == where
        held.release.set()
        await local.until(lambda evs: evs[-1].state == SUCCEEDED, "never finished")
    finally:
        kit_auth._principal.reset(token)
        held.release.set()
        await a.stop()
        await b.stop()


async def _rpc_watch_until_placed(rpc: JobRpc[Any], job_id: str) -> AsyncIterator[G.WatchGenerationJobResponse]:
    async def responses() -> list[G.WatchGenerationJobResponse]:
        out = []
        async for r in rpc.watch(G.WatchGenerationJobRequest(id=job_id), G.WatchGenerationJobResponse):
            out.append(r)
            if r.WhichOneof("payload") == "event" and r.event.HasField("placement"):
                break
        return out

    for r in await asyncio.wait_for(responses(), BOUND):
        yield r
