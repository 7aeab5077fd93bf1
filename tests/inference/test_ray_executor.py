"""The Ray executor (issue 15) on a simulated 2-node Ray cluster (``ray.cluster_utils.Cluster``: a
head without GPUs and two worker nodes declaring one logical GPU each), real inference servers over
loopback, tiny random-weight models. The session's cluster (tests/fixtures/ray.py) and one
Ray-backed server serve the whole module; the node-removal test runs last (it adds a node first, so
the cluster keeps two GPU nodes)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import pytest_asyncio

from services.inference.engine.encode import decode_mp4
from services.kit.ports import free_port
from tests.fixtures.inference import TINY_MODELS_DIR, running_inference, test_inference_config
from tests.fixtures.ray import add_gpu_node, connected, service_without_ray
from tests.inference.helpers import create, details, watch
from viarte.inference.v1 import generation_pb2 as G
from viarte.storage.v1 import storage_pb2
from viarte.type.v1 import asset_pb2
from viarte.type.v1 import job_pb2 as S

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow]

LONG = {"model": "tiny-wan", "width": 128, "height": 128, "num_frames": 17}


def _face() -> dict[str, Any]:
    """The tiny face models, as the session's inference server uses them (face swap runs for real)."""
    from services.inference.faceswap.tiny import build_tiny_face_models

    return {"face_models_dir": str(build_tiny_face_models().models_dir.parent), "face_use_tiny": True,
            "face_det_size": 320, "face_providers": ("CPUExecutionProvider",)}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def ray_inference(tmp_path_factory: Any, auth_service: Any, storage_service: Any, tiny_models: Any,
                        ray_cluster: Any) -> AsyncIterator[Any]:
    config = test_inference_config(tmp_path_factory.mktemp("ray-inference"), auth_service, storage_service,
                                   executor="ray", ray_address=ray_cluster.address, worker_threads=1,
                                   ray_probe_seconds=0.5, **_face())
    async with running_inference(config) as service:
        await connected(service.parts.pool.actors)
        yield service


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def local_inference(tmp_path_factory: Any, auth_service: Any, storage_service: Any,
                          tiny_models: Any) -> AsyncIterator[Any]:
    """The local executor with the same settings: the reference for identical results."""
    config = test_inference_config(tmp_path_factory.mktemp("local-inference"), auth_service, storage_service,
                                   worker_threads=1, **_face())
    async with running_inference(config) as service:
        yield service


async def _get(service: Any, user: Any, job_id: str) -> G.GenerationJob:
    answer = await service.stub.GetGenerationJob(G.GetGenerationJobRequest(id=job_id), metadata=user.metadata,
                                                 timeout=30)
    return answer.job


def _steps(events: list[S.JobEvent], stage: int, attr: str) -> list[int]:
    return [getattr(e.progress, attr) for e in events if e.progress.stage == stage and not e.progress.preview_jpeg]


def _transitions(states: list[int]) -> list[int]:
    return [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s]


async def _frames(storage: Any, user: Any, job: G.GenerationJob) -> np.ndarray:
    data = await storage.download(user, job.result.video_asset_id)
    return await asyncio.to_thread(decode_mp4, data, job.result.width, job.result.height)


async def test_four_jobs_run_on_both_nodes_and_match_the_local_executor(
    ray_inference: Any, local_inference: Any, storage_service: Any, user_factory: Any, ray_cluster: Any
) -> None:
    user = await user_factory()
    params = [{"model": "tiny-wan", "prompt": f"a boat {i}", "num_inference_steps": 3, "seed": 100 + i,
               "preview_every_n_steps": 2} for i in range(4)]
    ray_jobs = [await create(ray_inference.stub, user, **p) for p in params]
    ray_runs = await asyncio.gather(*(watch(ray_inference.stub, user, j.id) for j in ray_jobs))
    local_jobs = [await create(local_inference.stub, user, **p) for p in params]
    local_runs = await asyncio.gather(*(watch(local_inference.stub, user, j.id) for j in local_jobs))
    for (_, ray_events), (_, local_events) in zip(ray_runs, local_runs, strict=True):
        assert ray_events[-1].state == S.JOB_STATE_SUCCEEDED, ray_events[-1]
        assert local_events[-1].state == S.JOB_STATE_SUCCEEDED, local_events[-1]
        # The same per-step and per-frame events, previews included, either way.
        for stage, attr in ((S.STAGE_DENOISING, "step"), (S.STAGE_DECODING, "frame"), (S.STAGE_ENCODING, "frame")):
            assert _steps(ray_events, stage, attr) == _steps(local_events, stage, attr), stage
        assert sum(1 for e in ray_events if e.progress.preview_jpeg) == sum(1 for e in local_events
                                                                             if e.progress.preview_jpeg) > 0
    ray_done = [await _get(ray_inference, user, j.id) for j in ray_jobs]
    local_done = [await _get(local_inference, user, j.id) for j in local_jobs]
    assert {d.status.placement.executor for d in ray_done} == {"ray"}
    assert {d.status.placement.node for d in ray_done} == {n.node_id for n in ray_cluster.worker_nodes}
    assert all(d.status.placement.device.startswith("gpu:") for d in ray_done)
    assert {d.status.placement.executor for d in local_done} == {"local"}
    assert {d.status.placement.device for d in local_done} == {"cpu"}
    for r, loc in zip(ray_done, local_done, strict=True):
        same = ("frame_count", "fps", "seed", "width", "height", "memory_policy", "device")
        assert [getattr(r.result, f) for f in same] == [getattr(loc.result, f) for f in same]
        ray_frames, local_frames = await _frames(storage_service, user, r), await _frames(storage_service, user, loc)
        assert ray_frames.shape == local_frames.shape and np.array_equal(ray_frames, local_frames)


