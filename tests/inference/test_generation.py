"""Generation jobs end to end on tiny models over real loopback servers (auth, storage, inference
with its worker process)."""

from __future__ import annotations

import asyncio
import io
import uuid
from typing import Any

import grpc
import pytest
from PIL import Image

from services.inference.engine.encode import decode_mp4
from tests.inference.helpers import create, details, png, watch
from viarte.inference.v1 import generation_pb2 as G
from viarte.type.v1 import job_pb2

pytestmark = pytest.mark.asyncio(loop_scope="session")

S = job_pb2


def _stages(events: list[job_pb2.JobEvent], stage: int, attr: str) -> list[int]:
    return [getattr(e.progress, attr) for e in events if e.progress.stage == stage and not e.progress.preview_jpeg]


async def _frames(storage: Any, user: Any, asset_id: str, width: int, height: int) -> Any:
    data = await storage.download(user, asset_id)
    return await asyncio.to_thread(decode_mp4, data, width, height)


async def test_list_models(inference_service: Any, user_factory: Any) -> None:
    user = await user_factory()
    models = {m.id: m for m in (await inference_service.stub.ListModels(G.ListModelsRequest(),
                                                                        metadata=user.metadata)).models}
    assert set(models) == {"tiny-modelscope", "tiny-wan", "tiny-svd"}
    wan = models["tiny-wan"]
    assert wan.family == G.MODEL_FAMILY_WAN and wan.tiny and wan.source == "tiny:wan"
    assert set(wan.tasks) == {G.TASK_TEXT_TO_VIDEO, G.TASK_IMAGE_TO_VIDEO}
    assert wan.limits.frames_multiple == 4 and wan.limits.size_multiple == 32
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await inference_service.stub.ListModels(G.ListModelsRequest())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_text_to_video_streams_steps_frames_and_stores_mp4(
    inference_service: Any, storage_service: Any, user_factory: Any
) -> None:
    user = await user_factory()
    stub = inference_service.stub
    job = await create(stub, user, model="tiny-wan", prompt="a red cat runs on the beach", num_inference_steps=4,
                       preview_every_n_steps=2, seed=7)
    assert job.status.state in (S.JOB_STATE_QUEUED, S.JOB_STATE_RUNNING)
    assert job.parameters.width == 64 and job.parameters.num_frames == 9 and job.parameters.seed == 7
    first, events = await watch(stub, user, job.id)
    assert first.id == job.id
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    states = [e.state for e in events]
    assert states[0] == S.JOB_STATE_QUEUED and states[-1] == S.JOB_STATE_SUCCEEDED, events[-1]
    # Step 0 first: announced on the device before the prompt's encoding and the first step, so a
    # client sees the job start denoising as soon as it is dispatched (the encode is not dispatch).
    assert _stages(events, S.STAGE_DENOISING, "step") == [0, 1, 2, 3, 4]
    denoising = [e for e in events if e.progress.stage == S.STAGE_DENOISING]
    assert denoising[0].state == S.JOB_STATE_RUNNING and denoising[0].progress.total_steps == 4
    assert not denoising[0].progress.preview_jpeg and denoising[0].time.ToMicroseconds() < denoising[1].time.ToMicroseconds()
    assert _stages(events, S.STAGE_DECODING, "frame") == list(range(1, 10))
    assert _stages(events, S.STAGE_ENCODING, "frame") == list(range(1, 10))
    assert any(e.progress.stage == S.STAGE_UPLOADING for e in events)
    previews = [e.progress.preview_jpeg for e in events if e.progress.preview_jpeg]
    assert len(previews) == 2 and all(Image.open(io.BytesIO(p)).format == "JPEG" for p in previews)
    fractions = [e.progress.fraction for e in events if e.progress.fraction]
    assert fractions == sorted(fractions)

    done = (await stub.GetGenerationJob(G.GetGenerationJobRequest(id=job.id), metadata=user.metadata)).job
    assert done.status.state == S.JOB_STATE_SUCCEEDED and done.status.attempts == 1
    assert done.status.last_sequence == events[-1].sequence
    assert {"denoising", "decoding", "encoding"} <= set(done.status.stage_durations)
    result = done.result
    assert (result.frame_count, result.fps, result.seed, result.width, result.device) == (9, 8, 7, 64, "cpu")
    assert result.memory_policy.startswith("bf16")
    frames = await _frames(storage_service, user, result.video_asset_id, 64, 64)
    assert frames.shape == (9, 64, 64, 3) and frames.std() > 1.0
    listed = await stub.ListGenerationJobs(G.ListGenerationJobsRequest(), metadata=user.metadata)
    assert [j.id for j in listed.jobs] == [job.id]
    models = (await stub.ListModels(G.ListModelsRequest(), metadata=user.metadata)).models
    assert {m.id for m in models if m.loaded} >= {"tiny-wan"}


