"""FaceSwapService over a real loopback gRPC server: real auth, real storage (SeaweedFS), the shared
job pattern on SQLite, and the face swap work in a spawned worker process on the tiny models."""

from __future__ import annotations

import asyncio
import json
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio

from services.inference.config import InferenceConfig
from services.inference.faceswap.config import FaceSwapConfig
from services.inference.faceswap.handler import KIND, FaceSwapHandler
from services.inference.faceswap.servicer import FaceSwapServicer
from services.kit.db import make_engine, upgrade
from services.kit.jobs import HandlerExecutor, JobService
from services.kit.server import Service, build_server, stop
from services.kit.storage_client import StorageClient
from tests.faceswap.helpers import face_image, image_bytes, make_video
from tests.faceswap.runners import ProcessRunner
from viarte.errors import from_rpc_error
from viarte.inference.v1 import face_swap_pb2, face_swap_pb2_grpc
from viarte.type.v1 import job_pb2

F = face_swap_pb2
MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "inference" / "migrations"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def faceswap(
    tmp_path_factory: pytest.TempPathFactory, auth_service: Any, storage_service: Any, face_settings: FaceSwapConfig
) -> AsyncIterator[face_swap_pb2_grpc.FaceSwapServiceStub]:
    base = tmp_path_factory.mktemp("faceswap")
    config = InferenceConfig(
        port=0, log_level="WARNING", data_dir=str(base),
        auth_address=auth_service.address, storage_address=storage_service.address,
        internal_secret=auth_service.config.internal_secret,
        jwt_issuer=auth_service.config.jwt_issuer, jwt_audience=auth_service.config.jwt_audience,
        face_models_dir=face_settings.face_models_dir, face_use_tiny=True, face_det_size=320,
        face_providers=("CPUExecutionProvider",),
    )
    engine = make_engine(f"sqlite:///{base / 'inference.db'}")
    upgrade(engine, MIGRATIONS)
    store = StorageClient(config)
    runner = ProcessRunner(config.face)
    jobs = JobService(engine, HandlerExecutor({KIND: FaceSwapHandler(store, runner, base / "work")}, slots=1))
    await jobs.start()
    server, port = await build_server(config, [Service(FaceSwapServicer(jobs, store))])
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield face_swap_pb2_grpc.FaceSwapServiceStub(channel)
    finally:
        await channel.close()
        await stop(server, grace=0.2)
        await jobs.stop(1.0)
        await runner.close()
        await store.close()
        engine.dispose()


async def _upload_image(storage: Any, user: Any, seed: int, face: bool = True, size: tuple[int, int] = (96, 96)) -> str:
    return str(await storage.upload(user, image_bytes(face_image(*size, seed=seed, face=face)), f"face{seed}.png", "image/png"))


async def _upload_video(storage: Any, user: Any, frames: list[Any], audio: bool = True) -> str:
    with tempfile.TemporaryDirectory() as d:
        path = await asyncio.to_thread(make_video, Path(d) / "clip.mp4", frames, 12, audio)
        data = await asyncio.to_thread(path.read_bytes)
    return str(await storage.upload(user, data, "clip.mp4", "video/mp4"))


def _params(target: str, source: str, **options: Any) -> F.FaceSwapParameters:
    return F.FaceSwapParameters(target_asset_id=target, options=F.FaceSwapOptions(source_face_asset_id=source, **options))


async def _create(stub: Any, user: Any, params: F.FaceSwapParameters, request_id: str = "") -> F.FaceSwapJob:
    answer = await stub.CreateFaceSwapJob(
        F.CreateFaceSwapJobRequest(parameters=params, request_id=request_id), metadata=user.metadata, timeout=30
    )
    return answer.job


async def _watch(stub: Any, user: Any, job_id: str) -> tuple[F.FaceSwapJob, list[job_pb2.JobEvent]]:
    events: list[job_pb2.JobEvent] = []
    async for item in stub.WatchFaceSwapJob(F.WatchFaceSwapJobRequest(id=job_id), metadata=user.metadata, timeout=120):
        if item.WhichOneof("payload") == "event":
            events.append(item.event)
    job = (await stub.GetFaceSwapJob(F.GetFaceSwapJobRequest(id=job_id), metadata=user.metadata)).job
    return job, events


async def _error(call: Any) -> Any:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return from_rpc_error(info.value)


def _probe(data: bytes) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".mp4") as f:
        f.write(data)
        f.flush()
        out = subprocess.run(
            ["ffprobe", "-v", "error", "-count_frames", "-show_streams", "-of", "json", f.name], capture_output=True, check=True
        )
    return {s["codec_type"]: s for s in json.loads(out.stdout)["streams"]}


