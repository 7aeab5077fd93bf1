"""The validated, frame-quantised form of a timeline that the compiler turns into one filter graph.

Every timeline time is rounded to the output frame grid here, once, so that concatenated and
cross-faded segments add up to exact frame counts (no drift, duration within one frame).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from services.kit.media_input import MediaInput, media_input
from services.render.media import SourceInfo

if TYPE_CHECKING:
    from services.kit.cube_lut import CubeLut
    from services.render.timeline.ramp import SpeedRamp

__all__ = [
    "Animated",
    "ChromaKey",
    "ClipFilters",
    "ClipKind",
    "Fit",
    "Keyframe",
    "Plan",
    "PlannedCanvas",
    "PlannedClip",
    "PlannedTrack",
    "Source",
    "StoredAnalysis",
    "TextSpec",
    "TrackKind",
    "Transform",
    "Transition",
]


class TrackKind(StrEnum):
    VIDEO = "video"
    TEXT = "text"
    AUDIO = "audio"


class ClipKind(StrEnum):
    VIDEO = "video"
    IMAGE = "image"
    AUDIO = "audio"
    TEXT = "text"


class Fit(StrEnum):
    CONTAIN = "contain"
    COVER = "cover"
    STRETCH = "stretch"


@dataclass(frozen=True)
class Source:
    """Where ffmpeg reads an asset (presigned URL or local cache file) and what it holds."""

    location: str
    info: SourceInfo
    # As storage sniffed and recorded it: ffmpeg opens the asset as this type only.
    content_type: str
    # The storage asset (the key of per-asset caches such as stabilisation's analysis).
    asset_id: str = ""
    # The picture size of the file at ``location`` when it is not ``info``'s: a playback proxy made
    # smaller than the original (draft segments decode a quarter of the pixels). Everything else
    # (fit, the plan's checks) still reasons in the original's size; only the fit's scale is sure
    # to run, since the decoded frames are not the size the plan knows.
    decoded_size: tuple[int, int] | None = None
    # Its bytes' sha256 as storage recorded it (part of derived objects' keys; "" when unknown).
    sha256: str = ""

    def input(self) -> MediaInput:
        return media_input(self.content_type, self.location)


@dataclass(frozen=True)
class Keyframe:
    time: float
    value: float
    # "linear", "ease_in", "ease_out", "ease_in_out"
    easing: str = "linear"


@dataclass(frozen=True)
class Animated:
    """A constant (``keyframes`` empty) or a keyframed value; times are clip-local seconds."""

    value: float
    keyframes: tuple[Keyframe, ...] = ()

    @property
    def is_constant(self) -> bool:
        return len(self.keyframes) <= 1

    @property
    def constant(self) -> float:
        return self.keyframes[0].value if len(self.keyframes) == 1 else self.value


@dataclass(frozen=True)
class Transform:
    x: Animated = Animated(0.5)
    y: Animated = Animated(0.5)
    scale: Animated = Animated(1.0)
    rotation: Animated = Animated(0.0)
    opacity: Animated = Animated(1.0)

    @property
    def is_identity(self) -> bool:
        defaults = ((self.x, 0.5), (self.y, 0.5), (self.scale, 1.0), (self.rotation, 0.0), (self.opacity, 1.0))
        return all(a.is_constant and a.constant == v for a, v in defaults)


@dataclass(frozen=True)
class ChromaKey:
    # ffmpeg colour "0xRRGGBB".
    color: str
    similarity: float = 0.1
    blend: float = 0.0
    # 0 = no spill suppression; else despill's mix, of type "green" or "blue".
    spill: float = 0.0
    spill_type: str = "green"


@dataclass(frozen=True)
class ClipFilters:
    brightness: float = 0.0
    contrast: float = 1.0
    saturation: float = 1.0
    blur_sigma: float = 0.0
    grayscale: bool = False
    # The parsed, checked LUT (written to the scratch folder by the compiler).
    lut: CubeLut | None = None
    exposure: float = 0.0
    # Kelvin; 0 = unchanged.
    temperature: float = 0.0
    # ffmpeg curves preset name; "" = none.
    curves: str = ""
    vignette: float = 0.0
    sharpen: float = 0.0
    grain: float = 0.0
    key: ChromaKey | None = None
    # ffmpeg blend mode against the tracks below; "normal" = alpha over.
    blend: str = "normal"
    # vidstab (the analysis file: Plan.stabilization).
    stabilize: bool = False
    # Animatable looks: keyframed exposure / temperature / vignette (None: the constant above) and
    # the grade's strength over the ungraded picture (1 = the full grade).
    exposure_curve: Animated | None = None
    temperature_curve: Animated | None = None
    vignette_curve: Animated | None = None
    intensity: Animated = Animated(1.0)

    @property
    def animated_looks(self) -> bool:
        """Whether a look changes over the clip's time (evaluated per frame in the graph)."""
        curves = (self.exposure_curve, self.temperature_curve, self.vignette_curve)
        return any(c is not None for c in curves) or not self.intensity.is_constant

    @property
    def is_identity(self) -> bool:
        return self == ClipFilters()


