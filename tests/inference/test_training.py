"""LoRA training jobs end to end on tiny-wan (CPU) over real loopback servers: per-step loss
events, checkpoints and the LoRA as assets with lineage, resume after a worker crash, cancel,
LoRAs in generation, and dataset checks before anything is queued."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import pytest_asyncio

from services.inference.engine.encode import decode_mp4, encode_mp4
from tests.fixtures.inference import running_inference, test_inference_config
from tests.inference.helpers import create, details, png, watch
from viarte.inference.v1 import generation_pb2 as G
from viarte.training.v1 import training_pb2 as T
from viarte.training.v1 import training_pb2_grpc
from viarte.type.v1 import job_pb2

pytestmark = pytest.mark.asyncio(loop_scope="session")
S = job_pb2
STEPS = 20
# One image, over-fitted: rank 4, a high learning rate, checkpoints every 5 steps.
BASE = {"base_model": "tiny-wan", "trigger_word": "vrt", "rank": 4, "alpha": 4.0, "learning_rate": 5e-3,
        "steps": STEPS, "width": 64, "height": 64, "seed": 3, "checkpoint_every_n_steps": 5}


SAMPLE_PROMPT = "vrt a square"


def _stub(service: Any) -> Any:
    return training_pb2_grpc.TrainingServiceStub(service.channel)


def _loras(service: Any) -> Any:
    return training_pb2_grpc.LoraServiceStub(service.channel)


async def _train(service: Any, user: Any, asset_id: str, **overrides: Any) -> T.TrainingJob:
    params = T.TrainingParameters(**{**BASE, **overrides})
    params.dataset.examples.add(asset_id=asset_id, caption="a red square on a green square")
    answer = await _stub(service).CreateTrainingJob(T.CreateTrainingJobRequest(parameters=params),
                                                    metadata=user.metadata, timeout=30)
    return answer.job


async def _watch(service: Any, user: Any, job_id: str, until: Any = None) -> list[job_pb2.JobEvent]:
    events = []
    call = _stub(service).WatchTrainingJob(T.WatchTrainingJobRequest(id=job_id), metadata=user.metadata, timeout=300)
    async for message in call:
        if message.HasField("event"):
            events.append(message.event)
            if until is not None and until(message.event):
                call.cancel()
                break
    return events


def _steps(events: list[job_pb2.JobEvent]) -> list[job_pb2.Progress]:
    return [e.progress for e in events if e.progress.stage == S.STAGE_TRAINING and "grad_norm" in e.progress.metrics]


async def _tensors(storage: Any, user: Any, asset_id: str) -> dict[str, Any]:
    from safetensors.numpy import load

    return load(await storage.download(user, asset_id))


async def _get(service: Any, user: Any, job_id: str) -> T.TrainingJob:
    return (await _stub(service).GetTrainingJob(T.GetTrainingJobRequest(id=job_id), metadata=user.metadata)).job


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def trained(inference_service: Any, storage_service: Any, user_factory: Any) -> Any:
    """One uninterrupted 20-step run (watched from the start) with sample clips every 5 steps
    (the resume test's run has none: its equal adapter shows samples leave training untouched)."""
    user = await user_factory()
    image = await storage_service.upload(user, png(64, 64), "square.png", "image/png")
    job = await _train(inference_service, user, image, sample_every_n_steps=5, validation_prompt=SAMPLE_PROMPT)
    events = await _watch(inference_service, user, job.id)
    done = await _get(inference_service, user, job.id)
    assert done.status.state == S.JOB_STATE_SUCCEEDED, done.status.error
    return {"user": user, "image": image, "job": done, "events": events}


async def test_steps_stream_loss_in_order_and_lora_has_lineage(
    trained: Any, inference_service: Any, storage_service: Any
) -> None:
    user, job, events = trained["user"], trained["job"], trained["events"]
    steps = _steps(events)
    assert [p.step for p in steps] == list(range(1, STEPS + 1))
    assert all(p.total_steps == STEPS and p.HasField("eta") for p in steps)
    assert all(np.isfinite(p.metrics["loss"]) and p.metrics["learning_rate"] == pytest.approx(5e-3) for p in steps)
    assert [p.fraction for p in steps] == sorted(p.fraction for p in steps)
    checkpoints = [e.progress for e in events if e.progress.asset_id and "checkpoint_step" in e.progress.metrics]
    assert sorted(int(p.metrics["checkpoint_step"]) for p in checkpoints) == [5, 10, 15]
    result = job.result
    assert result.steps_completed == STEPS and result.resumed_from_step == 0 and len(result.checkpoint_asset_ids) == 3
    assert result.final_loss == pytest.approx(steps[-1].metrics["loss"])
    lora = (await _loras(inference_service).GetLora(T.GetLoraRequest(id=result.lora_id), metadata=user.metadata)).lora
    assert (lora.asset_id, lora.base_model, lora.training_job_id) == (result.lora_asset_id, "tiny-wan", job.id)
    assert list(lora.dataset_asset_ids) == [trained["image"]] and len(lora.dataset_sha256) == 64
    assert lora.steps == STEPS and not lora.partial and lora.trigger_word == "vrt" and lora.parameters.seed == 3
    tensors = await _tensors(storage_service, user, lora.asset_id)
    assert any(k.startswith("transformer.") and "lora_B" in k for k in tensors)
    listed = await _loras(inference_service).ListLoras(T.ListLorasRequest(), metadata=user.metadata)
    assert [x.id for x in listed.loras] == [lora.id]


async def test_sample_clips_every_n_steps_are_video_assets_announced_in_events(
    trained: Any, storage_service: Any
) -> None:
    user, job, events = trained["user"], trained["job"], trained["events"]
    samples = [e.progress for e in events if "sample_step" in e.progress.metrics]
    assert [int(p.metrics["sample_step"]) for p in samples] == [5, 10, 15, 20]
    assert all(p.asset_id for p in samples) and list(job.result.sample_asset_ids) == [p.asset_id for p in samples]
    # Announced (once stored) after the event of the step whose adapter it shows.
    order = [int(e.progress.metrics.get("sample_step", 0)) or -e.progress.step for e in events
             if "sample_step" in e.progress.metrics or "grad_norm" in e.progress.metrics]
    assert all(order.index(k) > order.index(-k) for k in (5, 10, 15, 20))
    clips = [await asyncio.to_thread(decode_mp4, await storage_service.download(user, p.asset_id), 64, 64)
             for p in samples]
    assert all(c.shape == (9, 64, 64, 3) for c in clips)  # images train as 1 frame; samples are 9-frame clips
    # Same seed and prompt at every sample: only the adapter changed between them.
    assert not np.array_equal(clips[0], clips[-1])


async def test_overfit_on_one_image_lowers_the_loss(trained: Any) -> None:
    losses = [p.metrics["loss"] for p in _steps(trained["events"])]
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) * 0.95, losses


