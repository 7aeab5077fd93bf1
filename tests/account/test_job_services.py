"""Budgets, limits and metering through a real inference server (issue 16): training and generation
share one create path (``JobRpc.create``: estimate, admission, insert), so a training job is priced,
admitted and charged like a generation; a face swap on a video is estimated from its probed frames;
a signed-in session carries its user's limits (the access token's ``lim`` claim) like an API key.
Real auth, storage, account and inference (CPU worker, tiny face models)."""

from __future__ import annotations

import asyncio
import math
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio

from services.inference.faceswap.tiny import build_tiny_face_models
from tests.auth.helpers import expect_failure
from tests.faceswap.helpers import face_image, image_bytes, make_video
from tests.fixtures.account import AccountService, running_account, test_account_config
from tests.fixtures.inference import InferenceService, running_inference, test_inference_config
from tests.inference.helpers import png
from viarte.account.v1 import account_pb2
from viarte.auth.v1 import auth_pb2, auth_pb2_grpc
from viarte.inference.v1 import face_swap_pb2 as F
from viarte.inference.v1 import face_swap_pb2_grpc
from viarte.inference.v1 import generation_pb2 as G
from viarte.training.v1 import training_pb2 as T
from viarte.training.v1 import training_pb2_grpc
from viarte.type.v1 import job_pb2, limits_pb2

pytestmark = pytest.mark.asyncio(loop_scope="session")
# One rate for the whole mesh (estimates in inference, charges in account), high enough that tiny
# 64 x 64 jobs cost more than one credit: a training of 2 steps is ceil(1000 * 0.004096 * 2) = 9.
RATES = {"training_credits_per_megapixel_frame_step": 1000.0, "generation_credits_per_megapixel_frame_step": 1000.0,
         "face_swap_credits_per_frame": 0.5}
TRAIN = {"base_model": "tiny-wan", "trigger_word": "vrt", "rank": 4, "width": 64, "height": 64, "seed": 3}
SCOPES = ["jobs:read", "jobs:write", "assets:read", "assets:write"]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def mesh(tmp_path_factory: pytest.TempPathFactory, auth_service: Any,
               storage_service: Any) -> AsyncIterator[tuple[AccountService, InferenceService]]:
    account_config = test_account_config(tmp_path_factory.mktemp("account"), auth_service, **RATES)
    async with running_account(account_config) as account:
        face = {"face_models_dir": str(build_tiny_face_models().models_dir.parent), "face_use_tiny": True,
                "face_det_size": 320, "face_providers": ("CPUExecutionProvider",)}
        config = test_inference_config(tmp_path_factory.mktemp("inference"), auth_service, storage_service,
                                       account_address=account.address, **RATES, **face)
        async with running_inference(config) as inference:
            yield account, inference


def _training(stub: Any, md: Any, image: str, steps: int) -> Any:
    params = T.TrainingParameters(**TRAIN, steps=steps)
    params.dataset.examples.add(asset_id=image, caption="a red square")
    return stub.CreateTrainingJob(T.CreateTrainingJobRequest(parameters=params), metadata=md, timeout=60)


async def _until_charged(stub: Any, md: Any, job_id: str) -> T.TrainingJob:
    for _ in range(1200):  # a bound for a loaded machine, not a timing claim
        job = (await stub.GetTrainingJob(T.GetTrainingJobRequest(id=job_id), metadata=md)).job
        if job.status.cost.final:
            return job
        await asyncio.sleep(0.25)
    raise AssertionError(f"training {job_id} never charged: {job.status}")


async def test_training_is_estimated_admitted_and_charged_like_generation(
    mesh: tuple[AccountService, InferenceService], storage_service: Any, auth_service: Any, user_factory: Any
) -> None:
    account, inference = mesh
    user = await user_factory()
    image = await storage_service.upload(user, png(64, 64), "square.png", "image/png")
    async with grpc.aio.insecure_channel(auth_service.address) as channel:
        key = await auth_pb2_grpc.AuthServiceStub(channel).CreateApiKey(auth_pb2.CreateApiKeyRequest(
            name="trainer", scopes=SCOPES, limits=limits_pb2.Limits(monthly_credit_budget=10)), metadata=user.metadata)
    md = (("x-api-key", key.secret),)
    stub = training_pb2_grpc.TrainingServiceStub(inference.channel)
    # 3 steps would cost 13 credits: over the key's budget of 10, and nothing is queued.
    over = await expect_failure(_training(stub, md, image, steps=3))
    assert over.code == grpc.StatusCode.RESOURCE_EXHAUSTED and over.reason == "QUOTA_EXCEEDED"
    assert over.metadata["estimate"] == "13"
    assert not (await stub.ListTrainingJobs(T.ListTrainingJobsRequest(), metadata=md)).jobs
    created = (await _training(stub, md, image, steps=2)).job
    assert created.status.cost.estimated_credits == 9
    # The open admission holds its 9 credits: a second one does not fit while the first runs.
    second = await expect_failure(_training(stub, md, image, steps=2))
    assert second.reason == "QUOTA_EXCEEDED"
    done = await _until_charged(stub, md, created.id)
    assert done.status.state == job_pb2.JOB_STATE_SUCCEEDED, done.status.error
    assert (done.status.cost.credits, done.result.steps_completed) == (9, 2)
    records = (await account.usage.ListUsageRecords(account_pb2.ListUsageRecordsRequest(), metadata=user.metadata)).records
    assert [(r.job_id, r.kind, r.model, r.credits, r.api_key_id) for r in records] == [
        (created.id, account_pb2.JOB_KIND_TRAINING, "tiny-wan", 9, key.api_key.id)]
    assert (records[0].quantities.width, records[0].quantities.frames, records[0].quantities.steps) == (64, 1, 2)
    # The charge replaced the estimate: 9 of 10 spent, a 1-credit job would fit, a 9-credit one not.
    assert (await expect_failure(_training(stub, md, image, steps=2))).reason == "QUOTA_EXCEEDED"


