"""The actor side of a Ray executor (issue 15): ``TaskActor`` runs one task at a time on its device
(in a thread, so ``info`` and ``cancel`` answer meanwhile) and streams the task's messages back.

A subclass implements ``work(task, kind, payload)``: it reports progress with ``task.report(dict)``,
checks ``task.cancelled`` between frames or batches (raising ``TaskCancelled``), writes files under
``task.folder`` (removed after the task) and returns the final message's fields. The stream then
ends with ``{"event": "done", ...}``, ``{"event": "cancelled"}`` or ``{"event": "error", "message"}``
(a subclass may say more about an error: ``failure``). Progress messages are the subclass's own
(render: dicts; inference: its worker protocol's ``TaskEvent``s); only the final one must be a dict.
Runs in a Ray worker process: imports ray lazily, never at module level of a server.
"""

from __future__ import annotations

import os
import queue
import shutil
import tempfile
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["FINAL_EVENTS", "ActorTask", "TaskActor", "TaskCancelled", "is_final"]

FINAL_EVENTS = ("done", "cancelled", "error")


def is_final(message: Any) -> bool:
    return isinstance(message, dict) and message.get("event") in FINAL_EVENTS


class TaskCancelled(Exception):
    """The task saw its cancel flag."""


@dataclass
class ActorTask:
    id: str
    folder: Path
    messages: queue.SimpleQueue[Any] = field(default_factory=queue.SimpleQueue)
    cancelled: threading.Event = field(default_factory=threading.Event)

    def report(self, message: Any) -> None:
        self.messages.put(message)

    def raise_if_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise TaskCancelled(self.id)


class TaskActor:
    def __init__(self) -> None:
        import ray

        self.scratch = Path(tempfile.mkdtemp(prefix="viarte-actor-"))
        self.node = ray.get_runtime_context().get_node_id()
        gpus = [str(g) for g in ray.get_gpu_ids()]
        self.gpu = f"gpu:{','.join(gpus)}" if gpus else "cpu"
        self._tasks: dict[str, ActorTask] = {}
        self._early_cancels: deque[str] = deque(maxlen=256)
        self._lock = threading.Lock()
        self._device = threading.Lock()

    def loaded(self) -> list[str]:
        """What this actor holds warm (the affinity keys)."""
        return []

    def info(self) -> dict[str, Any]:
        return {"node": self.node, "gpu": self.gpu, "pid": os.getpid(), "loaded": self.loaded()}

    def cancel(self, task_id: str) -> None:
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                self._early_cancels.append(task_id)  # overtook its run: remembered (bounded)
        if task is not None:
            task.cancelled.set()

    def work(self, task: ActorTask, kind: str, payload: Any) -> dict[str, Any]:
        raise NotImplementedError

    def failure(self, task: ActorTask, exc: Exception) -> dict[str, Any]:
        """The final message for a work that raised ``exc`` (not ``TaskCancelled``)."""
        return {"event": "error", "message": f"{type(exc).__name__}: {exc}"[:2000]}

    def run(self, task_id: str, kind: str, payload: Any) -> Iterator[list[Any]]:
        """A streaming generator: lists of messages (whatever queued up while the previous list
        travelled goes as one object), the last one ending the task."""
        task = ActorTask(task_id, Path(tempfile.mkdtemp(prefix="task-", dir=self.scratch)))
        with self._lock:
            if task_id in self._early_cancels:
                task.cancelled.set()
            self._tasks[task_id] = task
        thread = threading.Thread(target=self._task, args=(task, kind, payload), daemon=True, name=f"task-{task_id[:8]}")
        thread.start()
        try:
            while True:
                batch = [task.messages.get()]
                while True:
                    try:
                        batch.append(task.messages.get_nowait())
                    except queue.Empty:
                        break
                yield batch
                if is_final(batch[-1]):
                    return
        finally:
            task.cancelled.set()  # the caller went away: stop the task at its next check
            thread.join()
            with self._lock:
                self._tasks.pop(task_id, None)
            shutil.rmtree(task.folder, ignore_errors=True)

    def _task(self, task: ActorTask, kind: str, payload: Any) -> None:
        try:
            with self._device:
                task.raise_if_cancelled()
                final = {"event": "done"} | self.work(task, kind, payload)
        except TaskCancelled:
            final = {"event": "cancelled"}
        except Exception as exc:
            final = self.failure(task, exc)
        task.report(final)