@pytest.mark.parametrize(("model", "task", "frames"), [
    ("tiny-svd", G.TASK_IMAGE_TO_VIDEO, 8),
    ("tiny-wan", G.TASK_IMAGE_TO_VIDEO, 9),
    ("tiny-modelscope", G.TASK_TEXT_TO_VIDEO, 8),
])
async def test_each_family_end_to_end(
    inference_service: Any, storage_service: Any, user_factory: Any, model: str, task: int, frames: int
) -> None:
    user = await user_factory()
    params: dict[str, Any] = {"model": model, "task": task, "num_inference_steps": 2}
    if task == G.TASK_IMAGE_TO_VIDEO:
        params["image_asset_id"] = await storage_service.upload(user, png(96, 80), "still.png", "image/png")
    if model != "tiny-svd":
        params["prompt"] = "a dog in the city at night"
    job = await create(inference_service.stub, user, **params)
    _, events = await watch(inference_service.stub, user, job.id)
    assert events[-1].state == S.JOB_STATE_SUCCEEDED, events[-1]
    if task == G.TASK_IMAGE_TO_VIDEO:
        assert any(e.progress.stage == S.STAGE_FETCHING_INPUTS for e in events)
    assert _stages(events, S.STAGE_DENOISING, "step") == [0, 1, 2]
    assert _stages(events, S.STAGE_DECODING, "frame") == list(range(1, frames + 1))
    done = (await inference_service.stub.GetGenerationJob(G.GetGenerationJobRequest(id=job.id),
                                                         metadata=user.metadata)).job
    video = await _frames(storage_service, user, done.result.video_asset_id, 64, 64)
    assert video.shape == (frames, 64, 64, 3)


async def test_same_seed_same_video_and_drawn_seed_is_reported(
    inference_service: Any, storage_service: Any, user_factory: Any
) -> None:
    user = await user_factory()
    stub = inference_service.stub
    base = {"model": "tiny-wan", "prompt": "a bird flies over the forest", "num_inference_steps": 3}
    jobs = [await create(stub, user, seed=1234, **base), await create(stub, user, seed=1234, **base),
            await create(stub, user, **base)]
    assert jobs[2].parameters.HasField("seed")  # drawn at create time and stored
    videos = []
    for job in jobs:
        _, events = await watch(stub, user, job.id)
        assert events[-1].state == S.JOB_STATE_SUCCEEDED
        done = (await stub.GetGenerationJob(G.GetGenerationJobRequest(id=job.id), metadata=user.metadata)).job
        videos.append(await _frames(storage_service, user, done.result.video_asset_id, 64, 64))
        assert done.result.seed == job.parameters.seed
    assert (videos[0] == videos[1]).all()
    assert not (videos[0] == videos[2]).all()


