"""The orphan kept-latents sweep (issue 15): kept latents in S3 whose job is finished or gone are
deleted, those of a job still queued or running are kept; bounded runs go through a backlog a page
at a time; two replicas sweeping at once agree and fail nothing. Real storage (SeaweedFS) and the
session's inference server (its job table), over loopback."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from typing import Any

import grpc
import pytest

from services.inference.latents_sweep import PREFIX, KeptLatentsSweep
from services.kit.storage_client import StorageClient
from tests.inference.helpers import create, watch
from viarte.inference.v1 import generation_pb2 as G
from viarte.type.v1 import job_pb2 as S

pytestmark = pytest.mark.timeout(600)


async def _kept(client: StorageClient) -> set[str]:
    keys: list[str] = []
    while True:
        page = await client.list_objects(PREFIX, start_after=keys[-1] if keys else "", limit=3)
        keys += page
        if len(page) < 3:
            return set(keys)


async def test_kept_latents_of_finished_or_gone_jobs_are_swept(inference_service: Any, storage_service: Any,
                                                              user_factory: Any) -> None:
    user = await user_factory()
    stub, jobs = inference_service.stub, inference_service.parts.jobs
    client = StorageClient(replace(storage_service.config, storage_address=storage_service.address))
    kinds = ("generation",)
    try:
        # Earlier tests' jobs left their kept latents in the shared bucket (their services sweep
        # nothing): clear that backlog first, or the rounds below outlast the "running" job.
        for _ in range(50):
            if not await KeptLatentsSweep(client, jobs, kinds, interval=0, batch=1000).sweep_once():
                break
        done = await create(stub, user, model="tiny-wan", prompt="a finished job", num_inference_steps=1)
        assert (await watch(stub, user, done.id))[1][-1].state == S.JOB_STATE_SUCCEEDED
        # Live through the rounds below on any machine (a fresh suite's 100 steps at 128x128x17 ended
        # before them once): ~17x that work, and it is cancelled as soon as they are done.
        running = await create(stub, user, model="tiny-wan", prompt="a long one", num_inference_steps=100,
                               width=384, height=384, num_frames=33)
        await watch(stub, user, running.id, until=lambda e: e.state == S.JOB_STATE_RUNNING)
        gone = str(uuid.uuid4())  # no such job (a replica's job that was never ours, or deleted)
        keys = {f"{PREFIX}/{done.id}/spec-a": "finished", f"{PREFIX}/{done.id}/spec-b": "finished",
                f"{PREFIX}/{gone}/spec-a": "gone", f"{PREFIX}/{running.id}/spec-a": "live"}
        for i in range(5):  # a backlog of more than one page of gone jobs' latents
            keys[f"{PREFIX}/{uuid.uuid4()}/spec-{i}"] = "gone"
        for key in keys:
            await client.put_object(key, b"latents")
        before = await _kept(client)
        assert set(keys) <= before

        # Two replicas at once, each bounded to 3 objects a run: they go round until all is seen.
        one = KeptLatentsSweep(client, jobs, kinds, interval=0, batch=3)
        two = KeptLatentsSweep(client, jobs, kinds, interval=0, batch=3)
        for _ in range(-(-len(before) // 3) + 1):
            runs = await asyncio.gather(one.sweep_once(), two.sweep_once())
            assert all(len(deleted) <= 3 for deleted in runs)  # bounded
        left = await _kept(client)
        assert {k for k, why in keys.items() if why != "live"} & left == set()
        assert f"{PREFIX}/{running.id}/spec-a" in left  # its retry could resume from them

        # Once the running job ends, its latents go too (and sweeping again deletes nothing twice).
        await stub.CancelGenerationJob(G.CancelGenerationJobRequest(id=running.id), metadata=user.metadata, timeout=30)
        assert (await watch(stub, user, running.id))[1][-1].state == S.JOB_STATE_CANCELLED
        sweep = KeptLatentsSweep(client, jobs, kinds, interval=0, batch=1000)
        deleted = await sweep.sweep_once()
        assert f"{PREFIX}/{running.id}/spec-a" in deleted
        assert f"{PREFIX}/{running.id}/spec-a" not in await _kept(client)
        assert not set(await sweep.sweep_once()) & set(keys)
    finally:
        await client.close()


async def test_list_objects_checks_its_arguments(storage_service: Any) -> None:
    client = StorageClient(replace(storage_service.config, storage_address=storage_service.address))
    try:
        for prefix, limit in (("../users", 0), (PREFIX, 1001), ("", 0)):
            with pytest.raises(Exception) as err:
                await client.list_objects(prefix, limit=limit)
            assert getattr(err.value, "code", None) == grpc.StatusCode.INVALID_ARGUMENT, (prefix, limit, err.value)
    finally:
        await client.close()
