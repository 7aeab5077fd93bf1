"""Quotas across replicas: two storage servers (each its own engine and connection pool) on one
PostgreSQL database and one bucket. Concurrent uploads of one owner, spread over both, never reserve
or store more than the quota."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
import pytest_asyncio

from tests.fixtures.storage import running_storage, test_storage_config
from viarte.storage.v1 import storage_pb2

from .helpers import assert_consistent, error_info, rows, wav_of

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]

MIB = 1024 * 1024
QUOTA = 20 * MIB


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def replicas(
    tmp_path_factory: pytest.TempPathFactory,
    storage_service: Any,
    auth_service: Any,
    postgres_database: Callable[[], str],
) -> AsyncIterator[list[Any]]:
    url = postgres_database()
    configs = [
        test_storage_config(
            tmp_path_factory.mktemp(f"storage-replica-{i}"),
            storage_service.s3,
            auth_service,
            database_url=url,
            s3_bucket="viarte-shared-quota",
            max_object_bytes=12 * MIB,
            quota_bytes=QUOTA,
            quota_count=100,
            stream_part_bytes=5 * MIB,
        )
        for i in range(2)
    ]
    # One after the other: the first creates the schema and the bucket.
    async with running_storage(configs[0], storage_service.s3) as a, running_storage(configs[1], storage_service.s3) as b:
        yield [a, b]


def _outcomes(results: list[Any]) -> tuple[int, list[str]]:
    """(successes, reasons of the refusals); anything but a gRPC error fails the test."""
    ok, reasons = 0, []
    for result in results:
        if isinstance(result, grpc.aio.AioRpcError):
            assert result.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (result.code(), result.details())
            reasons.append(error_info(result).reason)
        elif isinstance(result, BaseException):
            raise result
        else:
            ok += 1
    return ok, reasons


def _owner_rows(service: Any, owner_id: str) -> list[Any]:
    return [r for r in rows(service) if r.owner_id == owner_id and r.state in ("pending", "ready")]


async def test_declared_uploads_to_two_replicas_never_reserve_past_the_quota(replicas: list[Any], user_factory: Any) -> None:
    # 20 MiB of quota, 6 MiB each: exactly 3 of 8 concurrent reservations fit, whichever replicas
    # take them. Several rounds, so that interleavings that a per-process lock misses do occur.
    for _ in range(4):
        owner = await user_factory()
        calls = [
            replicas[i % 2].stub.CreateUpload(
                storage_pb2.CreateUploadRequest(
                    name=f"{i}.wav", content_type="audio/wav", size_bytes=6 * MIB, sha256="0" * 64
                ),
                metadata=owner.metadata,
                timeout=60,
            )
            for i in range(8)
        ]
        ok, reasons = _outcomes(await asyncio.gather(*calls, return_exceptions=True))
        reserved = _owner_rows(replicas[0], owner.id)
        assert sum(r.size_bytes for r in reserved) <= QUOTA, [r.size_bytes for r in reserved]
        assert (ok, len(reserved), set(reasons)) == (3, 3, {"QUOTA_BYTES_EXCEEDED"})


async def test_undeclared_streams_to_two_replicas_never_store_past_the_quota(
    replicas: list[Any], user_factory: Any, samples: Any
) -> None:
    # Streams that declare no size reserve nothing up front; each one alone fits the quota (8 of 20
    # MiB), so only the commit can hold four concurrent ones to it: two fit, two are refused.
    owner = await user_factory()
    data = wav_of(samples, 8 * MIB)
    calls = [replicas[i % 2].upload_asset(owner, data, f"{i}.wav", "audio/wav") for i in range(4)]
    ok, reasons = _outcomes(await asyncio.gather(*calls, return_exceptions=True))
    stored = [r for r in _owner_rows(replicas[0], owner.id) if r.state == "ready"]
    assert sum(r.size_bytes for r in stored) <= QUOTA
    assert (ok, len(stored), reasons) == (2, 2, ["QUOTA_BYTES_EXCEEDED"] * 2)
    # The refused uploads left nothing behind on either replica's view (one database, one bucket).
    assert_consistent(replicas[1])
    assert len(_owner_rows(replicas[1], owner.id)) == 2
