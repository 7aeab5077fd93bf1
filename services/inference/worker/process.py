"""The device worker process: receives work, runs one task at a time (the device lock), streams
events back. Runs under the multiprocessing "spawn" context, so torch is imported only here."""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from dataclasses import replace
from multiprocessing.connection import Connection
from typing import Any

from services.inference.worker.context import TaskContext
from services.inference.worker.protocol import (
    CancelTask,
    Ready,
    RunTask,
    Stop,
    TaskCancelled,
    TaskDone,
    TaskEvent,
    TaskFailed,
    WorkerSetup,
)

__all__ = ["worker_main"]


class _Sender:
    """One thread owns the sending end, so computing threads never block on the pipe.

    Events that come faster than one per `batch_seconds` leave together, as one list: one pipe
    write, one wake of the server's reader thread and event loop, one batch for the job's event
    writer, instead of one of each per training step on a core the step's own threads share (the
    per-step overhead of bench/training_overhead.py). The first event after a quiet spell and every
    other message (Ready, TaskDone, TaskFailed, ...) leave at once, taking any held events with them;
    each event keeps its own worker timestamp."""

    def __init__(self, conn: Connection, batch_seconds: float = 0.0) -> None:
        self._conn = conn
        self._batch_seconds = batch_seconds
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="worker-sender", daemon=True)
        self._thread.start()

    def send(self, message: Any) -> None:
        self._queue.put(message)

    def _run(self) -> None:
        last = -float("inf")
        while True:
            batch = [self._queue.get()]
            if isinstance(batch[0], TaskEvent):
                deadline = last + self._batch_seconds
                while isinstance(batch[-1], TaskEvent) and (wait := deadline - time.monotonic()) > 0:
                    try:
                        batch.append(self._queue.get(timeout=wait))
                    except queue.Empty:
                        break
            stop = batch[-1] is None
            if stop:
                batch.pop()
            try:
                if batch:
                    self._conn.send(batch[0] if len(batch) == 1 else batch)
            except (OSError, EOFError):
                os._exit(0)  # the server is gone
            last = time.monotonic()
            if stop:
                return

    def close(self) -> None:
        """Sends what is queued (held events included), then stops."""
        self._queue.put(None)
        self._thread.join(timeout=5)


def _failure(task_id: str, exc: BaseException) -> TaskFailed:
    """What the job error (seen by the client) says. Exception text quotes the worker's paths (temp
    and model folders), URLs and ffmpeg stderr: the client gets it scrubbed, the worker's log (its
    stderr, collected with the service's) keeps it whole."""
    import logging

    from services.kit.errors import ServiceError
    from services.kit.media_input import scrub

    if isinstance(exc, TaskCancelled):
        return TaskFailed(task_id, "CANCELLED", "CANCELLED", "cancelled", cancelled=True)
    if isinstance(exc, ServiceError):
        if exc.code.name == "INTERNAL":
            logging.getLogger(__name__).error("task %s failed: %s", task_id, exc.message)
        return TaskFailed(task_id, exc.code.name, exc.reason, scrub(exc.message, limit=500), dict(exc.metadata))
    logging.getLogger(__name__).error("task %s failed", task_id, exc_info=exc)
    if isinstance(exc, OSError) and not isinstance(exc, TimeoutError):
        # A file gone, a full disk, a missing program: a clear reason, and another attempt.
        io = ServiceError.io_failed(exc)
        return TaskFailed(task_id, io.code.name, io.reason, io.message, dict(io.metadata), retryable=True)
    return TaskFailed(task_id, "INTERNAL", "INTERNAL", scrub(f"{type(exc).__name__}: {exc}", limit=500))


def resolve_setup(setup: WorkerSetup) -> WorkerSetup:
    """"auto" device → cuda:0 when CUDA is there, else cpu; "auto" dtype → bf16 where the device
    runs it natively (a CUDA device with bf16 support; a CPU with AVX-512, where oneDNN runs bf16
    matmuls), else fp16 on CUDA and fp32 on CPU (fp16 is slow on every CPU)."""
    import torch

    device = setup.device
    if device == "auto":
        device = "cuda:0" if torch.cuda.is_available() else "cpu"
    dtype = setup.config.dtype
    if dtype == "auto":
        if device == "cpu":
            dtype = "bf16" if _cpu_runs_bf16() else "fp32"
        else:
            dtype = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    threads = setup.config.worker_threads
    if threads == 0 and device == "cpu":
        # Every core this process may run on: with OpenMP's passive waiting (openmp_env) the
        # server's event handling no longer stalls the worker's parallel regions, so no core needs
        # to be left idle for it (bench/inference_overhead.py, "defaults on both sides").
        threads = _usable_cores()
    return replace(setup, device=device, config=replace(setup.config, dtype=dtype, worker_threads=threads))


