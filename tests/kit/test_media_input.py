"""kit.media_input: how user media is opened (forced demuxer, protocol whitelist) and stderr scrubbing."""

from __future__ import annotations

import subprocess

import pytest

from services.kit.media_input import DEMUXERS, UnsupportedMedia, media_input, scrub
from tests.hostile_media import counting_server, hls_playlist, id3_then, leaks


def test_options_per_source() -> None:
    local = media_input("video/mp4", "/data/a b:c.mp4")
    assert local.location == "file:/data/a b:c.mp4"
    assert local.ffmpeg_args() == ["-f", "mov", "-protocol_whitelist", "file", "-i", "file:/data/a b:c.mp4"]
    url = media_input("Audio/MPEG; x=1", "http://127.0.0.1:8333/b/k?X-Amz-Signature=ab", rw_timeout_seconds=2)
    assert url.kwargs() == {"f": "mp3", "protocol_whitelist": "http,tcp", "rw_timeout": "2000000"}
    assert media_input("image/png", "https://s3.example/b/k").kwargs()["protocol_whitelist"] == "https,tls,tcp"
    assert media_input("video/mp4", "-").ffprobe_args() == ["-f", "mov", "-protocol_whitelist", "pipe", "pipe:0"]
    for ctype, source in (("application/x-mpegurl", "/x.m3u8"), ("video/mp4", "file:///etc/passwd"),
                          ("video/mp4", "ftp://h/x.mp4"), ("video/mp4", "")):
        with pytest.raises(UnsupportedMedia):
            media_input(ctype, source)
    # no playlist, concat or subfile demuxer can ever be named
    assert not {"hls", "concat", "subfile", "image2"} & set(DEMUXERS.values())


def test_scrub_removes_urls_hosts_and_addresses() -> None:
    url = "http://127.0.0.1:8333/viarte-assets/users/u/a/x.mp4?X-Amz-Algorithm=AWS4&X-Amz-Credential=dev%2F2024&X-Amz-Signature=0123abcd"
    stderr = (
        f"[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55d0c1e2f340] moov atom not found\n{url}: Invalid data found\n"
        "[http @ 0x7f00aa11bb22] HTTP error 403 from seaweed at 10.1.2.3:9333 and [::1]:8080, also localhost:9333 "
        "X-Amz-Credential=dev/2024/us-east-1 https://other.internal:8443/admin?x=1"
    ).encode()
    text = scrub(stderr, url, limit=0)
    assert not leaks(text, "127.0.0.1", "8333", "10.1.2.3", "9333", "[::1]", "localhost", "other.internal", "dev/2024"), text
    assert "[mov,mp4,m4a,3gp,3g2,mj2] moov atom not found" in text and "<input>: Invalid data found" in text
    assert scrub("/work/job-1/in.mp4: broken", "file:/work/job-1/in.mp4") == "<input>: broken"
    assert len(scrub("x" * 1000)) == 300
    # Any other host path (temp and model folders in exception text), but no MIME type or ratio.
    text = scrub("NotADirectoryError: [Errno 20] Not a directory: '/tmp/pytest-1/models/tiny' (image/png, 3/10)")
    assert text == "NotADirectoryError: [Errno 20] Not a directory: '<path>' (image/png, 3/10)", text
    assert scrub("Error opening output /var/lib/viarte/job-1/out.mp4: No such file") == (
        "Error opening output <path>: No such file"
    )


@pytest.mark.parametrize("ctype", sorted(DEMUXERS))
def test_a_playlist_behind_the_one_url_makes_no_other_request(ctype: str) -> None:
    with counting_server() as server:
        server.routes["/object"] = id3_then(hls_playlist(server.url("/seg0.ts"), server.url("/admin/x.mp4")))
        inp = media_input(ctype, server.url("/object"), rw_timeout_seconds=20)
        subprocess.run(["ffprobe", "-v", "error", "-show_format", *inp.ffprobe_args()], capture_output=True, timeout=60, check=False)
        assert server.hits == 0, server.paths


def test_without_the_options_ffprobe_follows_the_playlist() -> None:
    """The control: what the options above prevent does happen to a bare ffprobe of the same URL."""
    with counting_server() as server:
        server.routes["/object"] = id3_then(hls_playlist(server.url("/seg0.ts")))
        subprocess.run(["ffprobe", "-v", "error", "-show_format", server.url("/object")], capture_output=True, timeout=60, check=False)
        assert server.hits > 0