async def test_worker_killed_at_step_10_resumes_from_its_checkpoint(
    trained: Any, tmp_path: Path, auth_service: Any, storage_service: Any, inference_service: Any
) -> None:
    config = test_inference_config(tmp_path, auth_service, storage_service, models=("tiny-wan",),
                                   fault_crash_at_training_step=10)
    user = trained["user"]
    async with running_inference(config) as service:
        job = await _train(service, user, trained["image"])
        events = await _watch(service, user, job.id)
        done = await _get(service, user, job.id)
    assert done.status.state == S.JOB_STATE_SUCCEEDED and done.status.attempts == 2, done.status
    assert done.result.resumed_from_step == 10
    resumed_at = next(i for i, e in enumerate(events) if "resuming from the checkpoint of step 10" in e.progress.message)
    first, retry = _steps(events[:resumed_at]), _steps(events[resumed_at:])
    assert [p.step for p in first] == list(range(1, 11))
    assert [p.step for p in retry] == list(range(11, STEPS + 1))  # no step at or below the checkpoint
    # Same seed, data and parameters: the resumed adapter equals the uninterrupted run's (per-step
    # RNG from (seed, step), AdamW state restored). Tolerance 1e-6 absolute (expected: exact).
    expected = await _tensors(storage_service, user, trained["job"].result.lora_asset_id)
    got = await _tensors(storage_service, user, done.result.lora_asset_id)
    assert set(got) == set(expected)
    assert max(float(np.abs(got[k] - expected[k]).max()) for k in got) <= 1e-6


