"""The Ray executor, server side (issue 15): the same `WorkRunner` seam as the local `WorkerPool`,
with one long-lived `DeviceActor` per GPU of a Ray cluster instead of one process per local device.

- Slots: one per live actor. The scheduler claims a job from the database only while a slot is
  free, so Ray never holds a queue of its own (backpressure stays QUEUE_FULL / queue positions).
- Placement: a free actor that already holds the job's model first (no second load), else any
  free one; recorded on the job (``status.placement``: executor "ray", node id, logical GPU).
- Progress: the actor's ``run`` is a streaming generator; its batches of `TaskEvent` become job
  events exactly as a local worker's pipe messages do.
- Cancel: ``actor.cancel`` sets the task's flag, which the work function checks between denoising
  steps and frames (as locally); an actor deaf to it for ``worker_cancel_grace_seconds`` is killed
  and Ray restarts it.
- Faults: an actor or node that dies mid-task raises `RetryableJobError` (attempts are counted by
  the job layer); the actor is probed until Ray has restarted it (``max_restarts=-1``) and only
  then gets work again.

Imported only when ``VIARTE_INFERENCE_EXECUTOR=ray``: the server process then imports ray (never
torch; the actors import the model stack in their own processes).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import threading
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import ray
import ray.exceptions

from services.inference.reasons import Reason
from services.inference.worker.pool import EventFn, WorkRunner, _error
from services.inference.worker.protocol import (
    FaceSwapOutcome,
    FaceSwapWork,
    GenerationWork,
    TaskDone,
    TaskEvent,
    TaskFailed,
    Work,
    WorkerSetup,
)
from services.inference.worker.ray_actor import DeviceActor, ShippedOutcome
from services.kit import tracing
from services.kit.errors import ServiceError
from services.kit.jobs import JobCancelled, RetryableJobError, RunningJob
from services.kit.logs import get_logger

__all__ = ["RAY_UNAVAILABLE", "RayRunner"]

_log = get_logger("viarte.inference.ray")
OutcomeT = TypeVar("OutcomeT")
RAY_UNAVAILABLE = Reason.RAY_UNAVAILABLE.value
# The actor answers info/cancel while a task runs (threaded actor); tasks themselves take the
# actor's device lock, one at a time.
_ACTOR_CONCURRENCY = 4
_INIT_LOCK = threading.Lock()


@dataclass
class _Slot:
    actor: Any
    node: str = ""
    gpu: str = ""
    healthy: bool = False
    busy: bool = False
    loaded: set[str] = field(default_factory=set)
    probing: asyncio.Task[None] | None = None


def _model_key(work: Work[Any]) -> str:
    """What a work needs warm on the actor (the affinity key)."""
    if isinstance(work, GenerationWork):
        return work.spec.model_id
    return f"{work.kind}-models"


def _input_files(work: Work[Any]) -> dict[str, bytes]:
    """The work's input files, read here to travel with it (an actor may be on another node)."""
    if isinstance(work, FaceSwapWork):
        names = ["target_path", "source_path"] + (["reference_path"] if work.reference_path else [])
        return {name: Path(getattr(work, name)).read_bytes() for name in names}
    return {}


def _unpack(work: Work[Any], shipped: ShippedOutcome) -> Any:
    """Writes the shipped output where the work asked for it; the outcome then names that path."""
    outcome = shipped.outcome
    if shipped.output is None:
        return outcome
    if isinstance(work, FaceSwapWork) and isinstance(outcome, FaceSwapOutcome):
        path = Path(work.output_dir) / shipped.output_name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(shipped.output)
        return replace(outcome, output_path=str(path))
    path = Path(work.output_path)  # type: ignore[attr-defined]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(shipped.output)
    return outcome