async def test_a_signed_in_session_carries_its_users_limits(
    mesh: tuple[AccountService, InferenceService], auth_service: Any, user_factory: Any
) -> None:
    _, inference = mesh
    user, admin = await user_factory(), await user_factory(admin=True)
    async with grpc.aio.insecure_channel(auth_service.address) as channel:
        auth = auth_pb2_grpc.AuthServiceStub(channel)
        await auth.UpdateUser(auth_pb2.UpdateUserRequest(
            id=user.id, limits=limits_pb2.Limits(monthly_credit_budget=5, reads_per_minute=1)), metadata=admin.metadata)
        # The limits reach a session with its next token (login or refresh).
        tokens = (await auth.Refresh(auth_pb2.RefreshRequest(refresh_token=user.refresh_token))).tokens
    md = (("authorization", f"Bearer {tokens.access_token}"),)
    request = G.CreateGenerationJobRequest(parameters=G.GenerationParameters(
        model="tiny-wan", prompt="a red square", width=64, height=64, num_frames=1, num_inference_steps=2))
    refused = await expect_failure(inference.stub.CreateGenerationJob(request, metadata=md, timeout=30))
    assert refused.code == grpc.StatusCode.RESOURCE_EXHAUSTED and refused.reason == "QUOTA_EXCEEDED"
    assert refused.metadata["budget"] == "5"
    listed = await inference.stub.ListGenerationJobs(G.ListGenerationJobsRequest(), metadata=md)
    assert list(listed.jobs) == []  # nothing queued
    limited = await expect_failure(inference.stub.ListGenerationJobs(G.ListGenerationJobsRequest(), metadata=md))
    assert limited.code == grpc.StatusCode.RESOURCE_EXHAUSTED and limited.reason == "RATE_LIMITED"


async def _upload_video(storage: Any, user: Any, frames: int, size: int) -> str:
    with tempfile.TemporaryDirectory() as d:
        path = await asyncio.to_thread(make_video, Path(d) / "clip.mp4", [face_image(size, size, seed=1)] * frames,
                                       12, False)  # fmt: skip
        data = await asyncio.to_thread(path.read_bytes)
    return str(await storage.upload(user, data, "clip.mp4", "video/mp4"))


async def test_a_face_swap_on_a_video_is_estimated_from_its_frames_and_a_cancel_pays_what_ran(
    mesh: tuple[AccountService, InferenceService], storage_service: Any, auth_service: Any, user_factory: Any
) -> None:
    _, inference = mesh
    user = await user_factory()
    source = str(await storage_service.upload(user, image_bytes(face_image(96, 96, seed=2)), "s.png", "image/png"))
    short, long = await _upload_video(storage_service, user, 24, 96), await _upload_video(storage_service, user, 240, 160)
    async with grpc.aio.insecure_channel(auth_service.address) as channel:
        key = await auth_pb2_grpc.AuthServiceStub(channel).CreateApiKey(auth_pb2.CreateApiKeyRequest(
            name="swapper", scopes=SCOPES, limits=limits_pb2.Limits(monthly_credit_budget=140)), metadata=user.metadata)
    md = (("x-api-key", key.secret),)
    stub = face_swap_pb2_grpc.FaceSwapServiceStub(inference.channel)

    def create(target: str) -> Any:
        params = F.FaceSwapParameters(target_asset_id=target, options=F.FaceSwapOptions(source_face_asset_id=source))
        return stub.CreateFaceSwapJob(F.CreateFaceSwapJobRequest(parameters=params), metadata=md, timeout=60)

    # 24 frames at 0.5 credits: 12; 240 frames: 120 (the most either can cost: every frame swapped).
    first = (await create(short)).job
    assert first.status.cost.estimated_credits == 12
    job = (await create(long)).job
    assert job.status.cost.estimated_credits == 120
    # 12 + 120 of 140 are held by the two open admissions: one more short video does not fit.
    over = await expect_failure(create(short))
    assert over.reason == "QUOTA_EXCEEDED" and over.metadata["estimate"] == "12"
    async for item in stub.WatchFaceSwapJob(F.WatchFaceSwapJobRequest(id=job.id), metadata=md, timeout=120):
        if item.WhichOneof("payload") == "event" and item.event.progress.stage == job_pb2.STAGE_FACE_SWAP:
            await stub.CancelFaceSwapJob(F.CancelFaceSwapJobRequest(id=job.id), metadata=md)
            break
    async for _ in stub.WatchFaceSwapJob(F.WatchFaceSwapJobRequest(id=first.id), metadata=md, timeout=120):
        pass  # ended (one device: it ran first)
    for _ in range(1200):  # a bound for a loaded machine, not a timing claim
        job = (await stub.GetFaceSwapJob(F.GetFaceSwapJobRequest(id=job.id), metadata=md)).job
        if job.status.cost.final:
            break
        await asyncio.sleep(0.25)
    assert job.status.state == job_pb2.JOB_STATE_CANCELLED and job.status.cost.final, job.status
    # A cancel pays the frames read before it (the counter the job stopped at), not the estimate.
    ran = job.status.progress.frame
    assert 0 < ran < 240
    assert job.status.cost.credits == math.ceil(0.5 * ran)
