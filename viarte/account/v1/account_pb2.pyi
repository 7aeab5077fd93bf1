import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from viarte.type.v1 import job_pb2 as _job_pb2
from viarte.type.v1 import limits_pb2 as _limits_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_KIND_UNSPECIFIED: _ClassVar[JobKind]
    JOB_KIND_GENERATION: _ClassVar[JobKind]
    JOB_KIND_FACE_SWAP: _ClassVar[JobKind]
    JOB_KIND_UPSCALE: _ClassVar[JobKind]
    JOB_KIND_RENDER: _ClassVar[JobKind]
    JOB_KIND_TRAINING: _ClassVar[JobKind]

class ExportFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPORT_FORMAT_UNSPECIFIED: _ClassVar[ExportFormat]
    EXPORT_FORMAT_CSV: _ClassVar[ExportFormat]
    EXPORT_FORMAT_JSONL: _ClassVar[ExportFormat]

class DeliveryState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELIVERY_STATE_UNSPECIFIED: _ClassVar[DeliveryState]
    DELIVERY_STATE_PENDING: _ClassVar[DeliveryState]
    DELIVERY_STATE_DELIVERED: _ClassVar[DeliveryState]
    DELIVERY_STATE_FAILED: _ClassVar[DeliveryState]
JOB_KIND_UNSPECIFIED: JobKind
JOB_KIND_GENERATION: JobKind
JOB_KIND_FACE_SWAP: JobKind
JOB_KIND_UPSCALE: JobKind
JOB_KIND_RENDER: JobKind
JOB_KIND_TRAINING: JobKind
EXPORT_FORMAT_UNSPECIFIED: ExportFormat
EXPORT_FORMAT_CSV: ExportFormat
EXPORT_FORMAT_JSONL: ExportFormat
DELIVERY_STATE_UNSPECIFIED: DeliveryState
DELIVERY_STATE_PENDING: DeliveryState
DELIVERY_STATE_DELIVERED: DeliveryState
DELIVERY_STATE_FAILED: DeliveryState

class LeasedJob(_message.Message):
    __slots__ = ("job_id", "estimated_credits")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_CREDITS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    estimated_credits: int
    def __init__(self, job_id: _Optional[str] = ..., estimated_credits: _Optional[int] = ...) -> None: ...

class SettleLeaseRequest(_message.Message):
    __slots__ = ("lease_id", "user_id", "jobs", "key_limits", "user_limits", "api_key_id")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    JOBS_FIELD_NUMBER: _ClassVar[int]
    KEY_LIMITS_FIELD_NUMBER: _ClassVar[int]
    USER_LIMITS_FIELD_NUMBER: _ClassVar[int]
    API_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    user_id: str
    jobs: _containers.RepeatedCompositeFieldContainer[LeasedJob]
    key_limits: _limits_pb2.Limits
    user_limits: _limits_pb2.Limits
    api_key_id: str
    def __init__(self, lease_id: _Optional[str] = ..., user_id: _Optional[str] = ..., jobs: _Optional[_Iterable[_Union[LeasedJob, _Mapping]]] = ..., key_limits: _Optional[_Union[_limits_pb2.Limits, _Mapping]] = ..., user_limits: _Optional[_Union[_limits_pb2.Limits, _Mapping]] = ..., api_key_id: _Optional[str] = ...) -> None: ...

class SettleLeaseResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LeaseAdmissionsRequest(_message.Message):
    __slots__ = ("lease_id", "user_id", "api_key_id", "key_limits", "user_limits", "count", "estimated_credits_each", "holder", "ttl_seconds", "previous")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    API_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_LIMITS_FIELD_NUMBER: _ClassVar[int]
    USER_LIMITS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_CREDITS_EACH_FIELD_NUMBER: _ClassVar[int]
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    user_id: str
    api_key_id: str
    key_limits: _limits_pb2.Limits
    user_limits: _limits_pb2.Limits
    count: int
    estimated_credits_each: int
    holder: str
    ttl_seconds: float
    previous: SettleLeaseRequest
    def __init__(self, lease_id: _Optional[str] = ..., user_id: _Optional[str] = ..., api_key_id: _Optional[str] = ..., key_limits: _Optional[_Union[_limits_pb2.Limits, _Mapping]] = ..., user_limits: _Optional[_Union[_limits_pb2.Limits, _Mapping]] = ..., count: _Optional[int] = ..., estimated_credits_each: _Optional[int] = ..., holder: _Optional[str] = ..., ttl_seconds: _Optional[float] = ..., previous: _Optional[_Union[SettleLeaseRequest, _Mapping]] = ...) -> None: ...

