"""How to open user media with ffmpeg/ffprobe safely, and how to quote their stderr safely.

Left to itself ffmpeg guesses the container from the bytes and then follows whatever the container
names: an HLS or concat playlist makes it open arbitrary URLs (internal admin APIs, ``file://`` paths
of the host) while it "probes". So every run on user media goes through :func:`media_input`:

- the demuxer is forced (``-f``) from the content type storage sniffed and recorded at upload, so a
  playlist, concat list or subfile reference is never parsed as one (those demuxers are only chosen
  by name, and we never name them);
- ``-protocol_whitelist`` allows only what the one source needs: ``file`` for a local copy,
  ``http,tcp`` / ``https,tls,tcp`` for the single presigned URL (nested opens inherit the list).

ffmpeg's messages quote the input URL (presigned: ``X-Amz-Credential=...``, the S3 endpoint's
host:port), heap addresses (``[mov,mp4 @ 0x55d...]``) and the host's paths (temp folders, model
caches); :func:`scrub` removes them before any of it goes into an error message, ErrorInfo or job
error. It also serves for any exception text that could reach a client (the inference worker's).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["DEMUXERS", "MediaInput", "UnsupportedMedia", "demuxer_for", "media_input", "scrub"]

# Canonical content type (as storage records it) -> the ffmpeg demuxer that reads it, and only it.
DEMUXERS: dict[str, str] = {
    "image/png": "png_pipe",
    "image/jpeg": "jpeg_pipe",
    "image/webp": "webp_pipe",
    "video/mp4": "mov",
    "video/quicktime": "mov",
    "video/webm": "matroska",
    "audio/mpeg": "mp3",
    "audio/wav": "wav",
    "audio/aac": "aac",
    "audio/mp4": "mov",
    "audio/ogg": "ogg",
}

_NETWORK = {"http": "http,tcp", "https": "https,tls,tcp"}


class UnsupportedMedia(ValueError):
    """No safe way to open this (content type, source) pair."""


def demuxer_for(content_type: str) -> str:
    """The forced demuxer of a canonical content type (parameters ignored); UnsupportedMedia if none."""
    base = content_type.split(";", 1)[0].strip().lower()
    try:
        return DEMUXERS[base]
    except KeyError:
        raise UnsupportedMedia(f"no decoder for content type {base or '(none)'}") from None


@dataclass(frozen=True)
class MediaInput:
    """One input: ``options`` go before ``-i location`` (ffmpeg) or before ``location`` (ffprobe)."""

    location: str
    options: tuple[tuple[str, str], ...]

    def args(self) -> list[str]:
        """The options as argv words, without the location."""
        return [w for key, value in self.options for w in (f"-{key}", value)]

    def ffmpeg_args(self) -> list[str]:
        return [*self.args(), "-i", self.location]

    def ffprobe_args(self) -> list[str]:
        return [*self.args(), self.location]

    def kwargs(self) -> dict[str, str]:
        """For ``ffmpeg-python``'s ``ffmpeg.input(location, **kwargs)``."""
        return dict(self.options)


def media_input(content_type: str, source: str, *, rw_timeout_seconds: float = 0.0) -> MediaInput:
    """How to open ``source`` (a local path, standard input as ``-``, or one http(s) URL such as a presigned GET) that storage
    recorded as ``content_type``. Raises UnsupportedMedia for an unknown type or another scheme."""
    demuxer = demuxer_for(content_type)
    scheme = urlsplit(source).scheme.lower() if "://" in source else ""
    if scheme in _NETWORK:
        options = [("f", demuxer), ("protocol_whitelist", _NETWORK[scheme])]
        if rw_timeout_seconds > 0:
            options.append(("rw_timeout", str(int(rw_timeout_seconds * 1_000_000))))
        return MediaInput(source, tuple(options))
    if source in ("-", "pipe:", "pipe:0"):
        return MediaInput("pipe:0", (("f", demuxer), ("protocol_whitelist", "pipe")))
    if scheme or not source:
        raise UnsupportedMedia("media is read from a local file or an http(s) URL only")
    # "file:" keeps a path with a colon in it from being read as another protocol's URL.
    return MediaInput(f"file:{source}", (("f", demuxer), ("protocol_whitelist", "file")))


# URLs of any scheme, the query pieces of a presigned URL, host:port pairs, heap addresses.
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"]*")
_AMZ = re.compile(r"X-Amz-[A-Za-z-]*=?[^\s&'\"]*")
_HOST_PORT = re.compile(r"(?:\b(?:\d{1,3}(?:\.\d{1,3}){3}|localhost)\b|\[[0-9a-fA-F:]+\])(?::\d{1,5}\b)?")
_CONTEXT = re.compile(r"\[([\w,. -]+?) @ 0x[0-9a-fA-F]+\]")
_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{6,}\b")
# Absolute POSIX paths ("/tmp/job-1/out.mp4"); a slash after a word ("image/png", "3/10") is no path.
_PATH = re.compile(r"(?<![\w.<>/-])/[^\s'\"():,;]+")


def scrub(text: str | bytes, *sources: str, limit: int = 300) -> str:
    """ffmpeg/ffprobe stderr made fit for a client: the given sources (input URLs or paths) become
    ``<input>``, other URLs ``<url>``, other absolute paths ``<path>``, presigned query pieces and
    hosts go, ``[demuxer @ 0x55..]`` becomes ``[demuxer]``; the last ``limit`` characters of what is
    left, on one line."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    for source in sorted(filter(None, sources), key=len, reverse=True):
        text = text.replace(source, "<input>")
        if source.startswith("file:"):
            text = text.replace(source[5:], "<input>")
    text = _URL.sub("<url>", text)
    text = _PATH.sub("<path>", text)
    text = _AMZ.sub("", text)
    text = _HOST_PORT.sub("<host>", text)
    text = _CONTEXT.sub(r"[\1]", text)
    text = _ADDRESS.sub("<addr>", text)
    text = " ".join(text.split())
    return text[-limit:] if limit > 0 else text
