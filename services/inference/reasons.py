"""ErrorInfo reasons of the inference service (domain "viarte.inference"), as listed in the protos."""

from __future__ import annotations

import enum

__all__ = ["Reason"]


class Reason(enum.StrEnum):
    MODEL_NOT_FOUND = "MODEL_NOT_FOUND"
    # The model is in the registry but its weights are not on this deployment.
    MODEL_UNAVAILABLE = "MODEL_UNAVAILABLE"
    TASK_NOT_SUPPORTED = "TASK_NOT_SUPPORTED"
    INVALID_PARAMETERS = "INVALID_PARAMETERS"
    IMAGE_REQUIRED = "IMAGE_REQUIRED"
    ASSET_NOT_FOUND = "ASSET_NOT_FOUND"
    JOB_NOT_FOUND = "JOB_NOT_FOUND"
    QUEUE_FULL = "QUEUE_FULL"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    WORKER_CRASHED = "WORKER_CRASHED"
    # An unexpected file or OS error in a job (ServiceError.io_failed; UNAVAILABLE, retried first).
    IO_FAILED = "IO_FAILED"
    DECODE_FAILED = "DECODE_FAILED"
    NO_FACE_IN_SOURCE = "NO_FACE_IN_SOURCE"
    STORAGE_UNAVAILABLE = "STORAGE_UNAVAILABLE"
    INVALID_PAGE_TOKEN = "INVALID_PAGE_TOKEN"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    # Executor "ray": the Ray cluster cannot be reached (Create answers UNAVAILABLE, nothing queued).
    RAY_UNAVAILABLE = "RAY_UNAVAILABLE"
    # `devices` asks for more devices than the executor can give one job (FAILED_PRECONDITION).
    DEVICES_UNAVAILABLE = "DEVICES_UNAVAILABLE"
    # Training (issue 17): a dataset check failed (BadRequest field paths; nothing is queued).
    INVALID_DATASET = "INVALID_DATASET"
    # The model's family has no LoRA support (training, or `loras` in a generation).
    LORA_UNSUPPORTED = "LORA_UNSUPPORTED"
    LORA_NOT_FOUND = "LORA_NOT_FOUND"
    # A LoRA trained on another base model than the generation's.
    LORA_BASE_MISMATCH = "LORA_BASE_MISMATCH"
