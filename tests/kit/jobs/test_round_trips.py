"""The job layer's per-job database work (issue 14's benchmark): no claim transaction without news
of work, and one transaction re-announcing the queue after a change at its head. On SQLite and on
PostgreSQL (real databases; transactions counted with SQLAlchemy's engine events)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from services.kit.db import make_engine, upgrade
from services.kit.jobs import (
    QUEUED,
    SUCCEEDED,
    HandlerExecutor,
    JobConfig,
    JobService,
    RunningJob,
    is_terminal,
)
from viarte.type.v1 import job_pb2

MIGRATIONS = Path(__file__).parent / "migrations"
DEADLINE_S = 60.0  # a bound for a loaded machine, not a measured behaviour


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    url = f"sqlite:///{tmp_path / 'jobs.db'}" if request.param == "sqlite" else request.getfixturevalue(
        "postgres_database")()
    eng = make_engine(url)
    upgrade(eng, MIGRATIONS)
    return eng


class Held:
    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def __call__(self, job: RunningJob) -> bytes:
        job.emit(job_pb2.Progress(stage=job_pb2.STAGE_RENDERING, fraction=0.5))
        await self.release.wait()
        return b"ok"


@pytest.fixture
async def held_service(engine: Engine) -> AsyncIterator[tuple[JobService, Held]]:
    held = Held()
    # A poll far beyond the test: every claim here follows news of work, never the timer.
    # (No lease renewal within a test either: the transactions counted are the job operations'.)
    svc = JobService(engine, HandlerExecutor({"demo": held}, slots=2), JobConfig(
        poll_seconds=600, lease_seconds=600, replica_id="r1"))
    await svc.start()
    try:
        yield svc, held
    finally:
        held.release.set()
        await svc.stop()


async def _until(what: str, check: Callable[[], Any]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not await check():
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(0.02)


async def _ended(svc: JobService, job_id: str) -> int:
    async for item in svc.watch("alice", "demo", job_id):
        if isinstance(item, job_pb2.JobEvent) and is_terminal(item.state):
            return item.state
    raise AssertionError("the watch ended before the job")


async def test_a_job_start_or_end_claims_only_on_news_of_work(held_service: tuple[JobService, Held]) -> None:
    """A claim that took the last QUEUED job and a slot freed by a job's end cost no further claim
    transaction (the old scheduler claimed again after each: ~3 claims per job, two of them empty);
    jobs queued while every slot is busy still start as slots free up."""
    svc, held = held_service
    held.release.set()
    claims: list[tuple[Any, ...]] = []
    real = svc._store.claim_next

    def counted(*args: Any) -> Any:
        out = real(*args)
        claims.append((out[0] is not None, *out[1:]))
        return out

    # On PostgreSQL the listener's (re)connect looks for missed work with a claim of its own: wait
    # for the first, and allow one claim for each later one (a loaded machine can miss a keepalive).
    catch_ups = 0
    listener = svc._listener
    if listener is not None:
        await asyncio.wait_for(listener.connected.wait(), DEADLINE_S)
        await asyncio.sleep(0.3)  # its catch-up claim has had its turn
        on_connected = listener._on_connected

        def counted_catch_up() -> None:
            nonlocal catch_ups
            catch_ups += 1
            on_connected()

        listener._on_connected = counted_catch_up
    svc._store.claim_next = counted  # type: ignore[method-assign]
    for i in range(6):  # one at a time on an idle queue: create → claim → run → end
        rec = await svc.create("alice", "demo", str(i).encode())
        assert await _ended(svc, rec.id) == SUCCEEDED
    await asyncio.sleep(0.3)  # a claim the last end would trigger has had its turn
    started = sum(1 for c in claims if c[0])
    assert started == 6
    assert len(claims) <= 6 + 1 + catch_ups, claims  # + one that may race a create's own wake-up
    held.release.clear()
    burst = [await svc.create("alice", "demo", b"burst") for _ in range(5)]  # 2 slots: 3 wait
    await _until("two of the burst running", lambda: _running(svc, burst, 2))
    held.release.set()
    assert [await _ended(svc, r.id) for r in burst] == [SUCCEEDED] * 5


async def _running(svc: JobService, recs: list[Any], n: int) -> bool:
    states = [(await svc.get("alice", "demo", r.id)).state for r in recs]
    return states.count(job_pb2.JOB_STATE_RUNNING) == n


async def test_a_cancel_at_the_head_reannounces_the_queue_in_one_transaction(
    engine: Engine, held_service: tuple[JobService, Held]
) -> None:
    """Cancelling the first of 4 queued jobs moves the other 3 up: their new positions are stored and
    published by ONE transaction (the old announcer spent one per job), each as a QUEUED event."""
    svc, _ = held_service
    running = [await svc.create("alice", "demo", b"run") for _ in range(2)]
    await _until("both slots busy", lambda: _running(svc, running, 2))
    queued = [await svc.create("alice", "demo", str(i).encode()) for i in range(4)]
    await _until("positions 1..4 stored", lambda: _positions(svc, queued, [1, 2, 3, 4]))
    commits: list[int] = []

    def count(conn: Any) -> None:
        commits.append(1)

    event.listen(engine, "commit", count)
    try:
        with svc.broker.subscribe(queued[3].id) as sub:
            await svc.cancel("alice", "demo", queued[0].id)
            await _until("positions 1..3 stored", lambda: _positions(svc, queued[1:], [1, 2, 3]))
            await asyncio.sleep(0.2)  # an announcement after that one would have been counted too
            live = await asyncio.wait_for(sub.next(), DEADLINE_S)
    finally:
        event.remove(engine, "commit", count)
    assert len(commits) == 2, f"{len(commits)} transactions: the cancel, then one announcement"
    assert live is not None and live.state == QUEUED and live.progress.queue_position == 3
    for position, rec in enumerate(queued[1:], 1):
        last = svc._store.events(rec.id, 0)[-1]
        assert (last.state, last.progress.queue_position) == (QUEUED, position)


async def _positions(svc: JobService, recs: list[Any], expected: list[int]) -> bool:
    stored = [(await svc.get("alice", "demo", r.id)).progress.queue_position for r in recs]
    return stored == expected


@pytest.mark.postgres
def test_a_claim_during_an_announcement_waits_for_it_and_starts_the_head(postgres_database: Any) -> None:
    """An announcement holds the queue head's row locks until it commits; SKIP LOCKED alone would
    pass over the whole head and start a later job (out of priority and FIFO order)."""
    import threading

    import sqlalchemy as sa

    from services.kit.jobs.store import _ANNOUNCE_LOCK, JobStore

    eng = make_engine(postgres_database())
    upgrade(eng, MIGRATIONS)
    store = JobStore(eng)
    queued = job_pb2.Progress(stage=job_pb2.STAGE_QUEUED)
    ids = [store.create(owner="alice", kind="demo", request_id="", parameters=b"p", priority=0, now_us=i + 1,
                        progress=queued)[1].id for i in range(3)]
    with eng.connect() as announcer:  # what JobStore.announce holds: its lock, then the head's rows
        announcer.execute(sa.select(sa.func.pg_advisory_xact_lock(_ANNOUNCE_LOCK)))
        announcer.execute(sa.text("SELECT id FROM job WHERE id = ANY(:ids) FOR UPDATE"), {"ids": ids[:2]})
        got: list[Any] = []
        claimer = threading.Thread(target=lambda: got.append(store.claim_next("r1", 60_000_000, 10)))
        claimer.start()
        claimer.join(1.0)
        assert claimer.is_alive(), "the claim did not wait for the announcement"
        announcer.commit()
    claimer.join(DEADLINE_S)
    started, _, _ = got[0]
    assert started is not None and started.record.id == ids[0]
    eng.dispose()


@pytest.mark.postgres
def test_each_write_sends_its_notification_in_its_event_insert_and_metering_marks_a_batch_at_once(
    postgres_database: Any,
) -> None:
    """On PostgreSQL a write's events and its pg_notify are ONE statement (the INSERT returns the
    notification; the old store spent a SELECT pg_notify more on every create, claim, event batch
    and transition), and the notification still arrives, once per write; the meter stores a batch
    of charges in one statement (it was one UPDATE per job)."""
    import psycopg

    from services.kit.jobs.store import Fence, JobStore

    url = postgres_database()
    eng = make_engine(url)
    upgrade(eng, MIGRATIONS)
    store = JobStore(eng, "r1", metered=True)
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as listening:
        listening.execute("LISTEN viarte_jobs")
        event.listen(eng, "before_cursor_execute", count)
        try:
            _, rec = store.create(owner="alice", kind="demo", request_id="", parameters=b"p", priority=0, now_us=1)
            started, _, _ = store.claim_next("r1", 60_000_000, 2)
            assert started is not None
            fence = Fence("r1", started.record.lease_epoch)
            two = [(job_pb2.Progress(fraction=f), 3, None) for f in (0.1, 0.2)]
            assert store.append(rec.id, two, fence=fence) is not None
            assert store.transition(rec.id, SUCCEEDED, now_us=4, expect=frozenset({job_pb2.JOB_STATE_RUNNING}),
                                    fence=fence) is not None
            others = [store.create(owner="alice", kind="demo", request_id="", parameters=b"p", priority=0,
                                   now_us=5 + i)[1].id for i in range(2)]
            before_meter = len(statements)
            store.meter_done({rec.id: 7, others[0]: 0, others[1]: 0})
            meter = statements[before_meter:]
        finally:
            event.remove(eng, "before_cursor_execute", count)
        notices = [n.payload for n in listening.notifies(timeout=1.0, stop_after=6)]
    assert not [s for s in statements if s.lstrip().upper().startswith("SELECT PG_NOTIFY")], statements
    # create, claim, one batch of two events, the end: each notified once, naming its last event
    assert [n.split("|")[:2] for n in notices if rec.id in n] == [["q", "1"], ["e", "2"], ["e", "4"], ["e", "5"]]
    assert len(meter) == 1 and meter[0].lstrip().upper().startswith("UPDATE"), meter
    assert store.get(rec.id).credits == 7  # type: ignore[union-attr]
    eng.dispose()
