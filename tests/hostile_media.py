"""Hostile "media" for the ffmpeg hardening tests: playlists that point ffmpeg at a loopback server
that counts every request it gets (the stand-in for an internal admin API), or at a local file."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["LEAK_PATTERNS", "CountingServer", "counting_server", "hls_playlist", "id3_then", "leaks"]

# What no error a client sees may contain: presigned URL pieces, heap addresses.
LEAK_PATTERNS = (re.compile(r"X-Amz-", re.I), re.compile(r"\b0x[0-9a-f]{6,}", re.I), re.compile(r"@ 0x"))


class CountingServer:
    def __init__(self) -> None:
        self.paths: list[str] = []
        # Paths served with a body and not counted (e.g. the playlist itself); everything else counts.
        self.routes: dict[str, bytes] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = server.routes.get(self.path)
                if body is None:
                    server.paths.append(self.path)
                    body = b"\x00" * 188  # something segment-shaped
                self.send_response(200)
                self.send_header("Content-Type", "video/mp2t")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_HEAD = do_GET

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="counting-http", daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def hits(self) -> int:
        return len(self.paths)


@contextmanager
def counting_server() -> Iterator[CountingServer]:
    server = CountingServer()
    server._thread.start()
    try:
        yield server
    finally:
        server._httpd.shutdown()
        server._httpd.server_close()
        server._thread.join(timeout=10)


def hls_playlist(*segments: str) -> bytes:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:1", "#EXT-X-MEDIA-SEQUENCE:0"]
    for segment in segments:
        lines += ["#EXTINF:1.0,", segment]
    return ("\n".join([*lines, "#EXT-X-ENDLIST", ""])).encode()


def id3_then(body: bytes) -> bytes:
    """An empty ID3v2.4 tag (10 bytes) followed by `body`: it sniffs as MP3."""
    return b"ID3\x04\x00\x00\x00\x00\x00\x00" + body


def leaks(text: str, *hosts: str) -> list[str]:
    """The forbidden pieces found in `text` (an error message or ErrorInfo metadata)."""
    found = [p.pattern for p in LEAK_PATTERNS if p.search(text)]
    return found + [h for h in hosts if h and h in text]
