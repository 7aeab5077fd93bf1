"""Compiles a :class:`Plan` into ONE ffmpeg filter graph, built with ffmpeg-python.

Layout of the graph (z-order = track order):

* the bottom video track, when all its clips are plain full-canvas pictures (no transform), is
  the base itself: its groups (clips joined by ``xfade``) and background-coloured gaps are
  concatenated, so no frame is composed twice;
* otherwise the base is a ``color`` source and every group is ``overlay``-ed on it, shifted to
  its start (``setpts``), positioned by keyframe expressions evaluated per frame;
* text clips are ``drawtext`` on the composite; audio clips are trimmed, retimed, faded, delayed
  and ``amix``-ed.

Inputs are seeked (``-ss``/``-t`` on the input) so only the footage that is shown is decoded.
Each stream runs in its first clip's local time until it is shifted onto the timeline, so fades
and keyframes are written once in clip-local seconds. A :class:`Window` compiles only part of the
timeline (the scrubber's single frame) with the same code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ffmpeg

from services.render.stabilize import source_key as stabilize_key
from services.render.timeline import fx
from services.render.timeline import plan as P
from services.render.timeline.audiofx import eq_chain, mix_tracks
from services.render.timeline.expr import animated_expr, num

__all__ = ["CompiledGraph", "Window", "compile_plan", "expand_window"]

Stream = Any  # ffmpeg-python's FilterableStream (untyped library)


@dataclass(frozen=True)
class Window:
    """Output frames [start, end) of the timeline."""

    start: int
    end: int

    @property
    def frames(self) -> int:
        return self.end - self.start


@dataclass
class CompiledGraph:
    video: Stream
    audio: Stream | None
    window: Window
    width: int
    height: int
    fps: float
    # Frames to drop from the graph's start (a window moved back to a transition's start).
    skip_frames: int = 0
    text_files: list[Path] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return self.window.frames - self.skip_frames

    @property
    def duration(self) -> float:
        return self.frames / self.fps


def expand_window(plan: P.Plan, start: int, end: int) -> Window:
    """Widens [start, end) so that it never cuts through a transition (xfade needs both sides whole)."""
    changed = True
    while changed:
        changed = False
        for track in plan.tracks:
            for clip in track.clips:
                t = clip.transition_in
                if t is None:
                    continue
                t0, t1 = clip.start, clip.start + t.frames
                if t0 < start < t1:
                    start, changed = t0, True
                if t0 < end < t1:
                    end, changed = t1, True
    return Window(start, end)


def compile_plan(
    plan: P.Plan,
    workdir: Path,
    *,
    window: Window | None = None,
    audio: bool = True,
    loudness: fx.Loudness | None = None,
    linear_gain_as_volume: bool = False,
) -> CompiledGraph:
    """The whole timeline (or ``window`` of it) as ffmpeg-python streams; ``loudness``: the mix's
    measurement (``services.render.loudness``), to normalise it to ``plan.loudness``;
    ``linear_gain_as_volume`` (draft playback): where loudnorm would apply one linear gain, apply it
    with ``volume`` instead (same gain, no 192 kHz resampling; the export keeps loudnorm)."""
    wanted = window or Window(0, plan.canvas.frames)
    win = expand_window(plan, wanted.start, wanted.end)
    workdir.mkdir(parents=True, exist_ok=True)
    builder = _Builder(plan, win, workdir, loudness, linear_gain_as_volume)
    video = builder.video()
    skip = wanted.start - win.start
    if skip or win.end != wanted.end:
        video = video.trim(start_frame=skip, end_frame=skip + wanted.frames).setpts("PTS-STARTPTS")
    sound = builder.audio() if audio and skip == 0 and win.end == wanted.end else None
    return CompiledGraph(
        video=video,
        audio=sound,
        window=Window(win.start, win.start + skip + wanted.frames),
        width=plan.canvas.width,
        height=plan.canvas.height,
        fps=plan.canvas.fps,
        skip_frames=skip,
        text_files=builder.text_files,
    )


@dataclass(frozen=True)
class _Span:
    """The part of a clip inside the window: local frames [offset, offset + frames)."""

    clip: P.PlannedClip
    offset: int
    frames: int


class _Builder:
    def __init__(self, plan: P.Plan, window: Window, workdir: Path, loudness: fx.Loudness | None = None,
                 linear_gain_as_volume: bool = False) -> None:
        self.plan = plan
        self.loudness = loudness
        self.linear_gain_as_volume = linear_gain_as_volume
        self.canvas = plan.canvas
        self.win = window
        self.fps = plan.canvas.fps
        self.workdir = workdir
        self.text_files: list[Path] = []
        self._inputs: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {}
        self._splits: dict[Any, list[Any]] = {}
        self._input_counts = self._count_inputs()

    # -- windowing ----------------------------------------------------------------------------
    def span(self, clip: P.PlannedClip) -> _Span | None:
        start, end = max(clip.start, self.win.start), min(clip.end, self.win.end)
        if end <= start:
            return None
        return _Span(clip, start - clip.start, end - start)

    def shift(self, clip: P.PlannedClip) -> float:
        """Seconds from the clip's local time to output time."""
        return (clip.start - self.win.start) / self.fps

    def _input_key(self, span: _Span) -> tuple[str, tuple[tuple[str, str], ...]]:
        clip = span.clip
        assert clip.source is not None
        # The forced demuxer and protocol whitelist of user media (kit.media_input), never ffmpeg's guess.
        inp = clip.source.input()
        if clip.kind is P.ClipKind.IMAGE:
            return inp.location, inp.options
        begin = clip.source_offset(span.offset / self.fps)
        seek = clip.source_start + begin
        # Two spare source frames: the exact length is cut after retiming.
        used = clip.source_offset((span.offset + span.frames) / self.fps) - begin
        length = used + 2 / max(clip.source.info.fps or self.fps, 1.0)
        if clip.filters.stabilize:  # decoded from the start: vidstab counts frames from there
            return inp.location, tuple(sorted(({"t": num(seek + length)} | inp.kwargs()).items()))
        kwargs = {"t": num(length)} | ({"ss": num(seek)} if seek > 0 else {}) | inp.kwargs()
        return inp.location, tuple(sorted(kwargs.items()))

    def _count_inputs(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], int]:
        counts: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
        for clip in self.plan.clips():
            span = self.span(clip)
            if span is not None and clip.source is not None:
                key = self._input_key(span)
                counts[key] = counts.get(key, 0) + 1
        return counts

    def stream(self, span: _Span, kind: str) -> Stream:
        """The clip's decoded video or audio. Clips that read the same seeked range share one
        decoder through split/asplit (ffmpeg-python merges identical nodes, so this must be explicit)."""
        key = self._input_key(span)
        if key not in self._inputs:
            location, kwargs = key
            self._inputs[key] = ffmpeg.input(location, **dict(kwargs))
        inp = self._inputs[key]
        source = inp.video if kind == "v" else inp.audio
        if self._input_counts.get(key, 1) <= 1:
            return source
        skey = (key, kind)
        if skey not in self._splits:
            self._splits[skey] = [source.split() if kind == "v" else source.asplit(), 0]
        node, used = self._splits[skey]
        self._splits[skey][1] = used + 1
        return node[used]

    # -- video --------------------------------------------------------------------------------
    def video(self) -> Stream:
        layers = [t for t in self.plan.tracks if t.kind is not P.TrackKind.AUDIO and not t.hidden]
        if layers and layers[0].kind is P.TrackKind.VIDEO and all(_is_plain(c) for c in layers[0].clips):
            out = self.base_track(layers[0])
            layers = layers[1:]
        else:
            out = self.color(self.canvas.background, self.win.frames, 0)
        for layer in layers:
            if layer.kind is P.TrackKind.TEXT:
                for clip in layer.clips:
                    span = self.span(clip)
                    if span is not None:
                        out = self.drawtext(out, span)
                continue
            for group in layer.groups():
                spans = [s for s in (self.span(c) for c in group) if s is not None]
                if spans:
                    out = self.overlay_group(out, spans)
        return out.filter("format", "yuv420p")

    def color(self, color: str, frames: int, local_offset: int, *, alpha: bool = False) -> Stream:
        c = self.canvas
        src = ffmpeg.input(
            f"color=c={color}:s={c.width}x{c.height}:r={num(self.fps)}:d={num(frames / self.fps)}", f="lavfi"
        ).video
        src = src.filter("format", "yuva420p" if alpha else "yuv420p")
        if alpha:
            # The lavfi input device hands over colour without its alpha: clear it in the graph.
            src = src.filter("lut", a=0)
        if local_offset:
            src = src.setpts(f"PTS+{num(local_offset / self.fps)}/TB")
        return src

    def base_track(self, track: P.PlannedTrack) -> Stream:
        """Gaps (background colour) and groups, concatenated: the track is the canvas."""
        segments: list[Stream] = []
        cursor = self.win.start
        for group in track.groups():
            spans = [s for s in (self.span(c) for c in group) if s is not None]
            if not spans:
                continue
            first = spans[0].clip.start + spans[0].offset
            if first > cursor:
                segments.append(self.color(self.canvas.background, first - cursor, 0))
            stream = self.group_stream(spans, mode="base")
            segments.append(stream.setpts("PTS-STARTPTS"))
            last = spans[-1]
            cursor = last.clip.start + last.offset + last.frames
        if cursor < self.win.end:
            segments.append(self.color(self.canvas.background, self.win.end - cursor, 0))
        if len(segments) == 1:
            return segments[0]
        return ffmpeg.concat(*segments, v=1, a=0)

    def overlay_group(self, base: Stream, spans: list[_Span]) -> Stream:
        first = spans[0].clip
        if first.filters.blend != "normal":
            # The group's first clip decides how the whole group combines with what is below.
            layer = self.group_stream(spans, mode="canvas") if len(spans) > 1 else self.picture(spans[0], mode="canvas")
            begin = first.start + spans[0].offset
            length = spans[-1].clip.start + spans[-1].offset + spans[-1].frames - begin
            return fx.blend_layer(base, layer, begin - self.win.start, length, self.win.frames, first.filters.blend)
        if len(spans) == 1:
            stream = self.picture(spans[0], mode="free")
            shift = self.shift(first)
            stream = stream.setpts(f"PTS+{num(shift)}/TB")
            x, y, dynamic = self.position(first, shift)
            return ffmpeg.overlay(base, stream, x=x, y=y, eof_action="pass", eval="frame" if dynamic else "init")
        stream = self.group_stream(spans, mode="canvas")
        stream = stream.setpts(f"PTS+{num(self.shift(first))}/TB")
        return ffmpeg.overlay(base, stream, x=0, y=0, eof_action="pass", eval="init")

    def group_stream(self, spans: list[_Span], *, mode: str) -> Stream:
        """Clips joined by xfade, in the first clip's local time."""
        # Eased transitions retime frames inside xfade (fx.ease_pts): every input then needs a
        # time base finer than the frame grid, and xfade wants both inputs' time bases equal.
        eased = any(s.clip.transition_in is not None and s.clip.transition_in.easing != "linear" for s in spans[1:])
        out = self.picture(spans[0], mode=mode)
        out = out.filter("settb", "AVTB") if eased else out
        # Output length so far, in frames, counted from the first span's first frame.
        length = spans[0].frames
        for span in spans[1:]:
            t = span.clip.transition_in
            assert t is not None and span.offset == 0
            nxt = self.picture(span, mode=mode)
            nxt = nxt.filter("settb", "AVTB") if eased else nxt
            offset = length - t.frames
            duration = t.frames / self.fps
            if t.easing != "linear":
                at = (spans[0].offset + offset) / self.fps  # the transition's start in the first input's time
                out = out.setpts(fx.ease_pts(at, duration, t.easing))
                nxt = nxt.setpts(fx.ease_pts(0.0, duration, t.easing))
            out = ffmpeg.filter([out, nxt], "xfade", transition=t.kind, duration=num(duration), offset=num(offset / self.fps))
            if t.easing != "linear":
                out = out.setpts(fx.uneased_pts(at, duration, t.easing, self.fps))
            length += span.frames - t.frames
        return out

    def picture(self, span: _Span, *, mode: str) -> Stream:
        """One clip's frames, fitted and filtered, in clip-local time.

        mode "base": opaque canvas-size frames (fades go to the background colour);
        "canvas": canvas-size frames with alpha (for transitions above the base);
        "free": the fitted picture alone, positioned later by the overlay.
        """
        clip = span.clip
        info = clip.source.info if clip.source else None
        assert info is not None
        src = self.stream(span, "v")
        static = mode != "base"
        t = clip.transform
        scale = t.scale.constant if static and t.scale.is_constant else 1.0
        if clip.kind is P.ClipKind.VIDEO:
            if clip.filters.stabilize and clip.source is not None:
                # Not fetched where only the sound is rendered (a split render's server on the Ray
                # executor): ffmpeg-python drops this unused picture node, so the name never reaches
                # ffmpeg; if it did, ffmpeg's error names what is missing.
                trf = self.plan.stabilization.get(stabilize_key(clip.source), "vidstab-analysis-not-fetched.trf")
                src = fx.stabilized(src, trf,
                                    clip.source_start + clip.source_offset(span.offset / self.fps))
            stream = self.retime(src, span)
        else:
            stream = src
        # A smaller proxy's frames go through key and looks at its own size. Only sharpening and grain
        # depend on it, and at the draft's 360p they hardly show: sharpen 1.5 changed a 720p test
        # pattern's draft by 0.9 of 255 on average, whichever size it ran at.
        decoded = clip.source.decoded_size if clip.source and clip.source.decoded_size else (info.width, info.height)
        # A still with a look that changes over time becomes a clip first (else after fitting).
        looped = clip.kind is P.ClipKind.IMAGE and clip.filters.animated_looks
        if looped:
            stream = self.loop_still(stream, span)
        # Key and looks on the source picture, before fitting (a keyed clip's letterbox stays clear).
        keyed = clip.filters.key is not None
        if clip.filters.key is not None:
            stream = fx.chroma_key(stream, clip.filters.key)
        tag = f"t{clip.track_index}c{clip.clip_index}o{span.offset}"  # unique in the graph
        stream = fx.graded(stream, clip.filters, fx.lut_file(self.workdir, clip), alpha=keyed,
                           commands=fx.look_commands(self.workdir, clip, tag), tag=tag)
        if mode == "base":
            pad_color: str | None = self.canvas.background
        elif mode == "canvas" and t.is_identity:
            stream, pad_color = stream.filter("format", "yuva420p"), "black@0"
        else:
            pad_color = None
        stream = self.fit(stream, clip, info.width, info.height, scale, pad_color=pad_color, decoded=decoded)
        stream = self.effects(stream, clip.filters)
        if static and t.rotation.is_constant and t.rotation.constant:
            a = math.radians(t.rotation.constant)
            stream = stream.filter("format", "yuva420p").filter(
                "rotate", a=num(a), ow=f"rotw({num(a)})", oh=f"roth({num(a)})", c="none"
            )
        if clip.kind is P.ClipKind.IMAGE and not looped:
            # Everything above ran once on the still; now it becomes a clip.
            stream = self.loop_still(stream, span)
        if mode == "base":
            stream = self.fades(stream, clip, color=self.canvas.background)
            return stream.filter("setsar", 1).filter("format", "yuv420p")
        stream = stream.filter("format", "yuva420p")
        if not t.rotation.is_constant:
            stream = stream.filter(
                "rotate", a=f"({animated_expr(t.rotation, 't')})*PI/180", ow="hypot(iw,ih)", oh="ow", c="none"
            )
        stream = self.opacity(stream, t.opacity)
        stream = self.fades(stream, clip, color=None)
        if not t.scale.is_constant:
            # Last: frames change size from here on, and per-pixel filters (geq) size their
            # buffers once; only overlay takes a new size per frame.
            e = animated_expr(t.scale, "t")
            stream = stream.filter(
                "scale", w=f"max(2,trunc(iw*({e})/2)*2)", h=f"max(2,trunc(ih*({e})/2)*2)", eval="frame"
            )
        stream = stream.filter("setsar", 1)
        if mode == "canvas" and not t.is_identity:
            canvas = self.color("black@0", span.frames, span.offset, alpha=True)
            x, y, dynamic = self.position(clip, 0.0)
            stream = ffmpeg.overlay(canvas, stream, x=x, y=y, eof_action="pass", eval="frame" if dynamic else "init")
        return stream

    def loop_still(self, stream: Stream, span: _Span) -> Stream:
        stream = stream.filter("loop", loop=span.frames - 1, size=1, start=0)
        # A fine time base first: the still's own (1/25) can't hold multiples of 1/fps.
        return stream.filter("settb", "AVTB").setpts(f"(N+{span.offset})/{num(self.fps)}/TB").filter("fps", num(self.fps))

    def retime(self, src: Stream, span: _Span) -> Stream:
        """Seeked source → clip-local timestamps on the output frame grid, exactly span.frames long."""
        clip = span.clip
        local = span.offset / self.fps
        if clip.ramp is not None:
            # Each frame goes to S^-1(its source time), solved per frame inside ffmpeg; the horizon
            # only has to lie past the spare frames read after the span's end.
            pts = clip.ramp.pts_expr(local, local + span.frames / self.fps + 60)
        else:
            pts = "PTS-STARTPTS" if clip.speed == 1 else f"(PTS-STARTPTS)/{num(clip.speed)}"
            if span.offset:
                pts += f"+{num(local)}/TB"
        stream = src.setpts(pts).filter("fps", num(self.fps))
        # A source a frame short (container vs stream duration) repeats its last frame.
        stream = stream.filter("tpad", stop=-1, stop_mode="clone")
        return stream.trim(end_frame=span.frames)

    def fit(self, stream: Stream, clip: P.PlannedClip, w: int, h: int, scale: float, *, pad_color: str | None,
            decoded: tuple[int, int] | None = None) -> Stream:
        """The picture (``w`` x ``h`` as planned, ``decoded``: the size its frames come in, a proxy's)
        scaled to its size on the canvas. The scale is left out only when neither size needs it, so
        a proxy already at the fitted size keeps the graph (and a draft segment its cache key) the
        original gives; ffmpeg passes frames of the right size through a scale untouched."""
        cw, ch = self.canvas.width, self.canvas.height
        sizes = {(w, h), decoded or (w, h)}
        if clip.fit is P.Fit.STRETCH:
            tw, th = _even(cw * scale), _even(ch * scale)
            return stream if sizes == {(tw, th)} else stream.filter("scale", tw, th)
        k = (min if clip.fit is P.Fit.CONTAIN else max)(cw / w, ch / h) * scale
        tw, th = _even(w * k), _even(h * k)
        if sizes != {(tw, th)}:
            stream = stream.filter("scale", tw, th)
        if clip.fit is P.Fit.COVER:
            vw, vh = min(tw, _even(cw * scale)), min(th, _even(ch * scale))
            if (vw, vh) != (tw, th):
                stream = stream.crop(x=(tw - vw) // 2, y=(th - vh) // 2, width=vw, height=vh)
            tw, th = vw, vh
        if pad_color and (tw, th) != (cw, ch):
            stream = stream.filter("pad", cw, ch, (cw - tw) // 2, (ch - th) // 2, color=pad_color)
        return stream

    @staticmethod
    def effects(stream: Stream, f: P.ClipFilters) -> Stream:
        if f.brightness or f.contrast != 1 or f.saturation != 1:
            stream = stream.filter(
                "eq", brightness=num(f.brightness), contrast=num(f.contrast), saturation=num(f.saturation)
            )
        if f.grayscale:
            stream = stream.filter("hue", s=0)
        if f.blur_sigma > 0:
            stream = stream.filter("gblur", sigma=num(f.blur_sigma))
        return stream

    def opacity(self, stream: Stream, opacity: P.Animated) -> Stream:
        if opacity.is_constant:
            if opacity.constant >= 1:
                return stream
            return stream.filter("lut", a=f"val*{num(opacity.constant)}")
        # Per-frame alpha needs a per-pixel expression (geq); only keyframed opacity pays for it.
        e = animated_expr(opacity, "T")
        return stream.filter("geq", lum="lum(X,Y)", cb="cb(X,Y)", cr="cr(X,Y)", a=f"alpha(X,Y)*({e})")

    def fades(self, stream: Stream, clip: P.PlannedClip, *, color: str | None) -> Stream:
        length = clip.frames / self.fps
        extra: dict[str, Any] = {"color": color} if color else {"alpha": 1}
        if clip.fade_in > 0:
            stream = stream.filter("fade", type="in", start_time=0, duration=num(clip.fade_in), **extra)
        if clip.fade_out > 0:
            # A clip's length in whole frames can fall short of the seconds the checks allowed the
            # fade (0.3 s at 15 fps is 4 frames, 0.267 s): the fade then covers the whole clip.
            fade_out = min(clip.fade_out, length)
            stream = stream.filter(
                "fade", type="out", start_time=num(length - fade_out), duration=num(fade_out), **extra
            )
        return stream

    def position(self, clip: P.PlannedClip, shift: float) -> tuple[str, str, bool]:
        """Overlay x/y that centre the picture on (x, y) canvas fractions; t is shifted to clip time."""
        t = clip.transform
        local = f"(t-{num(shift)})" if shift > 0 else (f"(t+{num(-shift)})" if shift < 0 else "t")
        x = f"main_w*({animated_expr(t.x, local)})-overlay_w/2"
        y = f"main_h*({animated_expr(t.y, local)})-overlay_h/2"
        dynamic = not (t.x.is_constant and t.y.is_constant and t.scale.is_constant and t.rotation.is_constant)
        return x, y, dynamic

    # -- text ---------------------------------------------------------------------------------
    def drawtext(self, base: Stream, span: _Span) -> Stream:
        clip = span.clip
        spec = clip.text
        assert spec is not None
        shift = self.shift(clip)
        local = f"(t-{num(shift)})" if shift > 0 else (f"(t+{num(-shift)})" if shift < 0 else "t")
        t = clip.transform
        length = clip.frames / self.fps
        alpha = animated_expr(t.opacity, local)
        if clip.fade_in > 0:
            alpha += f"*clip({local}/{num(clip.fade_in)},0,1)"
        if clip.fade_out > 0:
            alpha += f"*clip(({num(length)}-{local})/{num(clip.fade_out)},0,1)"
        size = animated_expr(t.scale, local, scale=spec.font_size)
        begin = (span.clip.start + span.offset - self.win.start) / self.fps
        end = begin + span.frames / self.fps
        kwargs: dict[str, Any] = {
            "fontfile": spec.font_file,
            "fontsize": size,
            "fontcolor": spec.color,
            "alpha": alpha,
            "expansion": "none",
            # Half a frame of slack each side: frame timestamps are exact multiples of 1/fps.
            "enable": f"between(t,{num(begin - 0.5 / self.fps)},{num(end - 0.5 / self.fps)})",
        }
        if spec.box:
            kwargs.update(box=1, boxcolor=spec.box_color, boxborderw=spec.box_padding)
        centre = (f"w*({animated_expr(t.x, local)})", f"h*({animated_expr(t.y, local)})")
        name = f"text-{clip.track_index}-{clip.clip_index}"
        return fx.drawtext(base, spec, kwargs, size, centre, self.workdir, name, self.text_files)

    # -- audio --------------------------------------------------------------------------------
    def audio(self) -> Stream | None:
        parts: dict[int, list[Stream]] = {}
        for track in self.plan.tracks:
            for i, clip in enumerate(track.clips):
                span = self.span(clip)
                if span is None or not clip.has_audio:
                    continue
                nxt = track.clips[i + 1] if i + 1 < len(track.clips) else None
                out_xfade = nxt.transition_in.frames if nxt and nxt.transition_in else 0
                parts.setdefault(track.index, []).append(self.sound(span, out_xfade))
        if not parts:
            return None
        mixed = mix_tracks(parts, self.plan.ducking)
        total = num(self.win.frames / self.fps)
        if self.plan.loudness is not None and self.loudness is not None:
            gain = fx.loudnorm_linear_gain(self.plan.loudness, self.loudness) if self.linear_gain_as_volume else None
            if gain is not None:
                mixed = mixed.filter("volume", f"{gain:.2f}dB")
            else:
                mixed = mixed.filter("loudnorm", **fx.loudnorm_options(self.plan.loudness, self.loudness)).filter("aresample", 48000)
        return mixed.filter("apad", whole_dur=total).filter("atrim", end=total).filter(
            "aformat", sample_rates=48000, channel_layouts="stereo"
        )

    def sound(self, span: _Span, out_xfade: int) -> Stream:
        clip = span.clip
        stream = self.stream(span, "a").filter("asetpts", "PTS-STARTPTS")
        length = span.frames / self.fps
        if clip.ramp is not None:
            stream = self.ramped_sound(stream, span)
        else:
            for factor in _atempo_factors(clip.speed):
                stream = stream.filter("atempo", num(factor))
        stream = stream.filter("atrim", end=num(length))
        if clip.volume != 1:
            stream = stream.filter("volume", num(clip.volume))
        stream = eq_chain(stream, clip.audio_eq)
        into = clip.transition_in.frames / self.fps if clip.transition_in else 0.0
        fade_in = max(clip.fade_in, into) - span.offset / self.fps
        fade_out = max(clip.fade_out, out_xfade / self.fps)
        if fade_in > 0:
            stream = stream.filter("afade", type="in", start_time=0, duration=num(fade_in))
        if fade_out > 0:
            start = clip.frames / self.fps - fade_out - span.offset / self.fps
            stream = stream.filter("afade", type="out", start_time=num(max(start, 0.0)), duration=num(fade_out))
        delay = round((clip.start + span.offset - self.win.start) / self.fps * 1000)
        if delay:
            stream = stream.filter("adelay", delays=delay, all=1)
        return stream

    def ramped_sound(self, stream: Stream, span: _Span) -> Stream:
        """Short pieces of the ramp, each time-stretched at its mean rate (pitch kept), exactly as
        long as the picture's piece, concatenated."""
        ramp = span.clip.ramp
        assert ramp is not None
        t0 = span.offset / self.fps
        pieces = ramp.pieces(t0, t0 + span.frames / self.fps)
        s0 = ramp.source_at(t0)
        split = stream.asplit() if len(pieces) > 1 else None
        parts: list[Stream] = []
        for i, (a, b) in enumerate(pieces):
            x0, x1 = ramp.source_at(a) - s0, ramp.source_at(b) - s0
            part = (split[i] if split is not None else stream).filter("atrim", start=num(x0), end=num(x1))
            part = part.filter("asetpts", "PTS-STARTPTS")
            for factor in _atempo_factors((x1 - x0) / (b - a)):
                part = part.filter("atempo", num(factor))
            parts.append(part.filter("apad", whole_dur=num(b - a)).filter("atrim", end=num(b - a)))
        return parts[0] if len(parts) == 1 else ffmpeg.concat(*parts, v=0, a=1)


def _is_plain(clip: P.PlannedClip) -> bool:
    """A clip that covers the canvas as an opaque picture (can be the base without overlay)."""
    f = clip.filters
    return clip.has_picture and clip.transform.is_identity and f.key is None and f.blend == "normal"


def _even(x: float) -> int:
    return max(2, round(x / 2) * 2)


def _atempo_factors(speed: float) -> list[float]:
    """atempo takes 0.5..2 per instance; chain instances for the rest."""
    factors: list[float] = []
    while speed > 2:
        factors.append(2.0)
        speed /= 2
    while speed < 0.5:
        factors.append(0.5)
        speed /= 0.5
    if abs(speed - 1) > 1e-9:
        factors.append(speed)
    return factors
