"""What a running job looks like to the code that executes it, and the executor seam.

The scheduler hands each job to an :class:`Executor`. Today executors run in this process (a
coroutine per job that may talk to local worker processes); a Ray executor would implement the
same two members (``slots`` and ``execute``) with actors holding ``num_gpus``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol, TypeVar, runtime_checkable

from services.kit.errors import ServiceError
from services.kit.jobs.record import JobRecord
from services.kit.logs import get_logger
from viarte.type.v1 import job_pb2

__all__ = [
    "Executor",
    "Handler",
    "HandlerExecutor",
    "JobCancelled",
    "RetryableJobError",
    "RunningJob",
    "cancel_all",
]

T = TypeVar("T")
_log = get_logger("viarte.jobs")


class JobCancelled(Exception):
    """Raised by a handler that stopped because its job was cancelled."""


class RetryableJobError(Exception):
    """A failure worth another attempt (worker crash, lost device): the job is re-queued while
    attempts remain, else it fails with ``error``."""

    def __init__(self, error: ServiceError) -> None:
        super().__init__(str(error))
        self.error = error


class RunningJob:
    """Handed to the executor: the job's inputs, a non-blocking event sink and the cancel flag."""

    def __init__(self, record: JobRecord, sink: Callable[[job_pb2.Progress, bool, int | None], None]) -> None:
        self.record = record
        self._sink = sink
        self._cancel = asyncio.Event()
        self._callbacks: list[Callable[[], None]] = []
        self._flush: Callable[[], Awaitable[None]] | None = None
        self._place: Callable[[job_pb2.Placement, job_pb2.Progress], Awaitable[None]] | None = None
        self.placement: job_pb2.Placement | None = None
        # The stage of the latest emitted event: the placement event keeps it (stage durations).
        self._stage: job_pb2.Stage = job_pb2.STAGE_UNSPECIFIED

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def owner(self) -> str:
        return self.record.owner

    @property
    def kind(self) -> str:
        return self.record.kind

    @property
    def parameters(self) -> bytes:
        return self.record.parameters

    @property
    def attempt(self) -> int:
        return self.record.attempts

    def emit(self, progress: job_pb2.Progress, *, droppable: bool = False, time_us: int | None = None) -> None:
        """Records a progress event. Never blocks: events are stored and fanned out in order by a
        writer task; ``droppable`` ones (previews) are dropped if the writer falls behind.
        ``time_us``: when it happened (e.g. in a worker process); default now."""
        if progress.stage:
            self._stage = progress.stage
        self._sink(progress, droppable, time_us)

    async def flush(self) -> None:
        """Waits until every emitted event is stored and published."""
        if self._flush is not None:
            await self._flush()

    async def place(self, *, executor: str, node: str, device: str) -> None:
        """Records where this attempt runs, once the executor has chosen a device: the job's
        ``status.placement`` and a RUNNING event carrying ``placement``, so watchers see it (in
        order with the emitted events; returns once stored). Best effort: a database hiccup here
        costs the display, never the job."""
        self.placement = job_pb2.Placement(executor=executor, node=node, device=device)
        if self._place is not None:
            progress = job_pb2.Progress(stage=self._stage, message=f"running on {node} ({device})")
            await self._place(self.placement, progress)

    # -- cancellation ---------------------------------------------------------------------------
    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def raise_if_cancelled(self) -> None:
        if self._cancel.is_set():
            raise JobCancelled(self.id)

    async def wait_cancelled(self) -> None:
        await self._cancel.wait()

    async def unless_cancelled(self, work: Awaitable[T], *, release: Callable[[T], None] | None = None) -> T:
        """Awaits ``work``; a cancel meanwhile stops it (cancelled and awaited) and raises
        :class:`JobCancelled` at once instead of after the work. A result that arrived anyway goes to
        ``release`` (e.g. a worker back to its pool) so nothing taken is lost."""
        task = asyncio.ensure_future(work)
        cancelled = asyncio.ensure_future(self._cancel.wait())
        try:
            await asyncio.wait({task, cancelled}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            cancelled.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self.cancelled:
            if release is not None and task.done() and not task.cancelled() and task.exception() is None:
                release(task.result())
            raise JobCancelled(self.id)
        return task.result()

    def on_cancel(self, callback: Callable[[], None]) -> None:
        """Runs ``callback`` (at once if already cancelled) when the owner cancels the job."""
        if self._cancel.is_set():
            callback()
        else:
            self._callbacks.append(callback)

    def _request_cancel(self) -> None:
        if self._cancel.is_set():
            return
        self._cancel.set()
        for callback in self._callbacks:
            callback()


Handler = Callable[[RunningJob], Awaitable[bytes]]


@runtime_checkable
class Executor(Protocol):
    """Runs one job to completion and returns its serialised result message.

    Raise :class:`JobCancelled` after honouring a cancel, :class:`RetryableJobError` for a failure
    worth a retry, ``ServiceError`` for a failure the owner should see; anything else fails the job
    with INTERNAL."""

    @property
    def slots(self) -> int: ...

    async def execute(self, job: RunningJob) -> bytes: ...


class HandlerExecutor:
    """In-process executor: one coroutine handler per job kind, at most ``slots`` jobs at once
    (a callable when the count changes: the Ray executor's live actors)."""

    def __init__(self, handlers: Mapping[str, Handler], slots: int | Callable[[], int] = 1) -> None:
        self._handlers = dict(handlers)
        self._slots = slots

    @property
    def slots(self) -> int:
        return self._slots() if callable(self._slots) else self._slots

    def add_handler(self, kind: str, handler: Handler) -> None:
        self._handlers[kind] = handler

    async def execute(self, job: RunningJob) -> bytes:
        """The kind's handler. An unexpected OSError (a file gone, a full disk; a TimeoutError is no
        I/O failure) becomes a retryable UNAVAILABLE IO_FAILED (``ServiceError.io_failed``): retried
        like a worker crash, then a clear reason, never a bare INTERNAL; its path and trace are logged."""
        handler = self._handlers.get(job.kind)
        if handler is None:
            raise ServiceError.internal("NO_HANDLER", f"no handler for job kind {job.kind!r}")
        try:
            return await handler(job)
        except OSError as exc:
            if isinstance(exc, TimeoutError):
                raise
            _log.warning("job_io_failed", job_id=job.id, kind=job.kind, exc_info=exc)
            raise RetryableJobError(ServiceError.io_failed(exc)) from exc


async def cancel_all(tasks: Sequence[asyncio.Task[None]]) -> None:
    """Cancels the tasks and waits until each has ended."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
