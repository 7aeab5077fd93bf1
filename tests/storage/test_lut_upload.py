"""`.cube` LUT assets (issue 18): sniffed as text, parsed whole before READY, hostile files refused
with INVALID_LUT and the line; uploaded through the SDK by extension (stream and presigned)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from services.kit.cube_lut import MAX_LUT_BYTES, parse_cube
from viarte import AsyncClient, Tokens
from viarte.storage.v1 import storage_pb2
from viarte.type.v1 import asset_pb2

from .helpers import error_info, expect_error, object_keys, rows

pytestmark = pytest.mark.timeout(300)

INVALID = grpc.StatusCode.INVALID_ARGUMENT
LUT_TYPE = "application/x-cube-lut"


def identity_cube(size: int = 2, title: str = "identity") -> bytes:
    lines = ["# made by the test", f'TITLE "{title}"', f"LUT_3D_SIZE {size}"]
    step = 1 / (size - 1)
    lines += [f"{r * step:.4f} {g * step:.4f} {b * step:.4f}" for b in range(size) for g in range(size) for r in range(size)]
    return ("\n".join(lines) + "\n").encode()


def violation(exc: grpc.aio.AioRpcError) -> tuple[str, str]:
    from google.rpc import error_details_pb2, status_pb2

    status = status_pb2.Status.FromString(dict(exc.trailing_metadata() or ())["grpc-status-details-bin"])
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            return bad.field_violations[0].field, bad.field_violations[0].description
    raise AssertionError("no BadRequest")


async def test_a_cube_lut_is_stored_as_a_lut_asset(storage_service: Any, user_factory: Any) -> None:
    owner = await user_factory()
    data = identity_cube(5)
    response = await storage_service.upload_asset(owner, data, "grade.txt", "text/x-cube")
    asset = response.asset
    assert asset.kind == asset_pb2.ASSET_KIND_LUT and asset.content_type == LUT_TYPE
    assert asset.name == "grade.cube" and asset.size_bytes == len(data) and not asset.has_thumbnail
    assert await storage_service.download(owner, asset.id) == data
    assert parse_cube(data).size == 5
    listed = await storage_service.stub.ListAssets(
        storage_pb2.ListAssetsRequest(kind=asset_pb2.ASSET_KIND_LUT), metadata=owner.metadata, timeout=30
    )
    assert [a.id for a in listed.assets] == [asset.id]


BAD_CUBES = [
    # (file, what the description must say)
    (identity_cube(2).replace(b"1.0000 1.0000 1.0000", b"1.0 nan 1.0"), "line 11: numbers must be finite"),
    (identity_cube(2).replace(b"0.0000 1.0000 0.0000", b"0.0 1.0"), "line 6: expected three numbers"),
    (identity_cube(2) + b"0 0 0\n", "line 12: more than 2"),
    (identity_cube(2).rsplit(b"\n", 2)[0] + b"\n", "7 rows; LUT_3D_SIZE 2 needs 8"),
    (b"LUT_3D_SIZE 66\n", "line 1: LUT_3D_SIZE must be in [2, 65]"),
    (b"LUT_3D_SIZE 100000\n0 0 0\n", "line 1: LUT_3D_SIZE must be in [2, 65]"),
    (b"LUT_1D_SIZE 4\n0 0 0\n", "line 1: 1D LUTs are not supported"),
    (b"TITLE \"x\"\nDOMAIN_MIN 0 0 0\nDOMAIN_MAX 1 1 1\n" + b"# padding\n" * 10 + b"<script>alert(1)</script>\n", "line 14: LUT_3D_SIZE must come before"),
    (b"# only comments\n" * 8, "no LUT_3D_SIZE"),
    (b"DOMAIN_MIN 1 1 1\nDOMAIN_MAX 0 0 0\n" + identity_cube(2), "DOMAIN_MIN must be below DOMAIN_MAX"),
    (b"LUT_3D_SIZE 2\n" + b"0 0 0\n" * 7 + b"0 0 0 \xff\xfe\n", "not UTF-8 text"),
]


@pytest.mark.parametrize(("data", "says"), BAD_CUBES, ids=range(len(BAD_CUBES)))
async def test_a_file_declared_as_a_lut_that_does_not_parse_is_refused_at_content(
    storage_service: Any, user_factory: Any, data: bytes, says: str
) -> None:
    owner = await user_factory()
    exc = await expect_error(storage_service.upload(owner, data, "x.cube", LUT_TYPE), INVALID, "INVALID_LUT")
    field, description = violation(exc)
    assert field == "content" and says in description, description
    if says.startswith("line"):
        assert error_info(exc).metadata["line"] == says.split()[1].rstrip(":")
    assert object_keys(storage_service, f"users/{owner.id}/") == []
    assert object_keys(storage_service, f"staging/{owner.id}/") == []
    assert not [r for r in rows(storage_service) if r.owner_id == owner.id]


async def test_binary_or_foreign_files_never_pass_as_luts(storage_service: Any, user_factory: Any, samples: Any) -> None:
    owner = await user_factory()
    png = samples["image.png"][1]
    await expect_error(storage_service.upload(owner, png, "x.cube", LUT_TYPE), INVALID, "CONTENT_TYPE_MISMATCH")
    cube = identity_cube(2)
    await expect_error(storage_service.upload(owner, cube, "x.png", "image/png"), INVALID, "CONTENT_TYPE_MISMATCH")
    # HTML is plain text (a caption file could be stored as text/plain), never a LUT.
    html = b"<html><body>LUT_3D_SIZE 2</body></html>"
    await expect_error(storage_service.upload(owner, html, "x.cube", LUT_TYPE), INVALID, "CONTENT_TYPE_MISMATCH")
    for hostile in (b"LUT_3D_SIZE 2\n\x00\x01\x02", b"\x1b[31mLUT_3D_SIZE 2\n"):
        await expect_error(storage_service.upload(owner, hostile, "x.cube", LUT_TYPE), INVALID, "UNSUPPORTED_MEDIA_TYPE")


async def test_a_lut_declared_larger_than_the_bound_is_refused_before_any_byte(
    storage_service: Any, user_factory: Any
) -> None:
    owner = await user_factory()
    request = storage_pb2.CreateUploadRequest(
        name="big.cube", content_type=LUT_TYPE, size_bytes=MAX_LUT_BYTES + 1, sha256="0" * 64
    )
    exc = await expect_error(
        storage_service.stub.CreateUpload(request, metadata=owner.metadata, timeout=30), INVALID, "INVALID_LUT"
    )
    assert violation(exc) == ("content", f"larger than {MAX_LUT_BYTES} bytes")
    assert not [r for r in rows(storage_service) if r.owner_id == owner.id]


@pytest.mark.parametrize("method", ["stream", "presigned"])
async def test_the_sdk_uploads_a_cube_file_by_its_extension(
    storage_service: Any, user_factory: Any, tmp_path: Path, method: str
) -> None:
    owner = await user_factory()
    path = tmp_path / "Teal & Orange.CUBE"
    path.write_bytes(identity_cube(3, "teal"))
    now = time.time()
    tokens = Tokens(owner.access_token, now + 600, owner.refresh_token, now + 3600)
    async with AsyncClient({"storage": storage_service.address}, tokens=tokens) as client:
        asset = await client.assets.upload(path, method=method)  # type: ignore[arg-type]
        assert asset.kind == asset_pb2.ASSET_KIND_LUT and asset.content_type == LUT_TYPE
        assert asset.name.lower().endswith(".cube")
        assert [a.id async for a in client.assets.list_all(kind="lut")] == [asset.id]
