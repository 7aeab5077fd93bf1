"""Create/cancel storms: every writer of a job's event log (create, the scheduler, the coalesced
queue-position announcer, the running job's event writer, cancel) racing on a real database.

Each cancel must answer (no INTERNAL), every job must end, and every job's event log must be the
contiguous sequence 1..last_sequence ending in its terminal state."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from services.kit.db import make_engine, upgrade
from services.kit.jobs import (
    CANCELLED,
    QUEUED,
    RUNNING,
    HandlerExecutor,
    JobConfig,
    JobRecord,
    JobService,
    RunningJob,
    is_terminal,
)
from viarte.type.v1 import job_pb2

MIGRATIONS = Path(__file__).parent / "migrations"

# Delays between Create answering and Cancel being sent: None = no await at all, 0 = one loop turn.
DELAYS: tuple[float | None, ...] = (None, 0.0, 0.0002, 0.0005, 0.001, 0.002, 0.003, 0.005)


async def _short_job(job: RunningJob) -> bytes:
    """A job that reports progress for a few ms (so cancels land while it runs) unless cancelled."""
    for step in range(1, 4):
        job.emit(job_pb2.Progress(stage=job_pb2.STAGE_DENOISING, step=step, total_steps=3))
        try:
            await asyncio.wait_for(job.wait_cancelled(), 0.001)
        except TimeoutError:
            continue
        job.raise_if_cancelled()
    return b"done"


async def _cancel_after(svc: JobService, job_id: str, delay: float | None) -> JobRecord:
    if delay is not None:
        await asyncio.sleep(delay)
    return await svc.cancel("alice", "demo", job_id)


async def _pair(svc: JobService, i: int, delay: float | None) -> tuple[str, JobRecord]:
    rec = await svc.create("alice", "demo", str(i).encode(), priority=i % 3)
    return rec.id, await _cancel_after(svc, rec.id, delay)


async def _early_pair(svc: JobService, i: int) -> tuple[str, JobRecord]:
    """Cancel racing Create itself: the id is looked up by request id while Create is in flight."""
    request_id = f"early-{i}"
    creating = asyncio.create_task(svc.create("alice", "demo", b"early", request_id=request_id))
    while True:  # poll as fast as the store answers: the cancel lands as soon as the row exists
        found = await svc.find("alice", "demo", request_id)
        if found is not None:
            break
        await asyncio.sleep(0)
    cancelled = await svc.cancel("alice", "demo", found.id)
    assert (await creating).id == found.id
    if cancelled.state == CANCELLED:  # cancelled while queued, maybe before Create queued it: not queued
        assert await svc.queue_position(found.id) == 0
    return found.id, cancelled


def _check_cancel_answer(rec: JobRecord) -> None:
    # A queued job is cancelled at once; a running one is flagged; a finished one comes back unchanged.
    assert rec.state == CANCELLED or (rec.state == RUNNING and rec.cancel_requested) or is_terminal(rec.state), rec


async def _settled(svc: JobService, ids: list[str], deadline_s: float) -> dict[str, JobRecord]:
    """Every job's record once all are terminal; fails with the stragglers after ``deadline_s``."""
    deadline = time.monotonic() + deadline_s
    while True:
        records = {jid: await svc.get("alice", "demo", jid) for jid in ids}
        stuck = {jid: r for jid, r in records.items() if not r.terminal}
        if not stuck:
            return records
        if time.monotonic() > deadline:
            pytest.fail(f"{len(stuck)} jobs never ended, e.g. {next(iter(stuck.values()))}")
        await asyncio.sleep(0.2)


