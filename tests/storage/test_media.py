"""Sniffing, ffprobe facts, thumbnails and name sanitising on real files (no server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.storage import media
from services.storage.keys import MAX_NAME_CHARS, object_key, sanitize_name, thumbnail_key, with_extension
from viarte.type.v1 import asset_pb2

from .conftest import SAMPLES


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sniff_recognises_each_supported_format(name: str, samples: dict[str, tuple[str, bytes]]) -> None:
    ctype, data = samples[name]
    assert media.sniff(data[: media.SNIFF_BYTES]) == ctype


@pytest.mark.parametrize(
    "head",
    [b"", b"%PDF-1.7\n", b"GIF89a....", b"PK\x03\x04zip", b"\x1a\x45\xdf\xa3\x01\x00\x00matroska",
     b"hello\x00world", b"caption \xff\xfe not utf-8", b"bell \x07 text"],
)
def test_sniff_rejects_unsupported(head: bytes) -> None:
    assert media.sniff(head) is None


def test_text_heads_sniff_as_text_and_confirm_either_text_type() -> None:
    # A 64-byte head may end inside a multi-byte character: still text.
    head = ("caption: un café " * 4).encode()[:63]
    for text in (b"hello world", b'{"asset_id": "a", "caption": "x"}\n', head):
        assert media.sniff(text) == media.TEXT_PLAIN
    assert media.matches(media.TEXT_PLAIN, media.JSONL) and media.matches(media.TEXT_PLAIN, media.TEXT_PLAIN)
    assert not media.matches(media.TEXT_PLAIN, "image/png")
    assert media.kind_of("application/x-ndjson") == asset_pb2.ASSET_KIND_TEXT


def test_canonical_types_and_kinds() -> None:
    assert media.canonical_type("Image/JPG") == "image/jpeg"
    assert media.canonical_type("audio/mp3; rate=44100") == "audio/mpeg"
    assert media.canonical_type("audio/x-wav") == "audio/wav"
    assert media.kind_of("video/quicktime") == asset_pb2.ASSET_KIND_VIDEO
    assert media.kind_of("audio/ogg") == asset_pb2.ASSET_KIND_AUDIO
    assert media.kind_of("application/pdf") == asset_pb2.ASSET_KIND_UNSPECIFIED


async def test_probe_video_facts(media_dir: Path) -> None:
    facts = await media.probe(str(media_dir / "video.mp4"), "video/mp4")
    assert (facts.width, facts.height) == (64, 48)
    assert facts.video_codec == "h264" and facts.audio_codec == "aac" and facts.has_audio
    assert facts.fps == pytest.approx(10.0)
    assert 0.4 <= facts.duration_seconds <= 0.7
    assert 4 <= facts.frame_count <= 6
    assert facts.sample_rate == 22050 and facts.channels == 1


async def test_probe_image_and_audio_facts(media_dir: Path) -> None:
    image = await media.probe(str(media_dir / "image.webp"), "image/webp")
    assert (image.width, image.height, image.duration_seconds, image.frame_count) == (64, 48, 0.0, 1)
    audio = await media.probe(str(media_dir / "audio.ogg"), "audio/ogg")
    assert audio.audio_codec == "vorbis" and audio.video_codec == "" and audio.duration_seconds > 0.4


async def test_probe_rejects_a_file_that_only_looks_right(tmp_path: Path, samples: dict[str, tuple[str, bytes]]) -> None:
    fake = tmp_path / "fake.png"
    fake.write_bytes(samples["image.png"][1][:40] + b"\x00garbage" * 50)
    # The header parses, but no picture decodes: the thumbnail step is the decoding check.
    facts = await media.probe(str(fake), "image/png")
    with pytest.raises(media.MediaError):
        await media.thumbnail(str(fake), facts, "image/png")
    # A real WAV is not an MP3, even if a client says so.
    wav = tmp_path / "audio.mp3"
    wav.write_bytes(samples["audio.wav"][1])
    with pytest.raises(media.MediaError):
        await media.probe(str(wav), "audio/mpeg")


async def test_thumbnail_is_a_small_jpeg(media_dir: Path, tmp_path: Path) -> None:
    facts = await media.probe(str(media_dir / "video.webm"), "video/webm")
    jpeg = await media.thumbnail(str(media_dir / "video.webm"), facts, "video/webm", max_px=32)
    assert jpeg.startswith(b"\xff\xd8")
    thumb = tmp_path / "t.jpg"
    thumb.write_bytes(jpeg)
    tfacts = await media.probe(str(thumb), "image/jpeg")
    assert (tfacts.width, tfacts.height) == (32, 24)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\system32\\evil.png", "evil.png"),
        ("/abs/path/pic.png", "pic.png"),
        ("a/../../b.png", "b.png"),
        (".hidden.png", "hidden.png"),
        ("bad\x00name\x1f.png", "badname.png"),
        ("semi;colon$(rm -rf).png", "semi_colon_(rm -rf).png"),
        ("\uff46\uff55\uff4c\uff4c.png", "full.png"),  # fullwidth letters fold to ASCII
        ("..", ""),
        ("../", ""),
        ("", ""),
    ],
)
def test_sanitize_name(raw: str, clean: str) -> None:
    assert sanitize_name(raw) == clean


def test_long_names_keep_their_extension() -> None:
    name = sanitize_name("x" * 500 + ".webm")
    assert len(name) <= 128 and name.endswith(".webm")


def test_keys_stay_under_the_owner_prefix() -> None:
    key = object_key("u1", "a1", sanitize_name("../../../other-user/x.png"))
    assert key == "users/u1/a1/x.png"
    assert thumbnail_key("u1", "a1") == "users/u1/a1/.thumbnail.jpg"
    assert sanitize_name(".thumbnail.jpg") != ".thumbnail.jpg"


def test_names_take_the_extension_of_their_content_type() -> None:
    from services.storage.media import EXTENSIONS, SUPPORTED_TYPES

    assert set(EXTENSIONS) == set(SUPPORTED_TYPES)
    jpeg = EXTENSIONS["image/jpeg"]
    assert with_extension("x.html", jpeg) == "x.jpg"
    assert with_extension("Photo.JPEG", jpeg) == "Photo.JPEG"
    assert with_extension("report.2024", jpeg) == "report.2024.jpg"
    assert with_extension("x.tar.gz", EXTENSIONS["video/mp4"]) == "x.tar.mp4"
    long = with_extension(sanitize_name("y" * 200 + ".exe"), EXTENSIONS["video/webm"])
    assert len(long) <= MAX_NAME_CHARS and long.endswith("y.webm")


def test_safetensors_sniff_as_weights() -> None:
    """Trained LoRAs and checkpoints (issue 17): a u64 header length, then the JSON header."""
    import numpy as np
    from safetensors.numpy import save

    data = save({"w": np.zeros((2, 2), dtype=np.float32)}, metadata={"format": "pt"})
    assert media.sniff(data[: media.SNIFF_BYTES]) == media.SAFETENSORS
    assert media.kind_of(media.SAFETENSORS) == asset_pb2.ASSET_KIND_WEIGHTS
    assert media.sniff((10**9).to_bytes(8, "little") + b"{}") is None  # header longer than the format allows
    assert media.sniff((5).to_bytes(8, "little") + b"[1,2]") is None  # not a JSON object


async def _sequential(path: str, kind: int, ctype: str) -> tuple[media.MediaFacts, bytes | None]:
    facts = await media.probe(path, ctype)
    return facts, (None if kind == asset_pb2.ASSET_KIND_AUDIO else await media.thumbnail(path, facts, ctype, max_px=64))


async def test_thumbnail_beside_the_probe_gives_the_answers_of_one_after_the_other(media_dir: Path, tmp_path: Path) -> None:
    # 12 s: the thumbnail started before the probe answered is kept; 0.5 s: the probe's answer moves
    # the frame (a tenth in), so it is taken again; a picture has no seek; audio has no thumbnail.
    import asyncio
    import subprocess

    long = tmp_path / "long.mp4"
    await asyncio.to_thread(subprocess.run, ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=96x64:r=10:d=12",
                    "-pix_fmt", "yuv420p", str(long)], check=True, timeout=60)
    cases = [(str(long), asset_pb2.ASSET_KIND_VIDEO, "video/mp4"),
             (str(media_dir / "video.mp4"), asset_pb2.ASSET_KIND_VIDEO, "video/mp4"),
             (str(media_dir / "image.webp"), asset_pb2.ASSET_KIND_IMAGE, "image/webp"),
             (str(media_dir / "audio.ogg"), asset_pb2.ASSET_KIND_AUDIO, "audio/ogg")]
    for path, kind, ctype in cases:
        both = await media.probe_with_thumbnail(path, kind, ctype, max_px=64, ffprobe="ffprobe", ffmpeg="ffmpeg", time_limit=60)
        assert both == await _sequential(path, kind, ctype), path


async def test_the_thumbnail_runs_while_the_probe_does(media_dir: Path, tmp_path: Path) -> None:
    """An ffprobe that answers only once a thumbnail's ffmpeg has started: one after the other, it
    would give up (exit 1) and the upload would fail."""
    started = tmp_path / "ffmpeg-started"
    ffprobe, ffmpeg = tmp_path / "ffprobe", tmp_path / "ffmpeg"
    ffprobe.write_text(f"#!/bin/sh\nfor i in $(seq 400); do [ -e {started} ] && exec ffprobe \"$@\"; sleep 0.05; done\nexit 1\n")
    ffmpeg.write_text(f"#!/bin/sh\ntouch {started}\nexec ffmpeg \"$@\"\n")
    ffprobe.chmod(0o755)
    ffmpeg.chmod(0o755)
    image = str(media_dir / "image.webp")
    facts, jpeg = await media.probe_with_thumbnail(image, asset_pb2.ASSET_KIND_IMAGE, "image/webp", max_px=64,
                                                   ffprobe=str(ffprobe), ffmpeg=str(ffmpeg), time_limit=60)
    assert (facts.width, facts.height) == (64, 48) and jpeg is not None and jpeg.startswith(b"\xff\xd8")


async def test_probe_beside_thumbnail_failures(tmp_path: Path, samples: dict[str, tuple[str, bytes]]) -> None:
    fake = tmp_path / "fake.png"
    fake.write_bytes(samples["image.png"][1][:40] + b"\x00garbage" * 50)
    kw = {"max_px": 64, "ffprobe": "ffprobe", "ffmpeg": "ffmpeg", "time_limit": 60.0}
    with pytest.raises(media.ThumbnailError):  # parses, no picture decodes
        await media.probe_with_thumbnail(str(fake), asset_pb2.ASSET_KIND_IMAGE, "image/png", **kw)  # type: ignore[arg-type]
    wav = tmp_path / "audio.mp4"
    wav.write_bytes(samples["audio.wav"][1])
    with pytest.raises(media.MediaError) as caught:  # the probe's refusal, whatever the early thumbnail did
        await media.probe_with_thumbnail(str(wav), asset_pb2.ASSET_KIND_VIDEO, "video/mp4", **kw)  # type: ignore[arg-type]
    assert not isinstance(caught.value, media.ThumbnailError)
