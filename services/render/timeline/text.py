"""Text clips' style: fonts by family + weight/slant (fontconfig), outline, shadow, alignment,
line spacing and wrapping in a box width.

ffmpeg 5.1's drawtext can neither wrap nor align lines, so both happen here: lines are broken
at spaces using the font's own advance widths (read from its ``hmtx``/``cmap`` tables, no
font library needed), and an aligned block is drawn one ``drawtext`` per line.
"""

from __future__ import annotations

import math
import struct
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from services.render.timeline import plan as P
from services.render.timeline.style import parse_color, valid_color
from viarte.render.v1 import timeline_pb2 as tl

if TYPE_CHECKING:
    from services.render.timeline.checks import Checks

__all__ = ["FontMetrics", "alignment", "check_text_style", "font_metrics", "plan_text", "styled_font", "wrap"]

_ALIGN = {tl.TEXT_ALIGN_UNSPECIFIED: "", tl.TEXT_ALIGN_LEFT: "left", tl.TEXT_ALIGN_CENTER: "center", tl.TEXT_ALIGN_RIGHT: "right"}


@lru_cache(maxsize=128)
def styled_font(family: str, bold: bool = False, italic: bool = False) -> str | None:
    """The file fontconfig picks for the family in that weight and slant; None when the family
    is not installed or has no such face (fontconfig would answer with the regular face)."""
    pattern = family + (":weight=bold" if bold else "") + (":slant=italic" if italic else "")
    try:
        done = subprocess.run(["fc-match", "-f", "%{family}\n%{weight}\n%{slant}\n%{file}\n%{embolden}%{matrix}", pattern],
                              capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = done.stdout.splitlines()
    if done.returncode != 0 or len(lines) < 4:
        return None
    families = {f.strip().lower() for f in lines[0].split(",")}
    try:
        weight, slant = float(lines[1]), float(lines[2])
    except ValueError:
        return None
    # A face fontconfig would synthesise (embolden, slant matrix) is not one drawtext can draw.
    synthetic = len(lines) > 4 and bool(lines[4].strip())
    if family.strip().lower() not in families or (bold and weight < 180) or (italic and slant <= 0) or synthetic:
        return None
    return lines[3]


@dataclass(frozen=True)
class FontMetrics:
    units_per_em: int
    ascender: int
    descender: int
    advances: dict[int, int]  # code point → advance width in font units
    default_advance: int

    def width(self, text: str, size: float) -> float:
        return sum(self.advances.get(ord(c), self.default_advance) for c in text) * size / self.units_per_em


@lru_cache(maxsize=32)
def font_metrics(path: str) -> FontMetrics | None:
    """Advance widths from a TrueType/OpenType file's head, hhea, hmtx and cmap (format 4 or 12)."""
    try:
        with open(path, "rb") as f:
            data = f.read(32 * 1024 * 1024)
        (num_tables,) = struct.unpack_from(">H", data, 4)
        tables = {}
        for i in range(num_tables):
            tag, _, offset, length = struct.unpack_from(">4sIII", data, 12 + 16 * i)
            tables[tag] = (offset, length)
        units = struct.unpack_from(">H", data, tables[b"head"][0] + 18)[0]
        hhea = tables[b"hhea"][0]
        ascender, descender = struct.unpack_from(">hh", data, hhea + 4)
        (n_metrics,) = struct.unpack_from(">H", data, hhea + 34)
        hmtx = tables[b"hmtx"][0]
        glyph_advance = [struct.unpack_from(">H", data, hmtx + 4 * i)[0] for i in range(n_metrics)]
        cmap = _cmap(data, tables[b"cmap"][0])
    except (OSError, KeyError, struct.error, IndexError):
        return None
    last = glyph_advance[-1] if glyph_advance else units // 2
    advances = {cp: glyph_advance[g] if g < len(glyph_advance) else last for cp, g in cmap.items()}
    return FontMetrics(units or 1000, ascender, descender, advances, advances.get(ord("n"), units // 2))


def _cmap(data: bytes, base: int) -> dict[int, int]:
    (count,) = struct.unpack_from(">H", data, base + 2)
    subtables = [struct.unpack_from(">HHI", data, base + 4 + 8 * i) for i in range(count)]
    for platform, encoding, offset in sorted(subtables, key=lambda s: -s[1]):
        at = base + offset
        (fmt,) = struct.unpack_from(">H", data, at)
        if platform in (0, 3) and fmt == 12:
            (groups,) = struct.unpack_from(">I", data, at + 12)
            out: dict[int, int] = {}
            for g in range(min(groups, 200_000)):
                start, end, glyph = struct.unpack_from(">III", data, at + 16 + 12 * g)
                for cp in range(start, min(end, start + 70_000) + 1):
                    out[cp] = glyph + cp - start
            return out
        if platform in (0, 3) and fmt == 4 and encoding in (0, 1, 3):
            (seg2,) = struct.unpack_from(">H", data, at + 6)
            n = seg2 // 2
            ends = struct.unpack_from(f">{n}H", data, at + 14)
            starts = struct.unpack_from(f">{n}H", data, at + 16 + seg2)
            deltas = struct.unpack_from(f">{n}h", data, at + 16 + 2 * seg2)
            ranges_at = at + 16 + 3 * seg2
            ranges = struct.unpack_from(f">{n}H", data, ranges_at)
            out = {}
            for i in range(n):
                for cp in range(starts[i], ends[i] + 1):
                    if cp == 0xFFFF:
                        continue
                    if ranges[i] == 0:
                        glyph = (cp + deltas[i]) & 0xFFFF
                    else:
                        idx = ranges_at + 2 * i + ranges[i] + 2 * (cp - starts[i])
                        (glyph,) = struct.unpack_from(">H", data, idx)
                        glyph = (glyph + deltas[i]) & 0xFFFF if glyph else 0
                    out[cp] = glyph
            return out
    return {}


def wrap(text: str, metrics: FontMetrics | None, size: float, max_width: float) -> list[str]:
    """Lines no wider than ``max_width`` pixels, broken at spaces (a word longer than the box
    is broken between characters); the text's own newlines are kept."""
    if max_width <= 0 or metrics is None:
        return text.split("\n")
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if metrics.width(candidate, size) <= max_width or (not line and metrics.width(word, size) <= max_width):
                line = candidate
                continue
            if line:
                lines.append(line)
            line = ""
            for ch in word:  # a word too long for the box on its own line
                if line and metrics.width(line + ch, size) > max_width:
                    lines.append(line)
                    line = ""
                line += ch
        lines.append(line)
    return lines


def check_text_style(checks: Checks, path: str, style: tl.TextStyle) -> None:
    """The style fields beyond family/size/colour/box (``path`` = ``...clips[i].text``)."""
    checks.check(math.isfinite(style.outline_width) and 0 <= style.outline_width <= 50, f"{path}.outline_width", "must be in [0, 50]")
    for name in ("outline_color", "shadow_color"):
        checks.check(valid_color(getattr(style, name), empty_ok=True, alpha=True), f"{path}.{name}", "must be #rrggbb or #rrggbbaa")
    for name in ("shadow_x", "shadow_y"):
        value = getattr(style, name)
        checks.check(math.isfinite(value) and -100 <= value <= 100, f"{path}.{name}", "must be in [-100, 100]")
    checks.check(style.align in _ALIGN, f"{path}.align", "unknown alignment")
    checks.check(math.isfinite(style.line_spacing) and -200 <= style.line_spacing <= 500, f"{path}.line_spacing", "must be in [-200, 500]")
    checks.check(math.isfinite(style.box_width) and 0 <= style.box_width <= 10000, f"{path}.box_width", "must be in [0, 10000] (0 = no wrapping)")


def alignment(style: tl.TextStyle) -> str:
    return _ALIGN.get(style.align, "")


def plan_text(checks: Checks, path: str, style: tl.TextStyle, pixel_scale: float, default_family: str) -> P.TextSpec:
    family = style.font_family or default_family
    font = styled_font(family, style.bold, style.italic)
    if font is None and (style.bold or style.italic) and styled_font(family) is not None:
        face = " ".join(n for n, on in (("bold", style.bold), ("italic", style.italic)) if on)
        checks.check(False, f"{path}.{'bold' if style.bold else 'italic'}", f"font {family!r} has no {face} face installed")
    else:
        checks.check(font is not None, f"{path}.font_family", f"font {family!r} is not installed")
    size = (style.font_size or 48.0) * pixel_scale
    metrics = font_metrics(font) if font else None
    # Wrapped at the canvas-size font in the canvas-size box: the same lines at any output size.
    lines = tuple(wrap(style.text, metrics, style.font_size or 48.0, style.box_width))
    em = metrics.units_per_em if metrics else 1000
    return P.TextSpec(
        text="\n".join(lines),
        font_file=font or "",
        font_size=size,
        color=parse_color(style.color or "#ffffff"),
        box=style.box,
        box_color=parse_color(style.box_color or "#00000080"),
        box_padding=round(style.box_padding * pixel_scale),
        outline=round(style.outline_width * pixel_scale),
        outline_color=parse_color(style.outline_color or "#000000"),
        shadow_x=round(style.shadow_x * pixel_scale),
        shadow_y=round(style.shadow_y * pixel_scale),
        shadow_color=parse_color(style.shadow_color or "#00000080"),
        line_spacing=round(style.line_spacing * pixel_scale),
        align=alignment(style),
        lines=lines,
        # Per font-size unit: each line's width, the font's ascender and line height.
        widths=tuple((metrics.width(line, 1.0) if metrics else 0.6 * len(line)) for line in lines),
        ascent=(metrics.ascender / em) if metrics else 0.8,
        line_height=((metrics.ascender - metrics.descender) / em) if metrics else 1.2,
        block_width=style.box_width * pixel_scale,
    )
