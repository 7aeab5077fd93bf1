"""Server side of the worker split: starts device workers, sends them typed work, turns their
events into job events and their deaths into retryable failures. Never imports torch."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from services.inference.worker.protocol import (
    CancelTask,
    Ready,
    RunTask,
    Stop,
    TaskDone,
    TaskEvent,
    TaskFailed,
    Work,
    WorkerSetup,
)
from services.kit import tracing
from services.kit.errors import ServiceError
from services.kit.jobs import JobCancelled, RetryableJobError, RunningJob
from services.kit.logs import get_logger

__all__ = ["LocalWorker", "WorkRunner", "WorkerPool"]

_log = get_logger("viarte.inference.worker")
_HOST = socket.gethostname()
EventFn = Callable[[TaskEvent], None]
OutcomeT = TypeVar("OutcomeT")
_CODES = {"INVALID_ARGUMENT", "NOT_FOUND", "FAILED_PRECONDITION", "RESOURCE_EXHAUSTED", "UNAVAILABLE",
          "INTERNAL", "DEADLINE_EXCEEDED", "PERMISSION_DENIED", "ABORTED", "OUT_OF_RANGE"}


def _error(failed: TaskFailed) -> ServiceError:
    import grpc

    code = getattr(grpc.StatusCode, failed.code) if failed.code in _CODES else grpc.StatusCode.INTERNAL
    return ServiceError(code, failed.reason, failed.message, metadata=failed.metadata)


@dataclass
class _Pending:
    future: asyncio.Future[Any]
    on_event: EventFn
    # Loop time of the last message about this task (the stall watchdog's clock).
    last_seen: float = 0.0


class LocalWorker:
    """One worker process bound to one device. Restarted lazily after a crash."""

    def __init__(self, setup: WorkerSetup, *, start_timeout: float = 120.0) -> None:
        self.setup = setup
        self._start_timeout = start_timeout
        self._ctx = multiprocessing.get_context("spawn")
        self._process: Any = None
        self._conn: Any = None
        self._send_lock = threading.Lock()
        self._pending: dict[str, _Pending] = {}
        self._ready: asyncio.Future[Ready] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.kinds: tuple[str, ...] = ()
        self.device = setup.device
        self.cuda_devices = 0
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    async def start(self) -> None:
        from services.inference.worker.process import worker_main

        self._loop = asyncio.get_running_loop()
        parent, child = self._ctx.Pipe(duplex=True)
        self._conn = parent
        self._ready = self._loop.create_future()
        self._process = self._ctx.Process(target=worker_main, args=(child, self.setup), daemon=True,
                                          name=f"viarte-worker-{self.setup.device}")
        await asyncio.to_thread(self._process.start)
        child.close()
        threading.Thread(target=self._read, args=(parent, self._process), name="worker-reader", daemon=True).start()
        ready = await asyncio.wait_for(self._ready, self._start_timeout)
        self.kinds = ready.kinds
        self.device = ready.device
        self.cuda_devices = ready.cuda_devices
        _log.info("worker_ready", pid=ready.pid, device=ready.device, kinds=list(ready.kinds))

    def _read(self, conn: Any, process: Any) -> None:
        assert self._loop is not None
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break
            # A list: events the worker's sender held back and sent together (one wake of the loop).
            batch = message if isinstance(message, list) else [message]
            self._loop.call_soon_threadsafe(self._dispatch_all, batch)
        process.join(timeout=5)
        self._loop.call_soon_threadsafe(self._on_exit, process)

    def _dispatch_all(self, messages: list[Any]) -> None:
        for message in messages:
            try:
                self._dispatch(message)
            except Exception:  # one failing callback must not drop the batch's TaskDone/TaskFailed
                _log.exception("worker_message_dispatch_failed", message=type(message).__name__)

    def _dispatch(self, message: Any) -> None:
        if isinstance(message, Ready):
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(message)
            return
        pending = self._pending.get(message.task_id)
        if pending is None:
            return
        assert self._loop is not None
        pending.last_seen = self._loop.time()
        if isinstance(message, TaskEvent):
            pending.on_event(message)
        elif isinstance(message, TaskDone):
            self._pending.pop(message.task_id, None)
            if not pending.future.done():
                pending.future.set_result(message.outcome)
        elif isinstance(message, TaskFailed):
            self._pending.pop(message.task_id, None)
            if not pending.future.done():
                exc: BaseException
                if message.cancelled:
                    exc = JobCancelled(message.task_id)
                else:
                    exc = _error(message)
                    if message.retryable:
                        exc = RetryableJobError(exc)
                pending.future.set_exception(exc)

    def _on_exit(self, process: Any) -> None:
        if process is not self._process:
            return
        code = process.exitcode
        self._process = None
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(RuntimeError(f"worker exited during start (code {code})"))
        if self._pending:
            _log.warning("worker_crashed", exit_code=code, tasks=len(self._pending))
        crash = RetryableJobError(ServiceError.internal("WORKER_CRASHED", f"the worker process died (exit code {code})"))
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(crash)
        self._pending.clear()

    def _send(self, message: Any) -> None:
        with self._send_lock:
            self._conn.send(message)

    async def run(self, work: Work[OutcomeT], on_event: EventFn, job: RunningJob | None = None) -> OutcomeT:
        """Runs `work` as one task on this worker; cancels it when ``job`` is cancelled, whenever that
        happens; kills the worker when the task stalls or ignores a cancel."""
        if job is not None:
            job.raise_if_cancelled()
        if not self.alive:
            self.restarts += 1 if self._conn is not None else 0
            await self.start()
        assert self._loop is not None
        task_id = uuid.uuid4().hex
        future: asyncio.Future[OutcomeT] = self._loop.create_future()
        pending = _Pending(future, on_event, self._loop.time())
        self._pending[task_id] = pending
        try:
            # The job's current span (job.run) becomes the parent of the worker's task span.
            await asyncio.to_thread(self._send, RunTask(task_id, work, tracing.current_traceparent()))
        except (OSError, EOFError) as exc:
            self._pending.pop(task_id, None)
            raise RetryableJobError(ServiceError.internal("WORKER_CRASHED", f"worker unreachable: {exc}")) from exc
        if job is not None:
            # Registered only once RunTask is on the pipe, so a CancelTask can never overtake it
            # (a job cancelled meanwhile gets its CancelTask sent right here).
            job.on_cancel(lambda: self._cancel(task_id))
        outcome: OutcomeT = await self._watch(task_id, pending, job)  # the work function's own type
        return outcome

    async def _watch(self, task_id: str, pending: _Pending, job: RunningJob | None) -> Any:
        """Waits for the task's outcome; a task silent for ``stall_timeout`` or still running
        ``cancel_grace`` after a cancel gets its worker killed (the device is freed either way)."""
        assert self._loop is not None
        stall, grace = self.setup.config.worker_stall_timeout_seconds, self.setup.config.worker_cancel_grace_seconds
        tick = max(0.05, min(1.0, (min(stall, grace) if stall > 0 else grace) / 4))
        cancelled_at: float | None = None
        while True:
            done, _ = await asyncio.wait({pending.future}, timeout=tick)
            if done:
                try:
                    return pending.future.result()
                except RetryableJobError:
                    if job is not None and job.cancelled:
                        raise JobCancelled(job.id) from None  # died after a cancel: never re-queue it
                    raise
            now = self._loop.time()
            if job is not None and job.cancelled:
                cancelled_at = now if cancelled_at is None else cancelled_at
                if now - cancelled_at >= grace:
                    await self._kill(task_id, "cancel_ignored")
                    raise JobCancelled(job.id)
            if stall > 0 and now - pending.last_seen >= stall:
                await self._kill(task_id, "stalled")
                if job is not None and job.cancelled:
                    raise JobCancelled(job.id)
                raise RetryableJobError(ServiceError.internal(
                    "WORKER_STALLED", f"the worker reported nothing for {stall:g} s and was restarted"))

    async def _kill(self, task_id: str, why: str) -> None:
        process, self._process = self._process, None
        self._pending.pop(task_id, None)
        _log.warning("worker_killed", reason=why, pid=process.pid if process is not None else None, task_id=task_id)
        if process is not None:
            process.kill()
            await asyncio.to_thread(process.join, 10)
        # Whatever else was pending on it is lost with the process: retry it like a crash.
        crash = RetryableJobError(ServiceError.internal("WORKER_CRASHED", f"the worker was killed ({why})"))
        for other in self._pending.values():
            if not other.future.done():
                other.future.set_exception(crash)
        self._pending.clear()

    def _cancel(self, task_id: str) -> None:
        if task_id in self._pending and self.alive:
            with contextlib.suppress(OSError, EOFError):
                self._send(CancelTask(task_id))

    async def stop(self, grace: float = 10.0) -> None:
        process = self._process
        if process is None:
            return
        with contextlib.suppress(OSError, EOFError):
            await asyncio.to_thread(self._send, Stop())
        await asyncio.to_thread(process.join, grace)
        if process.is_alive():
            process.kill()
            await asyncio.to_thread(process.join, 5)
        self._process = None


class WorkRunner:
    """Where work runs: the seam between jobs and devices. `WorkerPool`: local worker processes;
    `RayRunner` (worker/ray_runner.py): the same work on Ray actors with ``num_gpus=1``."""

    @property
    def slots(self) -> int:
        raise NotImplementedError

    @property
    def max_devices(self) -> int:
        """Devices one job may be split over (``GenerationParameters.devices``): local workers run a
        job on one device."""
        return 1

    async def run(self, work: Work[OutcomeT], on_event: EventFn, job: RunningJob | None = None) -> OutcomeT:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError


class WorkerPool(WorkRunner):
    """One local worker process per device; a work runs on the first idle one."""

    def __init__(self, setup: WorkerSetup, devices: Sequence[str] = ("cpu",)) -> None:
        self.workers = [LocalWorker(replace(setup, device=d)) for d in devices]
        self._idle: asyncio.Queue[LocalWorker] | None = None

    @property
    def slots(self) -> int:
        return len(self.workers)

    async def start(self) -> None:
        self._idle = asyncio.Queue()
        await asyncio.gather(*(w.start() for w in self.workers))
        first = self.workers[0] if len(self.workers) == 1 else None
        if first is not None and first.setup.device == "auto" and first.device == "cuda:0":
            # "auto": the first worker resolved to cuda:0; every other visible GPU gets its own.
            extra = [LocalWorker(replace(first.setup, device=f"cuda:{i}")) for i in range(1, first.cuda_devices)]
            await asyncio.gather(*(w.start() for w in extra))
            self.workers += extra
        for worker in self.workers:
            self._idle.put_nowait(worker)

    async def run(self, work: Work[OutcomeT], on_event: EventFn, job: RunningJob | None = None) -> OutcomeT:
        assert self._idle is not None, "WorkerPool.start() first"
        worker = await self._acquire(job)
        try:
            if job is not None:
                await job.place(executor="local", node=_HOST, device=worker.device)
            return await worker.run(work, on_event, job)
        finally:
            self._idle.put_nowait(worker)

    async def _acquire(self, job: RunningJob | None) -> LocalWorker:
        """The next idle worker; a job cancelled while it waits for one stops waiting."""
        assert self._idle is not None
        if job is None:
            return await self._idle.get()
        job.raise_if_cancelled()
        # asyncio.Queue.get is cancel-safe; a worker taken just as the job was cancelled goes back.
        return await job.unless_cancelled(self._idle.get(), release=self._idle.put_nowait)

    async def stop(self) -> None:
        await asyncio.gather(*(w.stop() for w in self.workers), return_exceptions=True)
