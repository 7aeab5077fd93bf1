"""The face swap job (kind ``face_swap``): server-side handler + worker-side work.

Split cog-style:
- `run_face_swap_work(engine, work, ...)` is the worker-side part on local files (models loaded
  once per worker). It checks the source face FIRST, so a source without a face fails the job with
  FAILED_PRECONDITION NO_FACE_IN_SOURCE before any frame is decoded (the server process never
  loads models, so Create cannot check faces itself).
- `FaceSwapJobHandler` is the async handler the job service runs: fetch inputs from storage on
  behalf of the owner, hand the work to a `FaceSwapRunner` (a worker process, or a thread for
  tests and benches), forward progress as job events, store the output, return the result.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Protocol

import grpc
import numpy as np
from numpy.typing import NDArray

from services.inference.faceswap.engine import (
    DEFAULT_SIMILARITY_THRESHOLD,
    FaceSelector,
    FaceSwapCancelled,
    FaceSwapEngine,
    SelectorMode,
    SourceFace,
    SwapStats,
)
from services.inference.faceswap.media import decode_image
from services.inference.faceswap.pipeline import Progress, swap_image, swap_video
from services.inference.faceswap.settings import FaceSwapSettings, load_engine
from services.kit.errors import ServiceError
from services.kit.jobs import JobCancelled, RunningJob
from services.kit.storage_client import StorageClient
from viarte.inference.v1 import face_swap_pb2
from viarte.type.v1 import asset_pb2, job_pb2

__all__ = [
    "KIND",
    "FaceSwapJobHandler",
    "FaceSwapOutcome",
    "FaceSwapRunner",
    "FaceSwapWork",
    "PoolRunner",
    "ProcessRunner",
    "ProgressEvents",
    "ThreadRunner",
    "prepare_swap",
    "result_proto",
    "run",
    "run_face_swap_work",
    "selector_mode",
    "swap_generated_frames",
]

KIND = "face_swap"
_EMIT_INTERVAL = 0.1  # seconds between stored progress events (first and last always go out)


# -- shared helpers (also used by the generation job's auto face swap) -------------------------
def selector_mode(options: face_swap_pb2.FaceSwapOptions) -> SelectorMode:
    return {
        face_swap_pb2.FACE_SELECTOR_MODE_INDEX: SelectorMode.INDEX,
        face_swap_pb2.FACE_SELECTOR_MODE_REFERENCE: SelectorMode.REFERENCE,
    }.get(options.selector, SelectorMode.ALL)


def prepare_swap(
    engine: FaceSwapEngine,
    options: face_swap_pb2.FaceSwapOptions,
    source_image: NDArray[np.uint8],
    reference_image: NDArray[np.uint8] | None = None,
) -> tuple[SourceFace, FaceSelector]:
    """The source identity and the selector; NO_FACE_IN_SOURCE / NO_FACE_IN_REFERENCE errors."""
    source = engine.source_face(source_image)
    mode = selector_mode(options)
    reference = None
    if mode is SelectorMode.REFERENCE:
        if reference_image is None:
            raise ServiceError.invalid_argument("INVALID_PARAMETERS", "REFERENCE mode needs a reference face image")
        reference = engine.reference_embedding(reference_image)
    threshold = options.similarity_threshold or DEFAULT_SIMILARITY_THRESHOLD
    return source, FaceSelector(mode=mode, index=options.face_index, reference=reference, threshold=threshold)


def result_proto(stats: SwapStats, asset_id: str = "") -> face_swap_pb2.FaceSwapResult:
    return face_swap_pb2.FaceSwapResult(
        asset_id=asset_id,
        frame_count=stats.frame_count,
        frames_swapped=stats.frames_swapped,
        frames_without_face=stats.frames_without_face,
        faces_swapped=stats.faces_swapped,
    )


def swap_generated_frames(
    engine: FaceSwapEngine,
    frames: list[NDArray[np.uint8]],
    options: face_swap_pb2.FaceSwapOptions,
    source_image: bytes,
    reference_image: bytes | None = None,
    on_frame: Callable[[int, int], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> tuple[list[NDArray[np.uint8]], face_swap_pb2.FaceSwapResult]:
    """Auto face swap of a generation job: RGB frames in, swapped frames + summary out.

    `on_frame(i, n)` after each frame (stage FACE_SWAP, frame i of n); `FaceSwapCancelled` when
    `should_cancel()` turns true."""
    source_rgb = decode_image(source_image)[0]
    reference_rgb = decode_image(reference_image)[0] if reference_image else None
    source, selector = prepare_swap(engine, options, source_rgb, reference_rgb)
    stats = SwapStats()
    total = len(frames)
    callback = (lambda i, _s: on_frame(i, total)) if on_frame is not None else None
    out = list(engine.swap_frames(frames, source, selector, on_frame=callback, should_cancel=should_cancel, stats=stats))
    return out, result_proto(stats)


# -- the worker-side work ---------------------------------------------------------------------
@dataclass(frozen=True)
class FaceSwapWork:
    """Everything a worker needs, as local files (picklable)."""

    target_path: str
    target_is_video: bool
    source_path: str
    output_dir: str
    options: bytes  # FaceSwapOptions
    # As storage sniffed and recorded it: ffmpeg opens the target as this type only.
    target_content_type: str
    reference_path: str = ""


@dataclass(frozen=True)
class FaceSwapOutcome:
    output_path: str
    content_type: str
    suffix: str
    frame_count: int
    frames_swapped: int
    frames_without_face: int
    faces_swapped: int


def _read_rgb(path: str) -> NDArray[np.uint8]:
    return decode_image(Path(path).read_bytes())[0]


def run_face_swap_work(
    engine: FaceSwapEngine,
    work: FaceSwapWork,
    on_progress: Callable[[Progress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> FaceSwapOutcome:
    # 1. identities first: a source without a face fails before any frame is decoded
    options = face_swap_pb2.FaceSwapOptions.FromString(work.options)
    reference = _read_rgb(work.reference_path) if work.reference_path else None
    source, selector = prepare_swap(engine, options, _read_rgb(work.source_path), reference)
    # 2. swap: a video frame by frame through ffmpeg pipes, or one image
    if work.target_is_video:
        output = Path(work.output_dir) / "swapped.mp4"
        result = swap_video(
            engine, Path(work.target_path), work.target_content_type, output, source, selector, on_progress=on_progress, should_cancel=should_cancel
        )
        stats, content_type, suffix = result.stats, "video/mp4", ".mp4"
    else:
        data, content_type, suffix, stats = swap_image(engine, Path(work.target_path).read_bytes(), source, selector)
        output = Path(work.output_dir) / f"swapped{suffix}"
        output.write_bytes(data)
        if on_progress is not None:
            on_progress(Progress("face_swap", 1, 1))
    return FaceSwapOutcome(
        str(output), content_type, suffix, stats.frame_count, stats.frames_swapped, stats.frames_without_face, stats.faces_swapped
    )


# -- progress: pipeline ticks -> job events ------------------------------------------------------
_STAGES = {"face_swap": job_pb2.STAGE_FACE_SWAP, "encoding": job_pb2.STAGE_ENCODING}


class ProgressEvents:
    """Turns pipeline ticks into job `Progress` events; per-frame events are throttled to one per
    0.1 s (the first and the last frame always go out) so long videos do not flood the event log."""

    def __init__(self, emit: Callable[[job_pb2.Progress], None]) -> None:
        self._emit = emit
        self._last = 0.0

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        if p.stage == "face_swap" and 1 < p.frame < p.total_frames and now - self._last < _EMIT_INTERVAL:
            return
        self._last = now
        fraction = 0.05 + 0.85 * p.frame / max(p.total_frames, 1) if p.stage == "face_swap" else 0.92
        self._emit(job_pb2.Progress(
            stage=_STAGES[p.stage], frame=p.frame, total_frames=p.total_frames, fps=p.fps, fraction=fraction
        ))


def _threadsafe_emit(job: RunningJob) -> Callable[[job_pb2.Progress], None]:
    """`job.emit` callable from any thread (RunningJob lives on the event loop)."""
    loop = asyncio.get_running_loop()

    def emit(progress: job_pb2.Progress) -> None:
        loop.call_soon_threadsafe(job.emit, progress)

    return emit


# -- the task in the inference worker (worker/tasks.py: kind "face_swap" -> run) ----------------
def run(ctx: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """Worker task: `payload` holds the `FaceSwapWork` fields; the engine is the worker's one
    (in `ctx.resources`, shared with the generation job's auto face swap)."""
    from services.inference.faceswap.generation_hook import worker_engine
    from services.inference.worker.protocol import TaskCancelled

    work = FaceSwapWork(**payload)
    try:
        outcome = run_face_swap_work(worker_engine(ctx), work, ProgressEvents(ctx.emit), lambda: bool(ctx.cancelled))
    except FaceSwapCancelled:
        raise TaskCancelled(ctx.task_id) from None
    return asdict(outcome)


# -- runners: where the work runs -------------------------------------------------------------
class FaceSwapRunner(Protocol):
    async def run(self, work: FaceSwapWork, job: RunningJob) -> FaceSwapOutcome: ...

    async def close(self) -> None: ...


class PoolRunner:
    """Runs the work on the inference service's device workers (`WorkerPool`, kind "face_swap"):
    one process per device holds every model, face models included."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    async def run(self, work: FaceSwapWork, job: RunningJob) -> FaceSwapOutcome:
        def forward(event: Any) -> None:
            job.emit(job_pb2.Progress.FromString(event.progress), droppable=event.droppable, time_us=event.time_us)

        out = await self.pool.run(KIND, asdict(work), forward, job)
        return FaceSwapOutcome(**{f.name: out[f.name] for f in fields(FaceSwapOutcome)})

    async def close(self) -> None:
        pass  # the pool belongs to the server


class ThreadRunner:
    """Runs the work in a thread of this process with one engine (tests, benches). Jobs run one
    at a time: the models are not shared between threads."""

    def __init__(self, settings: FaceSwapSettings | None = None, engine: FaceSwapEngine | None = None) -> None:
        if settings is None and engine is None:
            raise ValueError("ThreadRunner needs settings or an engine")
        self._settings = settings
        self._engine = engine
        self._lock = asyncio.Lock()

    async def _get_engine(self) -> FaceSwapEngine:
        if self._engine is None:
            assert self._settings is not None
            self._engine = await asyncio.to_thread(load_engine, self._settings)
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


def _init_worker(settings: FaceSwapSettings, progress: Any, cancel: Any) -> None:
    global _worker_engine, _worker_error, _worker_progress, _worker_cancel
    _worker_progress, _worker_cancel = progress, cancel
    try:
        _worker_engine = load_engine(settings)
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
    """A dedicated spawned worker process holding the face engine (loaded once), for deployments
    that keep face swap off the generation workers; progress and cancel travel through a
    multiprocessing queue and event. A crashed worker fails the job and is replaced."""

    def __init__(self, settings: FaceSwapSettings) -> None:
        self._settings = settings
        self._ctx = multiprocessing.get_context("spawn")
        self._pool: ProcessPoolExecutor | None = None
        self._progress: Any = None
        self._cancel: Any = None
        self._lock = asyncio.Lock()

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._progress, self._cancel = self._ctx.Queue(), self._ctx.Event()
            self._pool = ProcessPoolExecutor(
                1, mp_context=self._ctx, initializer=_init_worker, initargs=(self._settings, self._progress, self._cancel)
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


# -- the server-side job handler ----------------------------------------------------------------
class FaceSwapJobHandler:
    """`HandlerExecutor`-compatible handler for kind ``face_swap``."""

    def __init__(self, store: StorageClient, runner: FaceSwapRunner, work_dir: Path | str | None = None) -> None:
        self.store = store
        self.runner = runner
        self.work_dir = Path(work_dir) if work_dir else None

    async def __call__(self, job: RunningJob) -> bytes:
        params = face_swap_pb2.FaceSwapParameters.FromString(job.parameters)
        if self.work_dir is not None:
            await asyncio.to_thread(self.work_dir.mkdir, parents=True, exist_ok=True)
        tmp = await asyncio.to_thread(tempfile.mkdtemp, prefix="faceswap-", dir=self.work_dir)
        try:
            work = await self._fetch(job, params, Path(tmp))
            job.raise_if_cancelled()
            try:
                outcome = await self.runner.run(work, job)
            except FaceSwapCancelled:
                raise JobCancelled(job.id) from None
            job.emit(job_pb2.Progress(stage=job_pb2.STAGE_UPLOADING, fraction=0.95))
            name = params.output_name or f"faceswap-{job.id[:8]}{outcome.suffix}"
            if not name.endswith(outcome.suffix):
                name += outcome.suffix
            asset = await self.store.store(
                job.owner, Path(outcome.output_path), name, outcome.content_type,
                {"source": "face_swap", "job_id": job.id}, request_id=f"faceswap-{job.id}",
            )
        finally:
            await asyncio.to_thread(shutil.rmtree, tmp, True)
        result: bytes = face_swap_pb2.FaceSwapResult(
            asset_id=asset.id,
            frame_count=outcome.frame_count,
            frames_swapped=outcome.frames_swapped,
            frames_without_face=outcome.frames_without_face,
            faces_swapped=outcome.faces_swapped,
        ).SerializeToString()
        return result

    async def _fetch(self, job: RunningJob, params: face_swap_pb2.FaceSwapParameters, tmp: Path) -> FaceSwapWork:
        job.emit(job_pb2.Progress(stage=job_pb2.STAGE_FETCHING_INPUTS, fraction=0.0))
        options = params.options
        source = tmp / "source"
        await self.store.fetch(job.owner, options.source_face_asset_id, source)
        reference = ""
        if options.selector == face_swap_pb2.FACE_SELECTOR_MODE_REFERENCE:
            await self.store.fetch(job.owner, options.reference_face_asset_id, tmp / "reference")
            reference = str(tmp / "reference")
        target = tmp / "target"
        asset = await self.store.fetch(job.owner, params.target_asset_id, target)
        return FaceSwapWork(
            target_path=str(target),
            target_is_video=asset.kind == asset_pb2.ASSET_KIND_VIDEO,
            target_content_type=asset.content_type,
            source_path=str(source),
            output_dir=str(tmp),
            options=options.SerializeToString(),
            reference_path=reference,
        )
