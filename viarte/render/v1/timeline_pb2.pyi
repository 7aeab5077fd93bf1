from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TrackKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRACK_KIND_UNSPECIFIED: _ClassVar[TrackKind]
    TRACK_KIND_VIDEO: _ClassVar[TrackKind]
    TRACK_KIND_TEXT: _ClassVar[TrackKind]
    TRACK_KIND_AUDIO: _ClassVar[TrackKind]

class Fit(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FIT_UNSPECIFIED: _ClassVar[Fit]
    FIT_CONTAIN: _ClassVar[Fit]
    FIT_COVER: _ClassVar[Fit]
    FIT_STRETCH: _ClassVar[Fit]

class Easing(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EASING_UNSPECIFIED: _ClassVar[Easing]
    EASING_LINEAR: _ClassVar[Easing]
    EASING_EASE_IN: _ClassVar[Easing]
    EASING_EASE_OUT: _ClassVar[Easing]
    EASING_EASE_IN_OUT: _ClassVar[Easing]

class CurvesPreset(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CURVES_PRESET_UNSPECIFIED: _ClassVar[CurvesPreset]
    CURVES_PRESET_COLOR_NEGATIVE: _ClassVar[CurvesPreset]
    CURVES_PRESET_CROSS_PROCESS: _ClassVar[CurvesPreset]
    CURVES_PRESET_DARKER: _ClassVar[CurvesPreset]
    CURVES_PRESET_INCREASE_CONTRAST: _ClassVar[CurvesPreset]
    CURVES_PRESET_LIGHTER: _ClassVar[CurvesPreset]
    CURVES_PRESET_LINEAR_CONTRAST: _ClassVar[CurvesPreset]
    CURVES_PRESET_MEDIUM_CONTRAST: _ClassVar[CurvesPreset]
    CURVES_PRESET_NEGATIVE: _ClassVar[CurvesPreset]
    CURVES_PRESET_STRONG_CONTRAST: _ClassVar[CurvesPreset]
    CURVES_PRESET_VINTAGE: _ClassVar[CurvesPreset]

class BlendMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BLEND_MODE_UNSPECIFIED: _ClassVar[BlendMode]
    BLEND_MODE_NORMAL: _ClassVar[BlendMode]
    BLEND_MODE_MULTIPLY: _ClassVar[BlendMode]
    BLEND_MODE_SCREEN: _ClassVar[BlendMode]
    BLEND_MODE_OVERLAY: _ClassVar[BlendMode]
    BLEND_MODE_DARKEN: _ClassVar[BlendMode]
    BLEND_MODE_LIGHTEN: _ClassVar[BlendMode]
    BLEND_MODE_DIFFERENCE: _ClassVar[BlendMode]
    BLEND_MODE_ADDITION: _ClassVar[BlendMode]
    BLEND_MODE_SOFT_LIGHT: _ClassVar[BlendMode]
    BLEND_MODE_HARD_LIGHT: _ClassVar[BlendMode]

class TransitionKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRANSITION_KIND_UNSPECIFIED: _ClassVar[TransitionKind]
    TRANSITION_KIND_CROSSFADE: _ClassVar[TransitionKind]
    TRANSITION_KIND_FADE_BLACK: _ClassVar[TransitionKind]
    TRANSITION_KIND_WIPE_LEFT: _ClassVar[TransitionKind]
    TRANSITION_KIND_WIPE_RIGHT: _ClassVar[TransitionKind]
    TRANSITION_KIND_WIPE_UP: _ClassVar[TransitionKind]
    TRANSITION_KIND_WIPE_DOWN: _ClassVar[TransitionKind]
    TRANSITION_KIND_SLIDE_LEFT: _ClassVar[TransitionKind]
    TRANSITION_KIND_SLIDE_RIGHT: _ClassVar[TransitionKind]
    TRANSITION_KIND_SLIDE_UP: _ClassVar[TransitionKind]
    TRANSITION_KIND_SLIDE_DOWN: _ClassVar[TransitionKind]

class TextAlign(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TEXT_ALIGN_UNSPECIFIED: _ClassVar[TextAlign]
    TEXT_ALIGN_LEFT: _ClassVar[TextAlign]
    TEXT_ALIGN_CENTER: _ClassVar[TextAlign]
    TEXT_ALIGN_RIGHT: _ClassVar[TextAlign]
TRACK_KIND_UNSPECIFIED: TrackKind
TRACK_KIND_VIDEO: TrackKind
TRACK_KIND_TEXT: TrackKind
TRACK_KIND_AUDIO: TrackKind
FIT_UNSPECIFIED: Fit
FIT_CONTAIN: Fit
FIT_COVER: Fit
FIT_STRETCH: Fit
EASING_UNSPECIFIED: Easing
EASING_LINEAR: Easing
EASING_EASE_IN: Easing
EASING_EASE_OUT: Easing
EASING_EASE_IN_OUT: Easing
CURVES_PRESET_UNSPECIFIED: CurvesPreset
CURVES_PRESET_COLOR_NEGATIVE: CurvesPreset
CURVES_PRESET_CROSS_PROCESS: CurvesPreset
CURVES_PRESET_DARKER: CurvesPreset
CURVES_PRESET_INCREASE_CONTRAST: CurvesPreset
CURVES_PRESET_LIGHTER: CurvesPreset
CURVES_PRESET_LINEAR_CONTRAST: CurvesPreset
CURVES_PRESET_MEDIUM_CONTRAST: CurvesPreset
CURVES_PRESET_NEGATIVE: CurvesPreset
CURVES_PRESET_STRONG_CONTRAST: CurvesPreset
CURVES_PRESET_VINTAGE: CurvesPreset
BLEND_MODE_UNSPECIFIED: BlendMode
BLEND_MODE_NORMAL: BlendMode
BLEND_MODE_MULTIPLY: BlendMode
BLEND_MODE_SCREEN: BlendMode
BLEND_MODE_OVERLAY: BlendMode
BLEND_MODE_DARKEN: BlendMode
BLEND_MODE_LIGHTEN: BlendMode
BLEND_MODE_DIFFERENCE: BlendMode
BLEND_MODE_ADDITION: BlendMode
BLEND_MODE_SOFT_LIGHT: BlendMode
BLEND_MODE_HARD_LIGHT: BlendMode
TRANSITION_KIND_UNSPECIFIED: TransitionKind
TRANSITION_KIND_CROSSFADE: TransitionKind
TRANSITION_KIND_FADE_BLACK: TransitionKind
TRANSITION_KIND_WIPE_LEFT: TransitionKind
TRANSITION_KIND_WIPE_RIGHT: TransitionKind
TRANSITION_KIND_WIPE_UP: TransitionKind
TRANSITION_KIND_WIPE_DOWN: TransitionKind
TRANSITION_KIND_SLIDE_LEFT: TransitionKind
TRANSITION_KIND_SLIDE_RIGHT: TransitionKind
TRANSITION_KIND_SLIDE_UP: TransitionKind
TRANSITION_KIND_SLIDE_DOWN: TransitionKind
TEXT_ALIGN_UNSPECIFIED: TextAlign
TEXT_ALIGN_LEFT: TextAlign
TEXT_ALIGN_CENTER: TextAlign
TEXT_ALIGN_RIGHT: TextAlign

class Timeline(_message.Message):
    __slots__ = ("canvas", "tracks", "mix")
    CANVAS_FIELD_NUMBER: _ClassVar[int]
    TRACKS_FIELD_NUMBER: _ClassVar[int]
    MIX_FIELD_NUMBER: _ClassVar[int]
    canvas: Canvas
    tracks: _containers.RepeatedCompositeFieldContainer[Track]
    mix: AudioMix
    def __init__(self, canvas: _Optional[_Union[Canvas, _Mapping]] = ..., tracks: _Optional[_Iterable[_Union[Track, _Mapping]]] = ..., mix: _Optional[_Union[AudioMix, _Mapping]] = ...) -> None: ...

class AudioMix(_message.Message):
    __slots__ = ("loudness_target_lufs", "disable_loudness_normalization")
    LOUDNESS_TARGET_LUFS_FIELD_NUMBER: _ClassVar[int]
    DISABLE_LOUDNESS_NORMALIZATION_FIELD_NUMBER: _ClassVar[int]
    loudness_target_lufs: float
    disable_loudness_normalization: bool
    def __init__(self, loudness_target_lufs: _Optional[float] = ..., disable_loudness_normalization: _Optional[bool] = ...) -> None: ...

class Canvas(_message.Message):
    __slots__ = ("width", "height", "fps", "background_color", "duration_seconds")
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    BACKGROUND_COLOR_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    width: int
    height: int
    fps: float
    background_color: str
    duration_seconds: float
    def __init__(self, width: _Optional[int] = ..., height: _Optional[int] = ..., fps: _Optional[float] = ..., background_color: _Optional[str] = ..., duration_seconds: _Optional[float] = ...) -> None: ...

class Track(_message.Message):
    __slots__ = ("id", "kind", "name", "clips", "muted", "hidden", "volume", "ducking")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CLIPS_FIELD_NUMBER: _ClassVar[int]
    MUTED_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    DUCKING_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: TrackKind
    name: str
    clips: _containers.RepeatedCompositeFieldContainer[Clip]
    muted: bool
    hidden: bool
    volume: float
    ducking: AudioDucking
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[_Union[TrackKind, str]] = ..., name: _Optional[str] = ..., clips: _Optional[_Iterable[_Union[Clip, _Mapping]]] = ..., muted: _Optional[bool] = ..., hidden: _Optional[bool] = ..., volume: _Optional[float] = ..., ducking: _Optional[_Union[AudioDucking, _Mapping]] = ...) -> None: ...

class AudioDucking(_message.Message):
    __slots__ = ("voice_track_id", "threshold_db", "ratio", "attack_ms", "release_ms")
    VOICE_TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_DB_FIELD_NUMBER: _ClassVar[int]
    RATIO_FIELD_NUMBER: _ClassVar[int]
    ATTACK_MS_FIELD_NUMBER: _ClassVar[int]
    RELEASE_MS_FIELD_NUMBER: _ClassVar[int]
    voice_track_id: str
    threshold_db: float
    ratio: float
    attack_ms: float
    release_ms: float
    def __init__(self, voice_track_id: _Optional[str] = ..., threshold_db: _Optional[float] = ..., ratio: _Optional[float] = ..., attack_ms: _Optional[float] = ..., release_ms: _Optional[float] = ...) -> None: ...

class Keyframe(_message.Message):
    __slots__ = ("time_seconds", "value", "easing")
    TIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    EASING_FIELD_NUMBER: _ClassVar[int]
    time_seconds: float
    value: float
    easing: Easing
    def __init__(self, time_seconds: _Optional[float] = ..., value: _Optional[float] = ..., easing: _Optional[_Union[Easing, str]] = ...) -> None: ...

class AnimatedValue(_message.Message):
    __slots__ = ("value", "keyframes")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    KEYFRAMES_FIELD_NUMBER: _ClassVar[int]
    value: float
    keyframes: _containers.RepeatedCompositeFieldContainer[Keyframe]
    def __init__(self, value: _Optional[float] = ..., keyframes: _Optional[_Iterable[_Union[Keyframe, _Mapping]]] = ...) -> None: ...

class Transform(_message.Message):
    __slots__ = ("x", "y", "scale", "rotation_degrees", "opacity")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    ROTATION_DEGREES_FIELD_NUMBER: _ClassVar[int]
    OPACITY_FIELD_NUMBER: _ClassVar[int]
    x: AnimatedValue
    y: AnimatedValue
    scale: AnimatedValue
    rotation_degrees: AnimatedValue
    opacity: AnimatedValue
    def __init__(self, x: _Optional[_Union[AnimatedValue, _Mapping]] = ..., y: _Optional[_Union[AnimatedValue, _Mapping]] = ..., scale: _Optional[_Union[AnimatedValue, _Mapping]] = ..., rotation_degrees: _Optional[_Union[AnimatedValue, _Mapping]] = ..., opacity: _Optional[_Union[AnimatedValue, _Mapping]] = ...) -> None: ...

class ClipFilters(_message.Message):
    __slots__ = ("brightness", "contrast", "saturation", "blur_sigma", "grayscale", "speed_keyframes", "lut_asset_id", "exposure", "temperature_kelvin", "curves", "vignette", "sharpen", "grain", "chroma_key", "blend_mode", "stabilize", "audio_eq", "look_intensity", "exposure_keyframes", "temperature_keyframes", "vignette_keyframes")
    BRIGHTNESS_FIELD_NUMBER: _ClassVar[int]
    CONTRAST_FIELD_NUMBER: _ClassVar[int]
    SATURATION_FIELD_NUMBER: _ClassVar[int]
    BLUR_SIGMA_FIELD_NUMBER: _ClassVar[int]
    GRAYSCALE_FIELD_NUMBER: _ClassVar[int]
    SPEED_KEYFRAMES_FIELD_NUMBER: _ClassVar[int]
    LUT_ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    EXPOSURE_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_KELVIN_FIELD_NUMBER: _ClassVar[int]
    CURVES_FIELD_NUMBER: _ClassVar[int]
    VIGNETTE_FIELD_NUMBER: _ClassVar[int]
    SHARPEN_FIELD_NUMBER: _ClassVar[int]
    GRAIN_FIELD_NUMBER: _ClassVar[int]
    CHROMA_KEY_FIELD_NUMBER: _ClassVar[int]
    BLEND_MODE_FIELD_NUMBER: _ClassVar[int]
    STABILIZE_FIELD_NUMBER: _ClassVar[int]
    AUDIO_EQ_FIELD_NUMBER: _ClassVar[int]
    LOOK_INTENSITY_FIELD_NUMBER: _ClassVar[int]
    EXPOSURE_KEYFRAMES_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_KEYFRAMES_FIELD_NUMBER: _ClassVar[int]
    VIGNETTE_KEYFRAMES_FIELD_NUMBER: _ClassVar[int]
    brightness: float
    contrast: float
    saturation: float
    blur_sigma: float
    grayscale: bool
    speed_keyframes: _containers.RepeatedCompositeFieldContainer[Keyframe]
    lut_asset_id: str
    exposure: float
    temperature_kelvin: float
    curves: CurvesPreset
    vignette: float
    sharpen: float
    grain: float
    chroma_key: ChromaKey
    blend_mode: BlendMode
    stabilize: bool
    audio_eq: str
    look_intensity: AnimatedValue
    exposure_keyframes: _containers.RepeatedCompositeFieldContainer[Keyframe]
    temperature_keyframes: _containers.RepeatedCompositeFieldContainer[Keyframe]
    vignette_keyframes: _containers.RepeatedCompositeFieldContainer[Keyframe]
    def __init__(self, brightness: _Optional[float] = ..., contrast: _Optional[float] = ..., saturation: _Optional[float] = ..., blur_sigma: _Optional[float] = ..., grayscale: _Optional[bool] = ..., speed_keyframes: _Optional[_Iterable[_Union[Keyframe, _Mapping]]] = ..., lut_asset_id: _Optional[str] = ..., exposure: _Optional[float] = ..., temperature_kelvin: _Optional[float] = ..., curves: _Optional[_Union[CurvesPreset, str]] = ..., vignette: _Optional[float] = ..., sharpen: _Optional[float] = ..., grain: _Optional[float] = ..., chroma_key: _Optional[_Union[ChromaKey, _Mapping]] = ..., blend_mode: _Optional[_Union[BlendMode, str]] = ..., stabilize: _Optional[bool] = ..., audio_eq: _Optional[str] = ..., look_intensity: _Optional[_Union[AnimatedValue, _Mapping]] = ..., exposure_keyframes: _Optional[_Iterable[_Union[Keyframe, _Mapping]]] = ..., temperature_keyframes: _Optional[_Iterable[_Union[Keyframe, _Mapping]]] = ..., vignette_keyframes: _Optional[_Iterable[_Union[Keyframe, _Mapping]]] = ...) -> None: ...

class ChromaKey(_message.Message):
    __slots__ = ("color", "similarity", "blend", "spill")
    COLOR_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    BLEND_FIELD_NUMBER: _ClassVar[int]
    SPILL_FIELD_NUMBER: _ClassVar[int]
    color: str
    similarity: float
    blend: float
    spill: float
    def __init__(self, color: _Optional[str] = ..., similarity: _Optional[float] = ..., blend: _Optional[float] = ..., spill: _Optional[float] = ...) -> None: ...

class Transition(_message.Message):
    __slots__ = ("kind", "duration_seconds", "name", "easing")
    KIND_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    EASING_FIELD_NUMBER: _ClassVar[int]
    kind: TransitionKind
    duration_seconds: float
    name: str
    easing: Easing
    def __init__(self, kind: _Optional[_Union[TransitionKind, str]] = ..., duration_seconds: _Optional[float] = ..., name: _Optional[str] = ..., easing: _Optional[_Union[Easing, str]] = ...) -> None: ...

class TextStyle(_message.Message):
    __slots__ = ("text", "font_family", "font_size", "color", "box", "box_color", "box_padding", "bold", "italic", "outline_width", "outline_color", "shadow_x", "shadow_y", "shadow_color", "align", "line_spacing", "box_width")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FONT_FAMILY_FIELD_NUMBER: _ClassVar[int]
    FONT_SIZE_FIELD_NUMBER: _ClassVar[int]
    COLOR_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    BOX_COLOR_FIELD_NUMBER: _ClassVar[int]
    BOX_PADDING_FIELD_NUMBER: _ClassVar[int]
    BOLD_FIELD_NUMBER: _ClassVar[int]
    ITALIC_FIELD_NUMBER: _ClassVar[int]
    OUTLINE_WIDTH_FIELD_NUMBER: _ClassVar[int]
    OUTLINE_COLOR_FIELD_NUMBER: _ClassVar[int]
    SHADOW_X_FIELD_NUMBER: _ClassVar[int]
    SHADOW_Y_FIELD_NUMBER: _ClassVar[int]
    SHADOW_COLOR_FIELD_NUMBER: _ClassVar[int]
    ALIGN_FIELD_NUMBER: _ClassVar[int]
    LINE_SPACING_FIELD_NUMBER: _ClassVar[int]
    BOX_WIDTH_FIELD_NUMBER: _ClassVar[int]
    text: str
    font_family: str
    font_size: float
    color: str
    box: bool
    box_color: str
    box_padding: int
    bold: bool
    italic: bool
    outline_width: float
    outline_color: str
    shadow_x: float
    shadow_y: float
    shadow_color: str
    align: TextAlign
    line_spacing: float
    box_width: float
    def __init__(self, text: _Optional[str] = ..., font_family: _Optional[str] = ..., font_size: _Optional[float] = ..., color: _Optional[str] = ..., box: _Optional[bool] = ..., box_color: _Optional[str] = ..., box_padding: _Optional[int] = ..., bold: _Optional[bool] = ..., italic: _Optional[bool] = ..., outline_width: _Optional[float] = ..., outline_color: _Optional[str] = ..., shadow_x: _Optional[float] = ..., shadow_y: _Optional[float] = ..., shadow_color: _Optional[str] = ..., align: _Optional[_Union[TextAlign, str]] = ..., line_spacing: _Optional[float] = ..., box_width: _Optional[float] = ...) -> None: ...

class Clip(_message.Message):
    __slots__ = ("id", "asset_id", "start_seconds", "source_start_seconds", "source_end_seconds", "duration_seconds", "speed", "volume", "fit", "transform", "filters", "transition_in", "text", "fade_in_seconds", "fade_out_seconds")
    ID_FIELD_NUMBER: _ClassVar[int]
    ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    START_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_START_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_END_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SPEED_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    FIT_FIELD_NUMBER: _ClassVar[int]
    TRANSFORM_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    TRANSITION_IN_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FADE_IN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FADE_OUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    id: str
    asset_id: str
    start_seconds: float
    source_start_seconds: float
    source_end_seconds: float
    duration_seconds: float
    speed: float
    volume: float
    fit: Fit
    transform: Transform
    filters: ClipFilters
    transition_in: Transition
    text: TextStyle
    fade_in_seconds: float
    fade_out_seconds: float
    def __init__(self, id: _Optional[str] = ..., asset_id: _Optional[str] = ..., start_seconds: _Optional[float] = ..., source_start_seconds: _Optional[float] = ..., source_end_seconds: _Optional[float] = ..., duration_seconds: _Optional[float] = ..., speed: _Optional[float] = ..., volume: _Optional[float] = ..., fit: _Optional[_Union[Fit, str]] = ..., transform: _Optional[_Union[Transform, _Mapping]] = ..., filters: _Optional[_Union[ClipFilters, _Mapping]] = ..., transition_in: _Optional[_Union[Transition, _Mapping]] = ..., text: _Optional[_Union[TextStyle, _Mapping]] = ..., fade_in_seconds: _Optional[float] = ..., fade_out_seconds: _Optional[float] = ...) -> None: ...
