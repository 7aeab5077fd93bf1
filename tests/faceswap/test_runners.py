"""The worker-side work and its runners (a thread, a dedicated spawned process)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from services.inference.faceswap.config import FaceSwapConfig
from services.inference.faceswap.engine import FaceSwapCancelled
from services.inference.faceswap.handler import KIND
from services.inference.worker.protocol import FaceSwapWork
from services.kit.errors import ServiceError
from services.kit.jobs import JobRecord, RunningJob
from tests.faceswap.helpers import face_image, image_bytes, make_video
from tests.faceswap.runners import ProcessRunner, ThreadRunner
from viarte.inference.v1 import face_swap_pb2
from viarte.type.v1 import job_pb2


def _work(tmp: Path, *, source_face: bool = True, frames: int = 6, video: bool = True) -> FaceSwapWork:
    tmp.mkdir(parents=True, exist_ok=True)
    source = tmp / "source.png"
    source.write_bytes(image_bytes(face_image(96, 96, seed=2, face=source_face)))
    if video:
        target = make_video(tmp / "target.mp4", [face_image(96, 64, seed=1, face=i % 2 == 0) for i in range(frames)])
    else:
        target = tmp / "target.jpg"
        target.write_bytes(image_bytes(face_image(96, 64, seed=1), "JPEG"))
    options = face_swap_pb2.FaceSwapOptions(source_face_asset_id="s", selector=face_swap_pb2.FACE_SELECTOR_MODE_ALL)
    ctype = "video/mp4" if video else "image/jpeg"
    return FaceSwapWork(str(target), video, str(source), str(tmp), options.SerializeToString(), ctype)


def _job(events: list[job_pb2.Progress], cancelled: bool = False) -> RunningJob:
    record = JobRecord(
        id="job-1", owner="u", kind=KIND, request_id="", parameters=b"", state=job_pb2.JOB_STATE_RUNNING, priority=0,
        attempts=1, cancel_requested=False, create_us=0, start_us=None, end_us=None, result=None, error=None,
        progress=job_pb2.Progress(), last_sequence=0,
    )
    job = RunningJob(record, lambda progress, droppable, time_us=None: events.append(progress))
    if cancelled:
        job._request_cancel()
    return job


def _frames(events: list[job_pb2.Progress]) -> list[int]:
    return [p.frame for p in events if p.stage == job_pb2.STAGE_FACE_SWAP]


async def test_thread_runner_video(face_settings: FaceSwapConfig, tmp_path: Path) -> None:
    events: list[job_pb2.Progress] = []
    outcome = await ThreadRunner(face_settings).run(_work(tmp_path), _job(events))
    await asyncio.sleep(0)  # events hop back onto the loop
    assert (outcome.frame_count, outcome.frames_swapped, outcome.frames_without_face) == (6, 3, 3)
    assert outcome.content_type == "video/mp4" and outcome.output_path.endswith(".mp4")
    frames = _frames(events)
    assert frames[0] == 1 and frames[-1] == 6 and frames == sorted(frames)  # throttled, first and last kept
    assert events[-1].stage == job_pb2.STAGE_ENCODING


async def test_thread_runner_image_and_no_face(face_settings: FaceSwapConfig, tmp_path: Path) -> None:
    runner = ThreadRunner(face_settings)
    outcome = await runner.run(_work(tmp_path, video=False), _job([]))
    assert outcome.content_type == "image/jpeg" and outcome.faces_swapped == 1
    with pytest.raises(ServiceError) as info:
        await runner.run(_work(tmp_path / "b", source_face=False), _job([]))
    assert info.value.reason == "NO_FACE_IN_SOURCE"


async def test_process_runner(face_settings: FaceSwapConfig, tmp_path: Path) -> None:
    """One spawned worker: the models load once there; errors and cancels come back as such."""
    runner = ProcessRunner(face_settings)
    try:
        events: list[job_pb2.Progress] = []
        outcome = await runner.run(_work(tmp_path), _job(events))
        assert (outcome.frame_count, outcome.frames_swapped) == (6, 3)
        await asyncio.sleep(0.1)
        assert _frames(events)[-1] == 6
        with pytest.raises(ServiceError) as info:
            await runner.run(_work(tmp_path / "b", source_face=False), _job([]))
        assert (info.value.code.name, info.value.reason) == ("FAILED_PRECONDITION", "NO_FACE_IN_SOURCE")
        with pytest.raises(FaceSwapCancelled):
            await runner.run(_work(tmp_path / "c", frames=60), _job([], cancelled=True))
    finally:
        await runner.close()


async def test_process_runner_without_models_reports_face_models_unavailable(tmp_path: Path) -> None:
    runner = ProcessRunner(FaceSwapConfig(face_models_dir=str(tmp_path / "empty")))
    try:
        with pytest.raises(ServiceError) as info:
            await runner.run(_work(tmp_path, video=False), _job([]))
        assert (info.value.code.name, info.value.reason) == ("FAILED_PRECONDITION", "FACE_MODELS_UNAVAILABLE")
    finally:
        await runner.close()


# PoolRunner (the inference device workers) is exercised through the assembled server in
# test_inference_server.py.