async def _storm(engine_url: str, migrate: Callable[[str], None], pairs: int, early: int) -> None:
    migrate(engine_url)
    svc = JobService(make_engine(engine_url), HandlerExecutor({"demo": _short_job}, slots=2),
                     JobConfig(max_queued=pairs + early + 10))
    await svc.start()
    try:
        delays = itertools.cycle(DELAYS)
        results = await asyncio.gather(
            *(_pair(svc, i, next(delays)) for i in range(pairs)),
            *(_early_pair(svc, i) for i in range(early)),
            return_exceptions=True,
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        assert not errors, f"{len(errors)} of {len(results)} create/cancel pairs failed: {errors[:3]!r}"
        answered = [r for r in results if not isinstance(r, BaseException)]
        for _, rec in answered:
            _check_cancel_answer(rec)
        ids = [jid for jid, _ in answered]
        # Generous for a loaded 2-core machine: the slowest store here finishes well within a few s.
        records = await _settled(svc, ids, deadline_s=60)
        assert [await svc.queue_position(jid) for jid in ids] == [0] * len(ids)
        for jid, rec in records.items():
            events = await asyncio.to_thread(svc._store.events, jid, 0)
            assert [e.sequence for e in events] == list(range(1, rec.last_sequence + 1)), jid
            assert events[0].state == QUEUED and events[-1].state == rec.state
            assert not any(is_terminal(e.state) for e in events[:-1]), jid
        # The service still dispatches after the storm: nothing is wedged.
        after = await svc.create("alice", "demo", b"after")
        assert (await _settled(svc, [after.id], deadline_s=60))[after.id].result == b"done"
    finally:
        await svc.stop()


def _migrate(url: str) -> None:
    upgrade(make_engine(url), MIGRATIONS)


async def test_create_cancel_storm_on_sqlite(tmp_path: Path) -> None:
    await _storm(f"sqlite:///{tmp_path / 'storm.db'}", _migrate, pairs=300, early=40)


async def _held_service(tmp_path: Path) -> tuple[JobService, asyncio.Event]:
    """A one-slot service whose first job holds the slot until the returned event is set."""
    release = asyncio.Event()

    async def hold(job: RunningJob) -> bytes:
        await release.wait()
        return b"held"

    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    _migrate(url)
    svc = JobService(make_engine(url), HandlerExecutor({"demo": hold}, slots=1))
    await svc.start()
    busy = await svc.create("alice", "demo", b"busy")
    for _ in range(600):  # up to 60 s on a loaded machine
        if (await svc.get("alice", "demo", busy.id)).state == RUNNING:
            break
        await asyncio.sleep(0.1)
    return svc, release


async def test_cancel_before_create_returns_leaves_nothing_queued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job is visible from its commit on: a cancel that lands before Create's coroutine resumes
    must not leave a cancelled job in the queue (counted, positioned, announced)."""
    svc, release = await _held_service(tmp_path)
    try:
        committed, proceed = threading.Event(), threading.Event()
        real_create = svc._store.create

        def create_then_pause(**kwargs: Any) -> Any:
            out = real_create(**kwargs)
            committed.set()
            proceed.wait(60)  # the commit is done; Create resumes only after the cancel
            return out

        monkeypatch.setattr(svc._store, "create", create_then_pause)
        creating = asyncio.create_task(svc.create("alice", "demo", b"x", request_id="r1"))
        assert await asyncio.to_thread(committed.wait, 60)
        found = await svc.find("alice", "demo", "r1")
        assert found is not None
        cancelled = await svc.cancel("alice", "demo", found.id)
        proceed.set()
        assert (await creating).id == found.id and cancelled.state == CANCELLED
        assert await svc.queue_position(found.id) == 0
        assert (await asyncio.to_thread(svc._store.queue_counts, 0))[0] == 0  # nothing queued
        assert (await svc.get("alice", "demo", found.id)).state == CANCELLED
    finally:
        proceed.set()
        release.set()
        await svc.stop()


async def test_a_failed_dispatch_loses_no_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A database error while starting a job (nothing stored) must neither kill the scheduler nor
    drop the job it had taken off the queue: the job still runs, and so do the ones after it."""
    svc, release = await _held_service(tmp_path)
    try:
        real_claim = svc._store.claim_next
        failures: list[str] = []

        def flaky_claim(*args: Any) -> Any:
            if not failures:
                failures.append("claim")
                raise OperationalError("UPDATE job ...", {}, Exception("database is locked"))
            return real_claim(*args)

        first = await svc.create("alice", "demo", b"first")
        second = await svc.create("alice", "demo", b"second")
        monkeypatch.setattr(svc._store, "claim_next", flaky_claim)
        release.set()
        records = await _settled(svc, [first.id, second.id], deadline_s=60)
        assert failures == ["claim"]
        assert [records[j].state for j in (first.id, second.id)] == [job_pb2.JOB_STATE_SUCCEEDED] * 2
        assert records[first.id].attempts == 1  # the failed start stored nothing
    finally:
        release.set()
        await svc.stop()


@pytest.mark.postgres
async def test_create_cancel_storm_on_postgresql(postgres_database: Callable[[], str]) -> None:
    """Row locks instead of SQLite's database lock: the same storm, the same guarantees."""
    await _storm(postgres_database(), _migrate, pairs=300, early=40)
