import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from viarte.type.v1 import job_pb2 as _job_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TrainingExample(_message.Message):
    __slots__ = ("asset_id", "caption", "caption_asset_id")
    ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    CAPTION_FIELD_NUMBER: _ClassVar[int]
    CAPTION_ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    asset_id: str
    caption: str
    caption_asset_id: str
    def __init__(self, asset_id: _Optional[str] = ..., caption: _Optional[str] = ..., caption_asset_id: _Optional[str] = ...) -> None: ...

class TrainingDataset(_message.Message):
    __slots__ = ("examples", "caption_file_asset_id")
    EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    CAPTION_FILE_ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    examples: _containers.RepeatedCompositeFieldContainer[TrainingExample]
    caption_file_asset_id: str
    def __init__(self, examples: _Optional[_Iterable[_Union[TrainingExample, _Mapping]]] = ..., caption_file_asset_id: _Optional[str] = ...) -> None: ...

class TrainingParameters(_message.Message):
    __slots__ = ("base_model", "dataset", "trigger_word", "rank", "alpha", "learning_rate", "steps", "batch_size", "width", "height", "num_frames", "seed", "validation_prompt", "sample_every_n_steps", "checkpoint_every_n_steps", "name", "sample_num_inference_steps", "sample_num_frames", "gradient_checkpointing")
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_WORD_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    NUM_FRAMES_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_PROMPT_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_EVERY_N_STEPS_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_EVERY_N_STEPS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_NUM_INFERENCE_STEPS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_NUM_FRAMES_FIELD_NUMBER: _ClassVar[int]
    GRADIENT_CHECKPOINTING_FIELD_NUMBER: _ClassVar[int]
    base_model: str
    dataset: TrainingDataset
    trigger_word: str
    rank: int
    alpha: float
    learning_rate: float
    steps: int
    batch_size: int
    width: int
    height: int
    num_frames: int
    seed: int
    validation_prompt: str
    sample_every_n_steps: int
    checkpoint_every_n_steps: int
    name: str
    sample_num_inference_steps: int
    sample_num_frames: int
    gradient_checkpointing: bool
    def __init__(self, base_model: _Optional[str] = ..., dataset: _Optional[_Union[TrainingDataset, _Mapping]] = ..., trigger_word: _Optional[str] = ..., rank: _Optional[int] = ..., alpha: _Optional[float] = ..., learning_rate: _Optional[float] = ..., steps: _Optional[int] = ..., batch_size: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., num_frames: _Optional[int] = ..., seed: _Optional[int] = ..., validation_prompt: _Optional[str] = ..., sample_every_n_steps: _Optional[int] = ..., checkpoint_every_n_steps: _Optional[int] = ..., name: _Optional[str] = ..., sample_num_inference_steps: _Optional[int] = ..., sample_num_frames: _Optional[int] = ..., gradient_checkpointing: _Optional[bool] = ...) -> None: ...

class TrainingResult(_message.Message):
    __slots__ = ("lora_id", "lora_asset_id", "steps_completed", "final_loss", "resumed_from_step", "checkpoint_asset_ids", "sample_asset_ids", "gradient_checkpointing")
    LORA_ID_FIELD_NUMBER: _ClassVar[int]
    LORA_ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    STEPS_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    FINAL_LOSS_FIELD_NUMBER: _ClassVar[int]
    RESUMED_FROM_STEP_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ASSET_IDS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_ASSET_IDS_FIELD_NUMBER: _ClassVar[int]
    GRADIENT_CHECKPOINTING_FIELD_NUMBER: _ClassVar[int]
    lora_id: str
    lora_asset_id: str
    steps_completed: int
    final_loss: float
    resumed_from_step: int
    checkpoint_asset_ids: _containers.RepeatedScalarFieldContainer[str]
    sample_asset_ids: _containers.RepeatedScalarFieldContainer[str]
    gradient_checkpointing: bool
    def __init__(self, lora_id: _Optional[str] = ..., lora_asset_id: _Optional[str] = ..., steps_completed: _Optional[int] = ..., final_loss: _Optional[float] = ..., resumed_from_step: _Optional[int] = ..., checkpoint_asset_ids: _Optional[_Iterable[str]] = ..., sample_asset_ids: _Optional[_Iterable[str]] = ..., gradient_checkpointing: _Optional[bool] = ...) -> None: ...

