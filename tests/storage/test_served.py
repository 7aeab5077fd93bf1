"""Files served back through presigned GETs, over real HTTP from the real SeaweedFS: the declared
type and a safe Content-Disposition come back, so a PNG with HTML appended is handled as an image
(or a download), never rendered as a page."""

from __future__ import annotations

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
