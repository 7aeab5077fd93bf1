"""Envoy's S3 front: browsers' presigned uploads and downloads go through the gateway, which proxies
them verbatim to SeaweedFS (SigV4 signs Host, path and query) and adds the headers SeaweedFS cannot
send: ``X-Content-Type-Options: nosniff`` on every response, ``Content-Security-Policy: sandbox``
on reads. Structure and ``envoy --mode validate`` first, then the real mesh (SeaweedFS, storage,
Envoy as the dev runner starts them): a PNG with HTML appended comes back as a PNG that no browser
may sniff, single and multipart presigned uploads work through the front, and signatures still bind.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from gateway.config import GatewayConfig
from gateway.envoy import validate_config
from gateway.envoy_config import S3_FRONT_CLUSTER, S3_FRONT_LISTENER, build_bootstrap
from services.kit.config import load_config
from studio_dev.demo import FACE_IMAGE
from tests.fixtures.mesh import MeshUser, RunningMesh
from tests.gateway.test_envoy_config import _self_signed

pytestmark = pytest.mark.timeout(600)

# The editor's dev-server origin: a cross-origin caller of the S3 front, like the built editor on :8800.
EDITOR_ORIGIN = "http://127.0.0.1:5173"


def _listeners(config: GatewayConfig) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in build_bootstrap(config)["static_resources"]["listeners"]}


def _front_manager(config: GatewayConfig) -> dict[str, Any]:
    manager: dict[str, Any] = _listeners(config)[S3_FRONT_LISTENER]["filter_chains"][0]["filters"][0][
        "typed_config"
    ]
    return manager


# -- generated config -------------------------------------------------------------------------------


def test_no_front_without_an_upstream_and_the_gateway_listener_stays_first() -> None:
    assert list(_listeners(GatewayConfig(static_dir=""))) == ["gateway"]
    config = GatewayConfig(static_dir="", s3_front_upstream="127.0.0.1:8333")
    assert list(_listeners(config)) == ["gateway", S3_FRONT_LISTENER]
    front = _listeners(config)[S3_FRONT_LISTENER]["address"]["socket_address"]
    assert front == {"address": "127.0.0.1", "port_value": 8801}


def test_front_proxies_verbatim_and_adds_the_safety_headers() -> None:
    config = load_config(
        GatewayConfig,
        {
            "VIARTE_GATEWAY_STATIC_DIR": "",
            "VIARTE_GATEWAY_S3_FRONT_UPSTREAM": "s3:8333",
            "VIARTE_GATEWAY_S3_FRONT_PORT": "9443",
            "VIARTE_GATEWAY_S3_FRONT_IDLE_TIMEOUT_SECONDS": "120",
        },
    )
    manager = _front_manager(config)
    # SigV4 signs Host, path and query: nothing may rewrite or normalise them.
    assert manager["normalize_path"] is False and manager["merge_slashes"] is False
    assert manager["path_with_escaped_slashes_action"] == "KEEP_UNCHANGED"
    # Nothing buffers bodies: uploads and downloads stream.
    assert [f["name"] for f in manager["http_filters"]] == ["envoy.filters.http.router"]
    host = manager["route_config"]["virtual_hosts"][0]
    added = {h["header"]["key"]: h["header"]["value"] for h in host["response_headers_to_add"]}
    assert added == {"x-content-type-options": "nosniff"}
    for route in host["routes"]:
        assert route["match"]["prefix"] == "/"
        assert route["route"]["cluster"] == S3_FRONT_CLUSTER and "host_rewrite_literal" not in route["route"]
        assert route["route"]["timeout"] == "0s" and route["route"]["idle_timeout"] == "120s"
    reads = {
        r["match"]["headers"][0]["string_match"]["exact"]: r
        for r in host["routes"]
        if "headers" in r["match"]
    }
    assert set(reads) == {"GET", "HEAD"}
    for route in reads.values():
        assert route["response_headers_to_add"][0]["header"] == {
            "key": "content-security-policy",
            "value": "sandbox",
        }
    assert "headers" not in host["routes"][-1]["match"]  # every other method (PUT, POST, OPTIONS) too
    clusters = {c["name"]: c for c in build_bootstrap(config)["static_resources"]["clusters"]}
    s3 = clusters[S3_FRONT_CLUSTER]
    assert s3["type"] == "STRICT_DNS" and "health_checks" not in s3
    assert "typed_extension_protocol_options" not in s3  # HTTP/1.1 to S3, not gRPC's HTTP/2
    socket = s3["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    assert socket == {"address": "s3", "port_value": 8333}


def test_front_configs_validate(tmp_path: Path) -> None:
    validate_config(
        GatewayConfig(static_dir="", s3_front_upstream="127.0.0.1:8333", upstream_source_address="127.0.0.2")
    )
    cert, key = _self_signed(tmp_path)
    tls = GatewayConfig(
        static_dir="", s3_front_upstream="s3:8333", tls_cert_file=str(cert), tls_key_file=str(key)
    )
    assert "transport_socket" in _listeners(tls)[S3_FRONT_LISTENER]["filter_chains"][0]
    validate_config(tls)
    with pytest.raises(ValueError, match="host:port"):
        build_bootstrap(GatewayConfig(static_dir="", s3_front_upstream="http://s3"))


# -- through the real mesh ---------------------------------------------------------------------------


def _front(mesh: RunningMesh) -> str:
    mesh.require("auth", "storage", "gateway")
    front = str(getattr(mesh.state, "s3_public_endpoint", ""))
    assert front and front != mesh.state.s3_endpoint, "the dev runner must sign browser URLs for the S3 front"
    return front


def _signed_in(mesh: RunningMesh, user: MeshUser) -> Any:
    client = mesh.client()
    client.auth.register(user.email, user.password)
    return client


def _record_puts(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """The SDK's presigned PUTs (URL, body size), observed and passed on unchanged."""
    import viarte.client.assets

    puts: list[tuple[str, int]] = []
    real_put = viarte.client.assets._put

    async def recorded(http: Any, url: str, body: bytes, *args: Any) -> Any:
        puts.append((url, len(body)))
        return await real_put(http, url, body, *args)

    monkeypatch.setattr(viarte.client.assets, "_put", recorded)
    return puts


