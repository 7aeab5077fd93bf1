"""Media facts: content-type sniffing from magic bytes, ffprobe metadata, ffmpeg JPEG thumbnails.

Sniffing needs only the first bytes (so UploadAsset can reject a wrong type before storing anything);
it is the `filetype` library's. ffprobe then has to decode the container, which catches files that
merely start with a valid magic. ffprobe and ffmpeg open the object only as the sniffed type (the
demuxer is forced) through its one URL (kit.media_input): an ID3 tag followed by an HLS playlist
sniffs as MP3, is read by the MP3 demuxer, fails to decode, and no segment URL is ever requested.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import filetype

from services.kit.cube_lut import CUBE_CONTENT_TYPE, looks_like_cube
from services.kit.media_input import media_input, scrub
from viarte.type.v1 import asset_pb2

__all__ = [
    "EXTENSIONS",
    "SNIFF_BYTES",
    "SUPPORTED_TYPES",
    "MediaError",
    "MediaFacts",
    "canonical_type",
    "kind_of",
    "matches",
    "probe",
    "sniff",
    "thumbnail",
]

SNIFF_BYTES = 64

IMAGE, VIDEO, AUDIO = asset_pb2.ASSET_KIND_IMAGE, asset_pb2.ASSET_KIND_VIDEO, asset_pb2.ASSET_KIND_AUDIO
WEIGHTS = asset_pb2.ASSET_KIND_WEIGHTS
TEXT = asset_pb2.ASSET_KIND_TEXT
LUT = asset_pb2.ASSET_KIND_LUT
SAFETENSORS = "application/vnd.safetensors"
TEXT_PLAIN = "text/plain"
JSONL = "application/jsonl"
# Kinds stored as they are: no ffprobe, no thumbnail.
UNPROBED = frozenset({WEIGHTS, LUT, TEXT})
# Bytes a text head may hold besides printable characters.
_TEXT_CONTROLS = frozenset(b"\t\n\r\f")
# A safetensors header (JSON) is at most 100 MB by the format's own rule.
_SAFETENSORS_MAX_HEADER = 100_000_000

# Canonical content type -> (asset kind, ffprobe format names that may decode it).
SUPPORTED_TYPES: dict[str, tuple[int, frozenset[str]]] = {
    "image/png": (IMAGE, frozenset({"png_pipe", "image2", "apng"})),
    "image/jpeg": (IMAGE, frozenset({"jpeg_pipe", "image2", "mjpeg"})),
    "image/webp": (IMAGE, frozenset({"webp_pipe", "image2", "webp"})),
    "video/mp4": (VIDEO, frozenset({"mov,mp4,m4a,3gp,3g2,mj2"})),
    "video/quicktime": (VIDEO, frozenset({"mov,mp4,m4a,3gp,3g2,mj2"})),
    "video/webm": (VIDEO, frozenset({"matroska,webm"})),
    "audio/mpeg": (AUDIO, frozenset({"mp3"})),
    "audio/wav": (AUDIO, frozenset({"wav"})),
    "audio/aac": (AUDIO, frozenset({"aac"})),
    "audio/mp4": (AUDIO, frozenset({"mov,mp4,m4a,3gp,3g2,mj2"})),
    "audio/ogg": (AUDIO, frozenset({"ogg"})),
    # Trained LoRAs and training checkpoints (issue 17): never probed by ffprobe.
    SAFETENSORS: (WEIGHTS, frozenset()),
    # Caption files (issue 17): UTF-8 text, never probed; their content is checked by the reader.
    TEXT_PLAIN: (TEXT, frozenset()),
    JSONL: (TEXT, frozenset()),
    # Colour LUTs for render's looks (issue 18): parsed whole at upload (`lut.py`), never probed.
    CUBE_CONTENT_TYPE: (LUT, frozenset()),
}

# Canonical content type -> the file extensions that name it (the first is the one given to a file
# whose own extension names something else).
EXTENSIONS: dict[str, tuple[str, ...]] = {
    "image/png": ("png",),
    "image/jpeg": ("jpg", "jpeg", "jpe"),
    "image/webp": ("webp",),
    "video/mp4": ("mp4", "m4v"),
    "video/quicktime": ("mov", "qt"),
    "video/webm": ("webm",),
    "audio/mpeg": ("mp3",),
    "audio/wav": ("wav",),
    "audio/aac": ("aac",),
    "audio/mp4": ("m4a", "mp4"),
    "audio/ogg": ("ogg", "oga", "opus"),
    SAFETENSORS: ("safetensors",),
    TEXT_PLAIN: ("txt", "caption"),
    JSONL: ("jsonl",),
    CUBE_CONTENT_TYPE: ("cube",),
}

_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "video/mov": "video/quicktime",
    "audio/mp3": "audio/mpeg",
    "audio/mpeg3": "audio/mpeg",
    "audio/x-mpeg": "audio/mpeg",
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "audio/vnd.wave": "audio/wav",
    "audio/x-aac": "audio/aac",
    "audio/aacp": "audio/aac",
    "audio/x-m4a": "audio/mp4",
    "audio/m4a": "audio/mp4",
    "application/ogg": "audio/ogg",
    "audio/vorbis": "audio/ogg",
    "audio/opus": "audio/ogg",
    "application/x-ndjson": JSONL,
    "application/ndjson": JSONL,
    "application/jsonlines": JSONL,
    "application/x-jsonlines": JSONL,
    "application/x-cube": CUBE_CONTENT_TYPE,
    "text/x-cube": CUBE_CONTENT_TYPE,
}

# What `filetype` names differently from our canonical types (any other ftyp brand is an MP4, as the
# mov demuxer reads them all).
_SNIFFED_ALIASES = {"video/x-m4v": "video/mp4", "video/3gpp": "video/mp4"}
# QuickTime files from before the ftyp box open with one of these atoms; `filetype` knows only ftyp.
_QUICKTIME_ATOMS = {b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}


class MediaError(Exception):
    """A file that cannot be decoded as the media type it claims to be."""


def canonical_type(content_type: str) -> str:
    """Lowercase, parameters dropped, aliases folded: `Audio/MP3; x=1` -> `audio/mpeg`."""
    base = content_type.split(";", 1)[0].strip().lower()
    return _ALIASES.get(base, base)


def kind_of(content_type: str) -> int:
    """The AssetKind of a supported (canonical) content type; UNSPECIFIED otherwise."""
    entry = SUPPORTED_TYPES.get(canonical_type(content_type))
    return entry[0] if entry else asset_pb2.ASSET_KIND_UNSPECIFIED


def sniff(head: bytes) -> str | None:
    """The canonical content type the first bytes of a file announce, or None when unsupported."""
    if len(head) > 8 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") <= _SAFETENSORS_MAX_HEADER:
        return SAFETENSORS  # u64 little-endian header length, then the JSON header
    found = filetype.guess(head) if head else None
    if found is not None:
        ctype = canonical_type(_SNIFFED_ALIASES.get(found.mime, found.mime))
    elif head[4:8] in _QUICKTIME_ATOMS:
        ctype = "video/quicktime"
    elif looks_like_cube(head):  # text: after every binary magic, before plain text (a .cube is text)
        ctype = CUBE_CONTENT_TYPE
    elif _is_text(head):
        ctype = TEXT_PLAIN  # JSON Lines is text too: `matches` accepts either declared text type
    else:
        return None
    return ctype if ctype in SUPPORTED_TYPES else None


def matches(sniffed: str, declared: str) -> bool:
    """Whether a sniffed type confirms the declared one (text heads cannot tell text from JSONL)."""
    return sniffed == declared or (sniffed == TEXT_PLAIN and kind_of(declared) == TEXT)


def _is_text(head: bytes) -> bool:
    """UTF-8 (a character cut by the head's end allowed) without NULs or other control bytes."""
    import codecs

    if not head or any(b < 0x20 and b not in _TEXT_CONTROLS for b in head) or b"\x7f" in head:
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True


@dataclass(frozen=True)
class MediaFacts:
    format_name: str = ""
    duration_seconds: float = 0.0
    width: int = 0
    height: int = 0
    fps: float = 0.0
    frame_count: int = 0
    video_codec: str = ""
    audio_codec: str = ""
    has_audio: bool = False
    sample_rate: int = 0
    channels: int = 0

    def to_proto(self) -> asset_pb2.MediaInfo:
        return asset_pb2.MediaInfo(
            duration_seconds=self.duration_seconds,
            width=self.width,
            height=self.height,
            fps=self.fps,
            frame_count=self.frame_count,
            video_codec=self.video_codec,
            audio_codec=self.audio_codec,
            has_audio=self.has_audio,
            sample_rate=self.sample_rate,
            channels=self.channels,
        )

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> MediaFacts:
        return cls(**json.loads(text)) if text else cls()


async def _run(argv: list[str], time_limit: float, *sources: str) -> bytes:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), time_limit)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        # stderr quotes the presigned URL and heap addresses: scrubbed before it can reach a client.
        raise MediaError(scrub(err, *sources) or f"exit status {proc.returncode}")
    return out


