"""``viarte usage``: what your jobs cost (totals, records, CSV/JSONL export, price estimates)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from viarte.cli.common import app, context, fail, handled

usage_app = typer.Typer(help="Usage and credits: totals (default), records, export, estimate.", invoke_without_command=True)
app.add_typer(usage_app, name="usage")

Since = Annotated[str | None, typer.Option("--since", help="Start (ISO date or time, UTC); default: the 1st of this month.")]
Until = Annotated[str | None, typer.Option("--until", help="End, exclusive (ISO date or time, UTC); default: now.")]
KeyId = Annotated[str, typer.Option("--api-key-id", help="Only jobs created with this API key.")]


def _when(text: str | None, option: str) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        fail(f"{option}: not an ISO date or time: {text!r}")
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _kind_name(kind: int) -> str:
    from viarte.account.v1 import account_pb2

    return str(account_pb2.JobKind.Name(kind)).removeprefix("JOB_KIND_").lower()


@usage_app.callback()
@handled
def usage_totals(ctx: typer.Context, since: Since = None, until: Until = None, api_key_id: KeyId = "") -> None:
    """Your totals for a period: credits, jobs by kind, seconds of video, frames, GPU-seconds."""
    if ctx.invoked_subcommand is not None:
        return
    c = context(ctx)
    totals = c.client().usage.get(start=_when(since, "--since"), end=_when(until, "--until"), api_key_id=api_key_id)

    def human() -> None:
        c.out.print(f"{totals.start_time.ToJsonString()} .. {totals.end_time.ToJsonString()}: "
                    f"{totals.credits} credits, {totals.jobs} jobs, {totals.video_seconds:g} s of video, "
                    f"{totals.frames} frames, {totals.gpu_seconds:g} GPU-seconds", highlight=False)  # fmt: skip
        table = Table("kind", "jobs", "credits")
        for k in totals.by_kind:
            table.add_row(_kind_name(k.kind), str(k.jobs), str(k.credits))
        c.out.print(table)

    c.emit(totals, human)


@usage_app.command("records")
@handled
def usage_records(
    ctx: typer.Context, since: Since = None, until: Until = None, api_key_id: KeyId = "",
    kind: Annotated[str, typer.Option(help="generation, face_swap, upscale or render.")] = "",
    page_size: int = 50, page_token: str = "",
) -> None:  # fmt: skip
    """One record per finished job, newest first."""
    c = context(ctx)
    page = c.client().usage.records(start=_when(since, "--since"), end=_when(until, "--until"), api_key_id=api_key_id,
                                    kind=kind, page_size=page_size, page_token=page_token)  # fmt: skip

    def human() -> None:
        table = Table("job", "kind", "model", "state", "credits", "ended")
        for r in page.items:
            table.add_row(r.job_id, _kind_name(r.kind), r.model, str(r.state), str(r.credits), r.end_time.ToJsonString())
        c.out.print(table)
        if page.next_page_token:
            c.out.print(f"more: --page-token {page.next_page_token}", highlight=False)

    c.emit({"records": page.items, "next_page_token": page.next_page_token}, human)


@usage_app.command("export")
@handled
def usage_export(
    ctx: typer.Context, since: Since = None, until: Until = None, api_key_id: KeyId = "",
    format: Annotated[str, typer.Option("--format", "-f", help="csv or jsonl.")] = "csv",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write; default: stdout.")] = None,
) -> None:  # fmt: skip
    """Your records of a period as CSV or JSONL (oldest first)."""
    if format not in ("csv", "jsonl"):
        fail("--format must be csv or jsonl")
    c = context(ctx)
    chunks = c.client().usage.export(format=format, start=_when(since, "--since"), end=_when(until, "--until"),
                                     api_key_id=api_key_id)  # fmt: skip
    if output is None:
        for chunk in chunks:
            sys.stdout.buffer.write(chunk)
        sys.stdout.flush()
        return
    size = 0
    with output.open("wb") as fh:
        for chunk in chunks:
            fh.write(chunk)
            size += len(chunk)
    c.info(f"wrote {size} bytes to {output}")


@usage_app.command("estimate")
@handled
def usage_estimate(
    ctx: typer.Context, kind: str, model: str = "", width: int = 0, height: int = 0, frames: int = 0,
    steps: int = 0, seconds: Annotated[float, typer.Option(help="Seconds of output video (render).")] = 0.0,
) -> None:  # fmt: skip
    """The credits a job would cost (kind: generation, face_swap, upscale, render)."""
    from viarte.client.account import JOB_KINDS

    if kind not in JOB_KINDS:
        fail(f"kind must be one of {', '.join(JOB_KINDS)}")
    c = context(ctx)
    price = c.client().usage.estimate(kind, model=model, width=width, height=height, frames=frames, steps=steps,
                                      video_seconds=seconds)  # fmt: skip
    c.emit(price, lambda: c.out.print(f"{price.credits} credits = {price.formula}", highlight=False))
