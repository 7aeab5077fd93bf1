"""``viarte generate`` (text/image-to-video, optionally with a face swap) and ``viarte faceswap``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from viarte.cli.assets import asset_ref
from viarte.cli.common import app, context, fail, handled
from viarte.cli.jobs import run_job
from viarte.cli.models import pick_model
from viarte.client import face_swap_options, generation_parameters


@app.command()
@handled
def generate(
    ctx: typer.Context,
    prompt: Annotated[str, typer.Argument(help="What to generate.")],
    model: Annotated[str | None, typer.Option(help="Model id (default: the first that serves the task).")] = None,
    image: Annotated[str | None, typer.Option(help="Image-to-video input: a file or an asset id.")] = None,
    task: Annotated[str | None, typer.Option(help="t2v or i2v (default: i2v with --image).")] = None,
    negative_prompt: Annotated[str, typer.Option(help="What to avoid.")] = "",
    width: int = 0, height: int = 0,
    frames: Annotated[int, typer.Option(help="Number of frames (0 = model default).")] = 0,
    fps: int = 0,
    steps: Annotated[int, typer.Option(help="Denoising steps (0 = model default).")] = 0,
    guidance: Annotated[float | None, typer.Option(help="Guidance scale.")] = None,
    seed: int | None = None,
    preview_every: Annotated[int, typer.Option(help="A JPEG preview every N steps.")] = 0,
    magic_prompt: Annotated[bool, typer.Option(help="Expand the prompt with the assistant first.")] = False,
    face_swap: Annotated[str | None, typer.Option(help="Swap this face (file or image asset id) into the video.")] = None,
    face_selector: Annotated[str, typer.Option(help="all, index or reference.")] = "all",
    face_index: int = 0,
    reference_face: Annotated[str | None, typer.Option(help="Reference face (file or asset) for --face-selector reference.")] = None,
    similarity: float = 0.0,
    motion_bucket: Annotated[int | None, typer.Option(help="SVD motion bucket id (1-255).")] = None,
    noise_aug: Annotated[float | None, typer.Option(help="SVD noise augmentation strength.")] = None,
    decode_chunk: Annotated[int, typer.Option(help="SVD frames decoded at once.")] = 0,
    flow_shift: Annotated[float | None, typer.Option(help="Wan scheduler flow shift.")] = None,
    guidance_2: Annotated[float | None, typer.Option(help="Wan 2.2 low-noise expert guidance.")] = None,
    lora: Annotated[list[str] | None, typer.Option(help="A trained LoRA: ID or ID:WEIGHT (repeatable).")] = None,
    devices: Annotated[int, typer.Option(help="GPUs for this one job: 2 = CFG-parallel (Ray executor, Wan).")] = 0,
    priority: int = 0,
    detach: Annotated[bool, typer.Option(help="Queue and return without waiting.")] = False,
    download: Annotated[Path | None, typer.Option(help="Save the video here (file or folder).")] = None,
) -> None:
    """Generate a video from text (t2v) or from an image (i2v), optionally with a face swap."""
    c = context(ctx)
    chosen_task = task or ("i2v" if image else "t2v")
    if chosen_task not in ("t2v", "i2v"):
        fail("--task must be t2v or i2v")
    if chosen_task == "i2v" and not image:
        fail("image-to-video needs --image")
    m = pick_model(c, model, chosen_task)
    if magic_prompt:
        enhanced = c.client().assistant.enhance_prompt(prompt, family=m.family)
        prompt = enhanced.prompt
        negative_prompt = negative_prompt or enhanced.negative_prompt
        c.info(f"magic prompt: {prompt}")
    svd = {k: v for k, v in {"motion_bucket_id": motion_bucket, "noise_aug_strength": noise_aug}.items() if v is not None}
    if decode_chunk:
        svd["decode_chunk_size"] = decode_chunk
    wan = {k: v for k, v in {"flow_shift": flow_shift, "guidance_scale_2": guidance_2}.items() if v is not None}
    face = None
    if face_swap:
        face = face_swap_options(
            asset_ref(c, face_swap), selector=face_selector, face_index=face_index,  # type: ignore[arg-type]
            reference_face_asset_id=asset_ref(c, reference_face), similarity_threshold=similarity,
        )
    params = generation_parameters(
        model=m.id, prompt=prompt, task=chosen_task, negative_prompt=negative_prompt,  # type: ignore[arg-type]
        image_asset_id=asset_ref(c, image), width=width, height=height, num_frames=frames, fps=fps,
        num_inference_steps=steps, guidance_scale=guidance, seed=seed, preview_every_n_steps=preview_every,
        face_swap=face, svd=svd or None, wan=wan or None, loras=_loras(lora or []), devices=devices,
    )
    run_job(c, "generation", params, title=f"generate ({m.id})", detach=detach, priority=priority, download=download)


@app.command()
@handled
def faceswap(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="Video or image to change: a file or an asset id.")],
    face: Annotated[str, typer.Option(help="The face to put in: a file or an image asset id.")],
    selector: Annotated[str, typer.Option(help="all, index or reference.")] = "all",
    face_index: int = 0,
    reference_face: Annotated[str | None, typer.Option(help="Face to replace (reference mode).")] = None,
    similarity: float = 0.0,
    output_name: str = "",
    priority: int = 0,
    detach: bool = False,
    download: Annotated[Path | None, typer.Option(help="Save the result here.")] = None,
) -> None:
    """Swap a face into a video or an image."""
    from viarte.inference.v1 import face_swap_pb2

    c = context(ctx)
    options = face_swap_options(
        asset_ref(c, face), selector=selector, face_index=face_index,  # type: ignore[arg-type]
        reference_face_asset_id=asset_ref(c, reference_face), similarity_threshold=similarity,
    )
    params = face_swap_pb2.FaceSwapParameters(target_asset_id=asset_ref(c, target), options=options, output_name=output_name)
    run_job(c, "face_swap", params, title="face swap", detach=detach, priority=priority, download=download)


def _loras(values: list[str]) -> dict[str, float]:
    out = {}
    for value in values:
        lora_id, _, weight = value.partition(":")
        try:
            out[lora_id] = float(weight) if weight else 1.0
        except ValueError:
            fail(f"--lora {value!r}: the weight after ':' must be a number")
    return out
