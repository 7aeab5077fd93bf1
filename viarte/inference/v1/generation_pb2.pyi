from viarte.inference.v1 import face_swap_pb2 as _face_swap_pb2
from viarte.type.v1 import job_pb2 as _job_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Task(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_UNSPECIFIED: _ClassVar[Task]
    TASK_TEXT_TO_VIDEO: _ClassVar[Task]
    TASK_IMAGE_TO_VIDEO: _ClassVar[Task]

class ModelFamily(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_FAMILY_UNSPECIFIED: _ClassVar[ModelFamily]
    MODEL_FAMILY_MODELSCOPE: _ClassVar[ModelFamily]
    MODEL_FAMILY_WAN: _ClassVar[ModelFamily]
    MODEL_FAMILY_SVD: _ClassVar[ModelFamily]
TASK_UNSPECIFIED: Task
TASK_TEXT_TO_VIDEO: Task
TASK_IMAGE_TO_VIDEO: Task
MODEL_FAMILY_UNSPECIFIED: ModelFamily
MODEL_FAMILY_MODELSCOPE: ModelFamily
MODEL_FAMILY_WAN: ModelFamily
MODEL_FAMILY_SVD: ModelFamily

class ModelLimits(_message.Message):
    __slots__ = ("min_width", "max_width", "min_height", "max_height", "size_multiple", "min_frames", "max_frames", "frames_multiple", "max_steps", "max_guidance_scale", "max_prompt_chars", "default_width", "default_height", "default_frames", "default_steps", "default_guidance_scale", "default_fps")
    MIN_WIDTH_FIELD_NUMBER: _ClassVar[int]
    MAX_WIDTH_FIELD_NUMBER: _ClassVar[int]
    MIN_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    MAX_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    SIZE_MULTIPLE_FIELD_NUMBER: _ClassVar[int]
    MIN_FRAMES_FIELD_NUMBER: _ClassVar[int]
    MAX_FRAMES_FIELD_NUMBER: _ClassVar[int]
    FRAMES_MULTIPLE_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    MAX_GUIDANCE_SCALE_FIELD_NUMBER: _ClassVar[int]
    MAX_PROMPT_CHARS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_WIDTH_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_FRAMES_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_STEPS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_GUIDANCE_SCALE_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_FPS_FIELD_NUMBER: _ClassVar[int]
    min_width: int
    max_width: int
    min_height: int
    max_height: int
    size_multiple: int
    min_frames: int
    max_frames: int
    frames_multiple: int
    max_steps: int
    max_guidance_scale: float
    max_prompt_chars: int
    default_width: int
    default_height: int
    default_frames: int
    default_steps: int
    default_guidance_scale: float
    default_fps: int
    def __init__(self, min_width: _Optional[int] = ..., max_width: _Optional[int] = ..., min_height: _Optional[int] = ..., max_height: _Optional[int] = ..., size_multiple: _Optional[int] = ..., min_frames: _Optional[int] = ..., max_frames: _Optional[int] = ..., frames_multiple: _Optional[int] = ..., max_steps: _Optional[int] = ..., max_guidance_scale: _Optional[float] = ..., max_prompt_chars: _Optional[int] = ..., default_width: _Optional[int] = ..., default_height: _Optional[int] = ..., default_frames: _Optional[int] = ..., default_steps: _Optional[int] = ..., default_guidance_scale: _Optional[float] = ..., default_fps: _Optional[int] = ...) -> None: ...

class Model(_message.Message):
    __slots__ = ("id", "display_name", "family", "tasks", "source", "tiny", "limits", "loaded", "estimated_memory_bytes", "training_memory")
    ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TINY_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    LOADED_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    TRAINING_MEMORY_FIELD_NUMBER: _ClassVar[int]
    id: str
    display_name: str
    family: ModelFamily
    tasks: _containers.RepeatedScalarFieldContainer[Task]
    source: str
    tiny: bool
    limits: ModelLimits
    loaded: bool
    estimated_memory_bytes: int
    training_memory: TrainingMemory
    def __init__(self, id: _Optional[str] = ..., display_name: _Optional[str] = ..., family: _Optional[_Union[ModelFamily, str]] = ..., tasks: _Optional[_Iterable[_Union[Task, str]]] = ..., source: _Optional[str] = ..., tiny: _Optional[bool] = ..., limits: _Optional[_Union[ModelLimits, _Mapping]] = ..., loaded: _Optional[bool] = ..., estimated_memory_bytes: _Optional[int] = ..., training_memory: _Optional[_Union[TrainingMemory, _Mapping]] = ...) -> None: ...

class TrainingMemory(_message.Message):
    __slots__ = ("bytes", "gradient_checkpointing_bytes", "width", "height", "num_frames")
    BYTES_FIELD_NUMBER: _ClassVar[int]
    GRADIENT_CHECKPOINTING_BYTES_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    NUM_FRAMES_FIELD_NUMBER: _ClassVar[int]
    bytes: int
    gradient_checkpointing_bytes: int
    width: int
    height: int
    num_frames: int
    def __init__(self, bytes: _Optional[int] = ..., gradient_checkpointing_bytes: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., num_frames: _Optional[int] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[Model]
    def __init__(self, models: _Optional[_Iterable[_Union[Model, _Mapping]]] = ...) -> None: ...

class SvdParameters(_message.Message):
    __slots__ = ("motion_bucket_id", "noise_aug_strength", "min_guidance_scale", "max_guidance_scale", "decode_chunk_size")
    MOTION_BUCKET_ID_FIELD_NUMBER: _ClassVar[int]
    NOISE_AUG_STRENGTH_FIELD_NUMBER: _ClassVar[int]
    MIN_GUIDANCE_SCALE_FIELD_NUMBER: _ClassVar[int]
    MAX_GUIDANCE_SCALE_FIELD_NUMBER: _ClassVar[int]
    DECODE_CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    motion_bucket_id: int
    noise_aug_strength: float
    min_guidance_scale: float
    max_guidance_scale: float
    decode_chunk_size: int
    def __init__(self, motion_bucket_id: _Optional[int] = ..., noise_aug_strength: _Optional[float] = ..., min_guidance_scale: _Optional[float] = ..., max_guidance_scale: _Optional[float] = ..., decode_chunk_size: _Optional[int] = ...) -> None: ...

class WanParameters(_message.Message):
    __slots__ = ("flow_shift", "guidance_scale_2")
    FLOW_SHIFT_FIELD_NUMBER: _ClassVar[int]
    GUIDANCE_SCALE_2_FIELD_NUMBER: _ClassVar[int]
    flow_shift: float
    guidance_scale_2: float
    def __init__(self, flow_shift: _Optional[float] = ..., guidance_scale_2: _Optional[float] = ...) -> None: ...

class GenerationParameters(_message.Message):
    __slots__ = ("model", "task", "prompt", "negative_prompt", "image_asset_id", "width", "height", "num_frames", "fps", "num_inference_steps", "guidance_scale", "seed", "preview_every_n_steps", "svd", "wan", "face_swap", "loras", "devices")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_PROMPT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    NUM_FRAMES_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    NUM_INFERENCE_STEPS_FIELD_NUMBER: _ClassVar[int]
    GUIDANCE_SCALE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_EVERY_N_STEPS_FIELD_NUMBER: _ClassVar[int]
    SVD_FIELD_NUMBER: _ClassVar[int]
    WAN_FIELD_NUMBER: _ClassVar[int]
    FACE_SWAP_FIELD_NUMBER: _ClassVar[int]
    LORAS_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    model: str
    task: Task
    prompt: str
    negative_prompt: str
    image_asset_id: str
    width: int
    height: int
    num_frames: int
    fps: int
    num_inference_steps: int
    guidance_scale: float
    seed: int
    preview_every_n_steps: int
    svd: SvdParameters
    wan: WanParameters
    face_swap: _face_swap_pb2.FaceSwapOptions
    loras: _containers.RepeatedCompositeFieldContainer[LoraWeight]
    devices: int
    def __init__(self, model: _Optional[str] = ..., task: _Optional[_Union[Task, str]] = ..., prompt: _Optional[str] = ..., negative_prompt: _Optional[str] = ..., image_asset_id: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., num_frames: _Optional[int] = ..., fps: _Optional[int] = ..., num_inference_steps: _Optional[int] = ..., guidance_scale: _Optional[float] = ..., seed: _Optional[int] = ..., preview_every_n_steps: _Optional[int] = ..., svd: _Optional[_Union[SvdParameters, _Mapping]] = ..., wan: _Optional[_Union[WanParameters, _Mapping]] = ..., face_swap: _Optional[_Union[_face_swap_pb2.FaceSwapOptions, _Mapping]] = ..., loras: _Optional[_Iterable[_Union[LoraWeight, _Mapping]]] = ..., devices: _Optional[int] = ...) -> None: ...

class LoraWeight(_message.Message):
    __slots__ = ("lora_id", "weight")
    LORA_ID_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    lora_id: str
    weight: float
    def __init__(self, lora_id: _Optional[str] = ..., weight: _Optional[float] = ...) -> None: ...

class StageTiming(_message.Message):
    __slots__ = ("stage", "seconds")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    stage: str
    seconds: float
    def __init__(self, stage: _Optional[str] = ..., seconds: _Optional[float] = ...) -> None: ...

class GenerationResult(_message.Message):
    __slots__ = ("video_asset_id", "frame_count", "fps", "seed", "width", "height", "memory_policy", "device", "face_swap")
    VIDEO_ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_POLICY_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    FACE_SWAP_FIELD_NUMBER: _ClassVar[int]
    video_asset_id: str
    frame_count: int
    fps: int
    seed: int
    width: int
    height: int
    memory_policy: str
    device: str
    face_swap: _face_swap_pb2.FaceSwapResult
    def __init__(self, video_asset_id: _Optional[str] = ..., frame_count: _Optional[int] = ..., fps: _Optional[int] = ..., seed: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., memory_policy: _Optional[str] = ..., device: _Optional[str] = ..., face_swap: _Optional[_Union[_face_swap_pb2.FaceSwapResult, _Mapping]] = ...) -> None: ...

class GenerationJob(_message.Message):
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
    parameters: GenerationParameters
    result: GenerationResult
    def __init__(self, id: _Optional[str] = ..., owner_id: _Optional[str] = ..., request_id: _Optional[str] = ..., status: _Optional[_Union[_job_pb2.JobStatus, _Mapping]] = ..., parameters: _Optional[_Union[GenerationParameters, _Mapping]] = ..., result: _Optional[_Union[GenerationResult, _Mapping]] = ...) -> None: ...

class CreateGenerationJobRequest(_message.Message):
    __slots__ = ("parameters", "request_id", "priority")
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    parameters: GenerationParameters
    request_id: str
    priority: int
    def __init__(self, parameters: _Optional[_Union[GenerationParameters, _Mapping]] = ..., request_id: _Optional[str] = ..., priority: _Optional[int] = ...) -> None: ...

class CreateGenerationJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: GenerationJob
    def __init__(self, job: _Optional[_Union[GenerationJob, _Mapping]] = ...) -> None: ...

class GetGenerationJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetGenerationJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: GenerationJob
    def __init__(self, job: _Optional[_Union[GenerationJob, _Mapping]] = ...) -> None: ...

class ListGenerationJobsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "state")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    state: _job_pb2.JobState
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., state: _Optional[_Union[_job_pb2.JobState, str]] = ...) -> None: ...

class ListGenerationJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[GenerationJob]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[GenerationJob, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelGenerationJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class CancelGenerationJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: GenerationJob
    def __init__(self, job: _Optional[_Union[GenerationJob, _Mapping]] = ...) -> None: ...

class WatchGenerationJobRequest(_message.Message):
    __slots__ = ("id", "after_sequence")
    ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    id: str
    after_sequence: int
    def __init__(self, id: _Optional[str] = ..., after_sequence: _Optional[int] = ...) -> None: ...

class WatchGenerationJobResponse(_message.Message):
    __slots__ = ("job", "event")
    JOB_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    job: GenerationJob
    event: _job_pb2.JobEvent
    def __init__(self, job: _Optional[_Union[GenerationJob, _Mapping]] = ..., event: _Optional[_Union[_job_pb2.JobEvent, _Mapping]] = ...) -> None: ...
