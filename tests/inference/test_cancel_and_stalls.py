"""Cancel at any moment of a job's life, and workers that hang: over real loopback servers with real
worker processes. Hangs are injected with ``fault_stall_at_stage`` (the generation task freezes,
deaf to cancel, when it reports that stage), so the production path is the one exercised."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from services.inference.generation import KIND, generation_spec
from services.inference.worker.pool import _Pending
from services.inference.worker.protocol import CancelTask, GenerationWork, RunTask, TaskEvent
from services.kit.jobs import JobCancelled, RunningJob
from services.kit.jobs.record import JobRecord
from tests.fixtures.inference import running_inference, test_inference_config
from tests.inference.helpers import create, watch
from viarte.inference.v1 import generation_pb2 as G
from viarte.type.v1 import job_pb2 as S

pytestmark = pytest.mark.asyncio(loop_scope="session")

LONG = {"model": "tiny-wan", "prompt": "a long walk", "width": 128, "height": 128, "num_frames": 17,
        "num_inference_steps": 50}


def _transitions(states: list[int]) -> list[int]:
    return [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s]


def _stage(events: list[S.JobEvent], stage: int) -> list[S.JobEvent]:
    return [e for e in events if e.progress.stage == stage]


async def _cancel(stub: Any, user: Any, job_id: str) -> None:
    await stub.CancelGenerationJob(G.CancelGenerationJobRequest(id=job_id), metadata=user.metadata, timeout=30)


async def _work(service: Any, user: Any, tmp_path: Path) -> GenerationWork:
    """A real generation work: the resolved parameters of a job (cancelled while queued or not)."""
    job = await create(service.stub, user, model="tiny-wan", prompt="a boat", num_inference_steps=2)
    await _cancel(service.stub, user, job.id)
    return GenerationWork(job_id=job.id, spec=generation_spec(job.parameters), output_path=str(tmp_path / "out.mp4"))


def _running_job(job_id: str) -> RunningJob:
    record = JobRecord(id=job_id, owner="u", kind=KIND, request_id="", parameters=b"", state=S.JOB_STATE_RUNNING,
                       priority=0, attempts=1, cancel_requested=False, create_us=0, start_us=0, end_us=None,
                       result=None, error=None, progress=S.Progress(), last_sequence=0)
    return RunningJob(record, lambda *_: None)


async def test_cancel_straight_after_create_ends_cancelled(inference_service: Any, user_factory: Any) -> None:
    """Reported from the SDK: create, cancel at once (model warm). Every cancel moment from
    'before the worker got the task' onwards ends CANCELLED, without running the 50 steps."""
    user = await user_factory()
    stub = inference_service.stub
    warm = await create(stub, user, model="tiny-wan", prompt="warm up", num_inference_steps=1)
    assert (await watch(stub, user, warm.id))[1][-1].state == S.JOB_STATE_SUCCEEDED
    for delay in (0.0, 0.0, 0.0, 0.002, 0.005, 0.01, 0.02, 0.05):
        job = await create(stub, user, **LONG)
        if delay:
            await asyncio.sleep(delay)
        await _cancel(stub, user, job.id)
        _, events = await watch(stub, user, job.id, deadline_s=60)
        assert events[-1].state == S.JOB_STATE_CANCELLED, (delay, events[-1])
        steps = [e.progress.step for e in _stage(events, S.STAGE_DENOISING)]
        assert not steps or max(steps) < 50, delay
        assert not _stage(events, S.STAGE_DECODING)
    after = await create(stub, user, model="tiny-wan", prompt="next", num_inference_steps=1)
    assert (await watch(stub, user, after.id))[1][-1].state == S.JOB_STATE_SUCCEEDED  # the worker is free


async def test_worker_drops_no_cancel_that_overtakes_its_task(
    inference_service: Any, user_factory: Any, tmp_path: Path
) -> None:
    """Both orders on the pipe: a job already cancelled when it reaches the pool never runs, and a
    CancelTask the worker receives before its RunTask still cancels that task."""
    user = await user_factory()
    work = await _work(inference_service, user, tmp_path)
    pool = inference_service.parts.pool
    job = _running_job(work.job_id)
    job._request_cancel()
    events: list[TaskEvent] = []
    with pytest.raises(JobCancelled):
        await asyncio.wait_for(pool.run(work, events.append, job), 60)
    assert events == []

    worker = await pool._idle.get()  # the raw protocol, on an idle worker
    try:
        result: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        worker._pending["overtaken"] = _Pending(result, events.append)
        worker._send(CancelTask("overtaken"))
        worker._send(RunTask("overtaken", work))
        with pytest.raises(JobCancelled):
            await asyncio.wait_for(result, 60)
        assert events == []
    finally:
        pool._idle.put_nowait(worker)


async def test_frozen_worker_is_killed_on_cancel_and_on_stall(
    tmp_path: Path, auth_service: Any, storage_service: Any, user_factory: Any, tiny_models: Any
) -> None:
    """A task frozen in the model load: a cancel ends the job CANCELLED after the grace period (the
    worker is killed, the next job gets a fresh one); without a cancel the stall watchdog kills it
    and the job is retried like a crash, then fails WORKER_STALLED: never RUNNING forever."""
    config = test_inference_config(tmp_path, auth_service, storage_service, models=("tiny-wan",), max_attempts=2,
                                   fault_stall_at_stage="STAGE_MODEL_LOADING", worker_cancel_grace_seconds=1.0,
                                   worker_stall_timeout_seconds=3.0)
    user = await user_factory()
    async with running_inference(config) as service:
        stub, worker = service.stub, service.parts.pool.workers[0]
        job = await create(stub, user, model="tiny-wan", prompt="a cat", num_inference_steps=2)
        await watch(stub, user, job.id, until=lambda e: e.progress.stage == S.STAGE_MODEL_LOADING, deadline_s=60)
        first_pid = worker.pid
        await _cancel(stub, user, job.id)
        _, events = await watch(stub, user, job.id, deadline_s=60)
        assert events[-1].state == S.JOB_STATE_CANCELLED
        assert not _stage(events, S.STAGE_DENOISING)

        job = await create(stub, user, model="tiny-wan", prompt="a dog", num_inference_steps=2)
        _, events = await watch(stub, user, job.id, deadline_s=120)
        assert _transitions([e.state for e in events]) == [S.JOB_STATE_QUEUED, S.JOB_STATE_RUNNING,
                                                          S.JOB_STATE_QUEUED, S.JOB_STATE_RUNNING,
                                                          S.JOB_STATE_FAILED]
        assert events[-1].error.reason == "WORKER_STALLED" and events[-1].error.code == "INTERNAL"
        assert len(_stage(events, S.STAGE_MODEL_LOADING)) == 2  # each attempt on a fresh worker
        assert worker.restarts >= 2 and worker.pid != first_pid
        done = (await stub.GetGenerationJob(G.GetGenerationJobRequest(id=job.id), metadata=user.metadata)).job
        assert done.status.attempts == 2


async def test_cancel_during_encode_stops_before_the_upload(
    tmp_path: Path, auth_service: Any, storage_service: Any, user_factory: Any, tiny_models: Any
) -> None:
    """The encoder pauses on its first frame (as a long encode would); a cancel then stops it at the
    next frame, not after the encode and the upload (the grace period is long: no kill helps)."""
    config = test_inference_config(tmp_path, auth_service, storage_service, models=("tiny-wan",),
                                   fault_stall_at_stage="STAGE_ENCODING", fault_stall_seconds=3.0,
                                   worker_cancel_grace_seconds=120.0)
    user = await user_factory()
    async with running_inference(config) as service:
        stub = service.stub
        job = await create(stub, user, model="tiny-wan", prompt="a cat", num_inference_steps=2)
        _, head = await watch(stub, user, job.id, until=lambda e: e.progress.stage == S.STAGE_ENCODING, deadline_s=60)
        await _cancel(stub, user, job.id)
        _, events = await watch(stub, user, job.id, after=head[-1].sequence, deadline_s=60)
        assert events[-1].state == S.JOB_STATE_CANCELLED, events[-1]
        assert not _stage(events, S.STAGE_UPLOADING)
        assert len(_stage(head + events, S.STAGE_ENCODING)) < 9
        assert service.parts.pool.workers[0].restarts == 0  # stopped by the task itself
