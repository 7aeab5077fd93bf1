"""The worker's work functions: `Work.kind` → ``run(ctx, work) -> outcome``. Imported only inside
a device worker process (the functions import torch and the face models)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from services.inference.faceswap import worker as faceswap_worker
from services.inference.training import worker as training_worker
from services.inference.worker import generate
from services.inference.worker.context import TaskContext
from services.inference.worker.protocol import FaceSwapWork, GenerationWork, TrainingWork

__all__ = ["WORK_FUNCTIONS", "WorkFn"]

WorkFn = Callable[[TaskContext, Any], Any]

WORK_FUNCTIONS: dict[str, WorkFn] = {
    GenerationWork.kind: generate.run,
    FaceSwapWork.kind: faceswap_worker.run,
    TrainingWork.kind: training_worker.run,
}