async def test_video_face_swap_end_to_end(faceswap: Any, storage_service: Any, user_factory: Any) -> None:
    user = await user_factory()
    frames = [face_image(96, 64, seed=1, face=i % 4 != 3) for i in range(12)]
    target, source = await _upload_video(storage_service, user, frames), await _upload_image(storage_service, user, 2)
    job = await _create(faceswap, user, _params(target, source))
    assert job.status.state in (job_pb2.JOB_STATE_QUEUED, job_pb2.JOB_STATE_RUNNING)
    job, events = await _watch(faceswap, user, job.id)
    assert job.status.state == job_pb2.JOB_STATE_SUCCEEDED, job.status.error
    r = job.result
    assert (r.frame_count, r.frames_swapped, r.frames_without_face, r.faces_swapped) == (12, 9, 3, 9)
    stages = [e.progress.stage for e in events]
    for stage in (job_pb2.STAGE_FETCHING_INPUTS, job_pb2.STAGE_FACE_SWAP, job_pb2.STAGE_ENCODING, job_pb2.STAGE_UPLOADING):
        assert stage in stages
    swap = [e.progress for e in events if e.progress.stage == job_pb2.STAGE_FACE_SWAP]
    assert swap[0].frame == 1 and swap[-1].frame == 12 and {p.total_frames for p in swap} == {12}
    assert [e.sequence for e in events] == sorted(e.sequence for e in events)
    assert events[-1].state == job_pb2.JOB_STATE_SUCCEEDED
    streams = _probe(await storage_service.download(user, r.asset_id))
    assert streams["video"]["codec_name"] == "h264" and int(streams["video"]["nb_read_frames"]) == 12
    assert streams["audio"]["codec_name"] == "aac"  # the target's own audio


async def test_image_face_swap_and_idempotent_create(faceswap: Any, storage_service: Any, user_factory: Any) -> None:
    user = await user_factory()
    target = str(await storage_service.upload(user, image_bytes(face_image(120, 90, seed=1), "JPEG"), "t.jpg", "image/jpeg"))
    source = await _upload_image(storage_service, user, 2)
    request_id = uuid.uuid4().hex
    first = await _create(faceswap, user, _params(target, source), request_id)
    again = await _create(faceswap, user, _params(target, source), request_id)
    assert again.id == first.id
    job, _ = await _watch(faceswap, user, first.id)
    assert job.status.state == job_pb2.JOB_STATE_SUCCEEDED, job.status.error
    assert (job.result.frame_count, job.result.frames_swapped) == (1, 1)
    data = await storage_service.download(user, job.result.asset_id)
    assert data[:2] == b"\xff\xd8"  # JPEG in, JPEG out
    listed = await faceswap.ListFaceSwapJobs(F.ListFaceSwapJobsRequest(), metadata=user.metadata)
    assert [j.id for j in listed.jobs] == [first.id]


async def test_reference_selector_counts_other_faces_as_without_face(faceswap: Any, storage_service: Any, user_factory: Any) -> None:
    user = await user_factory()
    frames = [face_image(96, 96, seed=1 if i < 4 else 7) for i in range(8)]
    target = await _upload_video(storage_service, user, frames, audio=False)
    source = await _upload_image(storage_service, user, 2)
    reference = str(await storage_service.upload(user, image_bytes(frames[0]), "ref.png", "image/png"))
    params = _params(target, source, selector=F.FACE_SELECTOR_MODE_REFERENCE, reference_face_asset_id=reference,
                     similarity_threshold=0.6)
    job, _ = await _watch(faceswap, user, (await _create(faceswap, user, params)).id)
    assert job.status.state == job_pb2.JOB_STATE_SUCCEEDED, job.status.error
    assert (job.result.frames_swapped, job.result.frames_without_face) == (4, 4)


async def test_source_without_face_fails_the_job(faceswap: Any, storage_service: Any, user_factory: Any) -> None:
    user = await user_factory()
    target = await _upload_image(storage_service, user, 1)
    source = await _upload_image(storage_service, user, 2, face=False)
    job, events = await _watch(faceswap, user, (await _create(faceswap, user, _params(target, source))).id)
    assert job.status.state == job_pb2.JOB_STATE_FAILED
    assert (job.status.error.code, job.status.error.reason) == ("FAILED_PRECONDITION", "NO_FACE_IN_SOURCE")
    assert job_pb2.STAGE_FACE_SWAP not in [e.progress.stage for e in events]  # failed before any frame