def _assert_front_headers(response: httpx.Response, *, read: bool) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers.get("content-security-policy") == ("sandbox" if read else None)


def test_png_with_html_is_served_through_the_front_with_nosniff(
    mesh: RunningMesh, mesh_user: MeshUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    mesh.require("auth", "storage", "gateway")
    puts = _record_puts(monkeypatch)
    polyglot = FACE_IMAGE.read_bytes() + b"<html><body><script>alert(document.cookie)</script></body></html>"
    urls: list[str] = []  # the read URLs a browser is handed
    with _signed_in(mesh, mesh_user) as client:
        asset = client.assets.upload(polyglot, name="face.png", content_type="image/png", method="presigned")
        assert asset.sha256 == hashlib.sha256(polyglot).hexdigest() and asset.content_type == "image/png"
        assert [size for _, size in puts] == [len(polyglot)]  # one PUT, no parts
        with httpx.Client(timeout=60, trust_env=False) as http:
            for attachment in (False, True):
                url = client.assets.url(asset.id, attachment=attachment)
                urls.append(url)
                r = http.get(url, headers={"origin": EDITOR_ORIGIN})
                assert r.status_code == 200 and r.content == polyglot
                assert r.headers["content-type"] == "image/png"
                assert r.headers["content-disposition"].startswith("attachment;" if attachment else "inline;")
                assert 'filename="face.png"' in r.headers["content-disposition"]
                _assert_front_headers(r, read=True)
                # The editor reads thumbnails and media cross-origin: S3's CORS answer comes through.
                assert r.headers["access-control-allow-origin"] == EDITOR_ORIGIN
            # A thumbnail URL is a read like any other.
            urls.append(client.assets.url(asset.id, thumbnail=True))
            thumb = http.get(urls[-1])
            assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"
            _assert_front_headers(thumb, read=True)
    # Every URL a browser was handed (the upload's and the reads') names the front.
    front = _front(mesh)
    assert all(url.startswith(front + "/") for url, _ in puts)
    assert all(url.startswith(front + "/") for url in urls)


def test_multipart_presigned_upload_through_the_front(
    mesh: RunningMesh, mesh_user: MeshUser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    front = _front(mesh)
    puts = _record_puts(monkeypatch)
    # 40 s of 16-bit stereo: about 7 MiB, above the mesh's 6 MiB multipart threshold.
    wav = tmp_path / "long.wav"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=330:duration=40", "-ac", "2",
                    "-c:a", "pcm_s16le", str(wav)], check=True, timeout=120)  # fmt: skip
    data = wav.read_bytes()
    with _signed_in(mesh, mesh_user) as client:
        asset = client.assets.upload(wav, method="presigned")
        assert asset.size_bytes == len(data) and asset.sha256 == hashlib.sha256(data).hexdigest()
        assert [size for _, size in puts] == [5 * 1024 * 1024, len(data) - 5 * 1024 * 1024]
        assert all(url.startswith(front + "/") and "uploadId=" in url for url, _ in puts)
        with httpx.Client(timeout=120, trust_env=False) as http:
            r = http.get(client.assets.url(asset.id))
        assert r.status_code == 200 and r.content == data
        _assert_front_headers(r, read=True)


def test_signatures_still_bind_through_the_front(mesh: RunningMesh, mesh_user: MeshUser) -> None:
    front = _front(mesh)
    with _signed_in(mesh, mesh_user) as client:
        asset = client.assets.upload(FACE_IMAGE, method="stream")
        url = client.assets.url(asset.id)
    signature = url.rsplit("X-Amz-Signature=", 1)[1][:64]
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    path = urlsplit(url)
    with httpx.Client(timeout=60, trust_env=False) as http:
        assert http.get(url).status_code == 200
        tampered = http.get(url.replace(signature, flipped))
        assert tampered.status_code == 403 and b"SignatureDoesNotMatch" in tampered.content
        _assert_front_headers(tampered, read=True)
        # The URL was signed for the front's host: presented straight to S3 (another Host) it fails.
        direct = http.get(f"{mesh.state.s3_endpoint}{path.path}?{path.query}")
        assert direct.status_code == 403
        # Unsigned requests and writes are still S3's to refuse.
        anonymous = http.get(f"{front}{path.path}")
        assert anonymous.status_code == 403
        overwrite = http.put(url, content=b"replaced")
        assert overwrite.status_code == 403
        _assert_front_headers(overwrite, read=False)
        assert http.get(url).content == FACE_IMAGE.read_bytes()


def test_browser_preflight_for_uploads_passes_through(mesh: RunningMesh) -> None:
    front = _front(mesh)
    with httpx.Client(timeout=60, trust_env=False) as http:
        r = http.options(
            f"{front}/viarte-assets/any/key.png?X-Amz-Signature=x",
            headers={
                "origin": EDITOR_ORIGIN,
                "access-control-request-method": "PUT",
                "access-control-request-headers": "content-type",
            },
        )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == EDITOR_ORIGIN
    assert "PUT" in r.headers["access-control-allow-methods"]
    assert "content-type" in r.headers["access-control-allow-headers"].lower()
    assert "etag" in r.headers["access-control-expose-headers"].lower()  # multipart needs each part's ETag
    _assert_front_headers(r, read=False)