class TrainingJob(_message.Message):
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
    parameters: TrainingParameters
    result: TrainingResult
    def __init__(self, id: _Optional[str] = ..., owner_id: _Optional[str] = ..., request_id: _Optional[str] = ..., status: _Optional[_Union[_job_pb2.JobStatus, _Mapping]] = ..., parameters: _Optional[_Union[TrainingParameters, _Mapping]] = ..., result: _Optional[_Union[TrainingResult, _Mapping]] = ...) -> None: ...

class Lora(_message.Message):
    __slots__ = ("id", "owner_id", "name", "asset_id", "base_model", "dataset_asset_ids", "dataset_sha256", "parameters", "training_job_id", "final_loss", "steps", "partial", "trigger_word", "create_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    DATASET_ASSET_IDS_FIELD_NUMBER: _ClassVar[int]
    DATASET_SHA256_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    TRAINING_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FINAL_LOSS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_WORD_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    owner_id: str
    name: str
    asset_id: str
    base_model: str
    dataset_asset_ids: _containers.RepeatedScalarFieldContainer[str]
    dataset_sha256: str
    parameters: TrainingParameters
    training_job_id: str
    final_loss: float
    steps: int
    partial: bool
    trigger_word: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., owner_id: _Optional[str] = ..., name: _Optional[str] = ..., asset_id: _Optional[str] = ..., base_model: _Optional[str] = ..., dataset_asset_ids: _Optional[_Iterable[str]] = ..., dataset_sha256: _Optional[str] = ..., parameters: _Optional[_Union[TrainingParameters, _Mapping]] = ..., training_job_id: _Optional[str] = ..., final_loss: _Optional[float] = ..., steps: _Optional[int] = ..., partial: _Optional[bool] = ..., trigger_word: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateTrainingJobRequest(_message.Message):
    __slots__ = ("parameters", "request_id", "priority")
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    parameters: TrainingParameters
    request_id: str
    priority: int
    def __init__(self, parameters: _Optional[_Union[TrainingParameters, _Mapping]] = ..., request_id: _Optional[str] = ..., priority: _Optional[int] = ...) -> None: ...

class CreateTrainingJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: TrainingJob
    def __init__(self, job: _Optional[_Union[TrainingJob, _Mapping]] = ...) -> None: ...

class GetTrainingJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetTrainingJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: TrainingJob
    def __init__(self, job: _Optional[_Union[TrainingJob, _Mapping]] = ...) -> None: ...

class ListTrainingJobsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "state")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    state: _job_pb2.JobState
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., state: _Optional[_Union[_job_pb2.JobState, str]] = ...) -> None: ...

class ListTrainingJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[TrainingJob]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[TrainingJob, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelTrainingJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class CancelTrainingJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: TrainingJob
    def __init__(self, job: _Optional[_Union[TrainingJob, _Mapping]] = ...) -> None: ...

class WatchTrainingJobRequest(_message.Message):
    __slots__ = ("id", "after_sequence")
    ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    id: str
    after_sequence: int
    def __init__(self, id: _Optional[str] = ..., after_sequence: _Optional[int] = ...) -> None: ...

class WatchTrainingJobResponse(_message.Message):
    __slots__ = ("job", "event")
    JOB_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    job: TrainingJob
    event: _job_pb2.JobEvent
    def __init__(self, job: _Optional[_Union[TrainingJob, _Mapping]] = ..., event: _Optional[_Union[_job_pb2.JobEvent, _Mapping]] = ...) -> None: ...

class ListLorasRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "base_model")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    base_model: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., base_model: _Optional[str] = ...) -> None: ...

class ListLorasResponse(_message.Message):
    __slots__ = ("loras", "next_page_token")
    LORAS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    loras: _containers.RepeatedCompositeFieldContainer[Lora]
    next_page_token: str
    def __init__(self, loras: _Optional[_Iterable[_Union[Lora, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetLoraRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetLoraResponse(_message.Message):
    __slots__ = ("lora",)
    LORA_FIELD_NUMBER: _ClassVar[int]
    lora: Lora
    def __init__(self, lora: _Optional[_Union[Lora, _Mapping]] = ...) -> None: ...

class DeleteLoraRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteLoraResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