def _rate(text: str) -> float:
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        return 0.0
    return float(value) if value > 0 else 0.0


def _facts(data: dict[str, Any]) -> MediaFacts:
    fmt = data.get("format", {})
    streams = data.get("streams", [])
    # Attached cover art counts as a picture, not as a video stream.
    video = next(
        (s for s in streams if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")),
        None,
    )
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    duration = float(fmt.get("duration") or 0.0)
    facts: dict[str, Any] = {"format_name": fmt.get("format_name", ""), "duration_seconds": duration}
    if video is not None:
        fps = _rate(video.get("avg_frame_rate", "0/0")) or _rate(video.get("r_frame_rate", "0/0"))
        frames = int(video.get("nb_frames") or 0) or (round(duration * fps) if duration and fps else 0)
        facts.update(
            width=int(video.get("width") or 0),
            height=int(video.get("height") or 0),
            fps=round(fps, 3),
            frame_count=frames,
            video_codec=video.get("codec_name", ""),
        )
    if audio is not None:
        facts.update(
            audio_codec=audio.get("codec_name", ""),
            has_audio=True,
            sample_rate=int(audio.get("sample_rate") or 0),
            channels=int(audio.get("channels") or 0),
        )
    return MediaFacts(**facts)


async def probe(source: str, content_type: str, *, ffprobe: str = "ffprobe", time_limit: float = 60.0) -> MediaFacts:
    """ffprobe `source` (a path or an http(s) URL, e.g. a presigned GET) and check that it decodes as
    `content_type`. Raises MediaError when it does not."""
    ctype = canonical_type(content_type)
    kind, formats = SUPPORTED_TYPES[ctype]
    argv = [ffprobe, "-v", "error", "-print_format", "json", "-show_format", "-show_streams"]
    inp = media_input(ctype, source, rw_timeout_seconds=time_limit)
    argv += inp.ffprobe_args()
    try:
        out = await _run(argv, time_limit, source, inp.location)
        data = json.loads(out or b"{}")
    except (TimeoutError, ValueError) as exc:
        raise MediaError(f"ffprobe failed: {exc}") from exc
    facts = _facts(data)
    if facts.format_name not in formats:
        raise MediaError(f"decodes as {facts.format_name or 'nothing'}, not {ctype}")
    if kind in (IMAGE, VIDEO) and not facts.video_codec:
        raise MediaError("no picture stream")
    if kind == AUDIO and not facts.has_audio:
        raise MediaError("no audio stream")
    if kind == IMAGE:
        facts = MediaFacts(**{**facts.__dict__, "duration_seconds": 0.0, "fps": 0.0, "frame_count": 1})
    return facts


def thumbnail_seek(facts: MediaFacts) -> str | None:
    """Where `thumbnail` takes a video's frame (ffmpeg's -ss), None for a still picture."""
    return f"{min(1.0, facts.duration_seconds / 10):.3f}" if facts.duration_seconds > 0 else None


# The facts a thumbnail is started with before the probe has answered: a video of 10 s or more has its
# frame at 1 s, a picture has no seek. A probe that says otherwise gets a second thumbnail.
_THUMBNAIL_GUESS: dict[int, MediaFacts] = {VIDEO: MediaFacts(duration_seconds=10.0), IMAGE: MediaFacts()}


class ThumbnailError(MediaError):
    """The headers parse, but no picture decodes (a broken file)."""


async def probe_with_thumbnail(
    source: str, kind: int, content_type: str, *, max_px: int, ffprobe: str, ffmpeg: str, time_limit: float
) -> tuple[MediaFacts, bytes | None]:
    """`probe`, and for pictures and videos a `thumbnail` (None for audio) — the same two answers as
    one after the other, but the thumbnail starts beside the probe (off an upload's critical path)
    with the seek the probe's answer gives in the usual case; any other answer takes it again, so the
    JPEG is always the one its seek from the probed facts gives. Raises MediaError (the probe) or
    ThumbnailError."""

    def start(facts: MediaFacts) -> asyncio.Task[bytes]:
        return asyncio.ensure_future(
            thumbnail(source, facts, content_type, max_px=max_px, ffmpeg=ffmpeg, time_limit=time_limit))

    guess = _THUMBNAIL_GUESS.get(kind)
    early = start(guess) if guess is not None else None
    try:
        facts = await probe(source, content_type, ffprobe=ffprobe, time_limit=time_limit)
        if kind == AUDIO:
            return facts, None
        if early is None or guess is None or thumbnail_seek(guess) != thumbnail_seek(facts):
            await _drop(early)
            early = start(facts)
        task, early = early, None
        try:
            return facts, await task
        except MediaError as exc:
            raise ThumbnailError(str(exc)) from None
    finally:
        await _drop(early)  # the probe failed (or was cancelled): its ffmpeg is killed


async def _drop(task: asyncio.Task[bytes] | None) -> None:
    if task is None:
        return
    task.cancel()
    await asyncio.wait([task])
    if not task.cancelled():
        task.exception()  # retrieved: a failure nobody needs is not logged as unhandled


async def thumbnail(
    source: str,
    facts: MediaFacts,
    content_type: str,
    *,
    max_px: int = 320,
    ffmpeg: str = "ffmpeg",
    time_limit: float = 60.0,
) -> bytes:
    """A JPEG at most `max_px` on its longer side: the image itself, or a frame of a video (a tenth
    into it, at most 1 s, so a fade-in from black is skipped). Raises MediaError on failure."""
    argv = [ffmpeg, "-nostdin", "-v", "error"]
    seek = thumbnail_seek(facts)
    if seek is not None:
        argv += ["-ss", seek]
    scale = f"scale='min({max_px},iw)':'min({max_px},ih)':force_original_aspect_ratio=decrease"
    inp = media_input(canonical_type(content_type), source, rw_timeout_seconds=time_limit)
    argv += [*inp.ffmpeg_args(), "-frames:v", "1", "-vf", scale, "-q:v", "4", "-f", "mjpeg", "pipe:1"]
    try:
        out = await _run(argv, time_limit, source, inp.location)
    except TimeoutError as exc:
        raise MediaError("thumbnail timed out") from exc
    if not out.startswith(b"\xff\xd8"):
        raise MediaError("ffmpeg produced no JPEG")
    return out
