"""Looks and filters in the one graph (issue 18): LUTs, key, blend modes, grading, loudness."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from services.kit.cube_lut import LutError, parse_cube
from services.kit.errors import ServiceError
from services.render.encoder import EncoderOptions
from services.render.media import probe
from services.render.pipeline import render_plan
from services.render.timeline.plan import Source
from services.render.timeline.validate import plan_timeline
from tests.fixtures.render import frame_rgb
from tests.render.test_engine import render
from tests.render.test_transitions import all_frames
from tests.render.timelines import timeline, track
from viarte.render.v1 import timeline_pb2 as tl


def cube(size: int, fn) -> bytes:
    steps = [i / (size - 1) for i in range(size)]
    rows = [fn(r, g, b) for b in steps for g in steps for r in steps]  # red fastest
    return (f"TITLE \"t\"\nLUT_3D_SIZE {size}\n" + "".join(f"{r:.6f} {g:.6f} {b:.6f}\n" for r, g, b in rows)).encode()


IDENTITY = cube(17, lambda r, g, b: (r, g, b))
RED_TO_BLUE = cube(2, lambda r, g, b: (b, g, r))


@pytest.fixture(scope="module")
def screen(tmp_path_factory) -> Source:
    """1 s 160x90: a green screen with a red square (the subject) in the middle."""
    path = tmp_path_factory.mktemp("keying") / "screen.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "color=0x00FF00:s=160x90:r=30:d=1,drawbox=x=60:y=25:w=40:h=40:color=0xFF0000:t=fill",
                    "-c:v", "libx264", "-crf", "10", "-pix_fmt", "yuv420p", str(path)], check=True)
    return Source(str(path), probe(str(path), "video/mp4"), "video/mp4")


def test_cube_parser_refuses_what_is_not_a_lut() -> None:
    assert parse_cube(IDENTITY).size == 17 and parse_cube(RED_TO_BLUE).table[1] == (0.0, 0.0, 1.0)
    for bad, why in (
        (b"\x89PNG\r\n", "UTF-8"),
        (b"hello world", "unknown keyword"),
        (b"LUT_3D_SIZE 2\n0 0 0\n", "1 rows"),
        (b"LUT_3D_SIZE 99\n", "LUT_3D_SIZE"),
        (b"LUT_1D_SIZE 4\n", "1D"),
        (b"LUT_3D_SIZE 2\n" + b"0 0 nan\n" * 8, "finite"),
        (b"0 0 0\n", "before the table"),
        (b"LUT_3D_SIZE 2\n" + b"0 0 0\n" * 9, "more than"),
        (b"LUT_3D_SIZE 2\nDOMAIN_MIN 1 1 1\nDOMAIN_MAX 0 0 0\n" + b"0 0 0\n" * 8, "DOMAIN"),
    ):
        with pytest.raises(LutError, match=why):
            parse_cube(bad)
    # What ffmpeg reads is our canonical text, never the uploaded bytes.
    assert parse_cube(b"# c\nTITLE \"x\"\n" + RED_TO_BLUE).text().startswith("LUT_3D_SIZE 2\nDOMAIN_MIN 0.000000")


async def test_identity_lut_leaves_the_picture_and_red_to_blue_turns_red_blue(render_media, render_limits, tmp_path) -> None:
    luts = {"identity": parse_cube(IDENTITY), "swap": parse_cube(RED_TO_BLUE)}
    plain, graded = timeline(), timeline()
    track(plain).clips.add(asset_id="bars", source_end_seconds=1)
    track(graded).clips.add(asset_id="bars", source_end_seconds=1, filters=tl.ClipFilters(lut_asset_id="identity"))
    sources = render_media.sources()
    lossless = EncoderOptions("libx264", {"preset": "ultrafast", "qp": 0})
    ref = all_frames((await render_plan(plan_timeline(plain, sources, render_limits), tmp_path / "a", lossless)).video, 160, 90)
    lut = all_frames((await render_plan(plan_timeline(graded, sources, render_limits, luts=luts), tmp_path / "b", lossless)).video, 160, 90)
    draft = all_frames((await render(plan_timeline(plain, sources, render_limits), tmp_path / "c")).video, 160, 90)

    def diffs(x: np.ndarray, y: np.ndarray) -> list[float]:
        return [float(np.abs(a.astype(int) - b.astype(int)).mean()) for a, b in zip(x, y, strict=True)]

    # Per frame, the identity LUT (an RGB round trip through lut3d) moves the picture less than
    # the encoder does (the same timeline's draft encode vs its lossless one).
    lut_diff, noise = diffs(lut, ref), diffs(draft, ref)
    assert len(lut_diff) == 30 and all(d < n for d, n in zip(lut_diff, noise, strict=True)), (lut_diff, noise)
    print(f"identity LUT per-frame mean difference max {max(lut_diff):.2f}; encoder noise min {min(noise):.2f}")
    t = timeline()
    track(t).clips.add(asset_id="red", source_end_seconds=1, filters=tl.ClipFilters(lut_asset_id="swap"))
    px = frame_rgb((await render(plan_timeline(t, render_media.sources(), render_limits, luts=luts), tmp_path / "c")).video, 0.5)[45, 80]
    assert px[2] > 200 and px[0] < 50, px


async def test_chroma_key_shows_the_track_below_where_green_was(render_media, render_limits, screen, tmp_path) -> None:
    sources = render_media.sources() | {"screen": screen}
    t = timeline()
    track(t).clips.add(asset_id="blue", source_end_seconds=1)
    key = tl.ChromaKey(color="#00ff00", similarity=0.3, blend=0.05, spill=0.5)
    track(t).clips.add(asset_id="screen", source_end_seconds=1, filters=tl.ClipFilters(chroma_key=key))
    img = frame_rgb((await render(plan_timeline(t, sources, render_limits), tmp_path)).video, 0.5).astype(int)
    for y, x in ((5, 5), (85, 155), (45, 20), (45, 140)):  # where the screen was green: the blue below
        assert img[y, x, 2] > 200 and img[y, x, 1] < 60, (y, x, img[y, x])
    subject = img[35:55, 70:90].reshape(-1, 3).mean(axis=0)  # the red square, intact
    assert subject[0] > 200 and subject[1] < 50 and subject[2] < 50, subject


async def test_blend_modes_between_tracks(render_media, render_limits, tmp_path) -> None:
    for mode, expect in ((tl.BLEND_MODE_MULTIPLY, (0, 0, 0)), (tl.BLEND_MODE_SCREEN, (255, 0, 255)), (tl.BLEND_MODE_NORMAL, (255, 0, 0))):
        t = timeline()
        track(t).clips.add(asset_id="blue", source_end_seconds=2)
        top = track(t).clips.add(asset_id="red", start_seconds=0.5, source_end_seconds=1, filters=tl.ClipFilters(blend_mode=mode))
        top.transform.scale.value = 0.5
        out = await render(plan_timeline(t, render_media.sources(), render_limits), tmp_path / str(mode))
        inside, outside, before = frame_rgb(out.video, 1.0)[45, 80], frame_rgb(out.video, 1.0)[5, 5], frame_rgb(out.video, 0.2)[45, 80]
        assert np.abs(inside.astype(int) - expect).max() < 40, (mode, inside)
        assert outside[2] > 200 and outside[0] < 40 and before[2] > 200 and before[0] < 40, (mode, outside, before)


async def test_grading_looks_move_pixels_the_expected_way(render_media, render_limits, tmp_path) -> None:
    looks = {
        "plain": tl.ClipFilters(),
        "exposure": tl.ClipFilters(exposure=1.0),
        "warm": tl.ClipFilters(temperature_kelvin=3000),
        "negative": tl.ClipFilters(curves=tl.CURVES_PRESET_NEGATIVE),
        "vignette": tl.ClipFilters(vignette=1.0),
        "sharpen": tl.ClipFilters(sharpen=3.0),
        "grain": tl.ClipFilters(grain=40),
    }
    t = timeline(fps=10)
    v = track(t)
    for i, f in enumerate(looks.values()):
        v.clips.add(asset_id="bars", start_seconds=i * 0.5, source_start_seconds=1.0, source_end_seconds=1.5, filters=f)
    out = await render(plan_timeline(t, render_media.sources(), render_limits), tmp_path)
    frames = all_frames(out.video, 160, 90).astype(float)
    got = {name: frames[i * 5 + 2] for i, name in enumerate(looks)}
    plain = got["plain"]
    assert got["exposure"].mean() > plain.mean() + 5  # (the saturated bars clip at 255)
    warm, p = got["warm"].reshape(-1, 3).mean(axis=0), plain.reshape(-1, 3).mean(axis=0)
    assert warm[0] - warm[2] > p[0] - p[2] + 10  # warmer: more red than blue
    assert abs(got["negative"].mean() - (255 - plain.mean())) < 20
    corner, centre = (slice(0, 12), slice(0, 20)), (slice(35, 55), slice(70, 90))
    assert got["vignette"][corner].mean() < plain[corner].mean() - 15 and abs(got["vignette"][centre].mean() - plain[centre].mean()) < 12
    edges = lambda img: np.abs(np.diff(img.mean(axis=2), axis=1)).mean()  # noqa: E731
    assert edges(got["sharpen"]) > edges(plain) * 1.1 and edges(got["grain"]) > edges(plain) * 1.1


def violations(render_media, render_limits, *clips: tl.ClipFilters, kind: int = tl.TRACK_KIND_VIDEO) -> set[str]:
    t = timeline()
    v = track(t, kind)
    for i, f in enumerate(clips):
        if kind == tl.TRACK_KIND_TEXT:
            v.clips.add(start_seconds=i, duration_seconds=1, text=tl.TextStyle(text="x"), filters=f)
        else:
            v.clips.add(asset_id="red", start_seconds=i, source_end_seconds=1, filters=f)
    with pytest.raises(ServiceError) as info:
        plan_timeline(t, render_media.sources(), render_limits, luts={"bad": "no LUT_3D_SIZE: not a .cube LUT"})
    return {f"{f.field}: {f.description}" for f in info.value.field_violations}


def test_look_fields_are_validated_with_paths(render_media, render_limits) -> None:
    c0 = "tracks[0].clips[0].filters"
    got = violations(render_media, render_limits, tl.ClipFilters(
        exposure=4, temperature_kelvin=500, curves=77, vignette=-1, sharpen=9, grain=101, blend_mode=42))
    assert {g.split(":")[0] for g in got} == {f"{c0}.{n}" for n in (
        "exposure", "temperature_kelvin", "curves", "vignette", "sharpen", "grain", "blend_mode")}, got
    got = violations(render_media, render_limits, tl.ClipFilters(chroma_key=tl.ChromaKey(color="green", similarity=2, blend=-1, spill=2)))
    assert {g.split(":")[0] for g in got} == {f"{c0}.chroma_key.{n}" for n in ("color", "similarity", "blend", "spill")}, got
    got = violations(render_media, render_limits, tl.ClipFilters(chroma_key=tl.ChromaKey(color="#ff0000", spill=0.5)))
    assert got == {f"{c0}.chroma_key.spill: spill suppression needs a green or blue key colour"}
    got = violations(render_media, render_limits, tl.ClipFilters(exposure=1), kind=tl.TRACK_KIND_TEXT)
    assert {g.split(":")[0] for g in got} == {c0}  # looks are for video tracks
    # A LUT asset that is not a LUT: refused at the clip's field, with the parser's reason.
    got = violations(render_media, render_limits, tl.ClipFilters(lut_asset_id="bad"))
    assert got == {f"{c0}.lut_asset_id: is not a valid .cube 3D LUT: no LUT_3D_SIZE: not a .cube LUT"}


def integrated_loudness(path: Path) -> float:
    err = subprocess.run(["ffmpeg", "-hide_banner", "-nostats", "-i", str(path), "-af", "ebur128", "-f", "null", "-"],
                         capture_output=True, text=True, check=True).stderr
    return float(re.findall(r"I:\s+(-?[\d.]+) LUFS", err)[-1])


@pytest.mark.parametrize("target", [None, -20.0, "off"])
async def test_loudness_normalises_a_quiet_and_a_loud_clip_to_the_target(render_media, render_limits, tmp_path, target) -> None:
    t = timeline(duration=4)
    if target == "off":
        t.mix.disable_loudness_normalization = True
    elif target is not None:
        t.mix.loudness_target_lufs = target
    track(t, tl.TRACK_KIND_AUDIO).clips.add(asset_id="tone", source_end_seconds=2, volume=0.05)  # quiet
    track(t, tl.TRACK_KIND_AUDIO).clips.add(asset_id="red", start_seconds=2, source_end_seconds=2, volume=0.3)  # loud (16 dB over the quiet one)
    out = await render(plan_timeline(t, render_media.sources(), render_limits), tmp_path)
    measured = integrated_loudness(out.video)
    if target == "off":
        assert measured < -20, measured  # left as mixed (about -26 LUFS)
    else:
        assert abs(measured - (target or -14.0)) <= 1.0, measured
