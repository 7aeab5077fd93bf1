"""`RunningJob.unless_cancelled`: the one way a handler waits on something (an upload, an idle
worker) that a cancel must cut short, on a real job service and SQLite database."""

from __future__ import annotations

import asyncio
from pathlib import Path

from services.kit.db import make_engine, upgrade
from services.kit.jobs import CANCELLED, SUCCEEDED, HandlerExecutor, JobCancelled, JobService, RunningJob
from services.kit.jobs.record import JobRecord
from viarte.type.v1 import job_pb2

MIGRATIONS = Path(__file__).parent / "migrations"


async def _service(tmp_path: Path, handler: object) -> JobService:
    engine = make_engine(f"sqlite:///{tmp_path / 'jobs.db'}")
    upgrade(engine, MIGRATIONS)
    svc = JobService(engine, HandlerExecutor({"demo": handler}, slots=1))  # type: ignore[dict-item]
    await svc.start()
    return svc


async def _final_state(svc: JobService, job_id: str) -> int:
    items = [item async for item in svc.watch("alice", "demo", job_id, 0)]
    return int(items[-1].state)  # type: ignore[union-attr]


async def test_a_cancel_stops_the_awaited_work_and_ends_the_job_cancelled(tmp_path: Path) -> None:
    started = asyncio.Event()
    work_cancelled = asyncio.Event()

    async def upload_forever() -> bytes:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            work_cancelled.set()
            raise
        return b"never"

    async def handler(job: RunningJob) -> bytes:
        return await job.unless_cancelled(upload_forever())

    svc = await _service(tmp_path, handler)
    try:
        rec = await svc.create("alice", "demo", b"")
        await asyncio.wait_for(started.wait(), 30)
        await svc.cancel("alice", "demo", rec.id)
        assert await asyncio.wait_for(_final_state(svc, rec.id), 30) == CANCELLED
        assert work_cancelled.is_set()  # the work itself was stopped, not left running
    finally:
        await svc.stop()


async def test_work_that_finishes_gives_its_result(tmp_path: Path) -> None:
    async def handler(job: RunningJob) -> bytes:
        return await job.unless_cancelled(asyncio.sleep(0, result=b"stored"))

    svc = await _service(tmp_path, handler)
    try:
        rec = await svc.create("alice", "demo", b"")
        assert await asyncio.wait_for(_final_state(svc, rec.id), 30) == SUCCEEDED
        assert (await svc.get("alice", "demo", rec.id)).result == b"stored"
    finally:
        await svc.stop()


async def test_waiting_for_an_idle_worker_takes_nothing_when_cancelled(tmp_path: Path) -> None:
    idle: asyncio.Queue[str] = asyncio.Queue()
    waiting = asyncio.Event()

    async def handler(job: RunningJob) -> bytes:
        waiting.set()
        worker = await job.unless_cancelled(idle.get(), release=idle.put_nowait)
        idle.put_nowait(worker)
        return b"ran"

    svc = await _service(tmp_path, handler)
    try:
        rec = await svc.create("alice", "demo", b"")
        await asyncio.wait_for(waiting.wait(), 30)
        await svc.cancel("alice", "demo", rec.id)
        assert await asyncio.wait_for(_final_state(svc, rec.id), 30) == CANCELLED
        idle.put_nowait("worker-1")
        await asyncio.sleep(0.05)  # a leaked getter would take it now
        assert idle.qsize() == 1
    finally:
        await svc.stop()


async def test_a_result_that_arrives_with_the_cancel_is_released() -> None:
    record = JobRecord(id="j1", owner="alice", kind="demo", request_id="", parameters=b"",
                       state=job_pb2.JOB_STATE_RUNNING, priority=0, attempts=1, cancel_requested=False,
                       create_us=0, start_us=0, end_us=None, result=None, error=None,
                       progress=job_pb2.Progress(), last_sequence=0)
    job = RunningJob(record, lambda *_: None)
    job._request_cancel()
    taken = asyncio.get_running_loop().create_future()
    taken.set_result("worker-1")  # the worker was handed over just as the job was cancelled
    released: list[str] = []
    try:
        await job.unless_cancelled(taken, release=released.append)
    except JobCancelled:
        pass
    else:
        raise AssertionError("a cancelled job must not carry on")
    assert released == ["worker-1"]
