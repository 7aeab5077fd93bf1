"""Size limits, quotas, presigned multipart uploads and the janitor, on a storage server with small
limits (its own bucket on the session's S3 server)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest
import pytest_asyncio

from tests.fixtures.storage import running_storage, test_storage_config
from viarte.storage.v1 import storage_pb2

from .helpers import (
    assert_consistent,
    expect_error,
    multipart_uploads,
    object_keys,
    rows,
    sha256,
    wait_until,
    wav_of,
)

pytestmark = pytest.mark.timeout(300)

MIB = 1024 * 1024
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def small(tmp_path_factory: pytest.TempPathFactory, storage_service: Any, auth_service: Any) -> AsyncIterator[Any]:
    config = test_storage_config(
        tmp_path_factory.mktemp("storage-small"),
        storage_service.s3,
        auth_service,
        s3_bucket="viarte-small-limits",
        max_object_bytes=12 * MIB,
        quota_bytes=20 * MIB,
        quota_count=4,
        multipart_threshold_bytes=6 * MIB,
        upload_part_bytes=5 * MIB,
        stream_part_bytes=5 * MIB,
        upload_expire_seconds=6,
        janitor_interval_seconds=0.5,
        orphan_grace_seconds=3600.0,
    )
    async with running_storage(config, storage_service.s3) as service:
        yield service


async def test_object_too_large(small: Any, user_factory: Any, samples: Any) -> None:
    owner = await user_factory()
    await expect_error(
        small.stub.CreateUpload(
            storage_pb2.CreateUploadRequest(name="big.wav", content_type="audio/wav", size_bytes=12 * MIB + 1, sha256="0" * 64),
            metadata=owner.metadata,
        ),
        EXHAUSTED,
        "OBJECT_TOO_LARGE",
    )
    # Declared up front on a stream.
    await expect_error(
        small.upload_asset(owner, b"RIFF", "big.wav", "audio/wav", size_bytes=13 * MIB), EXHAUSTED, "OBJECT_TOO_LARGE"
    )
    # Not declared: cut off mid-stream, after S3 parts were already written, and cleaned up.
    await expect_error(small.upload(owner, wav_of(samples, 13 * MIB), "big.wav", "audio/wav"), EXHAUSTED, "OBJECT_TOO_LARGE")
    assert object_keys(small, f"users/{owner.id}/") == []
    assert multipart_uploads(small, f"users/{owner.id}/") == []
    assert [r for r in rows(small) if r.owner_id == owner.id] == []


async def test_quotas(small: Any, user_factory: Any, samples: Any) -> None:
    owner = await user_factory()
    await small.upload(owner, wav_of(samples, 10 * MIB), "a.wav", "audio/wav")
    # 10 MiB used of 20: a declared 11 MiB upload is refused before anything is stored ...
    await expect_error(
        small.stub.CreateUpload(
            storage_pb2.CreateUploadRequest(name="b.wav", content_type="audio/wav", size_bytes=11 * MIB, sha256="0" * 64),
            metadata=owner.metadata,
        ),
        EXHAUSTED,
        "QUOTA_BYTES_EXCEEDED",
    )
    # ... and an undeclared stream is cut off when it crosses the quota.
    await expect_error(small.upload(owner, wav_of(samples, 11 * MIB), "c.wav", "audio/wav"), EXHAUSTED, "QUOTA_BYTES_EXCEEDED")
    for i in range(3):
        await small.upload(owner, samples["image.png"][1], f"{i}.png", "image/png")
    await expect_error(small.upload(owner, samples["image.png"][1], "5.png", "image/png"), EXHAUSTED, "QUOTA_COUNT_EXCEEDED")
    # Quotas are per user.
    other = await user_factory()
    await small.upload(other, samples["image.png"][1], "ok.png", "image/png")
    assert_consistent(small)


async def test_presigned_multipart_upload(small: Any, user_factory: Any, samples: Any) -> None:
    owner = await user_factory()
    data = wav_of(samples, 11 * MIB)
    created = await small.stub.CreateUpload(
        storage_pb2.CreateUploadRequest(name="long.wav", content_type="audio/wav", size_bytes=len(data), sha256=sha256(data)),
        metadata=owner.metadata,
    )
    assert not created.url and [(p.part_number, p.size_bytes) for p in created.parts] == [
        (1, 5 * MIB), (2, 5 * MIB), (3, MIB)
    ]
    etags = []
    async with httpx.AsyncClient(timeout=30) as http:
        offset = 0
        for part in created.parts:
            r = await http.put(part.url, content=data[offset : offset + part.size_bytes])
            assert r.status_code == 200
            etags.append(storage_pb2.CompletedPart(part_number=part.part_number, etag=r.headers["etag"]))
            offset += part.size_bytes
    await expect_error(
        small.stub.CompleteUpload(
            storage_pb2.CompleteUploadRequest(asset_id=created.asset_id, parts=etags[:2]), metadata=owner.metadata
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "UPLOAD_INCOMPLETE",
    )
    done = await small.stub.CompleteUpload(
        storage_pb2.CompleteUploadRequest(asset_id=created.asset_id, parts=etags), metadata=owner.metadata
    )
    assert done.asset.size_bytes == len(data) and done.asset.sha256 == sha256(data)
    assert sha256(await small.download(owner, created.asset_id)) == sha256(data)


async def test_janitor_removes_uploads_never_completed(small: Any, user_factory: Any, samples: Any) -> None:
    owner = await user_factory()
    _, data = samples["image.png"]
    single = await small.stub.CreateUpload(
        storage_pb2.CreateUploadRequest(name="p.png", content_type="image/png", size_bytes=len(data), sha256=sha256(data)),
        metadata=owner.metadata,
    )
    big = wav_of(samples, 7 * MIB)
    multi = await small.stub.CreateUpload(
        storage_pb2.CreateUploadRequest(name="m.wav", content_type="audio/wav", size_bytes=len(big), sha256=sha256(big)),
        metadata=owner.metadata,
    )
    async with httpx.AsyncClient(timeout=30) as http:
        assert (await http.put(single.url, content=data, headers=dict(single.required_headers))).status_code == 200
        assert (await http.put(multi.parts[0].url, content=big[: 5 * MIB])).status_code == 200
    # Uploads land on staging keys, never on the final ones.
    assert object_keys(small, f"staging/{owner.id}/") and multipart_uploads(small, f"staging/{owner.id}/")
    assert object_keys(small, f"users/{owner.id}/") == []
    await wait_until(lambda: not any(r.owner_id == owner.id for r in rows(small)))
    assert [r for r in rows(small) if r.owner_id == owner.id] == []
    for prefix in (f"users/{owner.id}/", f"staging/{owner.id}/"):
        assert object_keys(small, prefix) == []
        assert multipart_uploads(small, prefix) == []
    for asset_id in (single.asset_id, multi.asset_id):
        await expect_error(
            small.stub.CompleteUpload(storage_pb2.CompleteUploadRequest(asset_id=asset_id), metadata=owner.metadata),
            grpc.StatusCode.NOT_FOUND,
            "UPLOAD_NOT_FOUND",
        )
    assert_consistent(small)