async def test_idempotent_create_and_isolation(inference_service: Any, user_factory: Any) -> None:
    alice, bob = await user_factory(), await user_factory()
    stub = inference_service.stub
    request_id = uuid.uuid4().hex
    a = await create(stub, alice, request_id=request_id, model="tiny-wan", prompt="a cat", num_inference_steps=1)
    again = await create(stub, alice, request_id=request_id, model="tiny-wan", prompt="another", num_inference_steps=1)
    assert again.id == a.id and again.parameters.prompt == "a cat"
    bobs = await create(stub, bob, request_id=request_id, model="tiny-wan", prompt="a dog", num_inference_steps=1)
    assert bobs.id != a.id  # request ids are per user
    for call, request in (
        (stub.GetGenerationJob, G.GetGenerationJobRequest(id=a.id)),
        (stub.CancelGenerationJob, G.CancelGenerationJobRequest(id=a.id)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(request, metadata=bob.metadata)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND and details(err.value)[0] == "JOB_NOT_FOUND"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await watch(stub, bob, a.id)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    mine = await stub.ListGenerationJobs(G.ListGenerationJobsRequest(), metadata=alice.metadata)
    assert [j.id for j in mine.jobs] == [a.id]
    for user, job in ((alice, a), (bob, bobs)):
        _, events = await watch(stub, user, job.id)
        assert events[-1].state == S.JOB_STATE_SUCCEEDED


async def test_bad_input_is_rejected_and_nothing_is_queued(
    inference_service: Any, storage_service: Any, user_factory: Any
) -> None:
    user, other = await user_factory(), await user_factory()
    stub = inference_service.stub
    foreign_image = await storage_service.upload(other, png(), "theirs.png", "image/png")
    cases: list[tuple[dict[str, Any], grpc.StatusCode, str, set[str]]] = [
        ({"model": "nope", "prompt": "x"}, grpc.StatusCode.INVALID_ARGUMENT, "MODEL_NOT_FOUND", {"parameters.model"}),
        ({"model": "tiny-modelscope", "prompt": "x", "task": G.TASK_IMAGE_TO_VIDEO},
         grpc.StatusCode.INVALID_ARGUMENT, "TASK_NOT_SUPPORTED", {"parameters.task"}),
        ({"model": "tiny-svd"}, grpc.StatusCode.INVALID_ARGUMENT, "IMAGE_REQUIRED", {"parameters.image_asset_id"}),
        ({"model": "tiny-wan", "prompt": " ", "width": 48, "num_frames": 8, "seed": -1, "num_inference_steps": 101},
         grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PARAMETERS",
         {"parameters.prompt", "parameters.width", "parameters.num_frames", "parameters.seed",
          "parameters.num_inference_steps"}),
        ({"model": "tiny-wan", "prompt": "x" * 2001, "height": 1024},
         grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PARAMETERS", {"parameters.prompt", "parameters.height"}),
        ({"model": "tiny-wan", "prompt": "x", "svd": G.SvdParameters(motion_bucket_id=3)},
         grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PARAMETERS", {"parameters.svd"}),
        ({"model": "tiny-svd", "image_asset_id": foreign_image}, grpc.StatusCode.NOT_FOUND, "ASSET_NOT_FOUND", set()),
        ({"model": "tiny-svd", "image_asset_id": str(uuid.uuid4())}, grpc.StatusCode.NOT_FOUND, "ASSET_NOT_FOUND",
         set()),
    ]
    for params, code, reason, fields in cases:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await create(stub, user, **params)
        assert err.value.code() == code, params
        got_reason, got_fields = details(err.value)
        assert got_reason == reason, (params, got_reason)
        assert fields <= set(got_fields), (params, got_fields)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await create(stub, user, priority=11, model="tiny-wan", prompt="x")
    assert details(err.value) == ("INVALID_PARAMETERS", ["priority"])
    listed = await stub.ListGenerationJobs(G.ListGenerationJobsRequest(), metadata=user.metadata)
    assert list(listed.jobs) == []


async def test_cancel_running_and_queued_jobs(inference_service: Any, user_factory: Any) -> None:
    user = await user_factory()
    stub = inference_service.stub
    long = {"model": "tiny-wan", "prompt": "a long walk", "width": 128, "height": 128, "num_frames": 17,
            "num_inference_steps": 50}
    running = await create(stub, user, **long)
    queued = await create(stub, user, **long)
    _, started = await watch(stub, user, running.id, until=lambda e: e.progress.stage == S.STAGE_DENOISING)
    cancelled = (await stub.CancelGenerationJob(G.CancelGenerationJobRequest(id=queued.id),
                                                metadata=user.metadata)).job
    assert cancelled.status.state == S.JOB_STATE_CANCELLED  # at once
    flagged = (await stub.CancelGenerationJob(G.CancelGenerationJobRequest(id=running.id),
                                              metadata=user.metadata)).job
    assert flagged.status.state in (S.JOB_STATE_RUNNING, S.JOB_STATE_CANCELLED)
    _, events = await watch(stub, user, running.id, after=started[-1].sequence, deadline_s=60)
    assert events[-1].state == S.JOB_STATE_CANCELLED
    steps = _stages(started + events, S.STAGE_DENOISING, "step")
    assert steps and max(steps) < 50  # stopped between denoising steps, not after the run
    assert not _stages(events, S.STAGE_DECODING, "frame")
    _, queued_events = await watch(stub, user, queued.id)
    # Never ran: queued (plus a queue-position event when the first job's claim moved it up, which
    # races with its own creation), then cancelled.
    states = [e.state for e in queued_events]
    assert set(states[:-1]) == {S.JOB_STATE_QUEUED} and states[-1] == S.JOB_STATE_CANCELLED, states
    # The worker is free again: a new job runs to completion.
    after = await create(stub, user, model="tiny-wan", prompt="next", num_inference_steps=1)
    _, events = await watch(stub, user, after.id)
    assert events[-1].state == S.JOB_STATE_SUCCEEDED


async def test_reconnect_with_after_sequence_misses_nothing(inference_service: Any, user_factory: Any) -> None:
    user = await user_factory()
    stub = inference_service.stub
    job = await create(stub, user, model="tiny-wan", prompt="a cat", num_inference_steps=6, preview_every_n_steps=1)
    _, head = await watch(stub, user, job.id, until=lambda e: e.progress.stage == S.STAGE_DENOISING)
    await asyncio.sleep(0.2)  # events keep flowing while disconnected
    first, tail = await watch(stub, user, job.id, after=head[-1].sequence)
    assert first.id == job.id
    seqs = [e.sequence for e in head + tail]
    assert seqs == list(range(1, len(seqs) + 1)) and tail[-1].state == S.JOB_STATE_SUCCEEDED
    _, replay = await watch(stub, user, job.id)  # after the end: the whole log, same events
    assert [e.SerializeToString() for e in replay] == [e.SerializeToString() for e in head + tail]
    await asyncio.sleep(0)


async def test_generation_with_auto_face_swap(
    inference_service: Any, storage_service: Any, user_factory: Any
) -> None:
    faceswap_tiny = pytest.importorskip("services.inference.faceswap.tiny")
    from tests.faceswap.helpers import image_bytes

    user = await user_factory()
    stub = inference_service.stub
    source = await storage_service.upload(user, image_bytes(faceswap_tiny.face_image(96, 96, seed=2)), "face.png",
                                          "image/png")
    faceless = await storage_service.upload(user, image_bytes(faceswap_tiny.face_image(96, 96, face=False)),
                                            "wall.png", "image/png")
    base = {"model": "tiny-wan", "prompt": "a portrait", "num_inference_steps": 2}
    job = await create(stub, user, face_swap={"source_face_asset_id": source}, **base)
    _, events = await watch(stub, user, job.id)
    assert events[-1].state == S.JOB_STATE_SUCCEEDED, events[-1]
    assert _stages(events, S.STAGE_FACE_SWAP, "frame") == list(range(1, 10))
    done = (await stub.GetGenerationJob(G.GetGenerationJobRequest(id=job.id), metadata=user.metadata)).job
    swap = done.result.face_swap
    assert swap.frame_count == 9 and swap.frames_swapped + swap.frames_without_face == 9
    bad = await create(stub, user, face_swap={"source_face_asset_id": faceless}, **base)
    _, events = await watch(stub, user, bad.id)
    assert events[-1].state == S.JOB_STATE_FAILED
    assert (events[-1].error.code, events[-1].error.reason) == ("FAILED_PRECONDITION", "NO_FACE_IN_SOURCE")