async def test_cancel_stops_within_a_step_and_keeps_a_partial_lora(trained: Any, inference_service: Any) -> None:
    user = trained["user"]
    job = await _train(inference_service, user, trained["image"], steps=500, checkpoint_every_n_steps=0)
    await _watch(inference_service, user, job.id, until=lambda e: e.progress.step >= 3)
    await _stub(inference_service).CancelTrainingJob(T.CancelTrainingJobRequest(id=job.id), metadata=user.metadata)
    events = await _watch(inference_service, user, job.id)
    assert events[-1].state == S.JOB_STATE_CANCELLED
    steps = [p.step for p in _steps(events)]
    listed = await _loras(inference_service).ListLoras(T.ListLorasRequest(), metadata=user.metadata)
    partial = next(x for x in listed.loras if x.training_job_id == job.id)
    assert partial.partial and 3 <= partial.steps <= steps[-1] + 1 < 500
    trained["partial"] = partial


async def _video(storage: Any, user: Any, lora: list[tuple[str, float]], seed: int = 5) -> Any:
    stub = storage.inference.stub
    params: dict[str, Any] = {"model": "tiny-wan", "prompt": "vrt a square", "num_inference_steps": 2, "seed": seed,
                              "loras": [G.LoraWeight(lora_id=i, weight=w) for i, w in lora]}
    job = await create(stub, user, **params)
    _, events = await watch(stub, user, job.id)
    assert events[-1].state == S.JOB_STATE_SUCCEEDED, events[-1]
    done = (await stub.GetGenerationJob(G.GetGenerationJobRequest(id=job.id), metadata=user.metadata)).job
    data = await storage.storage.download(user, done.result.video_asset_id)
    return await asyncio.to_thread(decode_mp4, data, 64, 64)


async def test_loras_in_generation_weight_zero_is_none_and_switching_never_reloads(
    trained: Any, inference_service: Any, storage_service: Any
) -> None:
    user, lora = trained["user"], trained["job"].result.lora_id
    ctx = type("Ctx", (), {"inference": inference_service, "storage": storage_service})()
    plain = await _video(ctx, user, [])
    handler = inference_service.parts.handlers["generation"]
    loads = handler.model_loads
    zero = await _video(ctx, user, [(lora, 0.0)])
    one = await _video(ctx, user, [(lora, 1.0)])
    assert np.array_equal(zero, plain)
    assert not np.array_equal(one, plain)
    others = [(trained["partial"].id, 1.0)] if "partial" in trained else []
    await _video(ctx, user, others)
    again = await _video(ctx, user, [])
    assert np.array_equal(again, plain)  # adapters disabled: the base model as before
    assert handler.model_loads == loads  # LoRAs switched on the warm pipeline, the base never reloaded


async def test_lora_errors_in_generation(trained: Any, inference_service: Any, user_factory: Any) -> None:
    owner, lora = trained["user"], trained["job"].result.lora_id
    stranger = await user_factory()
    stub = inference_service.stub
    cases = [
        (stranger, "tiny-wan", lora, grpc.StatusCode.NOT_FOUND, "LORA_NOT_FOUND"),
        (owner, "tiny-modelscope", lora, grpc.StatusCode.FAILED_PRECONDITION, "LORA_UNSUPPORTED"),
    ]
    store = inference_service.parts.handlers["generation"].loras
    other = await asyncio.to_thread(
        store.add, owner_id=owner.id, name="other", asset_id=trained["image"], base_model="wan2.1-t2v-1.3b",
        training_job_id="not-a-job", dataset_asset_ids=[], dataset_sha256="0" * 64, parameters=b"",
        final_loss=0.0, steps=1, partial=False)
    cases.append((owner, "tiny-wan", other.id, grpc.StatusCode.FAILED_PRECONDITION, "LORA_BASE_MISMATCH"))
    for user, model, lora_id, code, reason in cases:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await create(stub, user, model=model, prompt="x", loras=[G.LoraWeight(lora_id=lora_id, weight=1.0)])
        assert (err.value.code(), details(err.value)[0]) == (code, reason)


