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

class Timeline(_message.Message):
    __slots__ = ("canvas", "tracks")
    CANVAS_FIELD_NUMBER: _ClassVar[int]
    TRACKS_FIELD_NUMBER: _ClassVar[int]
    canvas: Canvas
    tracks: _containers.RepeatedCompositeFieldContainer[Track]
    def __init__(self, canvas: _Optional[_Union[Canvas, _Mapping]] = ..., tracks: _Optional[_Iterable[_Union[Track, _Mapping]]] = ...) -> None: ...

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
    __slots__ = ("id", "kind", "name", "clips", "muted", "hidden", "volume")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CLIPS_FIELD_NUMBER: _ClassVar[int]
    MUTED_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: TrackKind
    name: str
    clips: _containers.RepeatedCompositeFieldContainer[Clip]
    muted: bool
    hidden: bool
    volume: float
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[_Union[TrackKind, str]] = ..., name: _Optional[str] = ..., clips: _Optional[_Iterable[_Union[Clip, _Mapping]]] = ..., muted: _Optional[bool] = ..., hidden: _Optional[bool] = ..., volume: _Optional[float] = ...) -> None: ...

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
    __slots__ = ("brightness", "contrast", "saturation", "blur_sigma", "grayscale", "speed_keyframes")
    BRIGHTNESS_FIELD_NUMBER: _ClassVar[int]
    CONTRAST_FIELD_NUMBER: _ClassVar[int]
    SATURATION_FIELD_NUMBER: _ClassVar[int]
    BLUR_SIGMA_FIELD_NUMBER: _ClassVar[int]
    GRAYSCALE_FIELD_NUMBER: _ClassVar[int]
    SPEED_KEYFRAMES_FIELD_NUMBER: _ClassVar[int]
    brightness: float
    contrast: float
    saturation: float
    blur_sigma: float
    grayscale: bool
    speed_keyframes: _containers.RepeatedCompositeFieldContainer[Keyframe]
    def __init__(self, brightness: _Optional[float] = ..., contrast: _Optional[float] = ..., saturation: _Optional[float] = ..., blur_sigma: _Optional[float] = ..., grayscale: _Optional[bool] = ..., speed_keyframes: _Optional[_Iterable[_Union[Keyframe, _Mapping]]] = ...) -> None: ...

class Transition(_message.Message):
    __slots__ = ("kind", "duration_seconds")
    KIND_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    kind: TransitionKind
    duration_seconds: float
    def __init__(self, kind: _Optional[_Union[TransitionKind, str]] = ..., duration_seconds: _Optional[float] = ...) -> None: ...

class TextStyle(_message.Message):
    __slots__ = ("text", "font_family", "font_size", "color", "box", "box_color", "box_padding")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FONT_FAMILY_FIELD_NUMBER: _ClassVar[int]
    FONT_SIZE_FIELD_NUMBER: _ClassVar[int]
    COLOR_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    BOX_COLOR_FIELD_NUMBER: _ClassVar[int]
    BOX_PADDING_FIELD_NUMBER: _ClassVar[int]
    text: str
    font_family: str
    font_size: float
    color: str
    box: bool
    box_color: str
    box_padding: int
    def __init__(self, text: _Optional[str] = ..., font_family: _Optional[str] = ..., font_size: _Optional[float] = ..., color: _Optional[str] = ..., box: _Optional[bool] = ..., box_color: _Optional[str] = ..., box_padding: _Optional[int] = ...) -> None: ...

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
