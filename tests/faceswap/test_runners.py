"""The worker-side work and its runners (a thread, and a real spawned worker process)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from services.inference.faceswap.engine import FaceSwapCancelled
from services.inference.faceswap.pipeline import Progress
from services.inference.faceswap.settings import FaceSwapConfig
from services.inference.faceswap.task import FaceSwapWork, ProcessRunner, ThreadRunner
from services.kit.errors import ServiceError
from tests.faceswap.helpers import face_image, image_bytes, make_video
from viarte.inference.v1 import face_swap_pb2


def _work(tmp: Path, *, source_face: bool = True, frames: int = 6, video: bool = True) -> FaceSwapWork:
    source = tmp / "source.png"
    source.write_bytes(image_bytes(face_image(96, 96, seed=2, face=source_face)))
    if video:
        target = make_video(tmp / "target.mp4", [face_image(96, 64, seed=1, face=i % 2 == 0) for i in range(frames)])
    else:
        target = tmp / "target.jpg"
        target.write_bytes(image_bytes(face_image(96, 64, seed=1), "JPEG"))
    options = face_swap_pb2.FaceSwapOptions(source_face_asset_id="s", selector=face_swap_pb2.FACE_SELECTOR_MODE_ALL)
    return FaceSwapWork(str(target), video, str(source), str(tmp), options.SerializeToString())


async def test_thread_runner_video(face_settings: FaceSwapConfig, tmp_path: Path) -> None:
    runner = ThreadRunner(face_settings)
    seen: list[Progress] = []
    outcome = await runner.run(_work(tmp_path), seen.append, lambda: False)
    assert (outcome.frame_count, outcome.frames_swapped, outcome.frames_without_face) == (6, 3, 3)
    assert outcome.content_type == "video/mp4" and outcome.output_path.endswith(".mp4")
    assert [p.frame for p in seen if p.stage == "face_swap"] == [1, 2, 3, 4, 5, 6]


async def test_thread_runner_image_and_no_face(face_settings: FaceSwapConfig, tmp_path: Path) -> None:
    runner = ThreadRunner(face_settings)
    outcome = await runner.run(_work(tmp_path, video=False), lambda p: None, lambda: False)
    assert outcome.content_type == "image/jpeg" and outcome.faces_swapped == 1
    (tmp_path / "b").mkdir()
    with pytest.raises(ServiceError) as info:
        await runner.run(_work(tmp_path / "b", source_face=False), lambda p: None, lambda: False)
    assert info.value.reason == "NO_FACE_IN_SOURCE"


async def test_process_runner(face_settings: FaceSwapConfig, tmp_path: Path) -> None:
    """One spawned worker: the models load once there; errors and cancels come back as such."""
    runner = ProcessRunner(face_settings)
    try:
        seen: list[Progress] = []
        outcome = await runner.run(_work(tmp_path), seen.append, lambda: False)
        assert (outcome.frame_count, outcome.frames_swapped) == (6, 3)
        await asyncio.sleep(0.1)
        assert {p.stage for p in seen} >= {"face_swap"}
        (tmp_path / "b").mkdir()
        with pytest.raises(ServiceError) as info:
            await runner.run(_work(tmp_path / "b", source_face=False), lambda p: None, lambda: False)
        assert (info.value.code.name, info.value.reason) == ("FAILED_PRECONDITION", "NO_FACE_IN_SOURCE")
        (tmp_path / "c").mkdir()
        with pytest.raises(FaceSwapCancelled):
            await runner.run(_work(tmp_path / "c", frames=60), lambda p: None, lambda: True)
    finally:
        await runner.close()


async def test_process_runner_without_models_reports_face_models_unavailable(tmp_path: Path) -> None:
    runner = ProcessRunner(FaceSwapConfig(face_models_dir=str(tmp_path / "empty")))
    try:
        with pytest.raises(ServiceError) as info:
            await runner.run(_work(tmp_path, video=False), lambda p: None, lambda: False)
        assert (info.value.code.name, info.value.reason) == ("FAILED_PRECONDITION", "FACE_MODELS_UNAVAILABLE")
    finally:
        await runner.close()
