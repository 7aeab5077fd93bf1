"""Face swap runners for tests only (the service runs face swap on its device workers through
`PoolRunner`): a thread of the test process, and a dedicated spawned process holding the engine.
Both implement `services.inference.faceswap.handler.FaceSwapRunner`."""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import grpc

from services.inference.faceswap.config import FaceSwapConfig
from services.inference.faceswap.engine import FaceSwapCancelled, FaceSwapEngine, load_engine
from services.inference.faceswap.worker import ProgressEvents, run_face_swap_work
from services.inference.worker.protocol import FaceSwapOutcome, FaceSwapWork
from services.kit.errors import ServiceError
from services.kit.jobs import RunningJob
from viarte.type.v1 import job_pb2


def _threadsafe_emit(job: RunningJob) -> Callable[[job_pb2.Progress], None]:
    """`job.emit` callable from any thread (RunningJob lives on the event loop)."""
    loop = asyncio.get_running_loop()

    def emit(progress: job_pb2.Progress) -> None:
        loop.call_soon_threadsafe(job.emit, progress)

    return emit


class ThreadRunner:
    """Runs the work in a thread of this process with one engine. Jobs run one at a time: the
    models are not shared between threads."""

    def __init__(self, config: FaceSwapConfig | None = None, engine: FaceSwapEngine | None = None) -> None:
        if config is None and engine is None:
            raise ValueError("ThreadRunner needs a config or an engine")
        self._config = config
        self._engine = engine
        self._lock = asyncio.Lock()

    async def _get_engine(self) -> FaceSwapEngine:
        if self._engine is None:
            assert self._config is not None
            self._engine = await asyncio.to_thread(load_engine, self._config)
        return self._engine

    async def run(self, work: FaceSwapWork, job: RunningJob) -> FaceSwapOutcome:
        async with self._lock:
            engine = await self._get_engine()
            events = ProgressEvents(_threadsafe_emit(job))
            return await asyncio.to_thread(run_face_swap_work, engine, work, events, lambda: job.cancelled)

    async def close(self) -> None:
        self._engine = None


# Worker-process globals (set by the pool initializer).
_worker_engine: FaceSwapEngine | None = None
_worker_error: ServiceError | None = None
_worker_progress: Any = None
_worker_cancel: Any = None


def _init_worker(config: FaceSwapConfig, progress: Any, cancel: Any) -> None:
    global _worker_engine, _worker_error, _worker_progress, _worker_cancel
    _worker_progress, _worker_cancel = progress, cancel
    try:
        _worker_engine = load_engine(config)
    except ServiceError as err:  # e.g. FACE_MODELS_UNAVAILABLE: reported per job, not a dead pool
        _worker_error = err


def _work_in_worker(work: FaceSwapWork) -> tuple[Any, ...]:
    """Runs in the worker; errors travel back as plain tuples (ServiceError does not pickle)."""
    try:
        if _worker_engine is None:
            raise _worker_error or ServiceError.internal("WORKER_CRASHED", "face models failed to load")
        return ("ok", run_face_swap_work(_worker_engine, work, _worker_progress.put, _worker_cancel.is_set))
    except FaceSwapCancelled:
        return ("cancelled",)
    except ServiceError as err:
        return ("error", err.code.name, err.reason, err.message, dict(err.metadata))


class ProcessRunner:
    """A dedicated spawned process holding the face engine (loaded once); progress and cancel
    travel through a multiprocessing queue and event. A crashed process fails the job and is replaced."""

    def __init__(self, config: FaceSwapConfig) -> None:
        self._config = config
        self._ctx = multiprocessing.get_context("spawn")
        self._pool: ProcessPoolExecutor | None = None
        self._progress: Any = None
        self._cancel: Any = None
        self._lock = asyncio.Lock()

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._progress, self._cancel = self._ctx.Queue(), self._ctx.Event()
            self._pool = ProcessPoolExecutor(
                1, mp_context=self._ctx, initializer=_init_worker, initargs=(self._config, self._progress, self._cancel)
            )
        return self._pool

    async def run(self, work: FaceSwapWork, job: RunningJob) -> FaceSwapOutcome:
        async with self._lock:
            pool = self._ensure_pool()
            self._cancel.clear()
            _drain(self._progress)
            future = asyncio.wrap_future(pool.submit(_work_in_worker, work))
            stop = threading.Event()
            events = ProgressEvents(_threadsafe_emit(job))
            pump = asyncio.create_task(asyncio.to_thread(self._pump, events, lambda: job.cancelled, stop))
            try:
                answer = await future
            except Exception as exc:  # the process died (BrokenProcessPool) or could not start
                await self._reset()
                raise ServiceError.internal("WORKER_CRASHED", "the face swap worker failed") from exc
            finally:
                stop.set()
                await pump
        if answer[0] == "cancelled":
            raise FaceSwapCancelled()
        if answer[0] == "error":
            _, code, reason, message, metadata = answer
            raise ServiceError(grpc.StatusCode[code], reason, message, metadata=metadata)
        outcome: FaceSwapOutcome = answer[1]
        return outcome

    def _pump(self, events: ProgressEvents, cancelled: Callable[[], bool], stop: threading.Event) -> None:
        while not stop.is_set():
            if cancelled():
                self._cancel.set()
            try:
                item = self._progress.get(timeout=0.05)
            except queue.Empty:
                continue
            events(item)

    async def _reset(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, True, cancel_futures=True)

    async def close(self) -> None:
        await self._reset()


def _drain(q: Any) -> None:
    try:
        while True:
            q.get_nowait()
    except queue.Empty:
        pass
