"""StorageService over a real loopback gRPC server, against a real SeaweedFS S3 server."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import grpc
import httpx
import pytest

from services.kit.auth import ServiceCredentials
from viarte.storage.v1 import storage_pb2
from viarte.type.v1 import asset_pb2

from .conftest import SAMPLES
from .helpers import assert_consistent, expect_error, object_keys, rows, sha256

pytestmark = pytest.mark.timeout(300)

NOT_FOUND = grpc.StatusCode.NOT_FOUND
INVALID = grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("name", sorted(SAMPLES))
async def test_every_supported_type_roundtrips_with_media_facts(
    name: str, storage_service: Any, user_factory: Any, samples: dict[str, tuple[str, bytes]]
) -> None:
    owner = await user_factory()
    ctype, data = samples[name]
    asset = (await storage_service.upload_asset(owner, data, name, ctype, labels={"source": "test"})).asset
    assert asset.state == storage_pb2.ASSET_STATE_READY
    assert (asset.owner_id, asset.name, asset.content_type) == (owner.id, name, ctype)
    assert asset.size_bytes == len(data) and asset.sha256 == sha256(data)
    assert asset.labels["source"] == "test"
    kind = asset.kind
    if kind == asset_pb2.ASSET_KIND_AUDIO:
        assert asset.media.has_audio and asset.media.duration_seconds > 0.3 and not asset.has_thumbnail
    else:
        assert (asset.media.width, asset.media.height) == (64, 48)
        assert asset.has_thumbnail
        thumb = await storage_service.download(owner, asset.id, thumbnail=True)
        assert thumb.startswith(b"\xff\xd8")
    if kind == asset_pb2.ASSET_KIND_VIDEO:
        assert asset.media.fps == pytest.approx(10.0) and asset.media.frame_count >= 4
    assert await storage_service.download(owner, asset.id) == data


async def test_download_ranges(storage_service: Any, user_factory: Any, samples: Any) -> None:
    owner = await user_factory()
    _, data = samples["video.mp4"]
    asset_id = await storage_service.upload(owner, data, "v.mp4", "video/mp4")
    assert await storage_service.download(owner, asset_id, offset=10, length=100) == data[10:110]
    assert await storage_service.download(owner, asset_id, offset=len(data) - 5) == data[-5:]
    assert await storage_service.download(owner, asset_id, offset=5, length=10**9) == data[5:]
    for offset, length in ((len(data), 0), (-1, 0), (0, -5)):
        await expect_error(
            storage_service.download(owner, asset_id, offset=offset, length=length),
            grpc.StatusCode.OUT_OF_RANGE,
            "INVALID_RANGE",
        )


async def test_large_stream_uses_multipart_with_bounded_parts(storage_service: Any, user_factory: Any, samples: Any) -> None:
    """A 20 MB upload (several 8 MiB S3 parts): a WAV padded with a data chunk, byte-exact back."""
    owner = await user_factory()
    _, wav = samples["audio.wav"]
    data = wav + bytes(range(256)) * (20 * 4096)
    asset = (await storage_service.upload_asset(owner, data, "big.wav", "audio/wav", sha256=sha256(data))).asset
    assert asset.size_bytes == len(data)
    assert sha256(await storage_service.download(owner, asset.id)) == sha256(data)


async def test_presigned_single_put_flow(storage_service: Any, user_factory: Any, samples: Any) -> None:
    owner = await user_factory()
    stub = storage_service.stub
    _, data = samples["image.jpg"]
    created = await stub.CreateUpload(
        storage_pb2.CreateUploadRequest(name="photo.jpg", content_type="image/jpg", size_bytes=len(data), sha256=sha256(data)),
        metadata=owner.metadata,
    )
    assert created.url and not created.parts and created.expire_time.seconds > 0
    assert created.required_headers["content-type"] == "image/jpeg"
    pending = (await stub.GetAsset(storage_pb2.GetAssetRequest(asset_id=created.asset_id), metadata=owner.metadata)).asset
    assert pending.state == storage_pb2.ASSET_STATE_PENDING
    listed = await stub.ListAssets(storage_pb2.ListAssetsRequest(), metadata=owner.metadata)
    assert created.asset_id not in [a.id for a in listed.assets]
    # Completing before uploading: UPLOAD_INCOMPLETE, and the upload stays usable.
    await expect_error(
        stub.CompleteUpload(storage_pb2.CompleteUploadRequest(asset_id=created.asset_id), metadata=owner.metadata),
        grpc.StatusCode.FAILED_PRECONDITION,
        "UPLOAD_INCOMPLETE",
    )
    async with httpx.AsyncClient() as http:
        # The URL is scoped to its key and content type.
        wrong = await http.put(created.url, content=data, headers={"content-type": "image/png"})
        assert wrong.status_code == 403
        put = await http.put(created.url, content=data, headers=dict(created.required_headers))
        assert put.status_code == 200
    done = (await stub.CompleteUpload(storage_pb2.CompleteUploadRequest(asset_id=created.asset_id), metadata=owner.metadata)).asset
    assert done.state == storage_pb2.ASSET_STATE_READY and done.has_thumbnail and done.sha256 == sha256(data)
    # Idempotent completion.
    again = await stub.CompleteUpload(storage_pb2.CompleteUploadRequest(asset_id=created.asset_id), metadata=owner.metadata)
    assert again.asset.id == done.id
    url = await stub.GetDownloadUrl(
        storage_pb2.GetDownloadUrlRequest(asset_id=done.id, attachment=True, expire_seconds=60), metadata=owner.metadata
    )
    async with httpx.AsyncClient() as http:
        got = await http.get(url.url)
        assert got.status_code == 200 and got.content == data
        assert got.headers["content-disposition"].startswith('attachment; filename="photo.jpg"')
        assert got.headers["content-type"] == "image/jpeg"
        # The URL names one key: pointing it at another object breaks the signature.
        assert (await http.get(url.url.replace("photo.jpg", ".thumbnail.jpg"))).status_code == 403
        thumb = await stub.GetDownloadUrl(
            storage_pb2.GetDownloadUrlRequest(asset_id=done.id, thumbnail=True), metadata=owner.metadata
        )
        got = await http.get(thumb.url)
        assert got.status_code == 200 and got.content.startswith(b"\xff\xd8")
        assert got.headers["content-disposition"].startswith('inline; filename="photo.jpg"')
    await expect_error(
        stub.GetDownloadUrl(storage_pb2.GetDownloadUrlRequest(asset_id=done.id, expire_seconds=10**8), metadata=owner.metadata),
        INVALID,
        "INVALID_ARGUMENT",
    )


async def test_presigned_url_expires(storage_service: Any, user_factory: Any, samples: Any) -> None:
    owner = await user_factory()
    asset_id = await storage_service.upload(owner, samples["image.png"][1], "p.png", "image/png")
    url = await storage_service.stub.GetDownloadUrl(
        storage_pb2.GetDownloadUrlRequest(asset_id=asset_id, expire_seconds=1), metadata=owner.metadata
    )
    await asyncio.sleep(2.1)
    async with httpx.AsyncClient() as http:
        assert (await http.get(url.url)).status_code == 403


async def test_create_upload_is_idempotent_on_request_id(storage_service: Any, user_factory: Any, samples: Any) -> None:
    owner = await user_factory()
    _, data = samples["audio.mp3"]
    req = storage_pb2.CreateUploadRequest(
        name="a.mp3", content_type="audio/mpeg", size_bytes=len(data), sha256=sha256(data), request_id="req-1"
    )
    first = await storage_service.stub.CreateUpload(req, metadata=owner.metadata)
    second = await storage_service.stub.CreateUpload(req, metadata=owner.metadata)
    assert first.asset_id == second.asset_id
    changed = storage_pb2.CreateUploadRequest()
    changed.CopyFrom(req)
    changed.size_bytes += 1
    await expect_error(storage_service.stub.CreateUpload(changed, metadata=owner.metadata), INVALID, "INVALID_ARGUMENT")
    # Another user's identical request id is a different upload.
    other = await user_factory()
    assert (await storage_service.stub.CreateUpload(req, metadata=other.metadata)).asset_id != first.asset_id


async def test_upload_asset_is_idempotent_on_request_id(storage_service: Any, user_factory: Any, samples: Any) -> None:
    owner = await user_factory()
    _, data = samples["image.png"]
    a = (await storage_service.upload_asset(owner, data, "x.png", "image/png", request_id="job-7")).asset
    b = (await storage_service.upload_asset(owner, data, "x.png", "image/png", request_id="job-7")).asset
    assert a.id == b.id
    listed = await storage_service.stub.ListAssets(storage_pb2.ListAssetsRequest(), metadata=owner.metadata)
    assert [x.id for x in listed.assets] == [a.id]


async def test_concurrent_retries_of_one_request_make_one_asset(storage_service: Any, user_factory: Any, samples: Any) -> None:
    owner = await user_factory()
    _, data = samples["video.webm"]
    answers = await asyncio.gather(
        *(storage_service.upload_asset(owner, data, "v.webm", "video/webm", request_id="retry-me") for _ in range(3))
    )
    assert len({a.asset.id for a in answers}) == 1
    assert [r.id for r in rows(storage_service) if r.owner_id == owner.id] == [answers[0].asset.id]
    # The same request id for another file is refused.
    await expect_error(
        storage_service.upload_asset(owner, samples["image.png"][1], "p.png", "image/png", request_id="retry-me"),
        INVALID,
        "INVALID_ARGUMENT",
    )
    assert_consistent(storage_service)


async def test_list_newest_first_with_kind_filter_and_pages(storage_service: Any, user_factory: Any, samples: Any) -> None:
    owner = await user_factory()
    ids = []
    for name in ("image.png", "audio.wav", "image.jpg", "video.webm", "image.webp"):
        ctype, data = samples[name]
        ids.append(await storage_service.upload(owner, data, name, ctype))
    stub = storage_service.stub
    everything = await stub.ListAssets(storage_pb2.ListAssetsRequest(), metadata=owner.metadata)
    assert [a.id for a in everything.assets] == ids[::-1]
    assert everything.total_bytes == sum(a.size_bytes for a in everything.assets)
    pages, token = [], ""
    while True:
        page = await stub.ListAssets(
            storage_pb2.ListAssetsRequest(kind=asset_pb2.ASSET_KIND_IMAGE, page_size=2, page_token=token),
            metadata=owner.metadata,
        )
        pages.append([a.id for a in page.assets])
        token = page.next_page_token
        if not token:
            break
    assert pages == [[ids[4], ids[2]], [ids[0]]]
    first = await stub.ListAssets(
        storage_pb2.ListAssetsRequest(kind=asset_pb2.ASSET_KIND_IMAGE, page_size=1), metadata=owner.metadata
    )
    await expect_error(
        stub.ListAssets(
            storage_pb2.ListAssetsRequest(kind=asset_pb2.ASSET_KIND_VIDEO, page_token=first.next_page_token),
            metadata=owner.metadata,
        ),
        INVALID,
        "INVALID_PAGE_TOKEN",
    )
    await expect_error(
        stub.ListAssets(storage_pb2.ListAssetsRequest(page_token="not-a-token"), metadata=owner.metadata),
        INVALID,
        "INVALID_PAGE_TOKEN",
    )


async def test_another_users_asset_is_not_found(storage_service: Any, user_factory: Any, samples: Any) -> None:
    owner, other = await user_factory(), await user_factory()
    asset_id = await storage_service.upload(owner, samples["image.png"][1], "mine.png", "image/png")
    stub = storage_service.stub
    calls = [
        stub.GetAsset(storage_pb2.GetAssetRequest(asset_id=asset_id), metadata=other.metadata),
        storage_service.download(other, asset_id),
        stub.GetDownloadUrl(storage_pb2.GetDownloadUrlRequest(asset_id=asset_id), metadata=other.metadata),
        stub.DeleteAsset(storage_pb2.DeleteAssetRequest(asset_id=asset_id), metadata=other.metadata),
        stub.GetAsset(storage_pb2.GetAssetRequest(asset_id=str(uuid.uuid4())), metadata=owner.metadata),
    ]
    for call in calls:
        await expect_error(call, NOT_FOUND, "ASSET_NOT_FOUND")
    await expect_error(
        stub.CompleteUpload(storage_pb2.CompleteUploadRequest(asset_id=asset_id), metadata=other.metadata),
        NOT_FOUND,
        "UPLOAD_NOT_FOUND",
    )
    listed = await stub.ListAssets(storage_pb2.ListAssetsRequest(), metadata=other.metadata)
    assert asset_id not in [a.id for a in listed.assets]
    # Still intact for its owner.
    assert await storage_service.download(owner, asset_id) == samples["image.png"][1]


async def test_anonymous_calls_are_refused(storage_service: Any) -> None:
    try:
        await storage_service.stub.ListAssets(storage_pb2.ListAssetsRequest())
    except grpc.aio.AioRpcError as exc:
        assert exc.code() == grpc.StatusCode.UNAUTHENTICATED
    else:
        raise AssertionError("anonymous ListAssets succeeded")


async def test_path_traversal_names_stay_in_the_owner_prefix(storage_service: Any, user_factory: Any, samples: Any) -> None:
    owner = await user_factory()
    _, data = samples["image.png"]
    for raw, clean in (
        ("../../../etc/passwd.png", "passwd.png"),
        ("..\\..\\other-user\\x.png", "x.png"),
        (f"/users/{uuid.uuid4()}/evil.png", "evil.png"),
        ("a/./../.thumbnail.jpg", "thumbnail.png"),  # a PNG takes its extension (issue 21)
        ("ok\x00\n\r.png", "ok.png"),
    ):
        asset = (await storage_service.upload_asset(owner, data, raw, "image/png")).asset
        assert asset.name == clean
        keys = object_keys(storage_service, f"users/{owner.id}/{asset.id}/")
        assert sorted(keys) == sorted([f"users/{owner.id}/{asset.id}/{clean}", f"users/{owner.id}/{asset.id}/.thumbnail.jpg"])
    for bad in ("..", "../..", "/", "  ", ""):
        await expect_error(storage_service.upload(owner, data, bad, "image/png"), INVALID, "INVALID_ARGUMENT")
    assert_consistent(storage_service)


@pytest.mark.parametrize(
    ("name", "declared", "reason"),
    [
        ("image.png", "image/jpeg", "CONTENT_TYPE_MISMATCH"),
        ("video.webm", "video/mp4", "CONTENT_TYPE_MISMATCH"),
        ("audio.wav", "audio/mpeg", "CONTENT_TYPE_MISMATCH"),
        ("image.png", "application/pdf", "UNSUPPORTED_MEDIA_TYPE"),
        ("image.png", "", "UNSUPPORTED_MEDIA_TYPE"),
    ],
)
async def test_wrong_declared_type_is_rejected_and_nothing_is_kept(
    name: str, declared: str, reason: str, storage_service: Any, user_factory: Any, samples: Any
) -> None:
    owner = await user_factory()
    await expect_error(storage_service.upload(owner, samples[name][1], name, declared), INVALID, reason)
    assert object_keys(storage_service, f"users/{owner.id}/") == []
    assert [r for r in rows(storage_service) if r.owner_id == owner.id] == []


async def test_garbage_and_broken_files_are_rejected(storage_service: Any, user_factory: Any, samples: Any) -> None:
    owner = await user_factory()
    await expect_error(storage_service.upload(owner, b"%PDF-1.4 not media" * 10, "x.png", "image/png"), INVALID, "UNSUPPORTED_MEDIA_TYPE")
    broken = samples["image.png"][1][:40] + b"\x00garbage" * 100
    await expect_error(storage_service.upload(owner, broken, "broken.png", "image/png"), INVALID, "UNSUPPORTED_MEDIA_TYPE")
    await expect_error(storage_service.upload(owner, b"", "empty.png", "image/png"), INVALID, "INVALID_ARGUMENT")
    assert object_keys(storage_service, f"users/{owner.id}/") == []


async def test_wrong_checksum_and_size(storage_service: Any, user_factory: Any, samples: Any) -> None:
    owner = await user_factory()
    _, data = samples["image.png"]
    await expect_error(
        storage_service.upload_asset(owner, data, "x.png", "image/png", sha256="0" * 64), INVALID, "CHECKSUM_MISMATCH"
    )
    await expect_error(
        storage_service.upload_asset(owner, data, "x.png", "image/png", size_bytes=len(data) + 1), INVALID, "SIZE_MISMATCH"
    )
    await expect_error(
        storage_service.upload_asset(owner, data, "x.png", "image/png", sha256="XYZ"), INVALID, "INVALID_ARGUMENT"
    )
    # Presigned: the declared sha256 does not match what was PUT -> deleted on completion.
    stub = storage_service.stub
    created = await stub.CreateUpload(
        storage_pb2.CreateUploadRequest(name="x.png", content_type="image/png", size_bytes=len(data), sha256="1" * 64),
        metadata=owner.metadata,
    )
    async with httpx.AsyncClient() as http:
        assert (await http.put(created.url, content=data, headers=dict(created.required_headers))).status_code == 200
    await expect_error(
        stub.CompleteUpload(storage_pb2.CompleteUploadRequest(asset_id=created.asset_id), metadata=owner.metadata),
        INVALID,
        "CHECKSUM_MISMATCH",
    )
    await expect_error(
        stub.CompleteUpload(storage_pb2.CompleteUploadRequest(asset_id=created.asset_id), metadata=owner.metadata),
        NOT_FOUND,
        "UPLOAD_NOT_FOUND",
    )
    # Presigned: a different size than declared.
    created = await stub.CreateUpload(
        storage_pb2.CreateUploadRequest(name="y.png", content_type="image/png", size_bytes=len(data) + 7, sha256=sha256(data)),
        metadata=owner.metadata,
    )
    async with httpx.AsyncClient() as http:
        assert (await http.put(created.url, content=data, headers=dict(created.required_headers))).status_code == 200
    await expect_error(
        stub.CompleteUpload(storage_pb2.CompleteUploadRequest(asset_id=created.asset_id), metadata=owner.metadata),
        INVALID,
        "SIZE_MISMATCH",
    )
    assert object_keys(storage_service, f"users/{owner.id}/") == []


async def test_delete_removes_objects_and_metadata(storage_service: Any, user_factory: Any, samples: Any) -> None:
    owner = await user_factory()
    asset_id = await storage_service.upload(owner, samples["video.mov"][1], "clip.mov", "video/quicktime")
    assert len(object_keys(storage_service, f"users/{owner.id}/{asset_id}/")) == 2
    await storage_service.stub.DeleteAsset(storage_pb2.DeleteAssetRequest(asset_id=asset_id), metadata=owner.metadata)
    assert object_keys(storage_service, f"users/{owner.id}/") == []
    await expect_error(
        storage_service.stub.GetAsset(storage_pb2.GetAssetRequest(asset_id=asset_id), metadata=owner.metadata),
        NOT_FOUND,
        "ASSET_NOT_FOUND",
    )
    await expect_error(
        storage_service.stub.DeleteAsset(storage_pb2.DeleteAssetRequest(asset_id=asset_id), metadata=owner.metadata),
        NOT_FOUND,
        "ASSET_NOT_FOUND",
    )


async def test_internal_store_and_resolve_for_services_only(
    storage_service: Any, auth_service: Any, user_factory: Any, samples: Any
) -> None:
    owner, other = await user_factory(), await user_factory()
    creds = ServiceCredentials(storage_service.config)
    service_md = await creds.metadata()
    _, data = samples["video.mp4"]

    def requests(owner_id: str) -> Any:
        async def gen() -> Any:
            yield storage_pb2.StoreAssetRequest(
                metadata=storage_pb2.StoreAssetMetadata(
                    owner_id=owner_id,
                    upload=storage_pb2.UploadMetadata(name="result.mp4", content_type="video/mp4", labels={"job_id": "j1"}),
                )
            )
            yield storage_pb2.StoreAssetRequest(chunk=data)

        return gen()

    internal = storage_service.internal_stub
    stored = (await internal.StoreAsset(requests(owner.id), metadata=service_md)).asset
    assert stored.owner_id == owner.id and stored.labels["job_id"] == "j1"
    # The owner sees it like any of their assets.
    assert await storage_service.download(owner, stored.id) == data
    resolved = await internal.ResolveAsset(
        storage_pb2.ResolveAssetRequest(owner_id=owner.id, asset_id=stored.id, expire_seconds=60), metadata=service_md
    )
    async with httpx.AsyncClient() as http:
        assert (await http.get(resolved.url)).content == data
    await expect_error(
        internal.ResolveAsset(storage_pb2.ResolveAssetRequest(owner_id=other.id, asset_id=stored.id), metadata=service_md),
        NOT_FOUND,
        "ASSET_NOT_FOUND",
    )
    # A user token cannot call the internal service.
    for call in (
        internal.ResolveAsset(storage_pb2.ResolveAssetRequest(owner_id=owner.id, asset_id=stored.id), metadata=owner.metadata),
        internal.StoreAsset(requests(owner.id), metadata=owner.metadata),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await call
        assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # A service cannot use the user API (it has no user id).
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await storage_service.stub.ListAssets(storage_pb2.ListAssetsRequest(), metadata=service_md)
    assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_api_key_scopes_are_enforced(storage_service: Any, auth_service: Any, user_factory: Any, samples: Any) -> None:
    from viarte.auth.v1 import auth_pb2, auth_pb2_grpc

    owner = await user_factory()
    asset_id = await storage_service.upload(owner, samples["image.png"][1], "p.png", "image/png")
    async with grpc.aio.insecure_channel(auth_service.address) as channel:
        created = await auth_pb2_grpc.AuthServiceStub(channel).CreateApiKey(
            auth_pb2.CreateApiKeyRequest(name="reader", scopes=["assets:read"]), metadata=owner.metadata
        )
    reader = (("x-api-key", created.secret),)
    assert await storage_service.download(reader, asset_id) == samples["image.png"][1]
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await storage_service.upload(reader, samples["image.png"][1], "q.png", "image/png")
    assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await storage_service.stub.DeleteAsset(storage_pb2.DeleteAssetRequest(asset_id=asset_id), metadata=reader)
    assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
