"""Completed uploads are immutable: uploads land on a staging key, completion copies them to the
final key (which no URL storage hands out can write) and verifies what is there; the upload's URLs
are useless afterwards and the janitor reaps whatever a re-used URL leaves on the staging key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import pytest_asyncio

from services.kit.db import make_engine
from services.storage.janitor import Janitor
from services.storage.objectstore import ObjectStore
from services.storage.store import AssetStore
from tests.fixtures.storage import running_storage, test_storage_config
from viarte.storage.v1 import storage_pb2

from .helpers import assert_consistent, multipart_uploads, object_keys, s3_client, sha256

pytestmark = pytest.mark.timeout(300)

MIB = 1024 * 1024


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def staged(tmp_path_factory: pytest.TempPathFactory, storage_service: Any, auth_service: Any) -> AsyncIterator[Any]:
    config = test_storage_config(
        tmp_path_factory.mktemp("storage-immutable"),
        storage_service.s3,
        auth_service,
        s3_bucket="viarte-immutable",
        multipart_threshold_bytes=6 * MIB,
        upload_part_bytes=5 * MIB,
        # The test runs the janitor itself (a background round could reap the re-used URL's
        # object before the test looks at it).
        janitor_interval_seconds=3600.0,
    )
    async with running_storage(config, storage_service.s3) as service:
        yield service


async def _janitor_round(service: Any) -> Any:
    engine = make_engine(service.config.database())
    try:
        return await Janitor(service.config, AssetStore(engine), ObjectStore(service.config)).reconcile()
    finally:
        engine.dispose()


def _final_bytes(service: Any, asset: Any) -> bytes:
    key = next(k for k in object_keys(service, f"users/{asset.owner_id}/{asset.id}/") if "/.thumbnail" not in k)
    return bytes(s3_client(service).get_object(Bucket=service.config.s3_bucket, Key=key)["Body"].read())


async def _assert_unchanged(service: Any, owner: Any, asset_id: str, original: bytes) -> None:
    """Every way of reading the asset returns the original bytes, described by GetAsset."""
    got = (await service.stub.GetAsset(storage_pb2.GetAssetRequest(asset_id=asset_id), metadata=owner.metadata)).asset
    assert got.sha256 == sha256(original) and got.size_bytes == len(original)
    assert _final_bytes(service, got) == original
    assert await service.download(owner, asset_id) == original
    url = await service.stub.GetDownloadUrl(storage_pb2.GetDownloadUrlRequest(asset_id=asset_id), metadata=owner.metadata)
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.get(url.url)
    assert r.status_code == 200 and r.content == original


async def test_single_put_url_cannot_change_a_completed_asset(staged: Any, user_factory: Any, samples: Any) -> None:
    owner = await user_factory()
    _, png = samples["image.png"]
    created = await staged.stub.CreateUpload(
        storage_pb2.CreateUploadRequest(name="pic.png", content_type="image/png", size_bytes=len(png), sha256=sha256(png)),
        metadata=owner.metadata,
    )
    # The URL names the staging key, not the key the asset is served from.
    assert urlsplit(created.url).path == f"/viarte-immutable/staging/{owner.id}/{created.asset_id}/pic.png"
    async with httpx.AsyncClient(timeout=30) as http:
        assert (await http.put(created.url, content=png, headers=dict(created.required_headers))).status_code == 200
        done = await staged.stub.CompleteUpload(
            storage_pb2.CompleteUploadRequest(asset_id=created.asset_id), metadata=owner.metadata
        )
        assert done.asset.state == storage_pb2.ASSET_STATE_READY
        # Completion moved the bytes: nothing is left on the staging key.
        assert object_keys(staged, f"staging/{owner.id}/") == []
        # Re-using the (still unexpired) URL with other bytes, as the outside review did.
        evil = png + b"<html><script>alert(document.domain)</script></html>"
        await http.put(created.url, content=evil, headers=dict(created.required_headers))
    await _assert_unchanged(staged, owner, created.asset_id, png)
    # Whatever the re-used URL left is a stale staging object; the janitor's next round reaps it.
    leftovers = object_keys(staged, f"staging/{owner.id}/")
    report = await _janitor_round(staged)
    assert set(leftovers) <= set(report.stale_staging)
    assert object_keys(staged, f"staging/{owner.id}/") == []
    await _assert_unchanged(staged, owner, created.asset_id, png)
    assert_consistent(staged)


async def test_multipart_part_urls_cannot_change_a_completed_asset(staged: Any, user_factory: Any, samples: Any) -> None:
    owner = await user_factory()
    head = samples["audio.wav"][1]
    data = head + bytes(11 * MIB - len(head))
    created = await staged.stub.CreateUpload(
        storage_pb2.CreateUploadRequest(name="long.wav", content_type="audio/wav", size_bytes=len(data), sha256=sha256(data)),
        metadata=owner.metadata,
    )
    assert len(created.parts) == 3
    for part in created.parts:
        assert urlsplit(part.url).path == f"/viarte-immutable/staging/{owner.id}/{created.asset_id}/long.wav"
    assert multipart_uploads(staged, f"staging/{owner.id}/") and not multipart_uploads(staged, f"users/{owner.id}/")
    etags = []
    async with httpx.AsyncClient(timeout=60) as http:
        offset = 0
        for part in created.parts:
            r = await http.put(part.url, content=data[offset : offset + part.size_bytes])
            assert r.status_code == 200
            etags.append(storage_pb2.CompletedPart(part_number=part.part_number, etag=r.headers["etag"]))
            offset += part.size_bytes
        done = await staged.stub.CompleteUpload(
            storage_pb2.CompleteUploadRequest(asset_id=created.asset_id, parts=etags), metadata=owner.metadata
        )
        assert done.asset.sha256 == sha256(data)
        assert object_keys(staged, f"staging/{owner.id}/") == []
        # Every part URL again, with other bytes.
        for part in created.parts:
            await http.put(part.url, content=b"\xff" * part.size_bytes)
    await _assert_unchanged(staged, owner, created.asset_id, data)
    await _janitor_round(staged)
    assert object_keys(staged, f"staging/{owner.id}/") == [] and multipart_uploads(staged, f"staging/{owner.id}/") == []
    await _assert_unchanged(staged, owner, created.asset_id, data)
    assert_consistent(staged)


async def test_streamed_asset_has_no_writable_url(staged: Any, user_factory: Any, samples: Any) -> None:
    owner = await user_factory()
    _, jpg = samples["image.jpg"]
    asset_id = await staged.upload(owner, jpg, "streamed.jpg", "image/jpeg")
    assert object_keys(staged, f"staging/{owner.id}/") == []
    async with httpx.AsyncClient(timeout=30) as http:
        for thumbnail in (False, True):
            url = await staged.stub.GetDownloadUrl(
                storage_pb2.GetDownloadUrlRequest(asset_id=asset_id, thumbnail=thumbnail), metadata=owner.metadata
            )
            # A GET URL is signed for GET: used to write, it is refused.
            r = await http.put(url.url, content=b"overwritten", headers={"content-type": "image/jpeg"})
            assert r.status_code == 403
    await _assert_unchanged(staged, owner, asset_id, jpg)
    assert_consistent(staged)


async def test_completion_verifies_the_final_object_and_resumes_after_a_copy(
    staged: Any, user_factory: Any, samples: Any
) -> None:
    """A CompleteUpload that stopped after its copy (crash) is retried: the staging object is gone,
    the final object is verified as it is; bytes that differ from the declaration are refused."""
    owner = await user_factory()
    _, png = samples["image.png"]
    client, bucket = s3_client(staged), staged.config.s3_bucket
    created = await staged.stub.CreateUpload(
        storage_pb2.CreateUploadRequest(name="c.png", content_type="image/png", size_bytes=len(png), sha256=sha256(png)),
        metadata=owner.metadata,
    )
    async with httpx.AsyncClient(timeout=30) as http:
        assert (await http.put(created.url, content=png, headers=dict(created.required_headers))).status_code == 200
    staging = f"staging/{owner.id}/{created.asset_id}/c.png"
    final = f"users/{owner.id}/{created.asset_id}/c.png"
    client.copy_object(Bucket=bucket, Key=final, CopySource={"Bucket": bucket, "Key": staging})
    client.delete_object(Bucket=bucket, Key=staging)
    done = await staged.stub.CompleteUpload(storage_pb2.CompleteUploadRequest(asset_id=created.asset_id), metadata=owner.metadata)
    assert done.asset.state == storage_pb2.ASSET_STATE_READY
    await _assert_unchanged(staged, owner, created.asset_id, png)
    assert_consistent(staged)


async def test_large_objects_are_copied_part_by_part(staged: Any) -> None:
    """Above S3's single-copy limit (5 GiB) the copy goes part by part: the same path, forced small."""
    objects = ObjectStore(staged.config)
    data = bytes(range(256)) * (11 * MIB // 256) + b"tail"
    try:
        await objects.put("staging/copy-test/a/src.bin", data, "application/octet-stream")
        await objects.copy(
            "staging/copy-test/a/src.bin", "users/copy-test/a/dst.bin", "audio/wav", len(data),
            max_single_copy_bytes=MIB, part_bytes=5 * MIB,
        )
        size, digest, head = await objects.digest("users/copy-test/a/dst.bin", head_bytes=4)
        assert (size, digest, head) == (len(data), sha256(data), data[:4])
        assert (await objects.head("users/copy-test/a/dst.bin")) is not None
    finally:
        await objects.delete_prefixes("staging/copy-test/", "users/copy-test/")
        objects.close()
