"""Failure tests on a private SeaweedFS + storage server: S3 down and back, a process crash between
the S3 write and the metadata commit, an interrupted deletion, orphaned objects."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import pytest_asyncio

from services.kit.db import make_engine
from services.storage.janitor import Janitor
from services.storage.models import State, utcnow
from services.storage.objectstore import ObjectStore
from services.storage.store import AssetStore
from tests.fixtures.storage import running_s3, running_storage, test_storage_config
from viarte.storage.v1 import storage_pb2

from .crash_ingest import CRASH_EXIT
from .helpers import assert_consistent, expect_error, object_keys, rows, s3_client, sha256, wait_until

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[2]
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def private(tmp_path_factory: pytest.TempPathFactory, auth_service: Any) -> AsyncIterator[Any]:
    base = tmp_path_factory.mktemp("storage-failures")
    async with running_s3(base / "s3") as s3:
        config = test_storage_config(
            base / "service", s3, auth_service, upload_expire_seconds=120, janitor_interval_seconds=0.5
        )
        async with running_storage(config, s3) as service:
            yield service


async def test_s3_down_answers_unavailable_then_recovers_consistently(
    private: Any, user_factory: Any, samples: Any
) -> None:
    owner = await user_factory()
    stub = private.stub
    kept = await private.upload(owner, samples["image.png"][1], "kept.png", "image/png")
    doomed = await private.upload(owner, samples["audio.mp3"][1], "doomed.mp3", "audio/mpeg")
    _, jpg = samples["image.jpg"]
    pending = await stub.CreateUpload(
        storage_pb2.CreateUploadRequest(name="later.jpg", content_type="image/jpeg", size_bytes=len(jpg), sha256=sha256(jpg)),
        metadata=owner.metadata,
    )

    await private.s3.kill()  # abrupt: the S3 server is gone, not politely shut down
    try:
        await expect_error(private.upload(owner, samples["video.mp4"][1], "new.mp4", "video/mp4"), UNAVAILABLE, "S3_UNAVAILABLE")
        await expect_error(private.download(owner, kept), UNAVAILABLE, "S3_UNAVAILABLE")
        await expect_error(
            stub.CompleteUpload(storage_pb2.CompleteUploadRequest(asset_id=pending.asset_id), metadata=owner.metadata),
            UNAVAILABLE,
            "S3_UNAVAILABLE",
        )
        await expect_error(
            stub.DeleteAsset(storage_pb2.DeleteAssetRequest(asset_id=doomed), metadata=owner.metadata),
            UNAVAILABLE,
            "S3_UNAVAILABLE",
        )
        # Metadata reads keep working; the half-deleted asset is already gone for the user.
        listed = await stub.ListAssets(storage_pb2.ListAssetsRequest(), metadata=owner.metadata)
        assert [a.id for a in listed.assets] == [kept]
        got = await stub.GetAsset(storage_pb2.GetAssetRequest(asset_id=pending.asset_id), metadata=owner.metadata)
        assert got.asset.state == storage_pb2.ASSET_STATE_PENDING
    finally:
        await private.s3.start()

    # Recovery: the janitor finishes the deletion and removes the failed stream upload's leftovers.
    await wait_until(lambda: not [r for r in rows(private) if r.state == State.DELETING])
    assert_consistent(private)
    assert await private.download(owner, kept) == samples["image.png"][1]
    assert object_keys(private, f"users/{owner.id}/{doomed}/") == []
    # The pending upload survived the outage and completes normally.
    async with httpx.AsyncClient() as http:
        r = await http.put(pending.url, content=jpg, headers=dict(pending.required_headers))
        assert r.status_code == 200
    done = await stub.CompleteUpload(storage_pb2.CompleteUploadRequest(asset_id=pending.asset_id), metadata=owner.metadata)
    assert done.asset.state == storage_pb2.ASSET_STATE_READY
    new = await private.upload(owner, samples["video.mp4"][1], "new.mp4", "video/mp4")
    assert await private.download(owner, new) == samples["video.mp4"][1]
    assert_consistent(private)


def _crash_config(service: Any, path: Path) -> Path:
    c = service.config
    values = {
        "data_dir": c.data_dir,
        "s3_endpoint": c.s3_endpoint,
        "s3_access_key": c.s3_access_key,
        "s3_secret_key": c.s3_secret_key.reveal(),
        "s3_bucket": c.s3_bucket,
        "internal_secret": c.internal_secret.reveal(),
        "upload_expire_seconds": c.upload_expire_seconds,
        "log_level": "WARNING",
    }
    path.write_text(json.dumps(values))
    return path


@pytest.mark.parametrize("step", ["reserved", "object_written", "verified"])
async def test_crash_between_s3_write_and_commit_leaves_nothing_visible(
    step: str, private: Any, user_factory: Any, media_dir: Path, tmp_path: Path
) -> None:
    owner = await user_factory()
    proc = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tests.storage.crash_ingest", str(_crash_config(private, tmp_path / "c.json")),
         owner.id, str(media_dir / "video.mp4"), "video/mp4", step],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == CRASH_EXIT, proc.stderr
    asset_id = proc.stdout.split()[-1]
    # The crashed process left a PENDING row (and, past "reserved", the streamed object on its final
    # key: a stream never touches staging/) ...
    [row] = [r for r in rows(private) if r.id == asset_id]
    assert row.state == State.PENDING
    if step in ("object_written", "verified"):
        assert f"users/{owner.id}/{asset_id}/video.mp4" in object_keys(private, f"users/{owner.id}/")
    assert object_keys(private, f"staging/{owner.id}/") == []
    # ... which the user never sees ...
    listed = await private.stub.ListAssets(storage_pb2.ListAssetsRequest(), metadata=owner.metadata)
    assert listed.assets == [] and listed.total_bytes == 0
    for call in (
        private.stub.GetAsset(storage_pb2.GetAssetRequest(asset_id=asset_id), metadata=owner.metadata),
        private.download(owner, asset_id),
        private.stub.GetDownloadUrl(storage_pb2.GetDownloadUrlRequest(asset_id=asset_id), metadata=owner.metadata),
    ):
        await expect_error(call, grpc.StatusCode.NOT_FOUND, "ASSET_NOT_FOUND")
    # ... and that reconciliation removes once the upload expired: no row, no object. (A second
    # janitor beside the service's own, with its clock past the expiry; the two may race safely.)
    engine = make_engine(private.config.database())
    try:
        janitor = Janitor(private.config, AssetStore(engine), ObjectStore(private.config))
        later = utcnow() + timedelta(seconds=private.config.upload_expire_seconds + 1)
        report = await janitor.reconcile(now=later)
    finally:
        engine.dispose()
    assert asset_id in report.expired_uploads
    assert not any(r.id == asset_id for r in rows(private))
    assert object_keys(private, f"users/{owner.id}/") == object_keys(private, f"staging/{owner.id}/") == []
    assert_consistent(private)


async def test_interrupted_delete_is_finished_by_the_janitor(private: Any, user_factory: Any, samples: Any) -> None:
    owner = await user_factory()
    asset_id = await private.upload(owner, samples["image.webp"][1], "w.webp", "image/webp")
    # A crash right after DeleteAsset's first step: the tombstone is committed, the objects remain.
    engine = make_engine(private.config.database())
    try:
        assert AssetStore(engine).update(asset_id, [State.READY], state=State.DELETING)
    finally:
        engine.dispose()
    await expect_error(
        private.stub.GetAsset(storage_pb2.GetAssetRequest(asset_id=asset_id), metadata=owner.metadata),
        grpc.StatusCode.NOT_FOUND,
        "ASSET_NOT_FOUND",
    )
    await wait_until(lambda: not any(r.id == asset_id for r in rows(private)))
    assert object_keys(private, f"users/{owner.id}/") == []


async def test_orphan_objects_are_swept_after_the_grace_period(private: Any) -> None:
    client = s3_client(private)
    key = f"users/{uuid.uuid4()}/{uuid.uuid4()}/stray.png"
    client.put_object(Bucket=private.config.s3_bucket, Key=key, Body=b"stray")
    mp = client.create_multipart_upload(Bucket=private.config.s3_bucket, Key=key + ".part")
    engine = make_engine(private.config.database())
    try:
        janitor = Janitor(private.config, AssetStore(engine), ObjectStore(private.config))
        young = await janitor.reconcile()  # inside the grace period: could be mid-upload, kept
        assert key not in young.orphan_objects and key in object_keys(private)
        swept = await janitor.reconcile(orphan_grace_seconds=0)
    finally:
        engine.dispose()
    assert key in swept.orphan_objects and mp["UploadId"] in swept.orphan_multipart_uploads
    assert key not in object_keys(private)
    assert_consistent(private)
