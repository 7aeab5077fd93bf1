"""Small timeline builders shared by the render tests."""

from __future__ import annotations

from viarte.render.v1 import timeline_pb2 as tl

W, H, FPS = 160, 90, 30.0


def timeline(width: int = W, height: int = H, fps: float = FPS, background: str = "#000000", duration: float = 0.0) -> tl.Timeline:
    return tl.Timeline(canvas=tl.Canvas(width=width, height=height, fps=fps, background_color=background, duration_seconds=duration))


def track(t: tl.Timeline, kind: int = tl.TRACK_KIND_VIDEO, **kw: object) -> tl.Track:
    return t.tracks.add(kind=kind, **kw)


def crossfade(seconds: float, kind: int = tl.TRANSITION_KIND_CROSSFADE) -> tl.Transition:
    return tl.Transition(kind=kind, duration_seconds=seconds)