def _cpu_runs_bf16() -> bool:
    """Whether torch's bf16 matmuls run on this CPU's own instructions (oneDNN, AVX-512 and up). An
    AVX2-only CPU computes them in a slow generic loop: 256x1024 @ 1024x1024 took 920 ms in bf16
    against 31 ms in fp32 on a 2-core AVX2 EPYC, so bf16 there would make every step ~30x slower."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without oneDNN: assume no
        return False


def _usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity API on this platform
        return max(1, os.cpu_count() or 1)


def openmp_env(setup: WorkerSetup) -> dict[str, str]:
    """The OpenMP environment of a worker, from the config; effective only when set before torch
    (and so libgomp) is loaded, which is why `worker_main` sets it first. "auto" is PASSIVE on a CPU
    worker: threads that finished their share of an op sleep at once instead of spinning for a while
    (libgomp's default); a spinner holds a core the server needs to forward an event, and once the
    server preempts a thread of the next parallel region the whole region waits for it. The GPU path
    keeps the library default ("auto" never takes a machine with an NVIDIA driver for CPU-only);
    "" leaves whatever the environment says."""
    policy = setup.config.omp_wait_policy
    if policy == "auto":
        policy = "passive" if setup.device == "cpu" or (setup.device == "auto" and not _nvidia_driver()) else ""
    return {"OMP_WAIT_POLICY": policy.upper()} if policy else {}


def _nvidia_driver() -> bool:
    """Whether CUDA may be usable here, without importing torch (which would load libgomp)."""
    return os.path.exists("/proc/driver/nvidia/version") or os.path.exists("/dev/nvidiactl")


def _warm_imports() -> None:
    """Import the model stack before reporting ready, so the first job does not pay for it."""
    import diffusers
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    for name in ("TextToVideoSDPipeline", "WanPipeline", "WanImageToVideoPipeline", "StableVideoDiffusionPipeline"):
        getattr(diffusers, name)


def worker_main(conn: Connection, setup: WorkerSetup) -> None:
    import logging

    logging.basicConfig(level=logging.WARNING)
    os.environ.update(openmp_env(setup))  # before resolve_setup imports torch
    setup = resolve_setup(setup)
    if setup.config.worker_threads:
        import torch

        torch.set_num_threads(setup.config.worker_threads)
    _warm_imports()
    from services.inference.worker.functions import WORK_FUNCTIONS

    table = WORK_FUNCTIONS
    tracing: Any = None
    if setup.otlp_endpoint:
        # Only when tracing is on: the worker then exports its own spans (the SDK is light: no torch).
        import services.kit.tracing as tracing_module

        tracing = tracing_module
        tracing.configure_tracing("inference-worker", setup.otlp_endpoint)
    sender = _Sender(conn, setup.config.event_batch_seconds)
    tasks: queue.SimpleQueue[RunTask | None] = queue.SimpleQueue()
    # A task's context exists from the moment its RunTask arrives, so a cancel for a task that is
    # waiting to start is never lost; a cancel that overtakes its RunTask is remembered (bounded).
    contexts: dict[str, TaskContext] = {}
    early_cancels: deque[str] = deque(maxlen=256)
    lock = threading.Lock()
    resources: dict[str, Any] = {}

    def receive() -> None:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                os._exit(0)  # the server died: nothing left to report to
            if isinstance(message, RunTask):
                ctx = TaskContext(message.task_id, setup, sender.send, resources)
                with lock:
                    if message.task_id in early_cancels:
                        ctx._cancel.set()
                    contexts[message.task_id] = ctx
                tasks.put(message)
            elif isinstance(message, CancelTask):
                with lock:
                    known = contexts.get(message.task_id)
                    if known is None:
                        early_cancels.append(message.task_id)
                if known is not None:
                    known._cancel.set()
            elif isinstance(message, Stop):
                tasks.put(None)
                return

    threading.Thread(target=receive, name="worker-receiver", daemon=True).start()
    import torch

    cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    sender.send(Ready(os.getpid(), setup.device, tuple(sorted(table)), cuda))
    while True:
        task = tasks.get()
        if task is None:
            break
        with lock:
            ctx = contexts[task.task_id]
        if tracing is not None:
            ctx.trace = tracing.TaskTrace(
                f"worker.{task.work.kind}", task.traceparent, "worker.", **{"viarte.device": setup.device}
            )
        error = ""
        try:
            ctx.raise_if_cancelled()  # cancelled before it started: no model work at all
            fn = table.get(task.work.kind)
            if fn is None:
                raise KeyError(f"this worker has no work function for {task.work.kind!r}")
            sender.send(TaskDone(task.task_id, fn(ctx, task.work)))
        except BaseException as exc:
            failure = _failure(task.task_id, exc)
            error = failure.reason
            sender.send(failure)
        finally:
            with lock:
                contexts.pop(task.task_id, None)
            if ctx.trace is not None:
                ctx.trace.end(error)
                tracing.flush()  # the worker may be killed before a batch would leave on its own
    sender.close()
