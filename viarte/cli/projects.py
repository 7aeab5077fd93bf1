"""``viarte projects``: saved editor projects."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from viarte.cli.assets import upload_file
from viarte.cli.common import app, context, fail, handled, jsonable
from viarte.timeline import load_timeline

projects_app = typer.Typer(help="Saved editor projects.", no_args_is_help=True)
app.add_typer(projects_app, name="projects")


@projects_app.command("create")
@handled
def projects_create(ctx: typer.Context, title: str, timeline: Annotated[Path | None, typer.Option()] = None) -> None:
    """Create a project (optionally from a timeline file)."""
    c = context(ctx)
    tl = load_timeline(timeline, upload=lambda p: str(upload_file(c, p).id)) if timeline else None
    project = c.client().projects.create(title, tl)
    c.emit(project, lambda: c.out.print(f"project {project.id} ({project.title})"))


@projects_app.command("list")
@handled
def projects_list(ctx: typer.Context, page_size: int = 50) -> None:
    """Your projects, most recently updated first."""
    c = context(ctx)
    page = c.client().projects.list(page_size=page_size)

    def human() -> None:
        table = Table("id", "title", "tracks", "updated")
        for p in page.items:
            table.add_row(p.id, p.title, str(len(p.timeline.tracks)), p.update_time.ToJsonString() if p.HasField("update_time") else "")
        c.out.print(table)

    c.emit({"projects": page.items}, human)


@projects_app.command("get")
@handled
def projects_get(ctx: typer.Context, project_id: str) -> None:
    """One project with its timeline."""
    c = context(ctx)
    project = c.client().projects.get(project_id)
    c.emit(project, lambda: c.out.print(jsonable(project)))


@projects_app.command("update")
@handled
def projects_update(
    ctx: typer.Context, project_id: str,
    title: Annotated[str | None, typer.Option()] = None,
    timeline: Annotated[Path | None, typer.Option()] = None,
) -> None:
    """Change a project's title or timeline (fails with ABORTED if someone saved in between)."""
    c = context(ctx)
    project = c.client().projects.get(project_id)
    fields = []
    if title is not None:
        project.title = title
        fields.append("title")
    if timeline is not None:
        project.timeline.CopyFrom(load_timeline(timeline, upload=lambda p: str(upload_file(c, p).id)))
        fields.append("timeline")
    if not fields:
        fail("nothing to change: pass --title and/or --timeline")
    saved = c.client().projects.update(project, fields=fields)
    c.emit(saved, lambda: c.out.print(f"saved {saved.id} (etag {saved.etag})"))


@projects_app.command("rm")
@handled
def projects_rm(ctx: typer.Context, project_ids: list[str]) -> None:
    """Delete projects."""
    c = context(ctx)
    for project_id in project_ids:
        c.client().projects.delete(project_id)
    c.emit({"deleted": project_ids}, lambda: c.out.print(f"deleted {len(project_ids)} project(s)"))
