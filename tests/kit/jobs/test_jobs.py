"""The shared job pattern on a real SQLite database, with in-process executors."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from services.kit.db import make_engine, upgrade
from services.kit.errors import ServiceError
from services.kit.jobs import (
    CANCELLED,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    HandlerExecutor,
    InvalidTransition,
    JobCancelled,
    JobConfig,
    JobRecord,
    JobService,
    RetryableJobError,
    RunningJob,
    check_transition,
)
from services.kit.jobs.store import JobStore
from viarte.type.v1 import job_pb2

MIGRATIONS = Path(__file__).parent / "migrations"


def _engine(tmp_path: Path, name: str = "jobs.db"):  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path / name}")
    upgrade(engine, MIGRATIONS)
    return engine


class Gate:
    """A handler whose jobs emit `steps` events and then wait for the test to release them."""

    def __init__(self, steps: int = 3, preview: bool = False) -> None:
        self.steps = steps
        self.preview = preview
        self.started: asyncio.Queue[str] = asyncio.Queue()
        self.release = asyncio.Event()
        self.seen_attempts: list[int] = []

    async def __call__(self, job: RunningJob) -> bytes:
        self.seen_attempts.append(job.attempt)
        await self.started.put(job.id)
        for i in range(1, self.steps + 1):
            job.emit(job_pb2.Progress(stage=job_pb2.STAGE_DENOISING, step=i, total_steps=self.steps))
            if self.preview:
                job.emit(job_pb2.Progress(stage=job_pb2.STAGE_DENOISING, step=i, preview_jpeg=b"x" * 10),
                         droppable=True)
        release = asyncio.create_task(self.release.wait())
        cancelled = asyncio.create_task(job.wait_cancelled())
        await asyncio.wait({release, cancelled}, return_when=asyncio.FIRST_COMPLETED)
        release.cancel()
        cancelled.cancel()
        job.raise_if_cancelled()
        return b"result:" + job.parameters


async def _service(tmp_path: Path, handler: Callable[..., object], **settings: int) -> JobService:
    svc = JobService(_engine(tmp_path), HandlerExecutor({"demo": handler}, slots=1),  # type: ignore[dict-item]
                     JobConfig(**settings))  # type: ignore[arg-type]
    await svc.start()
    return svc


async def _collect(svc: JobService, owner: str, job_id: str, after: int = 0) -> list[object]:
    return [item async for item in svc.watch(owner, "demo", job_id, after)]


def test_state_machine_terminal_states_never_change() -> None:
    check_transition(QUEUED, RUNNING)
    check_transition(RUNNING, QUEUED)
    for terminal in (SUCCEEDED, FAILED, CANCELLED):
        for new in (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED):
            with pytest.raises(InvalidTransition):
                check_transition(terminal, new)
    with pytest.raises(InvalidTransition):
        check_transition(QUEUED, SUCCEEDED)


async def test_job_runs_and_watch_replays_then_follows(tmp_path: Path) -> None:
    gate = Gate(steps=3)
    svc = await _service(tmp_path, gate)
    try:
        rec = await svc.create("alice", "demo", b"p1", request_id="r1")
        await asyncio.wait_for(gate.started.get(), 5)
        watcher = asyncio.create_task(_collect(svc, "alice", rec.id))
        await asyncio.sleep(0.05)
        gate.release.set()
        items = await asyncio.wait_for(watcher, 5)
        first, events = items[0], items[1:]
        assert isinstance(first, JobRecord)
        seqs = [e.sequence for e in events]  # type: ignore[attr-defined]
        assert seqs == list(range(1, len(seqs) + 1))
        states = [e.state for e in events]  # type: ignore[attr-defined]
        assert states[0] == QUEUED and states[1] == RUNNING and states[-1] == SUCCEEDED
        steps = [e.progress.step for e in events if e.progress.stage == job_pb2.STAGE_DENOISING]  # type: ignore[attr-defined]
        assert steps == [1, 2, 3]
        done = await svc.get("alice", "demo", rec.id)
        assert done.state == SUCCEEDED and done.result == b"result:p1" and done.attempts == 1
        status = done.status()
        assert status.last_sequence == seqs[-1] and status.end_time.seconds > 0
        assert "denoising" in status.stage_durations
        # Reconnect after sequence 3: exactly the rest, current state first.
        resumed = await _collect(svc, "alice", rec.id, after=3)
        assert [e.sequence for e in resumed[1:]] == seqs[3:]  # type: ignore[attr-defined]
        # Idempotent create returns the same job, nothing new queued.
        again = await svc.create("alice", "demo", b"other", request_id="r1")
        assert again.id == rec.id and again.parameters == b"p1"
        # Another owner or kind: NOT_FOUND.
        for owner, kind in (("bob", "demo"), ("alice", "other")):
            with pytest.raises(ServiceError) as err:
                await svc.get(owner, kind, rec.id)
            assert err.value.code == grpc.StatusCode.NOT_FOUND and err.value.reason == "JOB_NOT_FOUND"
    finally:
        gate.release.set()
        await svc.stop()


async def test_cancel_queued_and_running_and_priorities(tmp_path: Path) -> None:
    gate = Gate(steps=1)
    svc = await _service(tmp_path, gate)
    try:
        running = await svc.create("alice", "demo", b"a")
        assert await asyncio.wait_for(gate.started.get(), 20) == running.id
        low = await svc.create("alice", "demo", b"low", priority=0)
        high = await svc.create("alice", "demo", b"high", priority=5)
        doomed = await svc.create("alice", "demo", b"doomed", priority=9)
        assert await svc.queue_position(doomed.id) == 1 and await svc.queue_position(high.id) == 2
        assert (low.progress.queue_position, high.progress.queue_position, doomed.progress.queue_position) == (1, 1, 1)
        cancelled = await svc.cancel("alice", "demo", doomed.id)
        assert cancelled.state == CANCELLED
        # Watchers of a queued job see it move (1 → 3 as higher priorities arrive → 2 after the cancel).
        positions: list[int] = []
        for _ in range(500):  # up to 10 s: the position events are written by a background task
            events = svc._store.events(low.id, 0)
            positions = [e.progress.queue_position for e in events if e.state == QUEUED]
            if positions[-1:] == [2]:
                break
            await asyncio.sleep(0.02)
        assert positions[0] == 1 and positions[-1] == 2 and set(positions) <= {1, 2, 3}  # bursts coalesce
        assert (await svc.cancel("alice", "demo", doomed.id)).state == CANCELLED  # unchanged
        flagged = await svc.cancel("alice", "demo", running.id)
        assert flagged.state == RUNNING and flagged.cancel_requested
        items = await asyncio.wait_for(_collect(svc, "alice", running.id), 20)
        assert items[-1].state == CANCELLED  # type: ignore[union-attr]
        # The queue resumes: higher priority first.
        assert await asyncio.wait_for(gate.started.get(), 20) == high.id
        gate.release.set()
        assert await asyncio.wait_for(gate.started.get(), 20) == low.id
        with pytest.raises(ServiceError) as err:
            await svc.cancel("bob", "demo", low.id)
        assert err.value.code == grpc.StatusCode.NOT_FOUND
    finally:
        gate.release.set()
        await svc.stop()


async def test_queue_limit_and_pagination(tmp_path: Path) -> None:
    gate = Gate(steps=0)
    svc = await _service(tmp_path, gate, max_queued=3)
    try:
        first = await svc.create("alice", "demo", b"0")
        await asyncio.wait_for(gate.started.get(), 5)  # running: not counted as queued
        ids = [first.id] + [(await svc.create("alice", "demo", str(i).encode())).id for i in range(1, 4)]
        with pytest.raises(ServiceError) as err:
            await svc.create("alice", "demo", b"overflow")
        assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and err.value.reason == "QUEUE_FULL"
        assert err.value.retry_after and err.value.retry_after > 0
        page1, token = await svc.list("alice", "demo", page_size_requested=3)
        page2, token2 = await svc.list("alice", "demo", page_size_requested=3, page_token=token)
        assert [r.id for r in page1 + page2] == ids[::-1] and token2 == ""
        queued, _ = await svc.list("alice", "demo", state=QUEUED)
        assert {r.id for r in queued} == set(ids[1:])
        assert (await svc.list("bob", "demo"))[0] == []
        with pytest.raises(ServiceError) as err:
            await svc.list("alice", "demo", state=QUEUED, page_token=token)
        assert err.value.reason == "INVALID_PAGE_TOKEN"
    finally:
        gate.release.set()
        await svc.stop()


async def test_slow_watcher_misses_no_state_change(tmp_path: Path) -> None:
    gate = Gate(steps=50, preview=True)
    svc = await _service(tmp_path, gate, watcher_buffer=4)
    try:
        rec = await svc.create("alice", "demo", b"x")
        seen: list[job_pb2.JobEvent] = []
        async for item in svc.watch("alice", "demo", rec.id):
            if isinstance(item, job_pb2.JobEvent):
                seen.append(item)
                if item.sequence == 2:
                    gate.release.set()
                await asyncio.sleep(0.002)  # slower than the producer
        seqs = [e.sequence for e in seen]
        assert seqs == sorted(set(seqs))
        assert seen[-1].state == SUCCEEDED
        steps = [e.progress.step for e in seen if e.progress.stage == job_pb2.STAGE_DENOISING
                 and not e.progress.preview_jpeg]
        assert steps == list(range(1, 51))
    finally:
        await svc.stop()


async def test_recovery_requeues_running_jobs_then_gives_up(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    store = JobStore(engine)
    progress = job_pb2.Progress(stage=job_pb2.STAGE_QUEUED)
    ids = []
    for attempts in (0, 2):  # attempts before the "crash"
        _, rec = store.create(owner="alice", kind="demo", request_id="", parameters=b"p", priority=0,
                              now_us=1, progress=progress)
        for start in range(attempts + 1):  # earlier starts that died; the last one left it RUNNING
            store.transition(rec.id, RUNNING, now_us=2, count_attempt=True)
            if start < attempts:
                store.transition(rec.id, QUEUED, now_us=3)
        ids.append(rec.id)
    gate = Gate(steps=1)
    gate.release.set()
    svc = JobService(engine, HandlerExecutor({"demo": gate}), JobConfig(max_attempts=3))
    await svc.start()
    try:
        items = await asyncio.wait_for(_collect(svc, "alice", ids[0]), 5)
        states = [i.state for i in items[1:]]  # type: ignore[union-attr]
        assert states[-1] == SUCCEEDED and QUEUED in states[2:]
        assert (await svc.get("alice", "demo", ids[0])).attempts == 2
        gave_up = await svc.get("alice", "demo", ids[1])
        assert gave_up.state == FAILED and gave_up.error is not None and gave_up.error.reason == "WORKER_CRASHED"
    finally:
        await svc.stop()


async def test_retryable_errors_retry_then_fail(tmp_path: Path) -> None:
    calls: list[int] = []

    async def flaky(job: RunningJob) -> bytes:
        calls.append(job.attempt)
        raise RetryableJobError(ServiceError.internal("WORKER_CRASHED", "worker died"))

    async def refuses(job: RunningJob) -> bytes:
        raise ServiceError.failed_precondition("NO_FACE_IN_SOURCE", "no face")

    async def stops(job: RunningJob) -> bytes:
        raise JobCancelled(job.id)

    engine = _engine(tmp_path)
    svc = JobService(engine, HandlerExecutor({"flaky": flaky, "refuses": refuses, "stops": stops}),
                     JobConfig(max_attempts=2))
    await svc.start()
    try:
        results = {}
        for kind in ("flaky", "refuses", "stops"):
            rec = await svc.create("alice", kind, b"")
            items = [i async for i in svc.watch("alice", kind, rec.id)]
            results[kind] = (await svc.get("alice", kind, rec.id), items)
        flaky_rec, _ = results["flaky"]
        assert calls == [1, 2] and flaky_rec.state == FAILED and flaky_rec.error.reason == "WORKER_CRASHED"  # type: ignore[union-attr]
        refused, items = results["refuses"]
        assert refused.state == FAILED and refused.error.code == "FAILED_PRECONDITION"  # type: ignore[union-attr]
        assert items[-1].error.reason == "NO_FACE_IN_SOURCE"  # type: ignore[union-attr]
        assert results["stops"][0].state == CANCELLED
    finally:
        await svc.stop()


async def test_an_os_error_is_retried_then_fails_io_failed_never_internal(tmp_path: Path) -> None:
    """A handler's unexpected OSError (a file another attempt removed, a full disk) is retried like a
    worker crash and then fails UNAVAILABLE IO_FAILED with the errno's name; the path and the
    exception's class stay in the log. It used to end FAILED INTERNAL."""
    calls: list[int] = []

    async def reads_a_gone_file(job: RunningJob) -> bytes:
        calls.append(job.attempt)
        return (tmp_path / "gone" / "output.mp4").read_bytes()

    async def times_out(job: RunningJob) -> bytes:
        raise TimeoutError  # an OSError too, but no I/O failure: as before, INTERNAL

    svc = JobService(_engine(tmp_path), HandlerExecutor({"io": reads_a_gone_file, "slow": times_out}),
                     JobConfig(max_attempts=2))
    await svc.start()
    try:
        rec = await svc.create("alice", "io", b"")
        items = [i async for i in svc.watch("alice", "io", rec.id)]
        final = await svc.get("alice", "io", rec.id)
        assert calls == [1, 2] and final.state == FAILED and final.attempts == 2
        error = items[-1].error  # type: ignore[union-attr]
        assert (error.code, error.reason, dict(error.metadata)) == ("UNAVAILABLE", "IO_FAILED", {"errno": "ENOENT"})
        assert error.message == "an I/O operation on the server failed: No such file or directory"
        slow = await svc.create("alice", "slow", b"")
        [_ async for _ in svc.watch("alice", "slow", slow.id)]
        assert (await svc.get("alice", "slow", slow.id)).error.code == "INTERNAL"  # type: ignore[union-attr]
    finally:
        await svc.stop()


