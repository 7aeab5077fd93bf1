"""The compiler's effects: looks, chroma key, blend modes and eased transitions, as parts of the
one filter graph (``compile.py`` calls these; nothing here runs ffmpeg).

Eased transitions: xfade's progress is computed from the timestamps of its first input
(``1 - (pts - offset) / duration``), and its second input's timestamps only count as increments.
So both inputs are retimed through the easing inside the transition window — a frame at
fraction p of the transition gets the timestamp of fraction ease(p) — xfade blends them with an
eased progress, and the output's timestamps are mapped back by the inverse curve and rounded
onto the frame grid. Frames are neither added nor dropped (easing is monotonic) and every
transition keeps working, the 46 built-in ones included, with no per-transition expression.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ffmpeg

from services.render.timeline import plan as P
from services.render.timeline.expr import animated_expr, num

__all__ = ["TRUE_PEAK", "Loudness", "blend_layer", "chroma_key", "ease_pts", "graded", "has_grade", "look_commands", "looks", "loudnorm_linear_gain", "loudnorm_options", "lut_file", "uneased_pts"]

TRUE_PEAK = -1.0
# The end of a sendcmd interval that covers any clip (clip-local seconds).
_COMMAND_HORIZON = 172800

Stream = Any


def _ease(p: str, easing: str) -> str:
    if easing == "ease_in":
        return f"({p})*({p})"
    if easing == "ease_out":
        return f"({p})*(2-({p}))"
    return f"if(lt({p},0.5),2*({p})*({p}),1-2*(1-({p}))*(1-({p})))"  # ease_in_out


def _uneased(q: str, easing: str) -> str:
    """The inverse of ``_ease`` on [0, 1]."""
    if easing == "ease_in":
        return f"sqrt({q})"
    if easing == "ease_out":
        return f"1-sqrt(1-({q}))"
    return f"if(lt({q},0.5),sqrt(({q})/2),1-sqrt((1-({q}))/2))"


def ease_pts(start: float, duration: float, easing: str) -> str:
    """setpts: times inside [start, start + duration] moved along the easing (AVTB time base)."""
    a, d = num(start), num(duration)
    p = f"(T-{a})/{d}"
    return f"if(between(T,{a},{num(start + duration)}),{a}+{d}*({_ease(p, easing)}),T)/TB"


def uneased_pts(start: float, duration: float, easing: str, fps: float) -> str:
    """setpts: the inverse of ``ease_pts``, rounded onto the frame grid."""
    a, d = num(start), num(duration)
    q = f"clip((T-{a})/{d},0,1)"
    back = f"round(({a}+{d}*({_uneased(q, easing)}))*{num(fps)})/{num(fps)}"
    return f"if(between(T,{a},{num(start + duration)}),{back},T)/TB"


def chroma_key(stream: Stream, key: P.ChromaKey) -> Stream:
    """The key colour made transparent (soft edge = blend), then its cast removed from what stays."""
    # On 4:2:0: the sources' chroma has that resolution anyway, and chromakey (9 chroma samples
    # per pixel) runs ~2.6x faster than on 4:4:4 (720p: 17 s vs 44 s per 300 frames here).
    stream = stream.filter("format", "yuva420p").filter(
        "chromakey", color=key.color, similarity=num(key.similarity), blend=num(key.blend)
    )
    if key.spill > 0:
        # despill works on RGB; alpha=0 keeps the key's alpha as it is.
        stream = stream.filter("format", "gbrap").filter("despill", type=key.spill_type, mix=num(key.spill), alpha=0)
    return stream


def looks(stream: Stream, f: P.ClipFilters, lut_file: Path | None, tag: str = "") -> Stream:
    """Colour and texture, in the order a colourist would: exposure and white balance, the LUT
    (the look), curves, then vignette, sharpening and grain on the graded picture. Keyframed
    exposure / temperature are named filters (``name@tag``) that ``look_commands`` drives per frame."""
    if f.exposure_curve is not None:
        stream = stream.filter(f"exposure@{tag}", exposure=num(f.exposure_curve.value))
    elif f.exposure:
        stream = stream.filter("exposure", exposure=num(f.exposure))
    if f.temperature_curve is not None:
        stream = stream.filter(f"colortemperature@{tag}", temperature=num(f.temperature_curve.value))
    elif f.temperature:
        stream = stream.filter("colortemperature", temperature=num(f.temperature))
    if lut_file is not None:
        stream = stream.filter("lut3d", file=str(lut_file), interp="tetrahedral")
    if f.curves:
        stream = stream.filter("curves", preset=f.curves)
    if f.vignette_curve is not None:
        # vignette's angle is an expression of its own, evaluated per frame: no command needed.
        stream = stream.filter("vignette", angle=f"({animated_expr(f.vignette_curve, 't')})*PI/2", eval="frame")
    elif f.vignette > 0:
        stream = stream.filter("vignette", angle=num(f.vignette * math.pi / 2))
    if f.sharpen > 0:
        stream = stream.filter("unsharp", luma_msize_x=5, luma_msize_y=5, luma_amount=num(f.sharpen))
    if f.grain > 0:
        stream = stream.filter("noise", alls=num(f.grain), allf="t")
    return stream


def look_commands(workdir: Path, clip: P.PlannedClip, tag: str) -> Path | None:
    """A sendcmd file that sets each keyframed look option on every frame from its curve (an
    ``[expr]`` command is re-evaluated per frame, ``T`` = the frame's clip-local time): exposure and
    colortemperature have no expressions of their own, but take commands; so does blend's opacity,
    which mixes the grade over the ungraded picture (``look_intensity``)."""
    f = clip.filters
    commands = []
    if f.exposure_curve is not None:
        commands.append(f"[expr] exposure@{tag} exposure '{animated_expr(f.exposure_curve, 'T')}'")
    if f.temperature_curve is not None:
        commands.append(f"[expr] colortemperature@{tag} temperature '{animated_expr(f.temperature_curve, 'T')}'")
    if not f.intensity.is_constant:
        commands.append(f"[expr] blend@{tag} all_opacity '{animated_expr(f.intensity, 'T')}'")
    if not commands:
        return None
    path = workdir / f"looks-{tag}.cmd"
    _write_whole(path, f"0-{_COMMAND_HORIZON} " + ", ".join(commands) + ";\n")
    return path


def _write_whole(path: Path, text: str) -> None:
    # Whole or not at all: segments compiled side by side may share the folder.
    part = path.with_suffix(f".{os.getpid()}-{threading.get_ident()}.part")
    part.write_text(text, encoding="ascii")
    os.replace(part, path)


def lut_file(workdir: Path, clip: P.PlannedClip) -> Path | None:
    """The clip's LUT written (canonical text of the parsed table) into the scratch folder."""
    lut = clip.filters.lut
    if lut is None:
        return None
    path = workdir / f"lut-{clip.track_index}-{clip.clip_index}.cube"
    if not path.exists():
        _write_whole(path, lut.text())
    return path


def blend_layer(base: Stream, layer: Stream, start: int, frames: int, total: int, mode: str) -> Stream:
    """``layer`` (canvas-size, with alpha, its own time from 0, ``frames`` long) combined with
    frames [start, start + frames) of ``base`` (``total`` frames, from 0) by blend ``mode``.

    blend has no notion of alpha, so the blended picture gets the layer's alpha back
    (alphamerge) and is laid over the base; outside the layer's frames the base is untouched
    (the base is cut there and concatenated back: blend never sees a missing layer frame)."""
    end = min(start + frames, total)
    parts = base.split()
    pieces: list[Stream] = []
    if start > 0:
        pieces.append(parts[0].trim(end_frame=start).setpts("PTS-STARTPTS").filter("format", "yuv420p"))
    mid = parts[1].trim(start_frame=start, end_frame=end).setpts("PTS-STARTPTS").split()
    top = layer.trim(end_frame=end - start).setpts("PTS-STARTPTS").split()
    blended = ffmpeg.filter(
        [mid[0].filter("format", "gbrp"), top[0].filter("format", "gbrp")], "blend", all_mode=mode, shortest=1
    )
    alpha = top[1].filter("alphaextract")
    shaped = ffmpeg.filter([blended.filter("format", "gbrap"), alpha], "alphamerge")
    pieces.append(ffmpeg.overlay(mid[1], shaped, x=0, y=0, eval="init").filter("format", "yuv420p"))
    if end < total:
        pieces.append(parts[2].trim(start_frame=end).setpts("PTS-STARTPTS").filter("format", "yuv420p"))
    if len(pieces) == 1:
        return pieces[0]
    return ffmpeg.concat(*pieces, v=1, a=0)


def has_grade(f: P.ClipFilters, lut: Path | None) -> bool:
    return bool(f.exposure or f.temperature or lut is not None or f.curves or f.vignette or f.sharpen or f.grain
                or f.exposure_curve or f.temperature_curve or f.vignette_curve)


def graded(stream: Stream, f: P.ClipFilters, lut: Path | None, *, alpha: bool,
           commands: Path | None = None, tag: str = "") -> Stream:
    """``looks`` on a picture, at ``f.intensity`` over the ungraded one; with ``alpha`` (a keyed
    clip) the alpha plane is set aside and put back, since not every look filter carries one
    (vignette, noise work on opaque formats). ``commands``: ``look_commands``'s file."""
    if not has_grade(f, lut) or (f.intensity.is_constant and f.intensity.constant <= 0):
        return stream
    if commands is not None:
        stream = stream.filter("sendcmd", f=str(commands))
    if not alpha:
        return _at_intensity(stream, f, lut, tag)
    parts = stream.split()
    picture = _at_intensity(parts[0].filter("format", "gbrp"), f, lut, tag)
    return ffmpeg.filter([picture.filter("format", "gbrap"), parts[1].filter("alphaextract")], "alphamerge")


def _at_intensity(picture: Stream, f: P.ClipFilters, lut: Path | None, tag: str) -> Stream:
    if f.intensity.is_constant and f.intensity.constant >= 1:
        return looks(picture, f, lut, tag)
    # blend "normal": top * opacity + bottom * (1 - opacity), per frame when commanded; both sides
    # from one split, so their frames pair up one to one.
    parts = picture.filter("format", "gbrp").split()
    top = looks(parts[0], f, lut, tag).filter("format", "gbrp")
    opacity = f.intensity.value if f.intensity.keyframes else f.intensity.constant
    return ffmpeg.filter([top, parts[1]], f"blend@{tag}", all_mode="normal", all_opacity=num(opacity), shortest=1)


@dataclass(frozen=True)
class Loudness:
    integrated: float
    lra: float
    true_peak: float


def loudnorm_options(target: float, m: Loudness) -> dict[str, str]:
    """loudnorm in linear mode: its LRA target must not be below the measured range (else it
    goes dynamic), so it is the measured range, within loudnorm's [1, 50]."""
    return {
        "I": f"{target:.2f}",
        "TP": f"{TRUE_PEAK:.1f}",
        "LRA": f"{min(max(m.lra + 1, 7.0), 50.0):.2f}",
        "measured_I": f"{max(m.integrated, -99.0):.2f}",
        "measured_LRA": f"{min(m.lra, 99.0):.2f}",
        "measured_TP": f"{min(max(m.true_peak, -99.0), 99.0):.2f}",
        "measured_thresh": f"{max(m.integrated - 10, -99.0):.2f}",
        "linear": "true",
    }


def loudnorm_linear_gain(target: float, m: Loudness) -> float | None:
    """The one gain (dB) loudnorm applies with ``loudnorm_options`` when it runs linear (None when it
    would go dynamic), decided as ffmpeg's af_loudnorm does, from the same rounded option values:
    a draft applies it with ``volume`` at the mix's own rate instead of loudnorm's 192 kHz round trip."""
    o = {k: float(v) for k, v in loudnorm_options(target, m).items() if k != "linear"}
    if o["measured_TP"] == 99 or o["measured_thresh"] == -70 or o["measured_LRA"] == 0 or o["measured_I"] == 0:
        return None
    gain = o["I"] - o["measured_I"]
    if o["measured_TP"] + gain > o["TP"] or o["measured_LRA"] > o["LRA"]:
        return None
    return gain


def drawtext(base: Stream, spec: P.TextSpec, kwargs: dict[str, Any], size: str, centre: tuple[str, str],
             workdir: Path, name: str, files: list[Path]) -> Stream:
    """A text clip as drawtext: one block (lines left-aligned within it, the block centred on
    ``centre``), or with ``spec.align`` one drawtext per line placed in the block, since
    drawtext (ffmpeg 5.1) cannot align lines. ``size`` is the font size expression; text goes
    through files (``textfile``: no escaping of user text)."""
    style: dict[str, Any] = {}
    if spec.outline:
        style.update(borderw=spec.outline, bordercolor=spec.outline_color)
    if spec.shadow_x or spec.shadow_y:
        style.update(shadowx=spec.shadow_x, shadowy=spec.shadow_y, shadowcolor=spec.shadow_color)
    cx, cy = centre
    if not spec.align:
        path = workdir / f"{name}.txt"
        path.write_text(spec.text, encoding="utf-8")
        files.append(path)
        extra = {"line_spacing": spec.line_spacing} if spec.line_spacing else {}
        return base.drawtext(textfile=str(path), x=f"{cx}-text_w/2", y=f"{cy}-text_h/2", **kwargs, **style, **extra)
    n = len(spec.lines)
    step = f"(({size})*{num(spec.line_height)}+{spec.line_spacing})"
    top = f"({cy}-({step}*{n}-{spec.line_spacing})/2)"
    ratio = spec.block_width / spec.font_size if spec.block_width > 0 else max(spec.widths, default=0.0)
    width = f"(({size})*{num(ratio)})"
    left = f"({cx}-{width}/2)"
    x = {"left": left, "center": f"{cx}-text_w/2", "right": f"{left}+{width}-text_w"}[spec.align]
    if spec.align == "left":
        x = left
    out = base
    for i, line in enumerate(spec.lines):
        if not line.strip():
            continue  # an empty line only takes its space
        path = workdir / f"{name}-{i}.txt"
        path.write_text(line, encoding="utf-8")
        files.append(path)
        # drawtext's y is the top of the line's own glyphs (its tallest ascent): put every line's
        # baseline on the grid instead.
        y = f"{top}+{step}*{i}+({size})*{num(spec.ascent)}-ascent"
        out = out.drawtext(textfile=str(path), x=x, y=y, **kwargs, **style)
    return out


def stabilized(src: Stream, transforms: str, seek: float) -> Stream:
    """vidstab's second pass on a source decoded from its start, then cut where the clip's part
    begins (the analysis numbers frames from the source's first)."""
    stream = src.setpts("PTS-STARTPTS").filter("vidstabtransform", input=transforms, smoothing=15, optzoom=1, interpol="bicubic")
    return stream.trim(start=num(seek)).setpts("PTS-STARTPTS") if seek > 0 else stream