class LeaseAdmissionsResponse(_message.Message):
    __slots__ = ("granted", "expire_time")
    GRANTED_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    granted: int
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, granted: _Optional[int] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListExpiredLeasesRequest(_message.Message):
    __slots__ = ("holder", "older_than_seconds", "page_size")
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    OLDER_THAN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    holder: str
    older_than_seconds: float
    page_size: int
    def __init__(self, holder: _Optional[str] = ..., older_than_seconds: _Optional[float] = ..., page_size: _Optional[int] = ...) -> None: ...

class ExpiredLease(_message.Message):
    __slots__ = ("lease_id", "user_id", "api_key_id", "create_time")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    API_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    user_id: str
    api_key_id: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, lease_id: _Optional[str] = ..., user_id: _Optional[str] = ..., api_key_id: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListExpiredLeasesResponse(_message.Message):
    __slots__ = ("leases",)
    LEASES_FIELD_NUMBER: _ClassVar[int]
    leases: _containers.RepeatedCompositeFieldContainer[ExpiredLease]
    def __init__(self, leases: _Optional[_Iterable[_Union[ExpiredLease, _Mapping]]] = ...) -> None: ...

class AdmitJobRequest(_message.Message):
    __slots__ = ("job_id", "user_id", "api_key_id", "estimated_credits", "key_limits", "user_limits")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    API_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_CREDITS_FIELD_NUMBER: _ClassVar[int]
    KEY_LIMITS_FIELD_NUMBER: _ClassVar[int]
    USER_LIMITS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    user_id: str
    api_key_id: str
    estimated_credits: int
    key_limits: _limits_pb2.Limits
    user_limits: _limits_pb2.Limits
    def __init__(self, job_id: _Optional[str] = ..., user_id: _Optional[str] = ..., api_key_id: _Optional[str] = ..., estimated_credits: _Optional[int] = ..., key_limits: _Optional[_Union[_limits_pb2.Limits, _Mapping]] = ..., user_limits: _Optional[_Union[_limits_pb2.Limits, _Mapping]] = ...) -> None: ...

class AdmitJobResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AdmitJobsRequest(_message.Message):
    __slots__ = ("admissions",)
    ADMISSIONS_FIELD_NUMBER: _ClassVar[int]
    admissions: _containers.RepeatedCompositeFieldContainer[AdmitJobRequest]
    def __init__(self, admissions: _Optional[_Iterable[_Union[AdmitJobRequest, _Mapping]]] = ...) -> None: ...

class AdmissionOutcome(_message.Message):
    __slots__ = ("code", "reason", "message", "metadata", "retry_after_seconds")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_SECONDS_FIELD_NUMBER: _ClassVar[int]
    code: int
    reason: str
    message: str
    metadata: _containers.ScalarMap[str, str]
    retry_after_seconds: float
    def __init__(self, code: _Optional[int] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., retry_after_seconds: _Optional[float] = ...) -> None: ...

class AdmitJobsResponse(_message.Message):
    __slots__ = ("outcomes",)
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    outcomes: _containers.RepeatedCompositeFieldContainer[AdmissionOutcome]
    def __init__(self, outcomes: _Optional[_Iterable[_Union[AdmissionOutcome, _Mapping]]] = ...) -> None: ...

class ReleaseJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class ReleaseJobResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CheckReadRequest(_message.Message):
    __slots__ = ("user_id", "api_key_id", "key_limits", "user_limits")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    API_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_LIMITS_FIELD_NUMBER: _ClassVar[int]
    USER_LIMITS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    api_key_id: str
    key_limits: _limits_pb2.Limits
    user_limits: _limits_pb2.Limits
    def __init__(self, user_id: _Optional[str] = ..., api_key_id: _Optional[str] = ..., key_limits: _Optional[_Union[_limits_pb2.Limits, _Mapping]] = ..., user_limits: _Optional[_Union[_limits_pb2.Limits, _Mapping]] = ...) -> None: ...

class CheckReadResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Quantities(_message.Message):
    __slots__ = ("width", "height", "frames", "steps", "video_seconds", "gpu_seconds")
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    VIDEO_SECONDS_FIELD_NUMBER: _ClassVar[int]
    GPU_SECONDS_FIELD_NUMBER: _ClassVar[int]
    width: int
    height: int
    frames: int
    steps: int
    video_seconds: float
    gpu_seconds: float
    def __init__(self, width: _Optional[int] = ..., height: _Optional[int] = ..., frames: _Optional[int] = ..., steps: _Optional[int] = ..., video_seconds: _Optional[float] = ..., gpu_seconds: _Optional[float] = ...) -> None: ...

class UsageRecord(_message.Message):
    __slots__ = ("job_id", "kind", "model", "user_id", "api_key_id", "state", "credits", "quantities", "end_time")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    API_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREDITS_FIELD_NUMBER: _ClassVar[int]
    QUANTITIES_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    kind: JobKind
    model: str
    user_id: str
    api_key_id: str
    state: _job_pb2.JobState
    credits: int
    quantities: Quantities
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, job_id: _Optional[str] = ..., kind: _Optional[_Union[JobKind, str]] = ..., model: _Optional[str] = ..., user_id: _Optional[str] = ..., api_key_id: _Optional[str] = ..., state: _Optional[_Union[_job_pb2.JobState, str]] = ..., credits: _Optional[int] = ..., quantities: _Optional[_Union[Quantities, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetUsageRequest(_message.Message):
    __slots__ = ("start_time", "end_time", "api_key_id")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    API_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    api_key_id: str
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., api_key_id: _Optional[str] = ...) -> None: ...

class KindUsage(_message.Message):
    __slots__ = ("kind", "jobs", "credits")
    KIND_FIELD_NUMBER: _ClassVar[int]
    JOBS_FIELD_NUMBER: _ClassVar[int]
    CREDITS_FIELD_NUMBER: _ClassVar[int]
    kind: JobKind
    jobs: int
    credits: int
    def __init__(self, kind: _Optional[_Union[JobKind, str]] = ..., jobs: _Optional[int] = ..., credits: _Optional[int] = ...) -> None: ...

class GetUsageResponse(_message.Message):
    __slots__ = ("start_time", "end_time", "credits", "jobs", "by_kind", "video_seconds", "frames", "gpu_seconds")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    CREDITS_FIELD_NUMBER: _ClassVar[int]
    JOBS_FIELD_NUMBER: _ClassVar[int]
    BY_KIND_FIELD_NUMBER: _ClassVar[int]
    VIDEO_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    GPU_SECONDS_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    credits: int
    jobs: int
    by_kind: _containers.RepeatedCompositeFieldContainer[KindUsage]
    video_seconds: float
    frames: int
    gpu_seconds: float
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., credits: _Optional[int] = ..., jobs: _Optional[int] = ..., by_kind: _Optional[_Iterable[_Union[KindUsage, _Mapping]]] = ..., video_seconds: _Optional[float] = ..., frames: _Optional[int] = ..., gpu_seconds: _Optional[float] = ...) -> None: ...

class ListUsageRecordsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "start_time", "end_time", "api_key_id", "kind")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    API_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    api_key_id: str
    kind: JobKind
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., api_key_id: _Optional[str] = ..., kind: _Optional[_Union[JobKind, str]] = ...) -> None: ...

