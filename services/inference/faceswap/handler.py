"""The face swap job (kind ``face_swap``), server side: never loads a model.

`FaceSwapHandler` is the job service's handler: fetch the inputs from storage on behalf of the
owner, hand a `FaceSwapWork` to a `FaceSwapRunner`, forward its progress as job events, store the
output and return the `FaceSwapResult`. In the service the runner is `PoolRunner`: the inference
device workers (one process per device holds every model, face models included).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import Protocol

from services.inference.faceswap.engine import FaceSwapCancelled
from services.inference.worker.pool import WorkRunner
from services.inference.worker.protocol import FaceSwapOutcome, FaceSwapWork, TaskEvent
from services.kit.jobs import JobCancelled, RunningJob
from services.kit.storage_client import StorageClient
from viarte.inference.v1 import face_swap_pb2
from viarte.type.v1 import asset_pb2, job_pb2

__all__ = ["KIND", "FaceSwapHandler", "FaceSwapRunner", "PoolRunner"]

KIND = FaceSwapWork.kind


class FaceSwapRunner(Protocol):
    """Where a face swap work runs; a cancel meanwhile raises `JobCancelled` or `FaceSwapCancelled`."""

    async def run(self, work: FaceSwapWork, job: RunningJob) -> FaceSwapOutcome: ...

    async def close(self) -> None: ...


class PoolRunner:
    """Runs the work on the inference service's device workers."""

    def __init__(self, pool: WorkRunner) -> None:
        self.pool = pool

    async def run(self, work: FaceSwapWork, job: RunningJob) -> FaceSwapOutcome:
        def forward(event: TaskEvent) -> None:
            job.emit(job_pb2.Progress.FromString(event.progress), droppable=event.droppable, time_us=event.time_us)

        return await self.pool.run(work, forward, job)

    async def close(self) -> None:
        pass  # the pool belongs to the server


class FaceSwapHandler:
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
