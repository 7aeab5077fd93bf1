"""The device actor of the Ray executor (issue 15): one long-lived actor per GPU (``num_gpus=1``)
running the same work functions, model cache and task context as a local device worker
(``worker/process.py``), so both executors take one code path from typed work to outcome.

Runs in a Ray worker process (which may import torch); the server only pickles the class to create
actors, so nothing here imports torch or the model stack at module level.

Files: a work names files on the server's disk (inputs fetched from storage, the output to upload),
and an actor may run on another node. The server ships the input files' bytes along (``files``:
field name → bytes), the actor writes them to its own scratch folder and returns the output's
bytes with the outcome; the server writes them where the work asked, then stores them in S3 exactly
as after a local run.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import shutil
import tempfile
import threading
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from services.inference.worker.context import TaskContext
from services.inference.worker.protocol import TaskDone, TaskFailed, Work, WorkerSetup

__all__ = ["DeviceActor", "ShippedOutcome"]


@dataclasses.dataclass(frozen=True)
class ShippedOutcome:
    """What ``TaskDone.outcome`` carries back from an actor: the work function's outcome and the
    bytes of the file it wrote (None when it wrote none)."""

    outcome: Any
    output: bytes | None
    output_name: str = ""


class DeviceActor:
    """Holds one device and a warm model cache; runs one task at a time (the device lock) while
    ``cancel`` and ``info`` stay callable (a threaded actor, ``max_concurrency`` > 1)."""

    def __init__(self, setup: WorkerSetup) -> None:
        import ray

        from services.inference.worker.process import _warm_imports, resolve_setup

        # Ray sets CUDA_VISIBLE_DEVICES to this actor's GPU: "auto" resolves to cuda:0 there, and
        # to cpu on a CPU cluster whose nodes declare logical GPUs.
        self._scratch = Path(tempfile.mkdtemp(prefix="viarte-actor-"))
        self.setup = resolve_setup(dataclasses.replace(setup, device="auto", scratch_dir=self._scratch))
        if self.setup.config.worker_threads:
            import torch

            torch.set_num_threads(self.setup.config.worker_threads)
        _warm_imports()
        context = ray.get_runtime_context()
        self.node = context.get_node_id()
        gpus = [str(g) for g in ray.get_gpu_ids()]
        self.gpu = f"gpu:{','.join(gpus)}" if gpus else self.setup.device
        self._resources: dict[str, Any] = {}
        self._contexts: dict[str, TaskContext] = {}
        self._early_cancels: deque[str] = deque(maxlen=256)
        self._lock = threading.Lock()
        self._device = threading.Lock()

    def info(self) -> dict[str, Any]:
        """Where this actor is and what it holds (placement, affinity, health probes)."""
        cache = self._resources.get("models")
        return {"node": self.node, "gpu": self.gpu, "device": self.setup.device, "pid": os.getpid(),
                "loaded": sorted(cache.loaded_ids()) if cache is not None else []}

    def cancel(self, task_id: str) -> None:
        with self._lock:
            ctx = self._contexts.get(task_id)
            if ctx is None:
                self._early_cancels.append(task_id)  # overtook its run: remembered (bounded)
        if ctx is not None:
            ctx._cancel.set()

    def run(self, task_id: str, work: Work[Any], files: dict[str, bytes], traceparent: str = "") -> Iterator[list[Any]]:
        """A streaming generator (``num_returns="streaming"``): yields lists of protocol messages
        (``TaskEvent`` ..., then one ``TaskDone`` or ``TaskFailed``) as the task reports them.
        Batches: whatever queued up while the previous batch travelled goes as one object."""
        messages: queue.SimpleQueue[Any] = queue.SimpleQueue()
        ctx = TaskContext(task_id, self.setup, messages.put, self._resources)
        with self._lock:
            if task_id in self._early_cancels:
                ctx._cancel.set()
            self._contexts[task_id] = ctx
        thread = threading.Thread(target=self._task, args=(ctx, work, files, messages), daemon=True,
                                  name=f"task-{task_id[:8]}")
        thread.start()
        try:
            while True:
                batch = [messages.get()]
                while True:
                    try:
                        batch.append(messages.get_nowait())
                    except queue.Empty:
                        break
                yield batch
                if isinstance(batch[-1], TaskDone | TaskFailed):
                    return
        finally:
            # The caller went away (its generator was cancelled): stop the task at its next check.
            ctx._cancel.set()
            thread.join()
            with self._lock:
                self._contexts.pop(task_id, None)

    def _task(self, ctx: TaskContext, work: Work[Any], files: dict[str, bytes], messages: queue.SimpleQueue[Any]) -> None:
        from services.inference.worker.functions import WORK_FUNCTIONS
        from services.inference.worker.process import _failure

        folder = Path(tempfile.mkdtemp(prefix="task-", dir=self._scratch))
        try:
            with self._device:
                ctx.raise_if_cancelled()  # cancelled before it started: no model work at all
                fn = WORK_FUNCTIONS.get(work.kind)
                if fn is None:
                    raise KeyError(f"this actor has no work function for {work.kind!r}")
                local, output = _localise(work, files, folder)
                outcome = fn(ctx, local)
                messages.put(TaskDone(ctx.task_id, _ship_out(outcome, output)))
        except BaseException as exc:
            failure: TaskFailed = _failure(ctx.task_id, exc)
            messages.put(failure)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


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
    written = getattr(outcome, "output_path", "") or (str(output) if output is not None and output.is_file() else "")
    if not written or not Path(written).is_file():
        return ShippedOutcome(outcome, None)
    return ShippedOutcome(outcome, Path(written).read_bytes(), Path(written).name)
