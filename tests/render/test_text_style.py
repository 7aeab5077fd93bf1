"""Text style (issue 18): bold/italic faces, outline, shadow, alignment, line spacing, wrapping."""

from __future__ import annotations

import numpy as np
import pytest

from services.kit.errors import ServiceError
from services.render.timeline.text import font_metrics, styled_font, wrap
from services.render.timeline.validate import check_structure, plan_timeline
from tests.fixtures.render import frame_rgb
from tests.render.test_engine import render
from tests.render.timelines import timeline, track
from viarte.render.v1 import timeline_pb2 as tl


def test_bold_and_italic_faces_come_from_fontconfig() -> None:
    regular, bold, both = styled_font("DejaVu Sans"), styled_font("DejaVu Sans", True), styled_font("DejaVu Sans", True, True)
    assert regular and bold and both and len({regular, bold, both}) == 3 and "Bold" in bold
    assert styled_font("DejaVu Math TeX Gyre", bold=True) is None  # only a synthesised bold: refused
    m = font_metrics(bold)
    assert m is not None and m.width("WWW", 48) > m.width("iii", 48) * 2
    assert wrap("one two three four", m, 20, 120) == ["one two", "three four"]  # 90 and 114 px wide
    assert wrap("a\nb", m, 20, 0) == ["a", "b"] and all(m.width(x, 20) <= 60 for x in wrap("supercalifragilistic", m, 20, 60))


def ink(img: np.ndarray) -> np.ndarray:
    """Columns/rows with white text pixels."""
    return img.astype(int).sum(axis=2) > 600


async def test_alignment_wrapping_outline_and_shadow(render_media, render_limits, tmp_path) -> None:
    boxes = {}
    for align in (tl.TEXT_ALIGN_LEFT, tl.TEXT_ALIGN_CENTER, tl.TEXT_ALIGN_RIGHT):
        t = timeline(width=320, height=180, background="#000000")
        style = tl.TextStyle(text="wide line here\nx", font_size=24, box_width=240, align=align, bold=True)
        track(t, tl.TRACK_KIND_TEXT).clips.add(duration_seconds=1, text=style)
        img = frame_rgb((await render(plan_timeline(t, render_media.sources(), render_limits), tmp_path / str(align))).video, 0.5)
        rows = np.where(ink(img).any(axis=1))[0]
        lower = ink(img)[rows.max() - 2 : rows.max() + 1]  # the short second line "x"
        cols = np.where(lower.any(axis=0))[0]
        boxes[align] = (cols.min(), cols.max())
    left, centre, right = boxes[tl.TEXT_ALIGN_LEFT], boxes[tl.TEXT_ALIGN_CENTER], boxes[tl.TEXT_ALIGN_RIGHT]
    assert left[0] < 60 and 145 < centre[0] < 175 and right[1] > 260, boxes  # box 40..280 on a 320 canvas
    # Wrapping: a long line in a 100 px box becomes several lines, each inside the box.
    t = timeline(width=320, height=180)
    long = tl.TextStyle(text="one two three four five six", font_size=20, box_width=100, line_spacing=6,
                        outline_width=2, outline_color="#ff0000", shadow_x=3, shadow_y=3, shadow_color="#0000ff")
    track(t, tl.TRACK_KIND_TEXT).clips.add(duration_seconds=1, text=long)
    plan = plan_timeline(t, render_media.sources(), render_limits)
    assert len(plan.tracks[0].clips[0].text.lines) >= 3
    img = frame_rgb((await render(plan, tmp_path / "wrap")).video, 0.5).astype(int)
    white = ink(img)
    cols = np.where(white.any(axis=0))[0]
    assert cols.max() - cols.min() <= 110, (cols.min(), cols.max())
    red = (img[..., 0] > 150) & (img[..., 1] < 80) & (img[..., 2] < 80)
    blue = (img[..., 2] > 150) & (img[..., 0] < 80)
    assert red.sum() > 50 and blue.sum() > 50  # the outline and the shadow are drawn


def test_text_style_fields_are_validated(render_media, render_limits) -> None:
    t = timeline()
    track(t, tl.TRACK_KIND_TEXT).clips.add(duration_seconds=1, text=tl.TextStyle(
        text="x", outline_width=99, outline_color="red", shadow_x=500, shadow_color="#12", align=7, line_spacing=1e9, box_width=-1))
    with pytest.raises(ServiceError) as info:
        check_structure(t, render_limits)
    fields = {f.field for f in info.value.field_violations}
    base = "tracks[0].clips[0].text"
    assert fields == {f"{base}.{n}" for n in ("outline_width", "outline_color", "shadow_x", "shadow_color", "align", "line_spacing", "box_width")}
    t = timeline()
    track(t, tl.TRACK_KIND_TEXT).clips.add(duration_seconds=1, text=tl.TextStyle(text="x", font_family="DejaVu Math TeX Gyre", bold=True))
    with pytest.raises(ServiceError) as info:
        plan_timeline(t, render_media.sources(), render_limits)
    (only,) = info.value.field_violations
    assert only.field == f"{base}.bold" and "no bold face" in only.description
