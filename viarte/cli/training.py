"""``viarte train`` (a LoRA from a folder of images/clips and .txt captions, and/or a caption file of
uploaded assets) and ``viarte loras``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from google.protobuf import json_format
from rich.table import Table

from viarte.cli.assets import upload_file
from viarte.cli.common import app, context, fail, handled
from viarte.cli.jobs import run_job
from viarte.client import training_parameters

__all__ = ["dataset_files", "loras_app"]

MEDIA_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".mp4", ".mov", ".webm"}


def dataset_files(folder: Path) -> list[tuple[Path, str]]:
    """(media file, caption) for each image/clip of `folder`; the caption is the same-named .txt
    ("" when there is none: the trigger word then stands alone)."""
    found = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in MEDIA_SUFFIXES and path.is_file():
            txt = path.with_suffix(".txt")
            found.append((path, txt.read_text().strip() if txt.is_file() else ""))
    return found


@app.command()
@handled
def train(
    ctx: typer.Context,
    folder: Annotated[Path | None, typer.Argument(help="Images/clips with same-named .txt captions.")] = None,
    captions: Annotated[Path | None, typer.Option(
        help="A caption file of already uploaded assets: JSON Lines {\"asset_id\", \"caption\"} or "
             "'<asset_id> <caption>' lines; uploaded and added to the dataset.")] = None,
    model: Annotated[str, typer.Option(help="Base model id (a Wan model).")] = "tiny-wan",
    trigger: Annotated[str, typer.Option(help="Trigger word, prepended to every caption.")] = "",
    steps: Annotated[int, typer.Option(help="Optimizer steps (0 = 500).")] = 0,
    rank: int = 0,
    alpha: float = 0.0,
    lr: Annotated[float, typer.Option(help="Learning rate (0 = 1e-4).")] = 0.0,
    batch_size: int = 0,
    width: int = 0, height: int = 0,
    frames: Annotated[int, typer.Option(help="Frames per clip (images train as 1).")] = 0,
    seed: int | None = None,
    checkpoint_every: Annotated[int, typer.Option(help="Store a checkpoint every N steps.")] = 0,
    name: Annotated[str, typer.Option(help="Name of the LoRA.")] = "",
    priority: int = 0,
    detach: Annotated[bool, typer.Option(help="Queue and return without waiting.")] = False,
) -> None:
    """Train a LoRA on your images or clips; progress shows each step."""
    c = context(ctx)
    if folder is None and captions is None:
        fail("give a folder of images/clips, a caption file (--captions), or both")
    if captions is not None and not captions.is_file():
        fail(f"no such caption file: {captions}")
    files = []
    if folder is not None:
        if not folder.is_dir():
            fail(f"{folder} is not a folder")
        files = dataset_files(folder)
        if not files and captions is None:
            fail(f"no images or clips in {folder} ({', '.join(sorted(MEDIA_SUFFIXES))})")
    examples = []
    for path, caption in files:
        asset = upload_file(c, path)
        c.info(f"uploaded {path.name} as {asset.id}")
        examples.append((str(asset.id), caption))
    caption_file = ""
    if captions is not None:  # checked line by line by the server at create (INVALID_DATASET)
        caption_file = c.client().training.upload_caption_file(captions)
        c.info(f"uploaded {captions.name} as {caption_file}")
    params = training_parameters(
        base_model=model, examples=examples, trigger_word=trigger, rank=rank, alpha=alpha, learning_rate=lr,
        steps=steps, batch_size=batch_size, width=width, height=height, num_frames=frames, seed=seed,
        checkpoint_every_n_steps=checkpoint_every, name=name, caption_file_asset_id=caption_file,
    )
    run_job(c, "training", params, title=f"train a LoRA ({model})", detach=detach, priority=priority, download=None)


loras_app = typer.Typer(help="Your trained LoRAs (use one with `viarte generate --lora ID[:WEIGHT]`).")
app.add_typer(loras_app, name="loras")


@loras_app.callback(invoke_without_command=True)
@handled
def loras(ctx: typer.Context, model: Annotated[str, typer.Option(help="Only this base model.")] = "") -> None:
    """List your LoRAs, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    c = context(ctx)
    found = c.client().training.list_loras(base_model=model)

    def human() -> None:
        table = Table("id", "name", "base model", "steps", "final loss", "partial", "asset")
        for lora in found:
            table.add_row(lora.id, lora.name, lora.base_model, str(lora.steps), f"{lora.final_loss:.4f}",
                          "yes" if lora.partial else "", lora.asset_id)
        c.out.print(table)

    c.emit({"loras": found}, human)


@loras_app.command("get")
@handled
def get_lora(ctx: typer.Context, lora_id: str) -> None:
    """One LoRA with its lineage."""
    c = context(ctx)
    lora = c.client().training.get_lora(lora_id)

    def human() -> None:
        for key, value in json_format.MessageToDict(lora, preserving_proto_field_name=True).items():
            c.out.print(f"{key}: {value}", highlight=False)

    c.emit(lora, human)


@loras_app.command("delete")
@handled
def delete_lora(ctx: typer.Context, lora_id: str) -> None:
    """Remove a LoRA from your catalogue (its asset stays)."""
    c = context(ctx)
    c.client().training.delete_lora(lora_id)
    c.emit({"deleted": lora_id}, lambda: c.out.print(f"deleted LoRA {lora_id}"))
