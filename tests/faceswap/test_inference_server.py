"""Face swap and the assistant as assembled in the real inference server (`build_inference`)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from tests.faceswap.helpers import face_image, image_bytes
from viarte.errors import from_rpc_error
from viarte.inference.v1 import assistant_pb2, assistant_pb2_grpc, face_swap_pb2, face_swap_pb2_grpc
from viarte.type.v1 import job_pb2

F = face_swap_pb2


@pytest.fixture
def inference(inference_service: Any) -> Any:
    """The shared inference server (its config uses the tiny face models)."""
    return inference_service


async def test_face_swap_job_on_the_inference_server(inference: Any, storage_service: Any, user_factory: Any) -> None:
    user = await user_factory()
    target = await storage_service.upload(user, image_bytes(face_image(96, 96, seed=1)), "t.png", "image/png")
    source = await storage_service.upload(user, image_bytes(face_image(96, 96, seed=2)), "s.png", "image/png")
    stub = face_swap_pb2_grpc.FaceSwapServiceStub(inference.channel)
    params = F.FaceSwapParameters(target_asset_id=target, options=F.FaceSwapOptions(source_face_asset_id=source))
    job = (await stub.CreateFaceSwapJob(F.CreateFaceSwapJobRequest(parameters=params), metadata=user.metadata)).job
    async for _ in stub.WatchFaceSwapJob(F.WatchFaceSwapJobRequest(id=job.id), metadata=user.metadata, timeout=120):
        pass
    job = (await stub.GetFaceSwapJob(F.GetFaceSwapJobRequest(id=job.id), metadata=user.metadata)).job
    assert job.status.state == job_pb2.JOB_STATE_SUCCEEDED, job.status.error
    assert job.result.frames_swapped == 1
    assert (await storage_service.download(user, job.result.asset_id)).startswith(b"\x89PNG")


async def test_assistant_without_key_on_the_inference_server(inference: Any, user_factory: Any) -> None:
    user = await user_factory()
    stub = assistant_pb2_grpc.AssistantServiceStub(inference.channel)
    status = await stub.GetAssistantStatus(assistant_pb2.GetAssistantStatusRequest(), metadata=user.metadata)
    assert not status.available
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.EnhancePrompt(assistant_pb2.EnhancePromptRequest(idea="a cat"), metadata=user.metadata)
    assert from_rpc_error(info.value).reason == "ASSISTANT_NOT_CONFIGURED"


async def test_generation_with_auto_face_swap(inference: Any, storage_service: Any, user_factory: Any) -> None:
    """A generation job with face_swap runs the swap on its frames as its own stage (frame i of n)."""
    from viarte.inference.v1 import generation_pb2 as G

    user = await user_factory()
    source = await storage_service.upload(user, image_bytes(face_image(96, 96, seed=2)), "s.png", "image/png")
    params = G.GenerationParameters(
        model="tiny-modelscope", task=G.TASK_TEXT_TO_VIDEO, prompt="a face", num_inference_steps=2, num_frames=4,
        seed=3, face_swap=F.FaceSwapOptions(source_face_asset_id=source),
    )
    stub = inference.stub
    job = (await stub.CreateGenerationJob(G.CreateGenerationJobRequest(parameters=params), metadata=user.metadata)).job
    events = []
    async for item in stub.WatchGenerationJob(G.WatchGenerationJobRequest(id=job.id), metadata=user.metadata, timeout=300):
        if item.WhichOneof("payload") == "event":
            events.append(item.event)
    job = (await stub.GetGenerationJob(G.GetGenerationJobRequest(id=job.id), metadata=user.metadata)).job
    assert job.status.state == job_pb2.JOB_STATE_SUCCEEDED, job.status.error
    swap = [(e.progress.frame, e.progress.total_frames) for e in events if e.progress.stage == job_pb2.STAGE_FACE_SWAP]
    assert swap == [(i, 4) for i in range(1, 5)]
    stages = [e.progress.stage for e in events]
    assert stages.index(job_pb2.STAGE_DECODING) < stages.index(job_pb2.STAGE_FACE_SWAP) < stages.index(job_pb2.STAGE_ENCODING)
    fs = job.result.face_swap
    assert fs.frame_count == 4 and fs.frames_swapped + fs.frames_without_face == 4
