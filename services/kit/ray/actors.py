"""A set of long-lived device actors on a Ray cluster, server side (issue 15): one actor per GPU
(``num_gpus=1``), slots = live actors, affinity, probing lost actors, streaming calls with cancel.

The actor class is the service's own; it must answer ``info()`` (a dict with ``node``, ``gpu`` and
``loaded``) and ``cancel(task_id)``, and stream task messages from a ``num_returns="streaming"``
method. ``ActorSet`` does the rest:

- Connecting: ``start()`` tries once (bounded); meanwhile ``check_available()`` raises UNAVAILABLE
  with the service's ``RAY_UNAVAILABLE`` reason and the connection is retried in the background.
- Slots: only live, idle actors take work; ``acquire`` prefers one that already holds a model key,
  ``acquire_up_to`` takes several (one job split over workers) but never waits for more than one.
- Calls: ``stream`` runs one streaming call and hands its messages to a callback; a cancel asks the
  actor (``cancel``) and kills it after a grace period when it does not listen; an actor silent for
  ``stall_seconds`` is killed (WORKER_STALLED); an actor or node that dies mid-call raises
  ``RetryableJobError`` (the job layer counts attempts) and is probed until Ray has restarted it
  (``max_restarts=-1``).

Imports ray: imported only when an executor is "ray".
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import ray
import ray.exceptions

from services.kit.errors import ServiceError
from services.kit.jobs import JobCancelled, RetryableJobError, RunningJob
from services.kit.logs import get_logger

__all__ = ["ActorSet", "ActorSlot", "local_gpus", "reachable"]

_log = get_logger("viarte.ray")
T = TypeVar("T")
_INIT_LOCK = threading.Lock()


@dataclass
class ActorSlot:
    actor: Any
    node: str = ""
    gpu: str = ""
    healthy: bool = False
    busy: bool = False
    loaded: set[str] = field(default_factory=set)
    probing: asyncio.Task[None] | None = None
    pid: int = 0
    # The process this set killed: until it is gone it may still answer ``info`` (the kill is
    # asynchronous), and a probe that took that answer would hand work to a dying actor.
    killed_pid: int = 0


def local_gpus() -> int:
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


def reachable(address: str) -> None:
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


def init_ray(address: str) -> None:
    """Connects this process to the cluster once (a timed-out ray.init may still run in its thread;
    never two at once). "" starts a local Ray with one logical GPU per NVIDIA GPU."""
    with _INIT_LOCK:
        if ray.is_initialized():
            return
        reachable(address)
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_gpus=local_gpus(), include_dashboard=False, log_to_driver=False)


class ActorSet:
    """``count`` actors of ``actor_cls(*args)`` (0 = one per GPU of the cluster at connect time)."""

    def __init__(self, actor_cls: type, args: tuple[Any, ...], *, reason: str, address: str = "", count: int = 0,
                 connect_timeout: float = 120.0, probe_seconds: float = 1.0, cancel_grace: float = 10.0,
                 stall_seconds: float = 0.0, concurrency: int = 4, gpu_share: float = 1.0) -> None:
        self.actor_cls, self.args, self.reason = actor_cls, args, reason
        self.address, self.count = address, count
        self.connect_timeout, self.probe_seconds, self.cancel_grace = connect_timeout, probe_seconds, cancel_grace
        self.stall_seconds = stall_seconds  # 0 = never (a real model load is silent for minutes)
        self.concurrency = concurrency  # info/cancel answer while a task runs (threaded actor)
        # The part of one GPU each actor reserves: inference and render each keep one actor per GPU,
        # and both fit on a GPU only if their shares add up to at most 1 (Ray's scheduling, not VRAM).
        # Actors spread over nodes, so with one GPU per node (the KubeRay manifest, the dev runner)
        # each GPU gets one actor of each service. Ray fills a multi-GPU node's fractional requests
        # GPU by GPU: such nodes run one service per cluster with a share of 1 (deploy/README.md).
        self.gpu_share = gpu_share
        self.slots_list: list[ActorSlot] = []
        self.error: ServiceError | None = ServiceError.unavailable(reason, "the Ray cluster is not connected yet")
        self._changed = asyncio.Event()
        self._gathering = asyncio.Lock()  # one multi-actor acquire at a time (acquire_several)
        self._connecting: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def slots(self) -> int:
        return sum(1 for s in self.slots_list if s.healthy)

    @property
    def free(self) -> int:
        return sum(1 for s in self.slots_list if s.healthy and not s.busy)

    def check_available(self) -> None:
        if self.error is not None:
            raise self.error

    # -- connecting --------------------------------------------------------------------------------
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
            self.reason, f"the Ray cluster at {where} is unreachable: {type(exc).__name__}: {exc}"[:400],
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
        await asyncio.wait_for(asyncio.to_thread(init_ray, self.address), self.connect_timeout)
        count = self.count or int(ray.cluster_resources().get("GPU", 0))
        if count < 1:
            raise RuntimeError("the cluster declares no GPU (each node needs --num-gpus, logical on CPU)")
        if not self.slots_list:
            # Restarted by Ray after a crash or a lost node, as often as it takes; a task is never
            # retried by Ray itself (the job layer counts attempts).
            options: dict[str, Any] = {"num_gpus": self.gpu_share, "num_cpus": 0, "scheduling_strategy": "SPREAD",
                                       "max_restarts": -1, "max_task_retries": 0, "max_concurrency": self.concurrency}
            cls: Any = ray.remote(**options)(self.actor_cls)
            self.slots_list = [ActorSlot(cls.remote(*self.args)) for _ in range(count)]
        infos = await asyncio.wait_for(asyncio.gather(*(s.actor.info.remote() for s in self.slots_list)),
                                       self.connect_timeout)
        for slot, info in zip(self.slots_list, infos, strict=True):
            self._update(slot, info)
        self.error = None
        self._changed.set()
        _log.info("ray_ready", address=self.address or "local", actors=[(s.node[:12], s.gpu) for s in self.slots_list])

    @staticmethod
    def _update(slot: ActorSlot, info: dict[str, Any]) -> None:
        slot.node, slot.gpu, slot.loaded, slot.healthy = info["node"], info["gpu"], set(info["loaded"]), True
        slot.pid, slot.killed_pid = int(info.get("pid", 0)), 0

    # -- slots -------------------------------------------------------------------------------------
    async def acquire(self, job: RunningJob | None, key: str = "") -> ActorSlot:
        """A free, live actor, preferring one that holds ``key``; waits (cancellably) for one."""
        return (await self.acquire_up_to(job, 1, key))[0]

    async def acquire_up_to(self, job: RunningJob | None, most: int, key: str = "") -> list[ActorSlot]:
        """Between 1 and ``most`` free actors (those holding ``key`` first): waits for the first one
        only, so a split job never holds a slot idle while waiting for another."""
        while True:
            if job is not None:
                job.raise_if_cancelled()
            free = [s for s in self.slots_list if s.healthy and not s.busy]
            if free:
                free.sort(key=lambda s: key not in s.loaded)  # stable: holders of the key first
                taken = free[: max(1, most)]
                for slot in taken:
                    slot.busy = True
                return taken
            self._changed.clear()
            if job is None:
                await self._changed.wait()
            else:
                await job.unless_cancelled(self._changed.wait())

    async def acquire_several(self, job: RunningJob | None, count: int, key: str = "") -> list[ActorSlot]:
        """``count`` actors for one job that needs them all at once (holders of ``key`` first), kept
        as they free up; fewer (at least one) only while the cluster has fewer live actors. One such
        job gathers at a time: two of them never each hold half of what they need."""
        async with self._gathering:
            held: list[ActorSlot] = []
            try:
                while True:
                    if job is not None:
                        job.raise_if_cancelled()
                    free = sorted((s for s in self.slots_list if s.healthy and not s.busy),
                                  key=lambda s: key not in s.loaded)
                    for slot in free[: count - len(held)]:
                        slot.busy = True
                        held.append(slot)
                    for lost in [s for s in held if not s.healthy]:
                        lost.busy = False  # lost while held: back to its probe, not to this job
                        held.remove(lost)
                    if held and len(held) >= min(count, self.slots):
                        held.sort(key=lambda s: key not in s.loaded)
                        return held
                    self._changed.clear()
                    if job is None:
                        await self._changed.wait()
                    else:
                        await job.unless_cancelled(self._changed.wait())
            except BaseException:
                self.release(*held)
                raise

    def release(self, *slots: ActorSlot) -> None:
        for slot in slots:
            slot.busy = False
        self._changed.set()

    # -- calls -------------------------------------------------------------------------------------
    async def stream(self, slot: ActorSlot, task_id: str, stream: Any, job: RunningJob | None,
                     handle: Callable[[Any], T | None], *, stall_seconds: float | None = None) -> T:
        """Feeds each message of the actor's streaming call ``stream`` (lists of messages per object)
        to ``handle`` until it returns a result (or raises). An actor that sends nothing for
        ``stall_seconds`` is killed (Ray restarts it) and the attempt fails retryable WORKER_STALLED,
        as a silent local worker does (``stall_seconds`` here: this call's own limit, 0 = none)."""
        loop = asyncio.get_running_loop()
        last_seen = loop.time()
        killer: list[asyncio.TimerHandle] = []
        ended = False  # a cancel after the task's end (during the upload) must not kill the actor
        if job is not None:

            def cancel() -> None:
                if ended:
                    return
                slot.actor.cancel.remote(task_id)
                # Deaf to the flag (a model load, a C call): the actor is killed; Ray restarts it.
                killer.append(loop.call_later(self.cancel_grace, lambda: self.kill(slot, "cancel_ignored")))

            job.on_cancel(cancel)

        async def consume() -> T:
            nonlocal last_seen
            async for ref in stream:
                last_seen = loop.time()
                for message in await ref:
                    result = handle(message)
                    if result is not None:
                        return result
            raise RuntimeError("the actor's stream ended without an outcome")

        consumer = asyncio.ensure_future(consume())
        stall = self.stall_seconds if stall_seconds is None else stall_seconds
        tick = max(0.05, min(1.0, stall / 4)) if stall > 0 else None
        try:
            while True:
                done, _ = await asyncio.wait({consumer}, timeout=tick)
                if done:
                    return consumer.result()
                if stall > 0 and loop.time() - last_seen >= stall:
                    break
            # Silent (a hang in a C call, a deadlock): kill the actor rather than hold the device.
            self.kill(slot, "stalled")
            consumer.cancel()
            with contextlib.suppress(BaseException):
                await consumer
            self.lost(slot, TimeoutError("stalled"))
            if job is not None and job.cancelled:
                raise JobCancelled(job.id)
            raise RetryableJobError(ServiceError.internal(
                "WORKER_STALLED", f"the Ray actor on node {slot.node[:12]} reported nothing for {stall:g} s "
                "and was restarted"))
        except ray.exceptions.RayError as exc:
            # The actor or its node died mid-task (or the object holding a batch was lost with it).
            self.lost(slot, exc)
            if job is not None and job.cancelled:
                raise JobCancelled(job.id) from None
            raise RetryableJobError(ServiceError.internal(
                "WORKER_CRASHED", f"the Ray actor on node {slot.node[:12]} died: {type(exc).__name__}")) from None
        finally:
            ended = True
            for handle_ in killer:
                handle_.cancel()
            if not consumer.done():
                consumer.cancel()

    def kill(self, slot: ActorSlot, why: str) -> None:
        _log.warning("ray_actor_killed", reason=why, node=slot.node[:12], gpu=slot.gpu)
        slot.killed_pid = slot.pid
        ray.kill(slot.actor, no_restart=False)

    def lost(self, slot: ActorSlot, exc: BaseException) -> None:
        _log.warning("ray_actor_lost", node=slot.node[:12], gpu=slot.gpu, error=type(exc).__name__)
        slot.healthy = False
        slot.loaded = set()
        if slot.probing is None or slot.probing.done():
            slot.probing = asyncio.get_running_loop().create_task(self._probe(slot))

    async def _probe(self, slot: ActorSlot) -> None:
        """Asks the actor where it is until Ray has restarted it (on a node with a free GPU)."""
        while not self._stopping:
            try:
                info = await asyncio.wait_for(slot.actor.info.remote(), self.probe_seconds * 5)
            except (ray.exceptions.RayError, TimeoutError):
                await asyncio.sleep(self.probe_seconds)
                continue
            if slot.killed_pid and int(info.get("pid", 0)) == slot.killed_pid:
                await asyncio.sleep(self.probe_seconds)  # the killed process, not yet gone
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
