from viarte.render.v1 import timeline_pb2 as _timeline_pb2
from viarte.type.v1 import job_pb2 as _job_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class QualityPreset(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QUALITY_PRESET_UNSPECIFIED: _ClassVar[QualityPreset]
    QUALITY_PRESET_DRAFT: _ClassVar[QualityPreset]
    QUALITY_PRESET_STANDARD: _ClassVar[QualityPreset]
    QUALITY_PRESET_HIGH: _ClassVar[QualityPreset]

class VideoCodec(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VIDEO_CODEC_UNSPECIFIED: _ClassVar[VideoCodec]
    VIDEO_CODEC_H264: _ClassVar[VideoCodec]
    VIDEO_CODEC_HEVC: _ClassVar[VideoCodec]

class SceneChangeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SCENE_CHANGE_KIND_UNSPECIFIED: _ClassVar[SceneChangeKind]
    SCENE_CHANGE_KIND_CUT: _ClassVar[SceneChangeKind]
    SCENE_CHANGE_KIND_DISSOLVE: _ClassVar[SceneChangeKind]
    SCENE_CHANGE_KIND_FADE: _ClassVar[SceneChangeKind]
QUALITY_PRESET_UNSPECIFIED: QualityPreset
QUALITY_PRESET_DRAFT: QualityPreset
QUALITY_PRESET_STANDARD: QualityPreset
QUALITY_PRESET_HIGH: QualityPreset
VIDEO_CODEC_UNSPECIFIED: VideoCodec
VIDEO_CODEC_H264: VideoCodec
VIDEO_CODEC_HEVC: VideoCodec
SCENE_CHANGE_KIND_UNSPECIFIED: SceneChangeKind
SCENE_CHANGE_KIND_CUT: SceneChangeKind
SCENE_CHANGE_KIND_DISSOLVE: SceneChangeKind
SCENE_CHANGE_KIND_FADE: SceneChangeKind

class RenderParameters(_message.Message):
    __slots__ = ("timeline", "quality", "codec", "output_width", "output_height", "output_fps", "upscale", "output_name", "project_id")
    TIMELINE_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_WIDTH_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FPS_FIELD_NUMBER: _ClassVar[int]
    UPSCALE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    timeline: _timeline_pb2.Timeline
    quality: QualityPreset
    codec: VideoCodec
    output_width: int
    output_height: int
    output_fps: float
    upscale: bool
    output_name: str
    project_id: str
    def __init__(self, timeline: _Optional[_Union[_timeline_pb2.Timeline, _Mapping]] = ..., quality: _Optional[_Union[QualityPreset, str]] = ..., codec: _Optional[_Union[VideoCodec, str]] = ..., output_width: _Optional[int] = ..., output_height: _Optional[int] = ..., output_fps: _Optional[float] = ..., upscale: _Optional[bool] = ..., output_name: _Optional[str] = ..., project_id: _Optional[str] = ...) -> None: ...

class RenderResult(_message.Message):
    __slots__ = ("video_asset_id", "poster_asset_id", "duration_seconds", "width", "height", "fps", "frame_count", "encoder", "has_audio")
    VIDEO_ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    POSTER_ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    ENCODER_FIELD_NUMBER: _ClassVar[int]
    HAS_AUDIO_FIELD_NUMBER: _ClassVar[int]
    video_asset_id: str
    poster_asset_id: str
    duration_seconds: float
    width: int
    height: int
    fps: float
    frame_count: int
    encoder: str
    has_audio: bool
    def __init__(self, video_asset_id: _Optional[str] = ..., poster_asset_id: _Optional[str] = ..., duration_seconds: _Optional[float] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., fps: _Optional[float] = ..., frame_count: _Optional[int] = ..., encoder: _Optional[str] = ..., has_audio: _Optional[bool] = ...) -> None: ...

class RenderJob(_message.Message):
    __slots__ = ("id", "owner_id", "request_id", "status", "parameters", "result")
    ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    id: str
    owner_id: str
    request_id: str
    status: _job_pb2.JobStatus
    parameters: RenderParameters
    result: RenderResult
    def __init__(self, id: _Optional[str] = ..., owner_id: _Optional[str] = ..., request_id: _Optional[str] = ..., status: _Optional[_Union[_job_pb2.JobStatus, _Mapping]] = ..., parameters: _Optional[_Union[RenderParameters, _Mapping]] = ..., result: _Optional[_Union[RenderResult, _Mapping]] = ...) -> None: ...

class CreateRenderJobRequest(_message.Message):
    __slots__ = ("parameters", "request_id", "priority")
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    parameters: RenderParameters
    request_id: str
    priority: int
    def __init__(self, parameters: _Optional[_Union[RenderParameters, _Mapping]] = ..., request_id: _Optional[str] = ..., priority: _Optional[int] = ...) -> None: ...

class CreateRenderJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: RenderJob
    def __init__(self, job: _Optional[_Union[RenderJob, _Mapping]] = ...) -> None: ...

class GetRenderJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetRenderJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: RenderJob
    def __init__(self, job: _Optional[_Union[RenderJob, _Mapping]] = ...) -> None: ...

class ListRenderJobsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "state")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    state: _job_pb2.JobState
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., state: _Optional[_Union[_job_pb2.JobState, str]] = ...) -> None: ...

class ListRenderJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[RenderJob]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[RenderJob, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelRenderJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class CancelRenderJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: RenderJob
    def __init__(self, job: _Optional[_Union[RenderJob, _Mapping]] = ...) -> None: ...

class WatchRenderJobRequest(_message.Message):
    __slots__ = ("id", "after_sequence")
    ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    id: str
    after_sequence: int
    def __init__(self, id: _Optional[str] = ..., after_sequence: _Optional[int] = ...) -> None: ...

class WatchRenderJobResponse(_message.Message):
    __slots__ = ("job", "event")
    JOB_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    job: RenderJob
    event: _job_pb2.JobEvent
    def __init__(self, job: _Optional[_Union[RenderJob, _Mapping]] = ..., event: _Optional[_Union[_job_pb2.JobEvent, _Mapping]] = ...) -> None: ...

class RenderFrameRequest(_message.Message):
    __slots__ = ("timeline", "time_seconds", "max_width")
    TIMELINE_FIELD_NUMBER: _ClassVar[int]
    TIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_WIDTH_FIELD_NUMBER: _ClassVar[int]
    timeline: _timeline_pb2.Timeline
    time_seconds: float
    max_width: int
    def __init__(self, timeline: _Optional[_Union[_timeline_pb2.Timeline, _Mapping]] = ..., time_seconds: _Optional[float] = ..., max_width: _Optional[int] = ...) -> None: ...

class RenderFrameResponse(_message.Message):
    __slots__ = ("jpeg", "width", "height")
    JPEG_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    jpeg: bytes
    width: int
    height: int
    def __init__(self, jpeg: _Optional[bytes] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class RenderPlaybackSegmentRequest(_message.Message):
    __slots__ = ("timeline", "time_seconds", "warm_only")
    TIMELINE_FIELD_NUMBER: _ClassVar[int]
    TIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WARM_ONLY_FIELD_NUMBER: _ClassVar[int]
    timeline: _timeline_pb2.Timeline
    time_seconds: float
    warm_only: bool
    def __init__(self, timeline: _Optional[_Union[_timeline_pb2.Timeline, _Mapping]] = ..., time_seconds: _Optional[float] = ..., warm_only: _Optional[bool] = ...) -> None: ...

class RenderPlaybackSegmentResponse(_message.Message):
    __slots__ = ("media", "mime_type", "start_seconds", "duration_seconds", "timeline_duration_seconds", "cached", "key", "width", "height")
    MEDIA_FIELD_NUMBER: _ClassVar[int]
    MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    START_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TIMELINE_DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    media: bytes
    mime_type: str
    start_seconds: float
    duration_seconds: float
    timeline_duration_seconds: float
    cached: bool
    key: str
    width: int
    height: int
    def __init__(self, media: _Optional[bytes] = ..., mime_type: _Optional[str] = ..., start_seconds: _Optional[float] = ..., duration_seconds: _Optional[float] = ..., timeline_duration_seconds: _Optional[float] = ..., cached: _Optional[bool] = ..., key: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class UpscaleParameters(_message.Message):
    __slots__ = ("video_asset_id", "scale", "tile_size", "tile_padding", "model", "output_name")
    VIDEO_ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    TILE_SIZE_FIELD_NUMBER: _ClassVar[int]
    TILE_PADDING_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    video_asset_id: str
    scale: int
    tile_size: int
    tile_padding: int
    model: str
    output_name: str
    def __init__(self, video_asset_id: _Optional[str] = ..., scale: _Optional[int] = ..., tile_size: _Optional[int] = ..., tile_padding: _Optional[int] = ..., model: _Optional[str] = ..., output_name: _Optional[str] = ...) -> None: ...

class UpscaleResult(_message.Message):
    __slots__ = ("video_asset_id", "width", "height", "frame_count", "fps")
    VIDEO_ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    video_asset_id: str
    width: int
    height: int
    frame_count: int
    fps: float
    def __init__(self, video_asset_id: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., frame_count: _Optional[int] = ..., fps: _Optional[float] = ...) -> None: ...

class UpscaleJob(_message.Message):
    __slots__ = ("id", "owner_id", "request_id", "status", "parameters", "result")
    ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    id: str
    owner_id: str
    request_id: str
    status: _job_pb2.JobStatus
    parameters: UpscaleParameters
    result: UpscaleResult
    def __init__(self, id: _Optional[str] = ..., owner_id: _Optional[str] = ..., request_id: _Optional[str] = ..., status: _Optional[_Union[_job_pb2.JobStatus, _Mapping]] = ..., parameters: _Optional[_Union[UpscaleParameters, _Mapping]] = ..., result: _Optional[_Union[UpscaleResult, _Mapping]] = ...) -> None: ...

class CreateUpscaleJobRequest(_message.Message):
    __slots__ = ("parameters", "request_id", "priority")
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    parameters: UpscaleParameters
    request_id: str
    priority: int
    def __init__(self, parameters: _Optional[_Union[UpscaleParameters, _Mapping]] = ..., request_id: _Optional[str] = ..., priority: _Optional[int] = ...) -> None: ...

class CreateUpscaleJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: UpscaleJob
    def __init__(self, job: _Optional[_Union[UpscaleJob, _Mapping]] = ...) -> None: ...

class GetUpscaleJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetUpscaleJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: UpscaleJob
    def __init__(self, job: _Optional[_Union[UpscaleJob, _Mapping]] = ...) -> None: ...

class ListUpscaleJobsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "state")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    state: _job_pb2.JobState
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., state: _Optional[_Union[_job_pb2.JobState, str]] = ...) -> None: ...

class ListUpscaleJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[UpscaleJob]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[UpscaleJob, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelUpscaleJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class CancelUpscaleJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: UpscaleJob
    def __init__(self, job: _Optional[_Union[UpscaleJob, _Mapping]] = ...) -> None: ...

class WatchUpscaleJobRequest(_message.Message):
    __slots__ = ("id", "after_sequence")
    ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    id: str
    after_sequence: int
    def __init__(self, id: _Optional[str] = ..., after_sequence: _Optional[int] = ...) -> None: ...

class WatchUpscaleJobResponse(_message.Message):
    __slots__ = ("job", "event")
    JOB_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    job: UpscaleJob
    event: _job_pb2.JobEvent
    def __init__(self, job: _Optional[_Union[UpscaleJob, _Mapping]] = ..., event: _Optional[_Union[_job_pb2.JobEvent, _Mapping]] = ...) -> None: ...

class ListCapabilitiesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListCapabilitiesResponse(_message.Message):
    __slots__ = ("transitions", "filters", "lut_formats", "encoders", "easings", "curves_presets", "blend_modes", "loudness_normalization", "audio_eq_presets")
    TRANSITIONS_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    LUT_FORMATS_FIELD_NUMBER: _ClassVar[int]
    ENCODERS_FIELD_NUMBER: _ClassVar[int]
    EASINGS_FIELD_NUMBER: _ClassVar[int]
    CURVES_PRESETS_FIELD_NUMBER: _ClassVar[int]
    BLEND_MODES_FIELD_NUMBER: _ClassVar[int]
    LOUDNESS_NORMALIZATION_FIELD_NUMBER: _ClassVar[int]
    AUDIO_EQ_PRESETS_FIELD_NUMBER: _ClassVar[int]
    transitions: _containers.RepeatedScalarFieldContainer[str]
    filters: _containers.RepeatedScalarFieldContainer[str]
    lut_formats: _containers.RepeatedScalarFieldContainer[str]
    encoders: _containers.RepeatedScalarFieldContainer[str]
    easings: _containers.RepeatedScalarFieldContainer[str]
    curves_presets: _containers.RepeatedScalarFieldContainer[str]
    blend_modes: _containers.RepeatedScalarFieldContainer[str]
    loudness_normalization: bool
    audio_eq_presets: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, transitions: _Optional[_Iterable[str]] = ..., filters: _Optional[_Iterable[str]] = ..., lut_formats: _Optional[_Iterable[str]] = ..., encoders: _Optional[_Iterable[str]] = ..., easings: _Optional[_Iterable[str]] = ..., curves_presets: _Optional[_Iterable[str]] = ..., blend_modes: _Optional[_Iterable[str]] = ..., loudness_normalization: _Optional[bool] = ..., audio_eq_presets: _Optional[_Iterable[str]] = ...) -> None: ...

class AnalyzeMediaRequest(_message.Message):
    __slots__ = ("asset_id",)
    ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    asset_id: str
    def __init__(self, asset_id: _Optional[str] = ...) -> None: ...

class SceneChange(_message.Message):
    __slots__ = ("time_seconds", "kind", "start_seconds", "end_seconds")
    TIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    START_SECONDS_FIELD_NUMBER: _ClassVar[int]
    END_SECONDS_FIELD_NUMBER: _ClassVar[int]
    time_seconds: float
    kind: SceneChangeKind
    start_seconds: float
    end_seconds: float
    def __init__(self, time_seconds: _Optional[float] = ..., kind: _Optional[_Union[SceneChangeKind, str]] = ..., start_seconds: _Optional[float] = ..., end_seconds: _Optional[float] = ...) -> None: ...

class TimeSpan(_message.Message):
    __slots__ = ("start_seconds", "end_seconds")
    START_SECONDS_FIELD_NUMBER: _ClassVar[int]
    END_SECONDS_FIELD_NUMBER: _ClassVar[int]
    start_seconds: float
    end_seconds: float
    def __init__(self, start_seconds: _Optional[float] = ..., end_seconds: _Optional[float] = ...) -> None: ...

class MediaAnalysis(_message.Message):
    __slots__ = ("duration_seconds", "scene_changes", "tempo_bpm", "beat_seconds", "downbeat_seconds", "integrated_lufs", "loudness_range_lu", "silences", "has_audio", "has_video")
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SCENE_CHANGES_FIELD_NUMBER: _ClassVar[int]
    TEMPO_BPM_FIELD_NUMBER: _ClassVar[int]
    BEAT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DOWNBEAT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    INTEGRATED_LUFS_FIELD_NUMBER: _ClassVar[int]
    LOUDNESS_RANGE_LU_FIELD_NUMBER: _ClassVar[int]
    SILENCES_FIELD_NUMBER: _ClassVar[int]
    HAS_AUDIO_FIELD_NUMBER: _ClassVar[int]
    HAS_VIDEO_FIELD_NUMBER: _ClassVar[int]
    duration_seconds: float
    scene_changes: _containers.RepeatedCompositeFieldContainer[SceneChange]
    tempo_bpm: float
    beat_seconds: _containers.RepeatedScalarFieldContainer[float]
    downbeat_seconds: _containers.RepeatedScalarFieldContainer[float]
    integrated_lufs: float
    loudness_range_lu: float
    silences: _containers.RepeatedCompositeFieldContainer[TimeSpan]
    has_audio: bool
    has_video: bool
    def __init__(self, duration_seconds: _Optional[float] = ..., scene_changes: _Optional[_Iterable[_Union[SceneChange, _Mapping]]] = ..., tempo_bpm: _Optional[float] = ..., beat_seconds: _Optional[_Iterable[float]] = ..., downbeat_seconds: _Optional[_Iterable[float]] = ..., integrated_lufs: _Optional[float] = ..., loudness_range_lu: _Optional[float] = ..., silences: _Optional[_Iterable[_Union[TimeSpan, _Mapping]]] = ..., has_audio: _Optional[bool] = ..., has_video: _Optional[bool] = ...) -> None: ...

class AnalyzeMediaResponse(_message.Message):
    __slots__ = ("analysis", "cached")
    ANALYSIS_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    analysis: MediaAnalysis
    cached: bool
    def __init__(self, analysis: _Optional[_Union[MediaAnalysis, _Mapping]] = ..., cached: _Optional[bool] = ...) -> None: ...

class ProposeEditRequest(_message.Message):
    __slots__ = ("clip_asset_ids", "music_asset_id", "canvas", "duration_seconds", "min_shot_seconds", "downbeat_min_seconds", "transitions", "match_colors")
    CLIP_ASSET_IDS_FIELD_NUMBER: _ClassVar[int]
    MUSIC_ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    CANVAS_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MIN_SHOT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DOWNBEAT_MIN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TRANSITIONS_FIELD_NUMBER: _ClassVar[int]
    MATCH_COLORS_FIELD_NUMBER: _ClassVar[int]
    clip_asset_ids: _containers.RepeatedScalarFieldContainer[str]
    music_asset_id: str
    canvas: _timeline_pb2.Canvas
    duration_seconds: float
    min_shot_seconds: float
    downbeat_min_seconds: float
    transitions: bool
    match_colors: bool
    def __init__(self, clip_asset_ids: _Optional[_Iterable[str]] = ..., music_asset_id: _Optional[str] = ..., canvas: _Optional[_Union[_timeline_pb2.Canvas, _Mapping]] = ..., duration_seconds: _Optional[float] = ..., min_shot_seconds: _Optional[float] = ..., downbeat_min_seconds: _Optional[float] = ..., transitions: _Optional[bool] = ..., match_colors: _Optional[bool] = ...) -> None: ...

class ProposeEditResponse(_message.Message):
    __slots__ = ("timeline", "cut_seconds", "lut_asset_ids")
    TIMELINE_FIELD_NUMBER: _ClassVar[int]
    CUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LUT_ASSET_IDS_FIELD_NUMBER: _ClassVar[int]
    timeline: _timeline_pb2.Timeline
    cut_seconds: _containers.RepeatedScalarFieldContainer[float]
    lut_asset_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, timeline: _Optional[_Union[_timeline_pb2.Timeline, _Mapping]] = ..., cut_seconds: _Optional[_Iterable[float]] = ..., lut_asset_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GetMediaOverviewRequest(_message.Message):
    __slots__ = ("asset_id",)
    ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    asset_id: str
    def __init__(self, asset_id: _Optional[str] = ...) -> None: ...

class MediaOverview(_message.Message):
    __slots__ = ("duration_seconds", "has_video", "has_audio", "filmstrip_jpeg", "tile_width", "tile_height", "tile_count", "tile_seconds", "peaks", "peaks_per_second")
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    HAS_VIDEO_FIELD_NUMBER: _ClassVar[int]
    HAS_AUDIO_FIELD_NUMBER: _ClassVar[int]
    FILMSTRIP_JPEG_FIELD_NUMBER: _ClassVar[int]
    TILE_WIDTH_FIELD_NUMBER: _ClassVar[int]
    TILE_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    TILE_COUNT_FIELD_NUMBER: _ClassVar[int]
    TILE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PEAKS_FIELD_NUMBER: _ClassVar[int]
    PEAKS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    duration_seconds: float
    has_video: bool
    has_audio: bool
    filmstrip_jpeg: bytes
    tile_width: int
    tile_height: int
    tile_count: int
    tile_seconds: float
    peaks: bytes
    peaks_per_second: float
    def __init__(self, duration_seconds: _Optional[float] = ..., has_video: _Optional[bool] = ..., has_audio: _Optional[bool] = ..., filmstrip_jpeg: _Optional[bytes] = ..., tile_width: _Optional[int] = ..., tile_height: _Optional[int] = ..., tile_count: _Optional[int] = ..., tile_seconds: _Optional[float] = ..., peaks: _Optional[bytes] = ..., peaks_per_second: _Optional[float] = ...) -> None: ...

class GetMediaOverviewResponse(_message.Message):
    __slots__ = ("overview", "cached")
    OVERVIEW_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    overview: MediaOverview
    cached: bool
    def __init__(self, overview: _Optional[_Union[MediaOverview, _Mapping]] = ..., cached: _Optional[bool] = ...) -> None: ...
