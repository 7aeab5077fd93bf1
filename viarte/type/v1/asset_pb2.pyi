from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class AssetKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ASSET_KIND_UNSPECIFIED: _ClassVar[AssetKind]
    ASSET_KIND_IMAGE: _ClassVar[AssetKind]
    ASSET_KIND_VIDEO: _ClassVar[AssetKind]
    ASSET_KIND_AUDIO: _ClassVar[AssetKind]
    ASSET_KIND_WEIGHTS: _ClassVar[AssetKind]
    ASSET_KIND_TEXT: _ClassVar[AssetKind]
    ASSET_KIND_LUT: _ClassVar[AssetKind]
ASSET_KIND_UNSPECIFIED: AssetKind
ASSET_KIND_IMAGE: AssetKind
ASSET_KIND_VIDEO: AssetKind
ASSET_KIND_AUDIO: AssetKind
ASSET_KIND_WEIGHTS: AssetKind
ASSET_KIND_TEXT: AssetKind
ASSET_KIND_LUT: AssetKind

class MediaInfo(_message.Message):
    __slots__ = ("duration_seconds", "width", "height", "fps", "frame_count", "video_codec", "audio_codec", "has_audio", "sample_rate", "channels")
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    VIDEO_CODEC_FIELD_NUMBER: _ClassVar[int]
    AUDIO_CODEC_FIELD_NUMBER: _ClassVar[int]
    HAS_AUDIO_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    duration_seconds: float
    width: int
    height: int
    fps: float
    frame_count: int
    video_codec: str
    audio_codec: str
    has_audio: bool
    sample_rate: int
    channels: int
    def __init__(self, duration_seconds: _Optional[float] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., fps: _Optional[float] = ..., frame_count: _Optional[int] = ..., video_codec: _Optional[str] = ..., audio_codec: _Optional[str] = ..., has_audio: _Optional[bool] = ..., sample_rate: _Optional[int] = ..., channels: _Optional[int] = ...) -> None: ...
