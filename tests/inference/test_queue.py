"""Queue limits and priorities over gRPC, on a server with no device workers (jobs stay queued)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.fixtures.inference import running_inference, test_inference_config
from tests.inference.helpers import create
from viarte.errors import from_rpc_error
from viarte.inference.v1 import generation_pb2 as G
from viarte.type.v1 import job_pb2 as S

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_bounded_queue_with_priorities(
    tmp_path: Path, auth_service: Any, storage_service: Any, user_factory: Any
) -> None:
    config = test_inference_config(tmp_path, auth_service, storage_service, devices=(), max_queued=3,
                                   queue_full_retry_seconds=7.0)
    user = await user_factory()
    async with running_inference(config) as service:
        stub = service.stub
        params = {"model": "tiny-wan", "prompt": "a cat"}
        low = await create(stub, user, priority=0, **params)
        high = await create(stub, user, priority=9, **params)
        mid = await create(stub, user, request_id="retry-me", priority=5, **params)
        positions = {}
        for job in (low, high, mid):
            got = (await stub.GetGenerationJob(G.GetGenerationJobRequest(id=job.id), metadata=user.metadata)).job
            assert got.status.state == S.JOB_STATE_QUEUED
            positions[job.id] = got.status.progress.queue_position
        assert [positions[j.id] for j in (high, mid, low)] == [1, 2, 3]
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await create(stub, user, **params)
        decoded = from_rpc_error(err.value)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and decoded.reason == "QUEUE_FULL"
        assert decoded.retry_after == pytest.approx(7.0)
        # A retried request (same request id) is answered even with a full queue.
        assert (await create(stub, user, request_id="retry-me", priority=5, **params)).id == mid.id
        await stub.CancelGenerationJob(G.CancelGenerationJobRequest(id=high.id), metadata=user.metadata)
        fits = await create(stub, user, **params)
        assert fits.status.state == S.JOB_STATE_QUEUED
        page = await stub.ListGenerationJobs(G.ListGenerationJobsRequest(page_size=2, state=S.JOB_STATE_QUEUED),
                                             metadata=user.metadata)
        rest = await stub.ListGenerationJobs(
            G.ListGenerationJobsRequest(page_size=2, state=S.JOB_STATE_QUEUED, page_token=page.next_page_token),
            metadata=user.metadata)
        assert [j.id for j in [*page.jobs, *rest.jobs]] == [fits.id, mid.id, low.id] and not rest.next_page_token
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListGenerationJobs(G.ListGenerationJobsRequest(page_token=page.next_page_token),
                                          metadata=user.metadata)
        assert from_rpc_error(err.value).reason == "INVALID_PAGE_TOKEN"
