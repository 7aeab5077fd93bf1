"""The generation job's auto face swap, as the inference worker calls it (real TaskContext)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from services.inference.config import InferenceConfig
from services.inference.faceswap import worker as faceswap_worker
from services.inference.faceswap.engine import FaceSwapEngine
from services.inference.worker.config import WorkerConfig
from services.inference.worker.context import TaskContext
from services.inference.worker.protocol import FaceSwapInputs, TaskCancelled, WorkerSetup
from tests.faceswap.helpers import face_image, image_bytes
from viarte.inference.v1 import face_swap_pb2
from viarte.type.v1 import job_pb2


def _ctx(engine: FaceSwapEngine, sent: list) -> TaskContext:
    return TaskContext("task-1", WorkerSetup(), sent.append, {faceswap_worker.ENGINE_RESOURCE: engine})


def _options(**kw: object) -> FaceSwapInputs:
    opts = face_swap_pb2.FaceSwapOptions(source_face_asset_id="src", **kw)
    return FaceSwapInputs(opts.SerializeToString(), image_bytes(face_image(96, 96, seed=2)), None)


def test_swaps_generated_frames_with_face_swap_stage(engine: FaceSwapEngine) -> None:
    frames = np.stack([face_image(64, 64, seed=1, face=i != 2) for i in range(4)])
    sent: list = []
    out, result_bytes = faceswap_worker.swap_frames(_ctx(engine, sent), frames, _options())
    result = face_swap_pb2.FaceSwapResult.FromString(result_bytes)
    assert (result.frame_count, result.frames_swapped, result.frames_without_face) == (4, 3, 1)
    assert len(out) == 4 and out[0].shape == (64, 64, 3) and not np.array_equal(out[0], frames[0])
    assert np.array_equal(out[2], frames[2])
    progress = [job_pb2.Progress.FromString(e.progress) for e in sent]
    assert [(p.stage, p.frame, p.total_frames) for p in progress] == [(job_pb2.STAGE_FACE_SWAP, i, 4) for i in range(1, 5)]


def test_cancel_and_no_face_in_source(engine: FaceSwapEngine) -> None:
    frames = np.stack([face_image(64, 64, seed=1)] * 3)
    ctx = _ctx(engine, [])
    ctx._cancel.set()
    with pytest.raises(TaskCancelled):
        faceswap_worker.swap_frames(ctx, frames, _options())
    opts = replace(_options(), source=image_bytes(face_image(96, 96, face=False)))
    with pytest.raises(Exception) as info:
        faceswap_worker.swap_frames(_ctx(engine, []), frames, opts)
    assert getattr(info.value, "reason", "") == "NO_FACE_IN_SOURCE"


def test_face_settings_follow_the_inference_config() -> None:
    config = InferenceConfig(face_models_dir="/models/faces", face_pack="antelopev2", face_det_size=480, face_use_tiny=True)
    settings = config.worker  # what every device worker receives, face models included
    assert (settings.face_models_dir, settings.face_pack, settings.face_det_size, settings.face_use_tiny) == (
        "/models/faces", "antelopev2", 480, True)
    assert WorkerConfig().face_pack == "buffalo_l"  # defaults when absent
