"""``viarte demo``: the end-to-end tour of the studio on the local mesh.

1. start the mesh (S3, auth, storage, inference, render, Envoy) — or reuse a running one
2. register a fresh user
3. upload the bundled face image and soundtrack
4. image-to-video from the face, with the same face swapped into every frame
5. text-to-video
6. render a timeline: both clips with a crossfade, a text title and the soundtrack
7. upscale the render x2
8. download the MP4 into the output folder and print its ffprobe summary and the editor URL

With ``--models tiny`` (the default) everything runs offline on CPU with random-weight models built
locally; ``--models real`` runs the registry's real models (a GPU machine with their weights).
A service that is not running is reported and its steps are skipped, so the demo grows with the mesh.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from viarte.cli.progress import JobProgressView, TransferProgress
from viarte.client import Client, face_swap_options, generation_parameters
from viarte.errors import ClientError
from viarte.inference.v1 import generation_pb2
from viarte.render.v1 import render_pb2, timeline_pb2

__all__ = ["ASSETS_DIR", "DemoSummary", "build_timeline", "ffprobe_summary", "run_demo"]

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
FACE_IMAGE = ASSETS_DIR / "demo_face.png"
SOUNDTRACK = ASSETS_DIR / "demo_tone.m4a"
OUTPUT_NAME = "viarte-demo.mp4"
I2V_PROMPT = "a friendly cartoon face smiling and turning slightly, soft studio light"
T2V_PROMPT = "a calm ocean at sunset, gentle waves, cinematic"


@dataclass
class DemoSummary:
    output: str = ""
    editor_url: str = ""
    user_email: str = ""
    endpoints: dict[str, str] = field(default_factory=dict)
    assets: dict[str, str] = field(default_factory=dict)
    jobs: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    ffprobe: dict[str, Any] = field(default_factory=dict)
    # The first generated clip's size and rate: the render's canvas with real models.
    canvas: tuple[int, int, int] = (0, 0, 0)


class _Steps:
    def __init__(self, console: Console, summary: DemoSummary, total: int) -> None:
        self.console, self.summary, self.total, self.n = console, summary, total, 0

    @contextmanager
    def step(self, key: str, title: str) -> Iterator[None]:
        self.n += 1
        self.console.rule(f"[bold cyan]{self.n}/{self.total}[/] {title}", align="left")
        started = time.monotonic()
        yield
        self.summary.seconds[key] = round(time.monotonic() - started, 2)
        self.console.print(f"[green]✓[/] {title} [dim]({self.summary.seconds[key]:.1f}s)[/]")

    def skip(self, title: str, why: str) -> None:
        self.n += 1
        self.console.rule(f"[bold yellow]{self.n}/{self.total}[/] {title} — skipped", align="left")
        self.console.print(f"[yellow]skipped:[/] {why}")
        self.summary.skipped.append(title)


def _pick(models: list[Any], task: int, tiny: bool, prefer: tuple[str, ...] = ()) -> Any:
    candidates = [m for m in models if task in m.tasks and m.tiny == tiny]
    for family in prefer:
        for m in candidates:
            if generation_pb2.ModelFamily.Name(m.family).endswith(family):
                return m
    if not candidates:
        raise ClientError(f"no {'tiny' if tiny else 'real'} model serves {generation_pb2.Task.Name(task)}")
    return candidates[0]


@dataclass(frozen=True)
class _Shape:
    width: int = 0
    height: int = 0
    num_frames: int = 0
    fps: int = 0


def _tiny_shape(model: Any, side: int) -> _Shape:
    """Small sizes within the model's limits (multiples, frame rule), so the CPU demo is quick."""
    lim = model.limits
    multiple = max(lim.size_multiple, 1)
    side = max(lim.min_width, lim.min_height, (side // multiple) * multiple)
    side = min(side, lim.max_width or side, lim.max_height or side)
    frames = min(16, lim.max_frames or 16)
    if lim.frames_multiple > 1:
        frames = ((frames - 1) // lim.frames_multiple) * lim.frames_multiple + 1
    return _Shape(side, side, max(frames, lim.min_frames), 8)


def build_timeline(
    first: str, first_seconds: float, second: str, second_seconds: float, audio: str | None, *,
    width: int = 256, height: int = 256, fps: float = 8.0, crossfade: float = 0.5, stills: bool = False,
) -> timeline_pb2.Timeline:
    """Two clips with a crossfade, a title on a text track and (optionally) a soundtrack.
    ``stills``: the clips are images, which need an explicit length on the timeline."""
    fade = min(crossfade, first_seconds / 2, second_seconds / 2)
    second_start = max(first_seconds - fade, 0.0)
    total = second_start + second_seconds
    video = timeline_pb2.Track(id="video", kind=timeline_pb2.TRACK_KIND_VIDEO, name="Video", clips=[
        timeline_pb2.Clip(id="i2v", asset_id=first, start_seconds=0.0, fit=timeline_pb2.FIT_COVER, fade_in_seconds=0.25,
                          duration_seconds=first_seconds if stills else 0.0),
        timeline_pb2.Clip(
            id="t2v", asset_id=second, start_seconds=second_start, fit=timeline_pb2.FIT_COVER, fade_out_seconds=0.25,
            duration_seconds=second_seconds if stills else 0.0,
            transition_in=timeline_pb2.Transition(kind=timeline_pb2.TRANSITION_KIND_CROSSFADE, duration_seconds=fade),
        ),
    ])  # fmt: skip
    title = timeline_pb2.Track(id="titles", kind=timeline_pb2.TRACK_KIND_TEXT, name="Titles", clips=[
        timeline_pb2.Clip(
            id="title", start_seconds=0.0, duration_seconds=total, fade_in_seconds=0.3, fade_out_seconds=0.3,
            text=timeline_pb2.TextStyle(text="Viarte Studio", font_size=max(12.0, height / 10), color="#ffffff",
                                        box=True, box_color="#00000080", box_padding=6),
            transform=timeline_pb2.Transform(y=timeline_pb2.AnimatedValue(value=0.85)),
        ),
    ])  # fmt: skip
    tracks = [video, title]
    if audio:
        tracks.append(timeline_pb2.Track(id="music", kind=timeline_pb2.TRACK_KIND_AUDIO, name="Music", clips=[
            timeline_pb2.Clip(id="tone", asset_id=audio, start_seconds=0.0, source_end_seconds=total, volume=0.5,
                              fade_out_seconds=0.5),
        ]))  # fmt: skip
    canvas = timeline_pb2.Canvas(width=width, height=height, fps=fps, background_color="#101018", duration_seconds=total)
    return timeline_pb2.Timeline(canvas=canvas, tracks=tracks)


def ffprobe_summary(path: Path) -> dict[str, Any]:
    """Container and stream facts of a media file (ffprobe's JSON, trimmed)."""
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        raise ClientError("ffprobe not found (install ffmpeg)")
    out = subprocess.run(
        [ffprobe, "-v", "error", "-show_entries",
         "format=format_name,duration,size,bit_rate:stream=codec_type,codec_name,width,height,r_frame_rate,nb_frames,sample_rate,channels,pix_fmt",
         "-of", "json", str(path)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    data = json.loads(out.stdout)
    return {"format": data.get("format", {}), "streams": data.get("streams", [])}


def _print_probe(console: Console, path: Path, probe: dict[str, Any]) -> None:
    fmt = probe["format"]
    table = Table(title=f"{path.name}: {fmt.get('format_name', '?')}, {float(fmt.get('duration', 0)):.2f}s, "
                        f"{int(fmt.get('size', 0)):,} bytes")  # fmt: skip
    for col in ("stream", "codec", "details"):
        table.add_column(col)
    for s in probe["streams"]:
        if s.get("codec_type") == "video":
            details = f"{s.get('width')}x{s.get('height')} @ {s.get('r_frame_rate')} fps, {s.get('nb_frames', '?')} frames, {s.get('pix_fmt', '')}"
        else:
            details = f"{s.get('sample_rate', '?')} Hz, {s.get('channels', '?')} ch"
        table.add_row(s.get("codec_type", "?"), s.get("codec_name", "?"), details)
    console.print(table)


def _job(console: Console, client: Client, kind: str, params: Any, title: str) -> Any:
    jobs = client.jobs(kind)
    job = jobs.create(params)
    console.print(f"[dim]{kind} job {job.id}[/]")
    with JobProgressView(console, title) as view:
        return jobs.wait(job.id, on_progress=view.update, cancel_on_interrupt=True)


def run_demo(
    mesh_config: Any, *, output: Path = Path("."), keep_running: bool = False, console: Console | None = None,
    client_factory: Callable[[dict[str, str]], Client] | None = None,
) -> DemoSummary:
    """Runs the tour; returns what it made. Stops the mesh afterwards if it started it."""
    import studio_dev.mesh as mesh

    con = console or Console()
    summary = DemoSummary()
    steps = _Steps(con, summary, 8)
    if shutil.which("ffmpeg") is None:
        raise ClientError("ffmpeg is not installed (the render service and this demo need it)")
    already = mesh.is_running(mesh_config.root)
    with steps.step("mesh", f"Start the mesh ({mesh_config.models} models)"):
        state = mesh.start(mesh_config)
        for p in state.processes:
            con.print(f"  {p.name:10} {p.status:8} {p.address} {p.note}", highlight=False)
    summary.endpoints, summary.editor_url = dict(state.endpoints), state.editor_url
    running = {p.name for p in state.processes if p.status == "running"}
    client = client_factory(summary.endpoints) if client_factory else Client(summary.endpoints, timeout=60)
    try:
        _tour(con, steps, client, summary, running, mesh_config.models == "tiny", output)
    finally:
        client.close()
        if not keep_running and already is None:
            con.print("[dim]stopping the mesh (keep it with --keep-running)…[/]")
            mesh.stop(mesh_config.root)
    if summary.editor_url:
        note = "" if keep_running or already is not None else " (run `viarte up` to open it)"
        con.print(f"\n[bold]editor:[/] {summary.editor_url}{note}")
    return summary


def _tour(
    con: Console, steps: _Steps, client: Client, summary: DemoSummary, running: set[str], tiny: bool, output: Path
) -> None:
    for needed in ("auth", "storage"):
        if needed not in running:
            raise ClientError(f"the demo needs the {needed} service, which is not running")
    with steps.step("register", "Register a demo user"):
        email = f"demo-{secrets.token_hex(4)}@viarte.dev"
        client.auth.register(email, secrets.token_urlsafe(18), display_name="Demo")
        summary.user_email = email
        con.print(f"  signed in as {email}")
    with steps.step("upload", "Upload the bundled face image and soundtrack"):
        for key, path in (("face", FACE_IMAGE), ("soundtrack", SOUNDTRACK)):
            with TransferProgress(con, f"upload {path.name}") as bar:
                asset = client.assets.upload(path, progress=bar.callback)
            summary.assets[key] = asset.id
            con.print(f"  {path.name} → {asset.id} ({asset.media.width or '-'}x{asset.media.height or '-'}, "
                      f"{asset.size_bytes:,} bytes)", highlight=False)  # fmt: skip
    videos = _generate(con, steps, client, summary, running, tiny)
    final = _render_and_upscale(con, steps, client, summary, running, videos, tiny)
    with steps.step("download", "Download the MP4"):
        output.mkdir(parents=True, exist_ok=True)
        target = output / OUTPUT_NAME
        with TransferProgress(con, f"download {OUTPUT_NAME}") as bar:
            path = client.assets.download(final, target, progress=bar.callback)
        summary.output = str(path.absolute())
        summary.ffprobe = ffprobe_summary(path)
        _print_probe(con, path, summary.ffprobe)
        con.print(f"  saved [bold]{summary.output}[/]")


def _generate(
    con: Console, steps: _Steps, client: Client, summary: DemoSummary, running: set[str], tiny: bool
) -> list[tuple[str, float]]:
    """The two generated clips as (asset id, seconds); falls back to the still image without inference."""
    if "inference" not in running:
        steps.skip("Image-to-video with face swap", "the inference service is not running")
        steps.skip("Text-to-video", "the inference service is not running")
        return [(summary.assets["face"], 2.0), (summary.assets["face"], 2.0)]
    models = client.generation.list_models()
    i2v = _pick(models, generation_pb2.TASK_IMAGE_TO_VIDEO, tiny, prefer=("WAN", "SVD"))
    t2v = _pick(models, generation_pb2.TASK_TEXT_TO_VIDEO, tiny, prefer=("MODELSCOPE", "WAN"))
    out: list[tuple[str, float]] = []
    with steps.step("i2v", f"Image-to-video with face swap ({i2v.id})"):
        # 128 px keeps the face recognisable; real models use their defaults (0).
        shape = _tiny_shape(i2v, 128) if tiny else _Shape()
        params = generation_parameters(
            model=i2v.id, task="i2v", image_asset_id=summary.assets["face"], seed=7,
            prompt=I2V_PROMPT if i2v.limits.max_prompt_chars else "",
            face_swap=face_swap_options(summary.assets["face"]),
            width=shape.width, height=shape.height, num_frames=shape.num_frames, fps=shape.fps,
        )  # fmt: skip
        job = _job(con, client, "generation", params, f"i2v + face swap ({i2v.id})")
        summary.jobs["i2v"] = job.id
        summary.canvas = (job.result.width, job.result.height, job.result.fps)
        fs = job.result.face_swap
        con.print(f"  video {job.result.video_asset_id}: {job.result.frame_count} frames @ {job.result.fps} fps, "
                  f"{job.result.width}x{job.result.height}, seed {job.result.seed}, {job.result.device}; "
                  f"face swap: {fs.frames_swapped}/{fs.frame_count} frames with a face", highlight=False)  # fmt: skip
        out.append((job.result.video_asset_id, job.result.frame_count / max(job.result.fps, 1)))
    with steps.step("t2v", f"Text-to-video ({t2v.id})"):
        # The tiny ModelScope UNet is slow on CPU above 64 px; the render scales it up anyway.
        shape = _tiny_shape(t2v, 64) if tiny else _Shape()
        params = generation_parameters(
            model=t2v.id, task="t2v", prompt=T2V_PROMPT, seed=11,
            width=shape.width, height=shape.height, num_frames=shape.num_frames, fps=shape.fps,
        )  # fmt: skip
        job = _job(con, client, "generation", params, f"t2v ({t2v.id})")
        summary.jobs["t2v"] = job.id
        con.print(f"  video {job.result.video_asset_id}: {job.result.frame_count} frames @ {job.result.fps} fps",
                  highlight=False)  # fmt: skip
        out.append((job.result.video_asset_id, job.result.frame_count / max(job.result.fps, 1)))
    summary.assets["i2v"], summary.assets["t2v"] = out[0][0], out[1][0]
    return out


def _render_and_upscale(
    con: Console, steps: _Steps, client: Client, summary: DemoSummary, running: set[str],
    videos: list[tuple[str, float]], tiny: bool,
) -> str:
    if "render" not in running:
        steps.skip("Render the timeline", "the render service is not running")
        steps.skip("Upscale x2", "the render service is not running")
        return summary.assets.get("i2v", summary.assets["face"])
    (first, first_s), (second, second_s) = videos
    with steps.step("render", "Render a timeline: crossfade, title, soundtrack"):
        stills = "inference" not in running  # without generation the clips are the uploaded image
        width, height, fps = summary.canvas
        if tiny or not width:  # tiny clips are 64-128 px: compose them on a 256 px canvas
            width, height, fps = 256, 256, 8
        timeline = build_timeline(first, first_s, second, second_s, summary.assets.get("soundtrack"),
                                  width=width, height=height, fps=fps, stills=stills)  # fmt: skip
        params = render_pb2.RenderParameters(timeline=timeline, quality=render_pb2.QUALITY_PRESET_STANDARD,
                                             output_name="viarte-demo-render.mp4")  # fmt: skip
        job = _job(con, client, "render", params, "render timeline")
        summary.jobs["render"] = job.id
        summary.assets["render"] = job.result.video_asset_id
        r = job.result
        con.print(f"  {r.video_asset_id}: {r.width}x{r.height} @ {r.fps:g} fps, {r.duration_seconds:.2f}s, "
                  f"{r.frame_count} frames, {r.encoder}, audio={'yes' if r.has_audio else 'no'}", highlight=False)  # fmt: skip
    with steps.step("upscale", "Upscale x2 (Real-ESRGAN)"):
        params = render_pb2.UpscaleParameters(video_asset_id=summary.assets["render"], scale=2, output_name=OUTPUT_NAME)
        job = _job(con, client, "upscale", params, "upscale x2")
        summary.jobs["upscale"] = job.id
        summary.assets["upscale"] = job.result.video_asset_id
        con.print(f"  {job.result.video_asset_id}: {job.result.width}x{job.result.height}, "
                  f"{job.result.frame_count} frames", highlight=False)  # fmt: skip
    return summary.assets["upscale"]
