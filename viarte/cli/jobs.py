"""``viarte jobs``, and running a job to its end with progress (shared by every job command)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from google.protobuf import json_format
from rich.table import Table

from viarte.cli.assets import download_asset
from viarte.cli.common import Ctx, app, context, fail, handled, jsonable
from viarte.cli.progress import JobProgressView
from viarte.errors import Cancelled, NotFound, Unavailable, ViarteError
from viarte.jobs import Cost, JobProgress, JobState, Placement

__all__ = ["JOB_KINDS", "jobs_app", "run_job"]

JOB_KINDS = ("generation", "face_swap", "render", "upscale", "training")

jobs_app = typer.Typer(help="Generation, face swap, render and upscale jobs.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")


def run_job(c: Ctx, kind: str, params: Any, *, title: str, detach: bool, priority: int, download: Path | None) -> Any:
    jobs = c.client().jobs(kind)
    request_id = uuid.uuid4().hex
    try:
        job = jobs.create(params, priority=priority, request_id=request_id)
    except KeyboardInterrupt:
        # The SDK cancelled the job an interrupted Create may have made; its request_id names it.
        _name_cancelled(c, jobs, params, priority, request_id)
        raise
    if detach:
        c.info(f"{kind} job {job.id} queued")
        c.emit(job, lambda: c.out.print(f"job {job.id} (watch it: viarte jobs watch {job.id})"))
        return job
    try:
        c.info(f"{kind} job {job.id} queued")
        if c.json:
            final = jobs.wait(job.id, cancel_on_interrupt=True)
        else:
            with JobProgressView(c.err, title) as view:
                final = jobs.wait(job.id, on_progress=view.update, cancel_on_interrupt=True)
    except KeyboardInterrupt:
        # `wait` cancels the job on a Ctrl-C once it is called; one that lands before (while the
        # progress view starts) would leave the job running. Cancelling twice is harmless.
        _cancel_quietly(jobs, job.id)
        c.err.print(f"[yellow]cancelled job {job.id}[/]")
        raise
    output = _result_asset(kind, final)
    saved = download_asset(c, output, download) if download is not None and output else None
    c.emit({"job": final, "output_asset_id": output, "downloaded": saved}, lambda: _print_result(c, kind, final, saved))
    return final


def _name_cancelled(c: Ctx, jobs: Any, params: Any, priority: int, request_id: str) -> None:
    try:
        job = jobs.create(params, priority=priority, request_id=request_id)
    except (ViarteError, KeyboardInterrupt):
        return  # the server may be gone, or the user pressed Ctrl-C again: `handled` says "cancelled"
    _cancel_quietly(jobs, job.id)  # in case the SDK's own cancel ran out of time
    c.err.print(f"[yellow]cancelled job {job.id}[/]")


def _cancel_quietly(jobs: Any, job_id: str) -> None:
    try:
        jobs.cancel(job_id)
    except (ViarteError, KeyboardInterrupt):
        pass  # best effort: the server may be gone, or the user pressed Ctrl-C again


def _result_asset(kind: str, job: Any) -> str:
    result = job.result
    if kind == "training":
        return str(result.lora_asset_id)
    return str(result.asset_id if kind == "face_swap" else result.video_asset_id)


def _print_result(c: Ctx, kind: str, job: Any, saved: Path | None) -> None:
    c.out.print(f"[green]✓[/] {kind} job {job.id} succeeded → asset {_result_asset(kind, job)}")
    fields = json_format.MessageToDict(job.result, preserving_proto_field_name=True)
    for key, value in fields.items():
        c.out.print(f"  {key}: {value}", highlight=False)
    if saved is not None:
        c.out.print(f"  saved: {saved}")


def _find_job(c: Ctx, job_id: str, kind: str | None) -> tuple[str, Any]:
    kinds = [kind] if kind else list(JOB_KINDS)
    for k in kinds:
        if k not in JOB_KINDS:
            fail(f"--kind must be one of {', '.join(JOB_KINDS)}")
        try:
            return k, c.client().jobs(k).get(job_id)
        except NotFound:
            continue
        except Unavailable:
            if kind:
                raise
    raise NotFound(f"no job {job_id}", reason="JOB_NOT_FOUND")


def _job_row(kind: str, job: Any) -> list[str]:
    st = job.status
    created = st.create_time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S") if st.HasField("create_time") else ""
    update = JobProgress.from_job(kind, job)
    return [job.id, kind, update.state.name.lower(), update.describe(), created]


@jobs_app.command("list")
@handled
def jobs_list(
    ctx: typer.Context,
    kind: Annotated[str | None, typer.Option(help="generation, face_swap, render or upscale.")] = None,
    state: Annotated[str | None, typer.Option(help="queued, running, succeeded, failed or cancelled.")] = None,
    limit: int = 50,
) -> None:
    """Your jobs of every kind, newest first."""
    c = context(ctx)
    if kind is not None and kind not in JOB_KINDS:
        fail(f"--kind must be one of {', '.join(JOB_KINDS)}")
    try:
        st = JobState.parse(state) if state else None
    except KeyError:
        fail("--state must be queued, running, succeeded, failed or cancelled")
    found: list[tuple[str, Any]] = []
    for k in [kind] if kind else JOB_KINDS:
        try:
            found.extend((k, job) for job in c.client().jobs(k).list(state=st, page_size=limit).items)
        except (Unavailable, ViarteError) as exc:
            if kind or not isinstance(exc, Unavailable | NotFound):
                raise
            c.info(f"[dim]{k}: {exc.code_name} (service not running?)[/]")
    found.sort(key=lambda kj: kj[1].status.create_time.ToNanoseconds(), reverse=True)
    found = found[:limit]

    def human() -> None:
        table = Table("id", "kind", "state", "progress", "created")
        for k, job in found:
            table.add_row(*_job_row(k, job))
        c.out.print(table)

    c.emit({"jobs": [{"kind": k, "job": j} for k, j in found]}, human)


@jobs_app.command("get")
@handled
def jobs_get(ctx: typer.Context, job_id: str, kind: Annotated[str | None, typer.Option()] = None) -> None:
    """One job."""
    c = context(ctx)
    k, job = _find_job(c, job_id, kind)

    def human() -> None:
        c.out.print(jsonable(job))
        where = Placement.of(job)
        if where is not None:  # where the (last) attempt ran: local worker or Ray actor
            c.out.print(f"placement: {where}", highlight=False)
        c.out.print(f"cost: {Cost.of(job)}", highlight=False)

    c.emit({"kind": k, "job": job}, human)


@jobs_app.command("watch")
@handled
def jobs_watch(
    ctx: typer.Context, job_id: str,
    kind: Annotated[str | None, typer.Option()] = None,
    after: Annotated[int, typer.Option(help="Resume after this event sequence number.")] = 0,
) -> None:
    """Follow a job's progress until it ends (Ctrl-C stops watching; the job goes on)."""
    c = context(ctx)
    k, _job = _find_job(c, job_id, kind)
    updates = c.client().jobs(k).watch(job_id, after_sequence=after)
    last: JobProgress | None = None
    if c.json:
        for update in updates:
            last = update
            typer.echo(json.dumps({"sequence": update.sequence, "state": update.state.name, "stage": update.stage.name,
                                   "step": update.step, "total_steps": update.total_steps, "frame": update.frame,
                                   "total_frames": update.total_frames, "fraction": update.fraction,
                                   "message": update.message, "snapshot": update.snapshot}))  # fmt: skip
    else:
        with JobProgressView(c.err, f"{k} {job_id}") as view:
            for update in updates:
                last = update
                view.update(update)
    if last is not None and last.terminal and last.job is not None:
        if last.state is JobState.SUCCEEDED:
            if not c.json:
                _print_result(c, k, last.job, None)
        elif last.state is JobState.FAILED:
            from viarte.errors import from_job_error

            raise from_job_error(last.job.status.error, job=last.job)
        else:
            raise Cancelled(f"job {job_id} was cancelled", reason="JOB_CANCELLED")


@jobs_app.command("cancel")
@handled
def jobs_cancel(ctx: typer.Context, job_ids: list[str], kind: Annotated[str | None, typer.Option()] = None) -> None:
    """Cancel jobs (a finished job stays as it is)."""
    c = context(ctx)
    out = []
    for job_id in job_ids:
        k, _ = _find_job(c, job_id, kind)
        job = c.client().jobs(k).cancel(job_id)
        out.append({"kind": k, "job": job})
        c.info(f"{job_id}: {JobState(job.status.state).name.lower()}")
    c.emit({"jobs": out}, lambda: None)
