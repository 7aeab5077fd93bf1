"""The job resource shared by every job kind (generation, face swap, render, upscale): create,
get, list, cancel, watch (resuming a dropped stream), wait and run."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from viarte.client._base import Page, SyncResource, _Resource, sync
from viarte.errors import Cancelled, DeadlineExceeded, JobFailed, Unavailable, ViarteError, from_job_error
from viarte.jobs import JobProgress, JobState
from viarte.transport import _DEFAULT, call_soon_shielded

if TYPE_CHECKING:
    from viarte.client._client import AsyncClient

__all__ = ["AsyncJobs", "JobCallback", "Jobs"]

J = TypeVar("J")
P = TypeVar("P")
JobCallback = Callable[[JobProgress], None]


@dataclass(frozen=True)
class _JobSpec:
    kind: str  # "generation", "face_swap", "render", "upscale"
    service: str  # endpoint: "inference" or "render"
    stub: Any
    pb: Any
    name: str  # the RPC infix: CreateGenerationJob, ...


class AsyncJobs(_Resource, Generic[J, P]):
    """One job kind: create, get, list, cancel, watch (with resume), wait, run."""

    def __init__(self, client: AsyncClient, spec: _JobSpec) -> None:
        super().__init__(client)
        self._spec = spec

    @property
    def kind(self) -> str:
        return self._spec.kind

    def _rpc(self, verb: str) -> Any:
        stub = self._t.stub(self._spec.stub, self._spec.service)
        return getattr(stub, f"{verb}{self._spec.name}Job" + ("s" if verb == "List" else ""))

    def _req(self, verb: str, **fields: Any) -> Any:
        suffix = "s" if verb == "List" else ""
        return getattr(self._spec.pb, f"{verb}{self._spec.name}Job{suffix}Request")(**fields)

    async def create(
        self, parameters: P, *, request_id: str | None = None, priority: int = 0, timeout: Any = _DEFAULT  # noqa: ASYNC109 - a gRPC deadline
    ) -> J:
        """Queues a job. ``request_id`` (generated when omitted) makes retries and repeats safe: the
        same id returns the existing job. Cancelling the call (or Ctrl-C in the sync client) while
        its answer is on the way cancels the job it may have made."""
        req = self._req("Create", parameters=parameters, request_id=request_id or uuid.uuid4().hex, priority=priority)
        try:
            # Retried only because the request carries its request_id.
            resp = await self._t.unary(self._rpc("Create"), req, retry=bool(req.request_id), timeout=timeout)
        except (asyncio.CancelledError, KeyboardInterrupt):
            await call_soon_shielded(lambda: self._cancel_created(req))
            raise
        return resp.job  # type: ignore[no-any-return]

    async def _cancel_created(self, req: Any) -> None:
        """The server may have made the job of an interrupted Create: the same request_id names it (a
        replay returns that job, or makes it if the first never arrived), and it is cancelled."""
        job = (await self._t.unary(self._rpc("Create"), req, retry=False)).job
        await self.cancel(job.id)

    async def get(self, job_id: str, *, timeout: Any = _DEFAULT) -> J:  # noqa: ASYNC109 - a gRPC deadline
        return (await self._t.unary(self._rpc("Get"), self._req("Get", id=job_id), retry=True, timeout=timeout)).job  # type: ignore[no-any-return]

    async def list(
        self, *, state: JobState | str | None = None, page_size: int = 50, page_token: str = ""
    ) -> Page[J]:
        st = JobState.parse(state) if state is not None else JobState.UNSPECIFIED
        req = self._req("List", page_size=page_size, page_token=page_token, state=int(st))
        resp = await self._t.unary(self._rpc("List"), req, retry=True)
        return Page(list(resp.jobs), resp.next_page_token)

    async def list_all(self, *, state: JobState | str | None = None) -> AsyncIterator[J]:
        token = ""
        while True:
            page = await self.list(state=state, page_token=token)
            for job in page.items:
                yield job
            if not page.next_page_token:
                return
            token = page.next_page_token

    async def cancel(self, job_id: str) -> J:
        """Cancels a queued or running job (a finished job is returned unchanged)."""
        return (await self._t.unary(self._rpc("Cancel"), self._req("Cancel", id=job_id), retry=True)).job  # type: ignore[no-any-return]

    async def watch(
        self, job_id: str, *, after_sequence: int = 0, resume: bool = True, max_reconnects: int = 10
    ) -> AsyncIterator[JobProgress]:
        """The job's snapshot, then each event after ``after_sequence``, until a terminal state.

        When the stream drops (UNAVAILABLE, or the server closes it early), the SDK reconnects
        with ``after_sequence`` = the last sequence seen, so nothing is missed or repeated. The
        terminal update carries the final job (``update.job.result``).
        """
        last, reconnects, first = after_sequence, 0, True
        while True:
            req = self._req("Watch", id=job_id, after_sequence=last)
            progressed = False
            try:
                async for msg in self._t.unary_stream(self._rpc("Watch"), req):
                    if msg.HasField("job"):
                        snap = JobProgress.from_job(self.kind, msg.job)
                        if snap.terminal:
                            yield snap  # already finished: the snapshot carries the result
                            return
                        if first:
                            first = False
                            yield snap
                        continue
                    if msg.event.sequence <= last:
                        continue  # a replay we already handed out
                    last, progressed = msg.event.sequence, True
                    update = JobProgress.from_event(self.kind, job_id, msg.event)
                    if update.terminal:
                        yield update.with_job(await self.get(job_id))
                        return
                    yield update
            except Unavailable as err:
                if not resume:
                    raise
                dropped: ViarteError | None = err
            else:
                if not resume:
                    return
                dropped = None
            reconnects = 0 if progressed else reconnects + 1
            if reconnects > max_reconnects:
                raise dropped or Unavailable("watch stream kept closing before the job finished")
            await asyncio.sleep(self._t.retry.delay(max(reconnects, 1)))

    async def wait(
        self,
        job_id: str,
        *,
        on_progress: JobCallback | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline
        cancel_on_interrupt: bool = False,
    ) -> J:
        """Watches until the job ends; returns it on success, raises ``JobFailed``/``Cancelled``.
        ``timeout`` bounds the wait (``DeadlineExceeded``); the job keeps running unless
        ``cancel_on_interrupt``, which also cancels it when this task is cancelled."""
        try:
            async with asyncio.timeout(timeout):
                return await self._follow(job_id, on_progress)
        except TimeoutError:
            if cancel_on_interrupt:
                await call_soon_shielded(lambda: self.cancel(job_id))
            raise DeadlineExceeded(f"job {job_id} did not finish within {timeout}s", reason="WAIT_TIMEOUT") from None
        except (asyncio.CancelledError, KeyboardInterrupt):
            if cancel_on_interrupt:
                await call_soon_shielded(lambda: self.cancel(job_id))
            raise

    async def _follow(self, job_id: str, on_progress: JobCallback | None) -> J:
        async for update in self.watch(job_id):
            if on_progress is not None:
                on_progress(update)
            if update.terminal:
                return _final(update)  # type: ignore[no-any-return]
        raise Unavailable(f"watch of job {job_id} ended without a terminal state")

    async def submit(
        self, parameters: P, *, request_id: str | None = None, priority: int = 0
    ) -> AsyncIterator[JobProgress]:
        """Creates the job and yields its progress; the last update is terminal and carries the
        final job. Cancelling the consuming task (or Ctrl-C in the sync client) cancels the job."""
        job = await self.create(parameters, request_id=request_id, priority=priority)
        job_id = job.id  # type: ignore[attr-defined]
        finished = False
        try:
            async for update in self.watch(job_id):
                finished = update.terminal
                yield update
        except (asyncio.CancelledError, KeyboardInterrupt):
            await call_soon_shielded(lambda: self.cancel(job_id))
            raise

        if not finished:
            raise Unavailable(f"watch of job {job_id} ended without a terminal state")

    async def run(
        self,
        parameters: P,
        *,
        on_progress: JobCallback | None = None,
        request_id: str | None = None,
        priority: int = 0,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline
    ) -> J:
        """Create and wait: returns the succeeded job, raises ``JobFailed``/``Cancelled``.
        Cancelling the task (or Ctrl-C) or a ``timeout`` cancels the job on the server."""
        job = await self.create(parameters, request_id=request_id, priority=priority)
        return await self.wait(job.id, on_progress=on_progress, timeout=timeout, cancel_on_interrupt=True)  # type: ignore[attr-defined]


def _final(update: JobProgress) -> Any:
    job = update.job
    if update.state is JobState.SUCCEEDED:
        return job
    if update.state is JobState.FAILED:
        err = job.status.error if job is not None and job.status.HasField("error") else update.error
        if err is None:
            raise JobFailed(f"job {update.job_id} failed", job=job)
        raise from_job_error(err, job=job)
    raise Cancelled(f"job {update.job_id} was cancelled", reason="JOB_CANCELLED")


class Jobs(SyncResource[AsyncJobs[J, P]], Generic[J, P]):
    """The sync :class:`AsyncJobs`. Ctrl-C during ``run``/``wait(cancel_on_interrupt=True)``/``submit``
    cancels the job."""

    create = sync(AsyncJobs[J, P].create)
    get = sync(AsyncJobs[J, P].get)
    list = sync(AsyncJobs[J, P].list)
    list_all = sync(AsyncJobs[J, P].list_all)
    cancel = sync(AsyncJobs[J, P].cancel)
    watch = sync(AsyncJobs[J, P].watch)
    wait = sync(AsyncJobs[J, P].wait)
    submit = sync(AsyncJobs[J, P].submit)
    run = sync(AsyncJobs[J, P].run)

    @property
    def kind(self) -> str:
        return self._a.kind
