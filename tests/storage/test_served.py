"""Files served back through presigned GETs, over real HTTP from the real SeaweedFS: the declared
type and a safe Content-Disposition come back, so a PNG with HTML appended is handled as an image
(or a download), never rendered as a page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from viarte.storage.v1 import storage_pb2

pytestmark = pytest.mark.timeout(300)


async def test_png_with_html_is_served_as_a_png_with_a_safe_disposition(
    storage_service: Any, user_factory: Any, samples: Any
) -> None:
    owner = await user_factory()
    polyglot = samples["image.png"][1] + b"<html><body><script>alert(document.cookie)</script></body></html>"
    hostile = 'x"; filename=evil.html\r\nX-Injected: 1\u00e9.png'
    asset_id = await storage_service.upload(owner, polyglot, hostile, "image/png")
    async with httpx.AsyncClient(timeout=30) as http:
        for attachment in (True, False):
            url = await storage_service.stub.GetDownloadUrl(
                storage_pb2.GetDownloadUrlRequest(asset_id=asset_id, attachment=attachment), metadata=owner.metadata
            )
            r = await http.get(url.url)
            assert r.status_code == 200 and r.content == polyglot
            assert r.headers["content-type"] == "image/png"
            disposition = r.headers["content-disposition"]
            assert disposition.startswith("attachment;" if attachment else "inline;")
            # One parameter set, ASCII fallback without quotes or line breaks, the name also RFC 5987-encoded.
            assert "x-injected" not in {k.lower() for k in r.headers}
            assert disposition.count("filename=") == 1 and disposition.count("filename*=") == 1
            fallback = disposition.split('filename="', 1)[1].split('"', 1)[0]
            assert fallback.endswith(".png") and not set(fallback) & set('"\\\r\n;')
            assert "filename*=UTF-8''" in disposition and disposition.endswith(".png")


async def test_a_name_whose_extension_names_another_type_gets_the_sniffed_types_extension(
    storage_service: Any, user_factory: Any, samples: Any
) -> None:
    """Issue 21: `x.html` holding a PNG is stored, listed and served as `x.png` (browsers and
    download dialogs go by the extension); a matching extension and a non-extension suffix stay."""
    owner = await user_factory()
    png = samples["image.png"][1]
    names = {}
    for raw in ("x.html", "photo.PNG", "v1.2", "noext"):
        names[raw] = (await storage_service.upload_asset(owner, png, raw, "image/png")).asset
    assert {raw: a.name for raw, a in names.items()} == {
        "x.html": "x.png", "photo.PNG": "photo.PNG", "v1.2": "v1.2.png", "noext": "noext.png"
    }
    async with httpx.AsyncClient(timeout=30) as http:
        for attachment in (True, False):
            url = await storage_service.stub.GetDownloadUrl(
                storage_pb2.GetDownloadUrlRequest(asset_id=names["x.html"].id, attachment=attachment),
                metadata=owner.metadata,
            )
            r = await http.get(url.url)
            assert r.status_code == 200 and r.headers["content-type"] == "image/png"
            assert 'filename="x.png"' in r.headers["content-disposition"], r.headers["content-disposition"]
            assert "html" not in r.headers["content-disposition"]
    # The presigned upload path names the asset the same way, before any byte arrives.
    created = await storage_service.stub.CreateUpload(
        storage_pb2.CreateUploadRequest(name="y.svg", content_type="image/png", size_bytes=len(png), sha256="0" * 64),
        metadata=owner.metadata,
    )
    pending = await storage_service.stub.GetAsset(
        storage_pb2.GetAssetRequest(asset_id=created.asset_id), metadata=owner.metadata
    )
    assert pending.asset.name == "y.png"


async def test_services_get_internal_urls_and_browsers_public_ones(
    storage_service: Any, auth_service: Any, user_factory: Any, samples: Any, tmp_path: Path
) -> None:
    """With a public endpoint (Envoy's S3 front) configured, only URLs for browsers name it:
    ResolveAsset (render, inference) hands out the internal endpoint, so service reads never
    detour through the gateway, and work while the public endpoint is unreachable."""
    from services.kit.auth import ServiceCredentials
    from tests.fixtures.storage import running_storage, test_storage_config

    s3 = storage_service.s3
    public = "http://127.0.0.1:9"  # discard port: nothing listens there
    # Its own bucket: this second storage has its own database, and its objects in the session's
    # bucket would read as orphans to the consistency checks of the session-wide storage service.
    config = test_storage_config(
        tmp_path, s3, auth_service, s3_public_endpoint=public, s3_bucket="viarte-served-public"
    )
    owner = await user_factory()
    _, png = samples["image.png"]
    async with running_storage(config, s3) as storage:
        asset_id = await storage.upload(owner, png, "a.png", "image/png")
        browser = await storage.stub.GetDownloadUrl(
            storage_pb2.GetDownloadUrlRequest(asset_id=asset_id), metadata=owner.metadata
        )
        assert browser.url.startswith(public + "/")
        service_md = await ServiceCredentials(config).metadata()
        resolved = await storage.internal_stub.ResolveAsset(
            storage_pb2.ResolveAssetRequest(owner_id=owner.id, asset_id=asset_id, expire_seconds=60), metadata=service_md
        )
        assert resolved.url.startswith(s3.endpoint + "/")
        async with httpx.AsyncClient(timeout=30) as http:
            assert (await http.get(resolved.url)).content == png