def _long_video(frames: int) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "long.mp4"
        rng = np.random.default_rng(0)
        encode_mp4(iter(rng.integers(0, 255, (frames, 32, 32, 3), dtype=np.uint8)), out, width=32, height=32,
                   fps=8, total=frames)
        return out.read_bytes()


async def test_bad_datasets_are_refused_before_anything_is_queued(
    inference_service: Any, storage_service: Any, user_factory: Any
) -> None:
    user, stranger = await user_factory(), await user_factory()
    mine = await storage_service.upload(user, png(64, 64), "a.png", "image/png")
    theirs = await storage_service.upload(stranger, png(64, 64), "b.png", "image/png")
    long = await storage_service.upload(user, _long_video(90), "long.mp4", "video/mp4")
    stub = _stub(inference_service)

    async def refused(examples: list[tuple[str, str]], **overrides: Any) -> tuple[Any, str, list[str]]:
        params = T.TrainingParameters(**{**BASE, **overrides})
        for asset_id, caption in examples:
            params.dataset.examples.add(asset_id=asset_id, caption=caption)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.CreateTrainingJob(T.CreateTrainingJobRequest(parameters=params), metadata=user.metadata)
        return (err.value.code(), *details(err.value))

    e = "parameters.dataset.examples"
    assert await refused([]) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_DATASET", [e])
    assert await refused([(mine, "ok"), (theirs, "x")]) == (
        grpc.StatusCode.INVALID_ARGUMENT, "INVALID_DATASET", [f"{e}[1].asset_id"])
    assert await refused([(mine, ""), (mine, "ok")], trigger_word="") == (
        grpc.StatusCode.INVALID_ARGUMENT, "INVALID_DATASET", [f"{e}[0].caption"])
    assert await refused([(long, "a clip")], num_frames=9) == (
        grpc.StatusCode.INVALID_ARGUMENT, "INVALID_DATASET", [f"{e}[0].asset_id"])
    code, reason, _ = await refused([(mine, "ok")], base_model="tiny-svd")
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "LORA_UNSUPPORTED")
    code, reason, fields = await refused([(mine, "ok")], width=48, steps=-1, checkpoint_every_n_steps=0)
    assert (reason, sorted(fields)) == ("INVALID_PARAMETERS", ["parameters.steps", "parameters.width"])
    listed = await stub.ListTrainingJobs(T.ListTrainingJobsRequest(), metadata=user.metadata)
    assert list(listed.jobs) == []  # nothing queued, nothing trained


async def test_sdk_training_run_with_typed_progress_and_loras(
    trained: Any, inference_service: Any, auth_service: Any, storage_service: Any
) -> None:
    import time

    from viarte.client import AsyncClient, generation_parameters, training_parameters
    from viarte.credentials import Tokens
    from viarte.jobs import Stage

    user = trained["user"]
    endpoints = {"auth": auth_service.address, "storage": storage_service.address,
                 "inference": inference_service.address}
    async with AsyncClient(endpoints, tokens=Tokens(user.access_token, time.time() + 600)) as client:
        updates: list[Any] = []
        job = await client.training.run(training_parameters(
            base_model="tiny-wan", examples=[(trained["image"], "a square")], steps=3, rank=2, width=32, height=32,
            name="sdk"), on_progress=updates.append)
        steps = [u for u in updates if u.stage is Stage.TRAINING and "loss" in u.metrics and not u.snapshot]
        assert [u.step for u in steps] == [1, 2, 3] and all(u.eta_seconds is not None for u in steps)
        lora = await client.training.get_lora(job.result.lora_id)
        assert lora.name == "sdk" and lora.steps == 3
        assert lora.id in {x.id for x in await client.training.list_loras(base_model="tiny-wan")}
        params = generation_parameters(model="tiny-wan", prompt="x", loras={lora.id: 0.5})
        assert [(x.lora_id, x.weight) for x in params.loras] == [(lora.id, 0.5)]
        await client.training.delete_lora(lora.id)
        assert lora.id not in {x.id for x in await client.training.list_loras()}