class ListUsageRecordsResponse(_message.Message):
    __slots__ = ("records", "next_page_token")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[UsageRecord]
    next_page_token: str
    def __init__(self, records: _Optional[_Iterable[_Union[UsageRecord, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ExportUsageRequest(_message.Message):
    __slots__ = ("start_time", "end_time", "api_key_id", "format")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    API_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    api_key_id: str
    format: ExportFormat
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., api_key_id: _Optional[str] = ..., format: _Optional[_Union[ExportFormat, str]] = ...) -> None: ...

class ExportUsageResponse(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class GetPriceEstimateRequest(_message.Message):
    __slots__ = ("kind", "model", "quantities")
    KIND_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    QUANTITIES_FIELD_NUMBER: _ClassVar[int]
    kind: JobKind
    model: str
    quantities: Quantities
    def __init__(self, kind: _Optional[_Union[JobKind, str]] = ..., model: _Optional[str] = ..., quantities: _Optional[_Union[Quantities, _Mapping]] = ...) -> None: ...

class GetPriceEstimateResponse(_message.Message):
    __slots__ = ("credits", "formula")
    CREDITS_FIELD_NUMBER: _ClassVar[int]
    FORMULA_FIELD_NUMBER: _ClassVar[int]
    credits: int
    formula: str
    def __init__(self, credits: _Optional[int] = ..., formula: _Optional[str] = ...) -> None: ...

class WebhookEndpoint(_message.Message):
    __slots__ = ("id", "url", "event_types", "disabled", "secret", "create_time", "disabled_reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    DISABLED_REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    url: str
    event_types: _containers.RepeatedScalarFieldContainer[str]
    disabled: bool
    secret: str
    create_time: _timestamp_pb2.Timestamp
    disabled_reason: str
    def __init__(self, id: _Optional[str] = ..., url: _Optional[str] = ..., event_types: _Optional[_Iterable[str]] = ..., disabled: _Optional[bool] = ..., secret: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., disabled_reason: _Optional[str] = ...) -> None: ...

class CreateWebhookEndpointRequest(_message.Message):
    __slots__ = ("url", "event_types")
    URL_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    url: str
    event_types: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, url: _Optional[str] = ..., event_types: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateWebhookEndpointResponse(_message.Message):
    __slots__ = ("endpoint",)
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    endpoint: WebhookEndpoint
    def __init__(self, endpoint: _Optional[_Union[WebhookEndpoint, _Mapping]] = ...) -> None: ...

class ListWebhookEndpointsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListWebhookEndpointsResponse(_message.Message):
    __slots__ = ("endpoints", "next_page_token")
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    endpoints: _containers.RepeatedCompositeFieldContainer[WebhookEndpoint]
    next_page_token: str
    def __init__(self, endpoints: _Optional[_Iterable[_Union[WebhookEndpoint, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteWebhookEndpointRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteWebhookEndpointResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class EnableWebhookEndpointRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class EnableWebhookEndpointResponse(_message.Message):
    __slots__ = ("endpoint",)
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    endpoint: WebhookEndpoint
    def __init__(self, endpoint: _Optional[_Union[WebhookEndpoint, _Mapping]] = ...) -> None: ...

class RotateWebhookSecretRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class RotateWebhookSecretResponse(_message.Message):
    __slots__ = ("endpoint", "previous_secret_expire_time")
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_SECRET_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    endpoint: WebhookEndpoint
    previous_secret_expire_time: _timestamp_pb2.Timestamp
    def __init__(self, endpoint: _Optional[_Union[WebhookEndpoint, _Mapping]] = ..., previous_secret_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class WebhookAttempt(_message.Message):
    __slots__ = ("attempt", "time", "status_code", "error", "duration_ms")
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    attempt: int
    time: _timestamp_pb2.Timestamp
    status_code: int
    error: str
    duration_ms: int
    def __init__(self, attempt: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status_code: _Optional[int] = ..., error: _Optional[str] = ..., duration_ms: _Optional[int] = ...) -> None: ...

class WebhookDelivery(_message.Message):
    __slots__ = ("id", "endpoint_id", "event_type", "job_id", "state", "attempt_count", "last_status_code", "create_time", "next_attempt_time", "attempts")
    ID_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_TIME_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    endpoint_id: str
    event_type: str
    job_id: str
    state: DeliveryState
    attempt_count: int
    last_status_code: int
    create_time: _timestamp_pb2.Timestamp
    next_attempt_time: _timestamp_pb2.Timestamp
    attempts: _containers.RepeatedCompositeFieldContainer[WebhookAttempt]
    def __init__(self, id: _Optional[str] = ..., endpoint_id: _Optional[str] = ..., event_type: _Optional[str] = ..., job_id: _Optional[str] = ..., state: _Optional[_Union[DeliveryState, str]] = ..., attempt_count: _Optional[int] = ..., last_status_code: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., next_attempt_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., attempts: _Optional[_Iterable[_Union[WebhookAttempt, _Mapping]]] = ...) -> None: ...

class ListWebhookDeliveriesRequest(_message.Message):
    __slots__ = ("endpoint_id", "page_size", "page_token")
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    page_size: int
    page_token: str
    def __init__(self, endpoint_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListWebhookDeliveriesResponse(_message.Message):
    __slots__ = ("deliveries", "next_page_token")
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    deliveries: _containers.RepeatedCompositeFieldContainer[WebhookDelivery]
    next_page_token: str
    def __init__(self, deliveries: _Optional[_Iterable[_Union[WebhookDelivery, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RedeliverWebhookRequest(_message.Message):
    __slots__ = ("delivery_id",)
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    delivery_id: str
    def __init__(self, delivery_id: _Optional[str] = ...) -> None: ...

class RedeliverWebhookResponse(_message.Message):
    __slots__ = ("delivery",)
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    delivery: WebhookDelivery
    def __init__(self, delivery: _Optional[_Union[WebhookDelivery, _Mapping]] = ...) -> None: ...

class RecordJobOutcomeRequest(_message.Message):
    __slots__ = ("job_id", "kind", "model", "user_id", "api_key_id", "state", "quantities", "result_asset_ids", "error_reason", "end_time")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    API_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    QUANTITIES_FIELD_NUMBER: _ClassVar[int]
    RESULT_ASSET_IDS_FIELD_NUMBER: _ClassVar[int]
    ERROR_REASON_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    kind: JobKind
    model: str
    user_id: str
    api_key_id: str
    state: _job_pb2.JobState
    quantities: Quantities
    result_asset_ids: _containers.RepeatedScalarFieldContainer[str]
    error_reason: str
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, job_id: _Optional[str] = ..., kind: _Optional[_Union[JobKind, str]] = ..., model: _Optional[str] = ..., user_id: _Optional[str] = ..., api_key_id: _Optional[str] = ..., state: _Optional[_Union[_job_pb2.JobState, str]] = ..., quantities: _Optional[_Union[Quantities, _Mapping]] = ..., result_asset_ids: _Optional[_Iterable[str]] = ..., error_reason: _Optional[str] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RecordJobOutcomeResponse(_message.Message):
    __slots__ = ("record", "created")
    RECORD_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    record: UsageRecord
    created: bool
    def __init__(self, record: _Optional[_Union[UsageRecord, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class RecordJobOutcomesRequest(_message.Message):
    __slots__ = ("outcomes",)
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    outcomes: _containers.RepeatedCompositeFieldContainer[RecordJobOutcomeRequest]
    def __init__(self, outcomes: _Optional[_Iterable[_Union[RecordJobOutcomeRequest, _Mapping]]] = ...) -> None: ...

class RecordJobOutcomeResult(_message.Message):
    __slots__ = ("record", "created", "code", "reason", "message", "violations")
    RECORD_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    record: UsageRecord
    created: bool
    code: int
    reason: str
    message: str
    violations: _containers.RepeatedCompositeFieldContainer[OutcomeViolation]
    def __init__(self, record: _Optional[_Union[UsageRecord, _Mapping]] = ..., created: _Optional[bool] = ..., code: _Optional[int] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ..., violations: _Optional[_Iterable[_Union[OutcomeViolation, _Mapping]]] = ...) -> None: ...

class OutcomeViolation(_message.Message):
    __slots__ = ("field", "description")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    field: str
    description: str
    def __init__(self, field: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class RecordJobOutcomesResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[RecordJobOutcomeResult]
    def __init__(self, results: _Optional[_Iterable[_Union[RecordJobOutcomeResult, _Mapping]]] = ...) -> None: ...

class SendTestWebhookRequest(_message.Message):
    __slots__ = ("endpoint_id",)
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    def __init__(self, endpoint_id: _Optional[str] = ...) -> None: ...

class SendTestWebhookResponse(_message.Message):
    __slots__ = ("delivery",)
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    delivery: WebhookDelivery
    def __init__(self, delivery: _Optional[_Union[WebhookDelivery, _Mapping]] = ...) -> None: ...
