"""The Ray executor, server side (issue 15): the same `WorkRunner` seam as the local `WorkerPool`,
with one long-lived `DeviceActor` per GPU of a Ray cluster instead of one process per local device,
on the kit's Ray plumbing (``services/kit/ray``: ``ActorSet`` connects, keeps the slots, streams,
cancels, retries; render uses the same). What is inference's own lives here:

- Placement: a free actor that already holds the job's model first (the affinity key: the model
  id, or the face models), else any free one; recorded on the job (``status.placement``: executor
  "ray", node id, logical GPU).
- Files: the work's input files travel with it; the output's bytes come back and are written where
  the handler expects them.
- Progress: the actor's stream carries the worker protocol's `TaskEvent`s, which become job events
  exactly as a local worker's pipe messages do; errors keep the work's code and reason.
- Kept latents: a generation's actor sends its latents back once denoised (`LatentsKept`); they
  are stored through the storage service (a service object, not the actor node's disk) until the
  job is done, and a retry (on any node, any replica) gets their URL and skips denoising.
- Stalls: an actor silent for ``worker_stall_timeout_seconds`` is killed and the attempt fails
  WORKER_STALLED (retried, attempts counted), as a local worker; cancel grace likewise
  ``worker_cancel_grace_seconds``.

Imported only when ``VIARTE_INFERENCE_EXECUTOR=ray``: the server process then imports ray (never
torch; the actors import the model stack in their own processes).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from services.inference.reasons import Reason
from services.inference.worker.pool import EventFn, WorkRunner, _error
from services.inference.worker.protocol import (
    FaceSwapOutcome,
    FaceSwapWork,
    GenerationWork,
    LatentsKept,
    TaskEvent,
    TrainingOutcome,
    TrainingWork,
    Work,
    WorkerSetup,
)
from services.inference.worker.ray_actor import PARTNER_KIND, DeviceActor, ShippedOutcome
from services.kit.errors import ServiceError
from services.kit.jobs import JobCancelled, RetryableJobError, RunningJob
from services.kit.logs import get_logger
from services.kit.ray.actors import ActorSet, ActorSlot
from services.kit.storage_client import StorageClient

__all__ = ["RAY_UNAVAILABLE", "RayRunner"]

_log = get_logger("viarte.inference.ray")
OutcomeT = TypeVar("OutcomeT")
RAY_UNAVAILABLE = Reason.RAY_UNAVAILABLE.value


def _model_key(work: Work[Any]) -> str:
    """What a work needs warm on the actor (the affinity key)."""
    if isinstance(work, GenerationWork):
        return work.spec.model_id
    if isinstance(work, TrainingWork):
        return work.model_id  # the warm pipeline lends its VAE and text encoder to the training
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
    if isinstance(work, TrainingWork) and isinstance(outcome, TrainingOutcome):
        path = Path(work.output_dir) / "lora" / shipped.output_name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(shipped.output)
        return replace(outcome, lora_path=str(path))
    if isinstance(work, FaceSwapWork) and isinstance(outcome, FaceSwapOutcome):
        path = Path(work.output_dir) / shipped.output_name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(shipped.output)
        return replace(outcome, output_path=str(path))
    path = Path(work.output_path)  # type: ignore[attr-defined]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(shipped.output)
    return outcome


def _landed(work: Work[Any], event: TaskEvent) -> TaskEvent:
    """An artifact's bytes written to the server's side of the work (its output folder), the event
    then naming that file as a local worker's would. A checkpoint is a few MB to a few hundred: written
    inline so the handler sees the file when the event arrives (events stay in order)."""
    if event.artifact_data is None:
        return event
    folder = Path(getattr(work, "output_dir", "") or tempfile.gettempdir()) / "artifacts"  # training: output_dir
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / Path(event.artifact).name
    path.write_bytes(event.artifact_data)
    return replace(event, artifact=str(path), artifact_data=None)


class RayRunner(WorkRunner):
    """``start()`` connects and creates the actors; while the cluster cannot be reached, ``slots``
    is 0 and ``check_available()`` raises UNAVAILABLE / RAY_UNAVAILABLE, and connecting is retried."""

    def __init__(self, setup: WorkerSetup, *, address: str = "", actors: int = 0,
                 connect_timeout: float = 120.0, probe_seconds: float = 1.0,
                 store: StorageClient | None = None, gpu_share: float = 1.0) -> None:
        self.setup = setup
        self.store = store  # kept latents (None: a retry denoises again)
        config = setup.config
        self.actors = ActorSet(DeviceActor, (setup,), reason=RAY_UNAVAILABLE, address=address, count=actors,
                               connect_timeout=connect_timeout, probe_seconds=probe_seconds,
                               cancel_grace=config.worker_cancel_grace_seconds,
                               stall_seconds=config.worker_stall_timeout_seconds,
                               gpu_share=gpu_share)

    @property
    def slots(self) -> int:
        return self.actors.slots

    @property
    def slots_list(self) -> list[ActorSlot]:
        return self.actors.slots_list

    def check_available(self) -> None:
        self.actors.check_available()

    async def start(self) -> None:
        await self.actors.start()

    async def stop(self) -> None:
        await self.actors.stop()

    @property
    def max_devices(self) -> int:
        """``devices: 2`` (CFG-parallel) needs two live actors."""
        return min(2, self.actors.slots)

    async def _acquire(self, work: Work[Any], job: RunningJob | None, key: str) -> list[ActorSlot]:
        """One actor, or two for a CFG-parallel generation that still has to denoise (a retry
        resuming from kept latents only decodes: one is enough)."""
        if isinstance(work, GenerationWork) and work.devices > 1 and not work.kept_latents_url:
            return await self.actors.acquire_several(job, 2, key)
        return [await self.actors.acquire(job, key)]

    async def run(self, work: Work[OutcomeT], on_event: EventFn, job: RunningJob | None = None) -> OutcomeT:
        self.check_available()
        key = _model_key(work)
        kept = _latents_key(work) if job is not None and self.store is not None else ""
        if kept:
            work = await self._with_kept_latents(work, kept)
        slots = await self._acquire(work, job, key)
        slot, partner = slots[0], (slots[1] if len(slots) > 1 else None)
        keeping: list[asyncio.Future[None]] = []
        retryable = False
        partnering: asyncio.Future[Any] | None = None
        partner_task = uuid.uuid4().hex
        try:
            if job is not None:
                await job.place(executor="ray", node=",".join(dict.fromkeys(s.node for s in slots)),
                                device=",".join(s.gpu for s in slots))
            task_id = uuid.uuid4().hex
            files = await asyncio.to_thread(_input_files, work)
            payload: dict[str, Any] = {"work": work, "files": files}
            if partner is not None:
                payload["partner"] = (partner.actor, partner_task)
                partnering = asyncio.ensure_future(self._partner(partner, partner_task, work, job, key))
            stream = slot.actor.run.options(num_returns="streaming").remote(task_id, work.kind, payload)

            def handle(message: Any) -> dict[str, Any] | None:
                if isinstance(message, TaskEvent):
                    on_event(_landed(work, message))
                    return None
                if isinstance(message, LatentsKept):
                    keeping.append(asyncio.ensure_future(self._keep(kept, message.data)))
                    return None
                if message["event"] == "cancelled":
                    raise JobCancelled(job.id if job is not None else task_id)
                if message["event"] == "error":
                    if message.get("retryable"):
                        raise RetryableJobError(_error(message["failed"]))
                    raise _error(message["failed"])
                return dict(message)

            try:
                done = await self.actors.stream(slot, task_id, stream, job, handle)
            except BaseException:
                if partnering is not None and partner is not None:
                    # The partner's own failure (its node died, its load failed) explains the leader's.
                    await _partner_failure(partnering, partner, partner_task)
                raise
            outcome: OutcomeT = await asyncio.to_thread(_unpack, work, done["shipped"])
            slot.loaded = set(getattr(outcome, "loaded_models", ())) or slot.loaded | {key}
            return outcome
        except RetryableJobError:
            retryable = True
            raise
        finally:
            if partnering is not None and partner is not None:
                partner.actor.cancel.remote(partner_task)  # ended anyway (never left waiting)
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(asyncio.shield(partnering), 30)
            self.actors.release(slot)
            # Stored before the attempt ends, so that its retry (on any replica) finds them; dropped
            # once no attempt needs them any more (done, failed for good or cancelled).
            for saving in keeping:
                with contextlib.suppress(Exception):
                    await saving
            if kept and not retryable:
                await self._drop(kept)

    async def _partner(self, slot: ActorSlot, task_id: str, work: Work[Any], job: RunningJob | None,
                       key: str) -> dict[str, Any]:
        """The partner's task: it loads the model and answers the leader's passes until the leader
        ends it; its slot frees as soon as it ends (the leader still decodes and encodes)."""
        stream = slot.actor.run.options(num_returns="streaming").remote(task_id, PARTNER_KIND, {"work": work})

        def handle(message: Any) -> dict[str, Any] | None:
            if not isinstance(message, dict):
                return None  # its own progress: the job's events are the leader's
            if message["event"] == "error":
                raise _error(message["failed"])
            return dict(message)

        try:
            # Silent by design while it serves (its passes answer the leader, whose own stream the
            # stall watchdog keeps watching): no stall limit of its own.
            done = await self.actors.stream(slot, task_id, stream, job, handle, stall_seconds=0.0)
            if done["event"] == "done":
                slot.loaded = slot.loaded | {key}
            return done
        finally:
            self.actors.release(slot)

    async def _with_kept_latents(self, work: Work[OutcomeT], kept: str) -> Work[OutcomeT]:
        assert self.store is not None and isinstance(work, GenerationWork)
        try:
            url = await self.store.resolve_object(kept)
        except ServiceError as exc:  # storage down: denoise again rather than fail the job
            _log.warning("kept_latents_unreadable", key=kept, error=exc.message)
            url = None
        if url:
            _log.info("kept_latents_resume", key=kept)
        changed: Work[OutcomeT] = replace(work, kept_latents_url=url or "", ship_latents=True)  # type: ignore[assignment]
        return changed

    async def _keep(self, kept: str, data: bytes) -> None:
        assert self.store is not None
        try:
            await self.store.put_object(kept, data)
        except ServiceError as exc:  # a retry then denoises again
            _log.warning("kept_latents_not_stored", key=kept, error=exc.message)

    async def _drop(self, kept: str) -> None:
        assert self.store is not None
        try:
            await self.store.delete_object(kept)
        except ServiceError as exc:
            _log.warning("kept_latents_not_deleted", key=kept, error=exc.message)


async def _partner_failure(partnering: asyncio.Future[Any], slot: ActorSlot, task_id: str) -> None:
    """Raises the partner's own failure when it has one (its actor or node died: retryable; its
    load failed: that error), within a bound; else returns and the leader's failure stands."""
    slot.actor.cancel.remote(task_id)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(partnering), 30)
    if partnering.done() and not partnering.cancelled() and partnering.exception() is not None:
        raise partnering.exception()  # type: ignore[misc]


def _latents_key(work: Work[Any]) -> str:
    """Where a generation's kept latents live (a storage service object): per job and spec, so an
    attempt never resumes from another request's latents."""
    if not isinstance(work, GenerationWork):
        return ""
    return f"kept-latents/{work.job_id}/{work.spec.fingerprint()}"
