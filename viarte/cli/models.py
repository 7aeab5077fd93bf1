"""``viarte models``: the video models the deployment serves (the dev tooling adds ``models pull``)."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from viarte.cli.common import Ctx, app, context, fail, handled
from viarte.inference.v1 import generation_pb2

__all__ = ["models_app", "pick_model"]

_TASK_NAMES = {generation_pb2.TASK_TEXT_TO_VIDEO: "t2v", generation_pb2.TASK_IMAGE_TO_VIDEO: "i2v"}


models_app = typer.Typer(help="The video models this deployment serves.")
app.add_typer(models_app, name="models")


@models_app.callback(invoke_without_command=True)
@handled
def models(ctx: typer.Context) -> None:
    """The video models this deployment serves (`viarte models pull` downloads their weights)."""
    if ctx.invoked_subcommand is not None:
        return
    c = context(ctx)
    found = c.client().generation.list_models()

    def human() -> None:
        table = Table("id", "family", "tasks", "tiny", "loaded", "default size", "frames", "steps")
        for m in found:
            lim = m.limits
            table.add_row(
                m.id, generation_pb2.ModelFamily.Name(m.family).removeprefix("MODEL_FAMILY_").lower(),
                ",".join(_TASK_NAMES.get(t, str(t)) for t in m.tasks), "yes" if m.tiny else "", "yes" if m.loaded else "",
                f"{lim.default_width}x{lim.default_height}", str(lim.default_frames), str(lim.default_steps),
            )
        c.out.print(table)

    c.emit({"models": found}, human)



def pick_model(c: Ctx, model: str | None, task: str) -> Any:
    wanted = generation_pb2.TASK_IMAGE_TO_VIDEO if task == "i2v" else generation_pb2.TASK_TEXT_TO_VIDEO
    available = c.client().generation.list_models()
    if model:
        found = next((m for m in available if m.id == model), None)
        return found if found is not None else generation_pb2.Model(id=model)
    for m in available:
        if wanted in m.tasks:
            return m
    fail(f"no model serves {task}; see `viarte models`")