async def test_a_job_goes_to_the_actor_that_holds_its_model(ray_inference: Any, user_factory: Any) -> None:
    """One actor busy (long job), the other loads tiny-modelscope for job A; once both are free,
    job B for the same model goes to A's actor without a second load (not to the first free one)."""
    user = await user_factory()
    stub = ray_inference.stub
    long = await create(stub, user, prompt="a long walk", num_inference_steps=50, **LONG)
    await watch(stub, user, long.id, until=lambda e: e.progress.stage == S.STAGE_DENOISING and e.progress.step >= 1)
    a = await create(stub, user, model="tiny-modelscope", prompt="a fox", num_inference_steps=2)
    _, a_events = await watch(stub, user, a.id)
    assert a_events[-1].state == S.JOB_STATE_SUCCEEDED and _steps(a_events, S.STAGE_MODEL_LOADING, "step")
    await stub.CancelGenerationJob(G.CancelGenerationJobRequest(id=long.id), metadata=user.metadata, timeout=30)
    # Ended either way (it may have finished while A loaded its model): both actors are free now.
    assert (await watch(stub, user, long.id))[1][-1].state in (S.JOB_STATE_CANCELLED, S.JOB_STATE_SUCCEEDED)
    b = await create(stub, user, model="tiny-modelscope", prompt="a fox again", num_inference_steps=2)
    _, b_events = await watch(stub, user, b.id)
    assert b_events[-1].state == S.JOB_STATE_SUCCEEDED
    assert not _steps(b_events, S.STAGE_MODEL_LOADING, "step")  # no second load
    where = [(await _get(ray_inference, user, j.id)).status.placement for j in (long, a, b)]
    assert where[1] == where[2] and where[0] != where[1]


async def test_cancel_mid_denoise_stops_within_a_step_and_the_actor_is_reused(
    ray_inference: Any, user_factory: Any
) -> None:
    user = await user_factory()
    stub = ray_inference.stub
    runner = ray_inference.parts.pool
    pids = {s.node: (await s.actor.info.remote())["pid"] for s in runner.slots_list}
    job = await create(stub, user, prompt="a long walk", num_inference_steps=50, **LONG)
    _, head = await watch(stub, user, job.id,
                          until=lambda e: e.progress.stage == S.STAGE_DENOISING and e.progress.step >= 3)
    await stub.CancelGenerationJob(G.CancelGenerationJobRequest(id=job.id), metadata=user.metadata, timeout=30)
    cancelled_us = time.time_ns() // 1000
    _, tail = await watch(stub, user, job.id, after=head[-1].sequence)
    assert tail[-1].state == S.JOB_STATE_CANCELLED, tail[-1]
    events = head + tail
    steps = [e for e in events if e.progress.stage == S.STAGE_DENOISING and not e.progress.preview_jpeg]
    # Within one step: at most the step in flight when the flag landed reports after the cancel.
    after = [e.progress.step for e in steps if e.time.ToMicroseconds() > cancelled_us]
    assert len(after) <= 1, (after, [e.progress.step for e in steps])
    assert max(e.progress.step for e in steps) < 50 and not _steps(events, S.STAGE_DECODING, "frame")
    # Reused: the same actor processes (no restart), and both actors run the next jobs.
    jobs = [await create(stub, user, model="tiny-wan", prompt=f"next {i}", num_inference_steps=1) for i in range(2)]
    for j in jobs:
        assert (await watch(stub, user, j.id))[1][-1].state == S.JOB_STATE_SUCCEEDED
    assert {s.node: (await s.actor.info.remote())["pid"] for s in runner.slots_list} == pids
    placed = {(await _get(ray_inference, user, j.id)).status.placement.node for j in jobs}
    assert (await _get(ray_inference, user, job.id)).status.placement.node in placed | set(pids)