async def test_cancel_during_a_failing_attempt_is_not_retried(tmp_path: Path) -> None:
    attempts: list[int] = []
    started = asyncio.Event()

    async def crashes_after_cancel(job: RunningJob) -> bytes:
        attempts.append(job.attempt)
        started.set()
        await job.wait_cancelled()
        # The worker dies while the cancel is on its way: a retryable failure after a cancel.
        raise RetryableJobError(ServiceError.internal("WORKER_CRASHED", "worker died"))

    svc = JobService(_engine(tmp_path), HandlerExecutor({"k": crashes_after_cancel}), JobConfig(max_attempts=3))
    await svc.start()
    try:
        rec = await svc.create("alice", "k", b"")
        await asyncio.wait_for(started.wait(), 10)
        await svc.cancel("alice", "k", rec.id)
        items = [i async for i in svc.watch("alice", "k", rec.id)]
        final = await svc.get("alice", "k", rec.id)
        assert final.state == CANCELLED and attempts == [1]
        assert items[-1].state == job_pb2.JOB_STATE_CANCELLED  # type: ignore[union-attr]
    finally:
        await svc.stop()


async def test_placement_is_stored_per_attempt_and_shown_in_the_status(tmp_path: Path) -> None:
    """The executor records where an attempt runs (issue 15); a retry's new claim clears the old
    place until the next attempt records its own, and the last one stays on the finished job."""
    places = iter([("ray", "node-a", "gpu:0"), ("ray", "node-b", "gpu:1")])

    async def placed(job: RunningJob) -> bytes:
        executor, node, device = next(places)
        await job.place(executor=executor, node=node, device=device)
        if job.attempt == 1:
            raise RetryableJobError(ServiceError.internal("WORKER_CRASHED", "the node died"))
        return b"ok"

    engine = _engine(tmp_path)
    svc = JobService(engine, HandlerExecutor({"demo": placed}), JobConfig(max_attempts=2))
    await svc.start()
    try:
        rec = await svc.create("alice", "demo", b"")
        assert rec.status().HasField("placement") is False
        await _collect(svc, "alice", rec.id)
        done = await svc.get("alice", "demo", rec.id)
        assert done.state == SUCCEEDED and done.attempts == 2
        assert done.status().placement == job_pb2.Placement(executor="ray", node="node-b", device="gpu:1")
    finally:
        await svc.stop()


