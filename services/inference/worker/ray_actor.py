"""The inference device actor on a Ray cluster (issue 15): a kit ``TaskActor`` (one per GPU, one task
at a time, ``info``/``cancel`` answering meanwhile, messages streamed back) running the same work
functions, model cache and ``TaskContext`` as a local device worker (``worker/process.py``), so both
executors take one code path from typed work to outcome.

Runs in a Ray worker process (which may import torch); the server only pickles the class to create
actors, so nothing here imports torch or the model stack at module level.

Files: a work names files on the server's disk (inputs fetched from storage, the output to upload),
and an actor may run on another node. The server ships the input files' bytes along (``files``:
field name → bytes), the actor writes them to the task's folder and returns the output's bytes with
the outcome; the server writes them where the work asked, then stores them in S3 exactly as after a
local run. Artifacts announced during a task (training checkpoints and samples) travel the same
way, as bytes on their event (``TaskEvent.artifact_data``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from services.inference.worker.context import TaskContext
from services.inference.worker.protocol import TaskEvent, Work, WorkerSetup
from services.kit.ray.task import ActorTask, TaskActor

__all__ = ["DeviceActor", "ShippedOutcome"]


@dataclasses.dataclass(frozen=True)
class ShippedOutcome:
    """What the ``done`` message carries back from an actor: the work function's outcome and the
    bytes of the file it wrote (None when it wrote none)."""

    outcome: Any
    output: bytes | None
    output_name: str = ""


class DeviceActor(TaskActor):
    """Holds one device and a warm model cache. Messages: the worker protocol's ``TaskEvent``s, then
    ``{"event": "done", "shipped": ShippedOutcome}``, ``{"event": "cancelled"}`` or
    ``{"event": "error", "failed": TaskFailed}`` (code, reason and message as a local worker's)."""

    def __init__(self, setup: WorkerSetup) -> None:
        from services.inference.worker.process import _warm_imports, resolve_setup

        super().__init__()
        # Ray sets CUDA_VISIBLE_DEVICES to this actor's GPU: "auto" resolves to cuda:0 there, and
        # to cpu on a CPU cluster whose nodes declare logical GPUs.
        self.setup = resolve_setup(dataclasses.replace(setup, device="auto", scratch_dir=self.scratch))
        if self.setup.config.worker_threads:
            import torch

            torch.set_num_threads(self.setup.config.worker_threads)
        _warm_imports()
        if self.gpu == "cpu":
            self.gpu = self.setup.device
        self._resources: dict[str, Any] = {}

    def loaded(self) -> list[str]:
        cache = self._resources.get("models")
        return sorted(cache.loaded_ids()) if cache is not None else []

    def info(self) -> dict[str, Any]:
        return super().info() | {"device": self.setup.device}

    def work(self, task: ActorTask, kind: str, payload: Any) -> dict[str, Any]:
        from services.inference.worker.functions import WORK_FUNCTIONS

        work: Work[Any] = payload["work"]
        fn = WORK_FUNCTIONS.get(work.kind)
        if fn is None:
            raise KeyError(f"this actor has no work function for {work.kind!r}")
        # The task's cancel flag is the context's: Ray's cancel() reaches the step callbacks.
        ctx = TaskContext(task.id, self.setup, _shipping(task.report), self._resources, _cancel=task.cancelled)
        local, output = _localise(work, payload["files"], task.folder)
        outcome = fn(ctx, local)
        return {"shipped": _ship_out(outcome, output)}

    def failure(self, task: ActorTask, exc: Exception) -> dict[str, Any]:
        from services.inference.worker.process import _failure

        failed = _failure(task.id, exc)
        if failed.cancelled:
            return {"event": "cancelled"}
        return {"event": "error", "message": failed.message, "failed": failed}


def _shipping(report: Callable[[Any], None]) -> Callable[[Any], None]:
    """Events naming an artifact (a training checkpoint or sample) carry its bytes: this node's
    disk is not the server's."""

    def send(message: Any) -> None:
        if isinstance(message, TaskEvent) and message.artifact and message.artifact_data is None:
            message = dataclasses.replace(message, artifact_data=Path(message.artifact).read_bytes())
        report(message)

    return send


def _localise(work: Work[Any], files: dict[str, bytes], folder: Path) -> tuple[Work[Any], Path | None]:
    """The work with its file fields pointing into ``folder`` (inputs written from ``files``) and
    the path whose bytes go back (a generation's video; a face swap's output folder)."""
    changes: dict[str, str] = {}
    for name, data in files.items():
        path = folder / f"in-{name}{Path(getattr(work, name)).suffix}"
        path.write_bytes(data)
        changes[name] = str(path)
    output: Path | None = None
    if hasattr(work, "output_path"):
        output = folder / ("out" + Path(work.output_path).suffix)
        changes["output_path"] = str(output)
    elif hasattr(work, "output_dir"):
        output = folder / "out"
        output.mkdir()
        changes["output_dir"] = str(output)
    return dataclasses.replace(work, **changes), output


def _ship_out(outcome: Any, output: Path | None) -> ShippedOutcome:
    written = (getattr(outcome, "output_path", "") or getattr(outcome, "lora_path", "")  # a training's adapter
               or (str(output) if output is not None and output.is_file() else ""))
    if not written or not Path(written).is_file():
        return ShippedOutcome(outcome, None)
    return ShippedOutcome(outcome, Path(written).read_bytes(), Path(written).name)
