from viarte.type.v1 import job_pb2 as _job_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FaceSelectorMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FACE_SELECTOR_MODE_UNSPECIFIED: _ClassVar[FaceSelectorMode]
    FACE_SELECTOR_MODE_ALL: _ClassVar[FaceSelectorMode]
    FACE_SELECTOR_MODE_INDEX: _ClassVar[FaceSelectorMode]
    FACE_SELECTOR_MODE_REFERENCE: _ClassVar[FaceSelectorMode]
FACE_SELECTOR_MODE_UNSPECIFIED: FaceSelectorMode
FACE_SELECTOR_MODE_ALL: FaceSelectorMode
FACE_SELECTOR_MODE_INDEX: FaceSelectorMode
FACE_SELECTOR_MODE_REFERENCE: FaceSelectorMode

class FaceSwapOptions(_message.Message):
    __slots__ = ("source_face_asset_id", "selector", "face_index", "reference_face_asset_id", "similarity_threshold")
    SOURCE_FACE_ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    FACE_INDEX_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FACE_ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    source_face_asset_id: str
    selector: FaceSelectorMode
    face_index: int
    reference_face_asset_id: str
    similarity_threshold: float
    def __init__(self, source_face_asset_id: _Optional[str] = ..., selector: _Optional[_Union[FaceSelectorMode, str]] = ..., face_index: _Optional[int] = ..., reference_face_asset_id: _Optional[str] = ..., similarity_threshold: _Optional[float] = ...) -> None: ...

class FaceSwapParameters(_message.Message):
    __slots__ = ("target_asset_id", "options", "output_name")
    TARGET_ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    target_asset_id: str
    options: FaceSwapOptions
    output_name: str
    def __init__(self, target_asset_id: _Optional[str] = ..., options: _Optional[_Union[FaceSwapOptions, _Mapping]] = ..., output_name: _Optional[str] = ...) -> None: ...

class FaceSwapResult(_message.Message):
    __slots__ = ("asset_id", "frame_count", "frames_swapped", "frames_without_face", "faces_swapped")
    ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    FRAMES_SWAPPED_FIELD_NUMBER: _ClassVar[int]
    FRAMES_WITHOUT_FACE_FIELD_NUMBER: _ClassVar[int]
    FACES_SWAPPED_FIELD_NUMBER: _ClassVar[int]
    asset_id: str
    frame_count: int
    frames_swapped: int
    frames_without_face: int
    faces_swapped: int
    def __init__(self, asset_id: _Optional[str] = ..., frame_count: _Optional[int] = ..., frames_swapped: _Optional[int] = ..., frames_without_face: _Optional[int] = ..., faces_swapped: _Optional[int] = ...) -> None: ...

class FaceSwapJob(_message.Message):
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
    parameters: FaceSwapParameters
    result: FaceSwapResult
    def __init__(self, id: _Optional[str] = ..., owner_id: _Optional[str] = ..., request_id: _Optional[str] = ..., status: _Optional[_Union[_job_pb2.JobStatus, _Mapping]] = ..., parameters: _Optional[_Union[FaceSwapParameters, _Mapping]] = ..., result: _Optional[_Union[FaceSwapResult, _Mapping]] = ...) -> None: ...

class CreateFaceSwapJobRequest(_message.Message):
    __slots__ = ("parameters", "request_id", "priority")
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    parameters: FaceSwapParameters
    request_id: str
    priority: int
    def __init__(self, parameters: _Optional[_Union[FaceSwapParameters, _Mapping]] = ..., request_id: _Optional[str] = ..., priority: _Optional[int] = ...) -> None: ...

class CreateFaceSwapJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: FaceSwapJob
    def __init__(self, job: _Optional[_Union[FaceSwapJob, _Mapping]] = ...) -> None: ...

class GetFaceSwapJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetFaceSwapJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: FaceSwapJob
    def __init__(self, job: _Optional[_Union[FaceSwapJob, _Mapping]] = ...) -> None: ...

class ListFaceSwapJobsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "state")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    state: _job_pb2.JobState
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., state: _Optional[_Union[_job_pb2.JobState, str]] = ...) -> None: ...

class ListFaceSwapJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[FaceSwapJob]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[FaceSwapJob, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelFaceSwapJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class CancelFaceSwapJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: FaceSwapJob
    def __init__(self, job: _Optional[_Union[FaceSwapJob, _Mapping]] = ...) -> None: ...

class WatchFaceSwapJobRequest(_message.Message):
    __slots__ = ("id", "after_sequence")
    ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    id: str
    after_sequence: int
    def __init__(self, id: _Optional[str] = ..., after_sequence: _Optional[int] = ...) -> None: ...

class WatchFaceSwapJobResponse(_message.Message):
    __slots__ = ("job", "event")
    JOB_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    job: FaceSwapJob
    event: _job_pb2.JobEvent
    def __init__(self, job: _Optional[_Union[FaceSwapJob, _Mapping]] = ..., event: _Optional[_Union[_job_pb2.JobEvent, _Mapping]] = ...) -> None: ...
