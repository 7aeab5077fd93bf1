"""What a work function sees inside the worker process (one task: one run of one work)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from services.inference.worker.config import WorkerConfig
from services.inference.worker.protocol import TaskCancelled, TaskEvent, WorkerSetup
from viarte.type.v1 import job_pb2

__all__ = ["TaskContext"]


@dataclass
class TaskContext:
    task_id: str
    setup: WorkerSetup
    send: Callable[[Any], None]
    # Shared by every task of this worker: ModelCache, registry, ...
    resources: dict[str, Any]
    _cancel: threading.Event = field(default_factory=threading.Event)
    # services.kit.tracing.TaskTrace when tracing is on: a span per stage the task reports.
    trace: Any = None
    # A second device for this task's unconditional passes (worker/cfg_parallel.py ``Partner``).
    partner: Any = None

    @property
    def device(self) -> str:
        return self.setup.device

    @property
    def config(self) -> WorkerConfig:
        return self.setup.config

    def emit(self, progress: job_pb2.Progress, *, droppable: bool = False, artifact: str = "") -> None:
        """Queues an event for the server; never blocks the computation. `artifact`: a local file
        the server stores as an asset (announced by this event)."""
        if self.trace is not None and progress.stage:
            self.trace.stage(job_pb2.Stage.Name(progress.stage).removeprefix("STAGE_").lower())
        self.send(TaskEvent(self.task_id, progress.SerializeToString(), droppable, time.time_ns() // 1000, artifact))
        stage = job_pb2.Stage.Name(progress.stage)
        if self.config.fault_crash_at_stage and stage == self.config.fault_crash_at_stage and self._fault_fires():
            import os

            os._exit(17)  # fault injection for crash-recovery tests
        if self.config.fault_stall_at_stage and stage == self.config.fault_stall_at_stage and self._fault_fires():
            time.sleep(self.config.fault_stall_seconds)  # fault injection: a hang that ignores cancel

    def _fault_fires(self) -> bool:
        marker = self.config.fault_once_marker
        if not marker:
            return True
        try:
            with open(marker, "x"):
                return True  # the first one to get here
        except FileExistsError:
            return False

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def raise_if_cancelled(self) -> None:
        if self._cancel.is_set():
            raise TaskCancelled(self.task_id)
