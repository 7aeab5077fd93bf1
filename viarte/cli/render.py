"""``viarte render`` (a timeline to MP4), ``viarte frame`` (one preview JPEG), ``viarte upscale``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from viarte.cli.assets import asset_ref, upload_file
from viarte.cli.common import app, context, fail, handled
from viarte.cli.jobs import run_job
from viarte.render.v1 import render_pb2
from viarte.timeline import load_timeline

_QUALITY = {"draft": render_pb2.QUALITY_PRESET_DRAFT, "standard": render_pb2.QUALITY_PRESET_STANDARD, "high": render_pb2.QUALITY_PRESET_HIGH}
_CODEC = {"h264": render_pb2.VIDEO_CODEC_H264, "hevc": render_pb2.VIDEO_CODEC_HEVC}


@app.command()
@handled
def render(
    ctx: typer.Context,
    timeline: Annotated[Path, typer.Argument(help="Timeline file (.json, .yaml); asset ids '@file' are uploaded.")],
    quality: Annotated[str, typer.Option(help="draft, standard or high.")] = "standard",
    codec: Annotated[str, typer.Option(help="h264 or hevc.")] = "h264",
    width: int = 0, height: int = 0, fps: float = 0.0,
    upscale: Annotated[bool, typer.Option(help="Upscale x2 after rendering.")] = False,
    output_name: str = "",
    project_id: str = "",
    priority: int = 0,
    detach: bool = False,
    download: Annotated[Path | None, typer.Option(help="Save the MP4 here.")] = None,
) -> None:
    """Render a timeline to MP4."""
    c = context(ctx)
    if quality not in _QUALITY or codec not in _CODEC:
        fail("--quality must be draft/standard/high and --codec h264/hevc")
    tl = load_timeline(timeline, upload=lambda p: str(upload_file(c, p).id))
    params = render_pb2.RenderParameters(
        timeline=tl, quality=_QUALITY[quality], codec=_CODEC[codec], output_width=width, output_height=height,
        output_fps=fps, upscale=upscale, output_name=output_name, project_id=project_id,
    )
    run_job(c, "render", params, title=f"render {timeline.name}", detach=detach, priority=priority, download=download)


@app.command()
@handled
def frame(
    ctx: typer.Context,
    timeline: Annotated[Path, typer.Argument(help="Timeline file.")],
    at: Annotated[float, typer.Option(help="Time in seconds.")] = 0.0,
    max_width: int = 0,
    out: Annotated[Path, typer.Option(help="Where to write the JPEG.")] = Path("frame.jpg"),
) -> None:
    """Render one frame of a timeline to a JPEG (the editor's scrubber preview)."""
    c = context(ctx)
    tl = load_timeline(timeline, upload=lambda p: str(upload_file(c, p).id))
    answer = c.client().render.frame(tl, at, max_width=max_width)
    out.write_bytes(answer.jpeg)
    c.emit({"path": out, "width": answer.width, "height": answer.height},
           lambda: c.out.print(f"saved {out} ({answer.width}x{answer.height})"))  # fmt: skip


@app.command()
@handled
def upscale(
    ctx: typer.Context,
    video: Annotated[str, typer.Argument(help="Video: a file or an asset id.")],
    tile_size: int = 0, tile_padding: int = 0,
    model: Annotated[str, typer.Option(help="Upscaler model id (default realesrgan-x2plus).")] = "",
    output_name: str = "",
    priority: int = 0,
    detach: bool = False,
    download: Annotated[Path | None, typer.Option(help="Save the MP4 here.")] = None,
) -> None:
    """Upscale a video x2 (Real-ESRGAN)."""
    c = context(ctx)
    params = render_pb2.UpscaleParameters(
        video_asset_id=asset_ref(c, video), scale=2, tile_size=tile_size, tile_padding=tile_padding, model=model,
        output_name=output_name,
    )
    run_job(c, "upscale", params, title="upscale x2", detach=detach, priority=priority, download=download)