async def _face_swap(service: Any, user: Any, target: str, source: str) -> Any:
    from viarte.inference.v1 import face_swap_pb2 as F
    from viarte.inference.v1 import face_swap_pb2_grpc

    stub = face_swap_pb2_grpc.FaceSwapServiceStub(service.channel)
    params = F.FaceSwapParameters(target_asset_id=target, options=F.FaceSwapOptions(source_face_asset_id=source))
    job = (await stub.CreateFaceSwapJob(F.CreateFaceSwapJobRequest(parameters=params), metadata=user.metadata,
                                        timeout=30)).job
    async for _ in stub.WatchFaceSwapJob(F.WatchFaceSwapJobRequest(id=job.id), metadata=user.metadata, timeout=180):
        pass
    return (await stub.GetFaceSwapJob(F.GetFaceSwapJobRequest(id=job.id), metadata=user.metadata, timeout=30)).job


async def test_face_swap_runs_on_an_actor_with_the_local_result(
    ray_inference: Any, local_inference: Any, storage_service: Any, user_factory: Any
) -> None:
    """Face swap work names files on the server's disk: they travel to the actor and the output
    comes back, stored through the storage service as after a local run."""
    from tests.faceswap.helpers import face_image, image_bytes

    user = await user_factory()
    target = await storage_service.upload(user, image_bytes(face_image(96, 96, seed=1)), "t.png", "image/png")
    source = await storage_service.upload(user, image_bytes(face_image(96, 96, seed=2)), "s.png", "image/png")
    on_ray = await _face_swap(ray_inference, user, target, source)
    on_local = await _face_swap(local_inference, user, target, source)
    for job in (on_ray, on_local):
        assert job.status.state == S.JOB_STATE_SUCCEEDED, job.status.error
        assert job.result.frames_swapped == 1
    assert on_ray.status.placement.executor == "ray" and on_local.status.placement.executor == "local"
    pictures = [await storage_service.download(user, j.result.asset_id) for j in (on_ray, on_local)]
    assert pictures[0].startswith(b"\x89PNG") and pictures[0] == pictures[1]


async def _partner_passes(runner: Any) -> int:
    return sum([(await s.actor.info.remote())["partner_passes"] for s in runner.slots_list])


async def test_one_job_over_two_devices_equals_the_one_device_output(
    ray_inference: Any, local_inference: Any, storage_service: Any, user_factory: Any, ray_cluster: Any
) -> None:
    """``devices: 2``: each step's unconditional pass runs on the second actor (counted there), the
    placement lists both nodes and devices, and the video equals the one-device video frame for
    frame (bit-identical on CPU: the same passes on the same inputs and weights)."""
    user = await user_factory()
    stub, runner = ray_inference.stub, ray_inference.parts.pool
    params: dict[str, Any] = {"model": "tiny-wan", "prompt": "a harbour at dusk", "negative_prompt": "blurry",
                              "num_inference_steps": 4, "seed": 21, "guidance_scale": 5.0, "preview_every_n_steps": 2}
    before = await _partner_passes(runner)
    split = await create(stub, user, devices=2, **params)
    _, split_events = await watch(stub, user, split.id)
    assert split_events[-1].state == S.JOB_STATE_SUCCEEDED, split_events[-1]
    assert await _partner_passes(runner) - before == 4  # every step's unconditional pass ran on the partner
    one = await create(stub, user, **params)
    _, one_events = await watch(stub, user, one.id)
    assert one_events[-1].state == S.JOB_STATE_SUCCEEDED, one_events[-1]
    assert await _partner_passes(runner) - before == 4  # one device: none
    for stage, attr in ((S.STAGE_DENOISING, "step"), (S.STAGE_DECODING, "frame"), (S.STAGE_ENCODING, "frame")):
        assert _steps(split_events, stage, attr) == _steps(one_events, stage, attr), stage
    split_done, one_done = await _get(ray_inference, user, split.id), await _get(ray_inference, user, one.id)
    where = split_done.status.placement
    assert where.executor == "ray" and set(where.node.split(",")) == {n.node_id for n in ray_cluster.worker_nodes}
    assert len(where.device.split(",")) == 2 and all(d.startswith("gpu:") for d in where.device.split(","))
    assert "," not in one_done.status.placement.device
    assert split_done.parameters.devices == 2
    a, b = await _frames(storage_service, user, split_done), await _frames(storage_service, user, one_done)
    assert a.shape == b.shape == (9, 64, 64, 3) and np.array_equal(a, b)
    # Validated at Create: the local executor has one device for a job; 3 is more than CFG splits
    # into; guidance 1 has no unconditional pass; nothing is queued.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await create(local_inference.stub, user, devices=2, **params)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and details(err.value)[0] == "DEVICES_UNAVAILABLE"
    for bad in ({"devices": 3}, {"devices": 2, "guidance_scale": 1.0}, {"devices": -1}):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await create(stub, user, **(params | bad))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert details(err.value) == ("INVALID_PARAMETERS", ["parameters.devices"]), bad