def _local_gpus() -> int:
    """NVIDIA GPUs of this machine without torch (for a locally started Ray); at least one logical
    GPU, so a CPU dev machine runs one actor."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 1
    try:
        listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return 1
    return max(1, sum(1 for line in listed.splitlines() if line.startswith("GPU ")))


def _reachable(address: str) -> None:
    """A plain TCP connect first: ray.init retries an unreachable GCS for minutes, while a refused
    or silent address should answer RAY_UNAVAILABLE with a clear reason at once."""
    if not address or address == "auto":
        return  # "auto" finds the local node's cluster, or fails fast by itself
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=5):
            pass
    except (OSError, ValueError) as exc:
        raise ConnectionError(f"cannot connect to {address}: {exc}") from None


class RayRunner(WorkRunner):
    """``start()`` connects and creates the actors; while the cluster cannot be reached, ``slots``
    is 0 and ``check_available()`` raises UNAVAILABLE / RAY_UNAVAILABLE, and connecting is retried."""

    def __init__(self, setup: WorkerSetup, *, address: str = "", actors: int = 0,
                 connect_timeout: float = 120.0, probe_seconds: float = 1.0) -> None:
        self.setup = setup
        self.address = address
        self.actor_count = actors
        self.connect_timeout = connect_timeout
        self.probe_seconds = probe_seconds
        self.slots_list: list[_Slot] = []
        self.error: ServiceError | None = ServiceError.unavailable(RAY_UNAVAILABLE, "the Ray cluster is not connected yet")
        self._changed = asyncio.Event()
        self._connecting: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def slots(self) -> int:
        return sum(1 for s in self.slots_list if s.healthy)

    def check_available(self) -> None:
        if self.error is not None:
            raise self.error

    async def start(self) -> None:
        """Connects once (bounded); on failure the server still starts and a task keeps retrying."""
        try:
            await self._connect()
        except Exception as exc:
            self._unavailable(exc)
            self._connecting = asyncio.get_running_loop().create_task(self._reconnect())

    def _unavailable(self, exc: BaseException) -> None:
        where = self.address or "a local Ray"
        self.error = ServiceError.unavailable(
            RAY_UNAVAILABLE, f"the Ray cluster at {where} is unreachable: {type(exc).__name__}: {exc}"[:400],
            retry_after=self.connect_timeout / 4, metadata={"address": self.address})
        _log.error("ray_unavailable", address=self.address, error=f"{type(exc).__name__}: {exc}"[:400])

    async def _reconnect(self) -> None:
        delay = 1.0
        while not self._stopping:
            await asyncio.sleep(delay)
            try:
                await self._connect()
                return
            except Exception as exc:
                self._unavailable(exc)
                delay = min(delay * 2, 30.0)

    async def _connect(self) -> None:
        await asyncio.wait_for(asyncio.to_thread(self._init), self.connect_timeout)
        count = self.actor_count or int(ray.cluster_resources().get("GPU", 0))  # type: ignore[no-untyped-call]
        if count < 1:
            raise RuntimeError("the cluster declares no GPU (each node needs --num-gpus, logical on CPU)")
        if not self.slots_list:
            # Restarted by Ray after a crash or a lost node, as often as it takes; a task is never
            # retried by Ray itself (the job layer counts attempts).
            options: dict[str, Any] = {"num_gpus": 1, "num_cpus": 0, "max_restarts": -1, "max_task_retries": 0,
                                       "max_concurrency": _ACTOR_CONCURRENCY}
            cls = ray.remote(**options)(DeviceActor)
            self.slots_list = [_Slot(cls.remote(self.setup)) for _ in range(count)]
        infos = await asyncio.wait_for(asyncio.gather(*(s.actor.info.remote() for s in self.slots_list)),
                                       self.connect_timeout)
        for slot, info in zip(self.slots_list, infos, strict=True):
            self._update(slot, info)
        self.error = None
        self._changed.set()
        _log.info("ray_ready", address=self.address or "local", actors=[(s.node[:12], s.gpu) for s in self.slots_list])

    def _init(self) -> None:
        with _INIT_LOCK:  # a timed-out ray.init may still run in its thread; never two at once
            if ray.is_initialized():
                return
            _reachable(self.address)
            self._ray_init()

    def _ray_init(self) -> None:
        if self.address:
            ray.init(address=self.address, log_to_driver=False)
        else:
            ray.init(num_gpus=_local_gpus(), include_dashboard=False, log_to_driver=False)

    @staticmethod
    def _update(slot: _Slot, info: dict[str, Any]) -> None:
        slot.node, slot.gpu, slot.loaded, slot.healthy = info["node"], info["gpu"], set(info["loaded"]), True

    # -- running work ------------------------------------------------------------------------------
    async def run(self, work: Work[OutcomeT], on_event: EventFn, job: RunningJob | None = None) -> OutcomeT:
        self.check_available()
        slot = await self._acquire(job, _model_key(work))
        try:
            if job is not None:
                await job.place(executor="ray", node=slot.node, device=slot.gpu)
            outcome: OutcomeT = await self._run_on(slot, work, on_event, job)
            return outcome
        finally:
            slot.busy = False
            self._changed.set()

    async def _acquire(self, job: RunningJob | None, key: str) -> _Slot:
        """A free, live actor, preferring one that holds ``key``; waits (cancellably) for one."""
        while True:
            if job is not None:
                job.raise_if_cancelled()
            free = [s for s in self.slots_list if s.healthy and not s.busy]
            if free:
                slot = next((s for s in free if key in s.loaded), free[0])
                slot.busy = True
                return slot
            self._changed.clear()
            if job is None:
                await self._changed.wait()
            else:
                await job.unless_cancelled(self._changed.wait())

    async def _run_on(self, slot: _Slot, work: Work[Any], on_event: EventFn, job: RunningJob | None) -> Any:
        task_id = uuid.uuid4().hex
        files = await asyncio.to_thread(_input_files, work)
        stream = slot.actor.run.options(num_returns="streaming").remote(
            task_id, work, files, tracing.current_traceparent())
        killer: list[asyncio.TimerHandle] = []
        ended = False  # a cancel after the task's end (during the upload) must not kill the actor
        if job is not None:
            grace = self.setup.config.worker_cancel_grace_seconds
            loop = asyncio.get_running_loop()

            def cancel() -> None:
                if ended:
                    return
                slot.actor.cancel.remote(task_id)
                # Deaf to the flag (a model load, a C call): the actor is killed; Ray restarts it.
                killer.append(loop.call_later(grace, lambda: self._kill(slot, "cancel_ignored")))

            job.on_cancel(cancel)
        try:
            async for ref in stream:
                for message in await ref:
                    if isinstance(message, TaskEvent):
                        on_event(message)
                    elif isinstance(message, TaskDone):
                        outcome = await asyncio.to_thread(_unpack, work, message.outcome)
                        slot.loaded = set(getattr(outcome, "loaded_models", ())) or slot.loaded | {_model_key(work)}
                        return outcome
                    elif isinstance(message, TaskFailed):
                        if message.cancelled:
                            raise JobCancelled(message.task_id)
                        raise _error(message)
            raise RuntimeError("the actor's stream ended without an outcome")
        except ray.exceptions.RayError as exc:
            # The actor or its node died mid-task (or the object holding a batch was lost with it).
            self._lost(slot, exc)
            if job is not None and job.cancelled:
                raise JobCancelled(job.id) from None
            raise RetryableJobError(ServiceError.internal(
                "WORKER_CRASHED", f"the Ray actor on node {slot.node[:12]} died: {type(exc).__name__}")) from None
        finally:
            ended = True
            for handle in killer:
                handle.cancel()

    def _kill(self, slot: _Slot, why: str) -> None:
        _log.warning("ray_actor_killed", reason=why, node=slot.node[:12], gpu=slot.gpu)
        ray.kill(slot.actor, no_restart=False)

    def _lost(self, slot: _Slot, exc: BaseException) -> None:
        _log.warning("ray_actor_lost", node=slot.node[:12], gpu=slot.gpu, error=type(exc).__name__)
        slot.healthy = False
        slot.loaded = set()
        if slot.probing is None or slot.probing.done():
            slot.probing = asyncio.get_running_loop().create_task(self._probe(slot))

    async def _probe(self, slot: _Slot) -> None:
        """Asks the actor where it is until Ray has restarted it (on a node with a free GPU)."""
        while not self._stopping:
            try:
                info = await asyncio.wait_for(slot.actor.info.remote(), self.probe_seconds * 5)
            except (ray.exceptions.RayError, TimeoutError):
                await asyncio.sleep(self.probe_seconds)
                continue
            self._update(slot, info)
            _log.info("ray_actor_back", node=slot.node[:12], gpu=slot.gpu)
            self._changed.set()
            return

    async def stop(self) -> None:
        self._stopping = True
        tasks = [t for t in [self._connecting, *(s.probing for s in self.slots_list)] if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        for slot in self.slots_list:
            with contextlib.suppress(Exception):
                ray.kill(slot.actor, no_restart=True)
        self.slots_list = []