async def test_other_users_assets_and_jobs_are_not_found(faceswap: Any, storage_service: Any, user_factory: Any) -> None:
    alice, bob = await user_factory(), await user_factory()
    target, source = await _upload_image(storage_service, alice, 1), await _upload_image(storage_service, alice, 2)
    err = await _error(faceswap.CreateFaceSwapJob(F.CreateFaceSwapJobRequest(parameters=_params(target, source)), metadata=bob.metadata))
    assert (err.code, err.reason) == (grpc.StatusCode.NOT_FOUND, "ASSET_NOT_FOUND")
    job = await _create(faceswap, alice, _params(target, source))
    err = await _error(faceswap.GetFaceSwapJob(F.GetFaceSwapJobRequest(id=job.id), metadata=bob.metadata))
    assert (err.code, err.reason) == (grpc.StatusCode.NOT_FOUND, "JOB_NOT_FOUND")
    err = await _error(faceswap.CancelFaceSwapJob(F.CancelFaceSwapJobRequest(id=job.id), metadata=bob.metadata))
    assert err.code == grpc.StatusCode.NOT_FOUND
    await _watch(faceswap, alice, job.id)


async def test_unsupported_media_is_invalid_argument(faceswap: Any, storage_service: Any, user_factory: Any, tmp_path: Path) -> None:
    user = await user_factory()
    image = await _upload_image(storage_service, user, 1)
    video = await _upload_video(storage_service, user, [face_image(64, 64, seed=1)] * 2, audio=False)
    wav = tmp_path / "tone.wav"
    cmd = ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=duration=0.5", str(wav)]
    await asyncio.to_thread(subprocess.run, cmd, check=True)
    audio = str(await storage_service.upload(user, wav.read_bytes(), "tone.wav", "audio/wav"))
    for params in (_params(audio, image), _params(image, video)):
        err = await _error(faceswap.CreateFaceSwapJob(F.CreateFaceSwapJobRequest(parameters=params), metadata=user.metadata))
        assert (err.code, err.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "UNSUPPORTED_MEDIA")


async def test_invalid_parameters(faceswap: Any, user_factory: Any) -> None:
    user = await user_factory()
    bad = F.FaceSwapParameters(options=F.FaceSwapOptions(selector=F.FACE_SELECTOR_MODE_REFERENCE, similarity_threshold=2))
    err = await _error(faceswap.CreateFaceSwapJob(F.CreateFaceSwapJobRequest(parameters=bad), metadata=user.metadata))
    assert (err.code, err.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PARAMETERS")
    assert {v.field for v in err.field_violations} == {
        "parameters.target_asset_id", "parameters.options.source_face_asset_id",
        "parameters.options.similarity_threshold", "parameters.options.reference_face_asset_id",
    }


async def test_cancel_a_running_job(faceswap: Any, storage_service: Any, user_factory: Any) -> None:
    user = await user_factory()
    target = await _upload_video(storage_service, user, [face_image(160, 160, seed=1)] * 240, audio=False)
    source = await _upload_image(storage_service, user, 2)
    job = await _create(faceswap, user, _params(target, source))
    async for item in faceswap.WatchFaceSwapJob(F.WatchFaceSwapJobRequest(id=job.id), metadata=user.metadata, timeout=120):
        if item.WhichOneof("payload") == "event" and item.event.progress.stage == job_pb2.STAGE_FACE_SWAP:
            await faceswap.CancelFaceSwapJob(F.CancelFaceSwapJobRequest(id=job.id), metadata=user.metadata)
            break
    job, events = await _watch(faceswap, user, job.id)
    assert job.status.state == job_pb2.JOB_STATE_CANCELLED
    frames = [e.progress.frame for e in events if e.progress.stage == job_pb2.STAGE_FACE_SWAP]
    assert max(frames) < 240 and job_pb2.STAGE_UPLOADING not in [e.progress.stage for e in events]


async def test_storage_down_is_unavailable(auth_service: Any, user_factory: Any, tmp_path: Path, face_settings: FaceSwapConfig) -> None:
    user = await user_factory()
    config = InferenceConfig(
        port=0, log_level="WARNING", data_dir=str(tmp_path), auth_address=auth_service.address,
        storage_address="127.0.0.1:1", internal_secret=auth_service.config.internal_secret,
        jwt_issuer=auth_service.config.jwt_issuer, jwt_audience=auth_service.config.jwt_audience,
    )
    engine = make_engine(f"sqlite:///{tmp_path / 'inference.db'}")
    upgrade(engine, MIGRATIONS)
    store = StorageClient(config)
    jobs = JobService(engine, HandlerExecutor({KIND: FaceSwapHandler(store, ProcessRunner(face_settings))}))
    server, port = await build_server(config, [Service(FaceSwapServicer(jobs, store))])
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = face_swap_pb2_grpc.FaceSwapServiceStub(channel)
            err = await _error(stub.CreateFaceSwapJob(F.CreateFaceSwapJobRequest(parameters=_params("a", "b")), metadata=user.metadata))
        assert (err.code, err.reason) == (grpc.StatusCode.UNAVAILABLE, "STORAGE_UNAVAILABLE")
    finally:
        await stop(server, grace=0.2)
        await store.close()
        engine.dispose()