def test_a_claim_skips_jobs_this_replica_still_has_a_task_for(tmp_path: Path) -> None:
    """A replica that lost a lease while its database was away may still run the old attempt when
    another replica re-queues the job: claiming it again would give one job id two tasks."""
    store = JobStore(_engine(tmp_path))
    progress = job_pb2.Progress(stage=job_pb2.STAGE_QUEUED)
    _, older = store.create(owner="alice", kind="demo", request_id="", parameters=b"p", priority=0,
                            now_us=1, progress=progress)
    _, newer = store.create(owner="alice", kind="demo", request_id="", parameters=b"p", priority=0,
                            now_us=2, progress=progress)
    started, _, _ = store.claim_next("replica-a", 10_000_000, 3, busy=(older.id,))
    assert started is not None and started.record.id == newer.id  # the older one is next otherwise
    assert store.claim_next("replica-a", 10_000_000, 4, busy=(older.id,)) == (None, False, False)
    started, _, _ = store.claim_next("replica-a", 10_000_000, 5)
    assert started is not None and started.record.id == older.id


def test_one_batch_of_events_through_several_stages_counts_each_stage_its_own_time(tmp_path: Path) -> None:
    """A worker's events reach the store in batches. One batch can move through several stages (a
    short decode between denoising and encoding, as the fresh suite's generation test saw): each
    stage gets its own time, none is folded into the stage the batch started in."""
    store = JobStore(_engine(tmp_path))
    _, job = store.create(owner="alice", kind="demo", request_id="", parameters=b"p", priority=0, now_us=1,
                          progress=job_pb2.Progress(stage=job_pb2.STAGE_QUEUED))
    t0, ms = 1_000_000, 1000
    started, _, _ = store.claim_next("replica-a", 10_000_000, t0)
    assert started is not None and started.record.id == job.id
    progress = job_pb2.Progress
    assert store.append(job.id, [(progress(stage=job_pb2.STAGE_DENOISING, step=1), t0 + 100 * ms, None)])
    assert store.append(job.id, [
        (progress(stage=job_pb2.STAGE_DENOISING, step=2), t0 + 300 * ms, None),
        (progress(stage=job_pb2.STAGE_DECODING, frame=1), t0 + 400 * ms, None),
        (progress(stage=job_pb2.STAGE_DECODING, frame=2), t0 + 450 * ms, None),
        (progress(stage=job_pb2.STAGE_ENCODING, frame=1), t0 + 600 * ms, None),
    ])
    assert store.transition(job.id, SUCCEEDED, now_us=t0 + 1000 * ms, progress=progress(message="done"), result=b"r")
    done = store.get(job.id)
    assert done is not None
    durations = {k: v for k, v in done.stage_durations.items() if k in ("denoising", "decoding", "encoding")}
    assert durations == pytest.approx({"denoising": 0.3, "decoding": 0.2, "encoding": 0.4})
