"""Uploads built to make ffprobe/ffmpeg fetch URLs, and what their errors may say (issue 21 §3.2, §4)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import grpc
import pytest

from tests.hostile_media import counting_server, hls_playlist, id3_then, leaks

from .helpers import error_info, expect_error, object_keys

pytestmark = pytest.mark.timeout(300)

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def _error_text(exc: grpc.aio.AioRpcError) -> str:
    info = error_info(exc)
    return " ".join([exc.details() or "", info.reason, *info.metadata.keys(), *info.metadata.values()])


async def test_an_id3_tag_before_an_hls_playlist_is_refused_without_any_request(
    storage_service: Any, user_factory: Any
) -> None:
    owner = await user_factory()
    with counting_server() as segments:
        body = id3_then(hls_playlist(segments.url("/admin/seg0.ts"), segments.url("/dir/assign.mp3")))
        exc = await expect_error(
            storage_service.upload(owner, body, "song.mp3", "audio/mpeg"), INVALID, "UNSUPPORTED_MEDIA_TYPE"
        )
        assert segments.hits == 0, segments.paths
    assert object_keys(storage_service, f"users/{owner.id}/") == []
    assert not leaks(_error_text(exc), urlsplit(storage_service.config.s3_endpoint).netloc)


async def test_decode_errors_do_not_leak_the_presigned_url_or_addresses(
    storage_service: Any, user_factory: Any, samples: Any
) -> None:
    owner = await user_factory()
    endpoint = urlsplit(storage_service.config.s3_endpoint).netloc
    # A real PNG header with garbage after it (ffmpeg names the URL it failed on), and an MP4 whose
    # header is right but whose boxes are noise (the mov demuxer's "[mov,mp4 @ 0x..]" messages).
    broken_png = samples["image.png"][1][:40] + b"\x00garbage" * 100
    broken_mp4 = samples["video.mp4"][1][:32] + b"\xde\xad\xbe\xef" * 400
    for data, name, ctype in ((broken_png, "x.png", "image/png"), (broken_mp4, "x.mp4", "video/mp4")):
        exc = await expect_error(storage_service.upload(owner, data, name, ctype), INVALID, "UNSUPPORTED_MEDIA_TYPE")
        text = _error_text(exc)
        assert not leaks(text, endpoint), text