@dataclass(frozen=True)
class Transition:
    # The xfade transition name ("fade", "fadeblack", "wipeleft", ...).
    kind: str
    frames: int
    # Progress curve: "linear", "ease_in", "ease_out", "ease_in_out".
    easing: str = "linear"


@dataclass(frozen=True)
class TextSpec:
    text: str
    font_file: str
    font_size: float
    color: str
    box: bool = False
    box_color: str = "0x000000@0.5"
    box_padding: int = 0
    # Pixels at the output size; colours as ffmpeg's.
    outline: int = 0
    outline_color: str = "0x000000"
    shadow_x: int = 0
    shadow_y: int = 0
    shadow_color: str = "0x000000@0.5"
    line_spacing: int = 0
    # "" = one drawtext block (lines left-aligned in it, centred as a block); else each line
    # placed "left"/"center"/"right" in the block.
    align: str = ""
    lines: tuple[str, ...] = ()
    # Per font-size unit: each line's advance width, the font's ascender and line height.
    widths: tuple[float, ...] = ()
    ascent: float = 0.8
    line_height: float = 1.2
    # The wrapping box's width in output pixels (0 = the widest line).
    block_width: float = 0.0


@dataclass(frozen=True)
class PlannedClip:
    track_index: int
    clip_index: int
    kind: ClipKind
    # Timeline placement in output frames: [start, end).
    start: int
    end: int
    source: Source | None = None
    # Source trim in seconds (only the part that is shown or heard).
    source_start: float = 0.0
    source_end: float = 0.0
    speed: float = 1.0
    # Keyframed speed (replaces ``speed``); None = constant speed.
    ramp: SpeedRamp | None = None
    # Track gain x clip gain; 0 when the track is muted.
    volume: float = 1.0
    fit: Fit = Fit.CONTAIN
    transform: Transform = Transform()
    filters: ClipFilters = ClipFilters()
    transition_in: Transition | None = None
    text: TextSpec | None = None
    fade_in: float = 0.0
    fade_out: float = 0.0
    # Audio EQ preset (timeline/audiofx.py); "" = none.
    audio_eq: str = ""

    @property
    def frames(self) -> int:
        return self.end - self.start

    def source_offset(self, t: float) -> float:
        """Source seconds (after source_start) played at clip-local output time ``t``."""
        return self.ramp.source_at(t) if self.ramp is not None else t * self.speed

    @property
    def label(self) -> str:
        return f"tracks[{self.track_index}].clips[{self.clip_index}]"

    @property
    def has_audio(self) -> bool:
        return self.volume > 0 and self.source is not None and self.source.info.has_audio

    @property
    def has_picture(self) -> bool:
        return self.kind in (ClipKind.VIDEO, ClipKind.IMAGE)


@dataclass(frozen=True)
class PlannedTrack:
    index: int
    kind: TrackKind
    hidden: bool
    clips: tuple[PlannedClip, ...]

    def groups(self) -> list[list[PlannedClip]]:
        """Runs of clips joined by transitions (each run becomes one stream)."""
        runs: list[list[PlannedClip]] = []
        for clip in self.clips:
            if runs and clip.transition_in is not None:
                runs[-1].append(clip)
            else:
                runs.append([clip])
        return runs


@dataclass(frozen=True)
class PlannedCanvas:
    width: int
    height: int
    fps: float
    # ffmpeg colour ("0xRRGGBB").
    background: str
    frames: int
    # Output pixels per canvas pixel (output size override); sizes in pixels are multiplied by it.
    pixel_scale: float = 1.0

    @property
    def duration(self) -> float:
        return self.frames / self.fps


@dataclass(frozen=True)
class StoredAnalysis:
    """A derived object in storage: its key (content-addressed) and a GET URL any node can read."""

    key: str
    url: str


@dataclass(frozen=True)
class Plan:
    canvas: PlannedCanvas
    tracks: tuple[PlannedTrack, ...] = field(default_factory=tuple)
    # Integrated loudness target of the mix in LUFS; None = the mix as it is.
    loudness: float | None = None
    # vidstab's analysis per source key as stored in storage (services.render.stabilize), for
    # stabilised clips: what any node fetches ...
    analyses: dict[str, StoredAnalysis] = field(default_factory=dict)
    # ... into a local transforms file where ffmpeg runs (the path the graph reads).
    stabilization: dict[str, str] = field(default_factory=dict)
    # Music ducked under voice tracks (timeline/audiofx.py `Ducking`).
    ducking: tuple[Any, ...] = ()

    @property
    def has_audio(self) -> bool:
        return any(c.has_audio for t in self.tracks for c in t.clips)

    def clips(self) -> list[PlannedClip]:
        return [c for t in self.tracks for c in t.clips]