async def test_ray_unreachable_at_start_answers_unavailable_and_local_is_unaffected(
    tmp_path: Path, auth_service: Any, storage_service: Any, user_factory: Any, local_inference: Any
) -> None:
    port, nowhere = free_port(), f"127.0.0.1:{free_port()}"  # nothing listens there
    values = {
        "PORT": str(port), "METRICS_PORT": "-1", "DATA_DIR": str(tmp_path), "LOG_LEVEL": "WARNING",
        "AUTH_ADDRESS": auth_service.address, "STORAGE_ADDRESS": storage_service.address,
        "INTERNAL_SECRET": auth_service.config.internal_secret.reveal(), "JWT_ISSUER": auth_service.config.jwt_issuer,
        "JWT_AUDIENCE": auth_service.config.jwt_audience, "MODELS_DIR": str(TINY_MODELS_DIR), "MODELS": "tiny-wan",
        "EXECUTOR": "ray", "RAY_ADDRESS": nowhere, "RAY_CONNECT_TIMEOUT_SECONDS": "20",
    }
    env = {f"VIARTE_INFERENCE_{k}": v for k, v in values.items()}
    user = await user_factory()
    async with service_without_ray("services.inference", env, port, tmp_path / "inference.log") as channel:
        from viarte.inference.v1 import generation_pb2_grpc

        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await create(stub, user, model="tiny-wan", prompt="a cat", num_inference_steps=1)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert details(err.value)[0] == "RAY_UNAVAILABLE" and nowhere in (err.value.details() or "")
        listed = await stub.ListGenerationJobs(G.ListGenerationJobsRequest(), metadata=user.metadata, timeout=30)
        assert not listed.jobs  # nothing was queued that could not start
    job = await create(local_inference.stub, user, model="tiny-wan", prompt="a cat", num_inference_steps=1)
    assert (await watch(local_inference.stub, user, job.id))[1][-1].state == S.JOB_STATE_SUCCEEDED


@pytest.mark.timeout(900)  # the actor's restart below, on a loaded machine
async def test_a_node_removed_mid_job_retries_on_the_other_node_once(
    ray_inference: Any, storage_service: Any, user_factory: Any, ray_cluster: Any
) -> None:
    """Runs last: a node is added first, then the job's node is removed; the lost actor comes back
    on the added node, so the cluster ends with two GPU nodes for the next module."""
    user = await user_factory()
    stub = ray_inference.stub
    add_gpu_node(ray_cluster)  # first: the cluster keeps two GPU nodes, and the lost actor has a place
    job = await create(stub, user, prompt="a long walk", num_inference_steps=12, seed=3, **LONG)
    _, head = await watch(stub, user, job.id,
                          until=lambda e: e.progress.stage == S.STAGE_DENOISING and e.progress.step >= 2)
    first = (await _get(ray_inference, user, job.id)).status.placement
    victim = next(n for n in ray_cluster.worker_nodes if n.node_id == first.node)
    await asyncio.to_thread(ray_cluster.remove_node, victim)
    _, tail = await watch(stub, user, job.id, after=head[-1].sequence, deadline_s=240)
    assert tail[-1].state == S.JOB_STATE_SUCCEEDED, tail[-1]
    assert _transitions([e.state for e in head + tail]) == [
        S.JOB_STATE_QUEUED, S.JOB_STATE_RUNNING, S.JOB_STATE_QUEUED, S.JOB_STATE_RUNNING, S.JOB_STATE_SUCCEEDED]
    done = await _get(ray_inference, user, job.id)
    assert done.status.attempts == 2 and done.result.frame_count == 17
    assert done.status.placement.executor == "ray" and done.status.placement.node not in ("", first.node)
    assets = await storage_service.stub.ListAssets(storage_pb2.ListAssetsRequest(kind=asset_pb2.ASSET_KIND_VIDEO),
                                                   metadata=user.metadata, timeout=30)
    assert [a.id for a in assets.assets] == [done.result.video_asset_id]  # succeeded once: one asset
    runner = ray_inference.parts.pool
    # Bounded: Ray restarts the lost actor on the new node (a worker process importing torch and
    # loading the model). A fresh suite with two other processes spinning took longer than 120 s.
    for _ in range(600):
        if runner.slots == 2:
            break
        await asyncio.sleep(0.5)
    assert runner.slots == 2
