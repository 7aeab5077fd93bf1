"""Render and upscale speed: this service vs its peers, same machine, same run, printed as ratios.

Render: one 60 s 1280x720 30 fps timeline (three trimmed clips joined by 1 s crossfades, a
picture-in-picture overlay at 80 % opacity, a title with fades, a music track with fades, all
audio mixed), encoded with the same x264 settings (veryfast, CRF 23, AAC 192k) by
  1. this service's engine (timeline → plan → one ffmpeg graph; the same code a render job runs),
  2. one hand-written ffmpeg command (what an expert would type for this edit),
  3. MoviePy (composes frames in Python/numpy and pipes them to ffmpeg).
Goals: service ≤ 1.0x the hand-written command's time, ≥ 2.5x faster than MoviePy.

Upscale: frames/s of the service's upscaler (worker process: ffmpeg decode pipe → RRDBNet in
batches → ffmpeg encode, with audio) vs a raw loop over the same network on frames already in
memory. The network is the full RealESRGAN_x2plus architecture (64 features, 23 blocks) with random
weights (the real file can't be downloaded here; the compute is identical). Goal ≤ 1.1x the time.
Also per job: a cold worker process (started for the job: Python + torch import + weights load)
vs the service's warm worker (kept between jobs by UpscalePool), and the time the warm one saves.

Speed ramp: a 20 s clip under a keyframed speed ramp (one setpts root() expression, audio in
atempo pieces) vs the same footage at the constant speed that gives the same length: the price of
the ramp (goal: close to 1.0x).

Source media are generated once with ffmpeg lavfi into .cache/bench-render/.
Render job (issue 20): the issue's own 60 s timeline (bench/render_job.py) as a render job through
the mesh, storing its MP4 and poster, vs the hand-written command for that timeline; goal ≤ 1.00x.

Run: .venv/bin/python bench/render_vs_peers.py [--seconds 60] [--rounds 2] [--skip-moviepy] [--upscale-frames 24]
     [--skip-job] [--job-rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.render.config import RenderConfig  # noqa: E402
from services.render.encoder import EncoderOptions  # noqa: E402
from services.render.media import probe  # noqa: E402
from services.render.pipeline import render_plan  # noqa: E402
from services.render.timeline.plan import Source  # noqa: E402
from services.render.timeline.validate import Limits, font_file, plan_timeline  # noqa: E402
from services.render.upscale.pool import UpscalePool, upscale_video  # noqa: E402
from viarte.render.v1 import timeline_pb2 as tl  # noqa: E402

CACHE = ROOT / ".cache" / "bench-render"
W, H, FPS = 1280, 720, 30
X264 = {"preset": "veryfast", "crf": 23}
FONT = font_file("DejaVu Sans") or "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args], check=True)


def _source(path: Path) -> Source:
    ctype = "audio/mp4" if path.suffix == ".m4a" else "video/mp4"
    return Source(str(path), probe(str(path), ctype), ctype)


def make_sources(seconds: float) -> dict[str, Path]:
    CACHE.mkdir(parents=True, exist_ok=True)
    clip_len = round((seconds + 2) / 3 + 6, 2)  # the longest trim is 5 s + one third of the timeline
    files = {
        "a": (CACHE / f"a-{clip_len:g}.mp4", f"testsrc2=s={W}x{H}:r={FPS}:d={clip_len}", "sine=f=330"),
        "b": (CACHE / f"b-{clip_len:g}.mp4", f"testsrc2=s={W}x{H}:r={FPS}:d={clip_len},hue=h=120", "sine=f=440"),
        "pip": (CACHE / f"pip-{seconds:g}.mp4", f"testsrc=s=640x360:r={FPS}:d={seconds * 0.3}", "sine=f=550"),
    }
    for path, video, audio in files.values():
        if not path.exists():
            ffmpeg("-f", "lavfi", "-i", video, "-f", "lavfi", "-i", audio, "-shortest", "-c:v", "libx264", "-preset", "veryfast",
                   "-crf", "20", "-pix_fmt", "yuv420p", "-g", "60", "-c:a", "aac", str(path))
    music = CACHE / f"music-{seconds:g}.m4a"
    if not music.exists():
        ffmpeg("-f", "lavfi", "-i", f"aevalsrc=0.3*sin(2*PI*220*t)*sin(2*PI*0.5*t)|0.3*sin(2*PI*277*t):d={seconds}:s=48000",
               "-c:a", "aac", str(music))
    return {k: v[0] for k, v in files.items()} | {"music": music}


class Edit:
    """The edit, in seconds, shared by the three renderers."""

    def __init__(self, seconds: float) -> None:
        self.d = seconds
        x = 1.0  # crossfade
        seg = (seconds + 2 * x) / 3
        self.clips = [("a", 2.0, 2.0 + seg), ("b", 1.0, 1.0 + seg), ("a", 5.0, 5.0 + seg)]
        self.starts = [0.0, seg - x, 2 * seg - 2 * x]
        self.x = x
        self.pip = (seconds / 6, seconds * 0.25)  # start, length
        self.title = (1.0, 5.0, 0.5)  # start, length, fade


def timeline(edit: Edit) -> tl.Timeline:
    t = tl.Timeline(canvas=tl.Canvas(width=W, height=H, fps=FPS, duration_seconds=edit.d))
    main = t.tracks.add(kind=tl.TRACK_KIND_VIDEO)
    for i, ((name, s0, s1), start) in enumerate(zip(edit.clips, edit.starts, strict=True)):
        c = main.clips.add(asset_id=name, start_seconds=start, source_start_seconds=s0, source_end_seconds=s1)
        if i:
            c.transition_in.CopyFrom(tl.Transition(kind=tl.TRANSITION_KIND_CROSSFADE, duration_seconds=edit.x))
    pip = t.tracks.add(kind=tl.TRACK_KIND_VIDEO).clips.add(
        asset_id="pip", start_seconds=edit.pip[0], source_end_seconds=edit.pip[1], volume=0.0
    )
    pip.transform.scale.value, pip.transform.x.value, pip.transform.y.value = 0.3, 0.8, 0.2
    pip.transform.opacity.value = 0.8
    start, length, fade = edit.title
    t.tracks.add(kind=tl.TRACK_KIND_TEXT).clips.add(
        start_seconds=start, duration_seconds=length, fade_in_seconds=fade, fade_out_seconds=fade,
        text=tl.TextStyle(text="Viarte Studio", font_size=72),
    )
    t.tracks.add(kind=tl.TRACK_KIND_AUDIO).clips.add(
        asset_id="music", source_end_seconds=edit.d, volume=0.5, fade_in_seconds=2, fade_out_seconds=3
    )
    return t


async def run_service(edit: Edit, src: dict[str, Path], out_dir: Path) -> float:
    sources = {k: _source(p) for k, p in src.items()}
    t0 = time.perf_counter()
    plan = plan_timeline(timeline(edit), sources, Limits())
    await render_plan(plan, out_dir, EncoderOptions("libx264", dict(X264)))
    return time.perf_counter() - t0


def hand_written(edit: Edit, src: dict[str, Path], out: Path) -> list[str]:
    (n0, a0, b0), (n1, a1, _b1), (n2, a2, _b2) = edit.clips
    d, x = edit.d, edit.x
    ps, pl = edit.pip
    ts, tlen, tf = edit.title
    seg = b0 - a0
    alpha = f"if(lt(t,{ts + tf}),(t-{ts})/{tf},if(gt(t,{ts + tlen - tf}),({ts + tlen}-t)/{tf},1))"
    graph = ";".join([
        "[0:v]setpts=PTS-STARTPTS[v0]", "[1:v]setpts=PTS-STARTPTS[v1]", "[2:v]setpts=PTS-STARTPTS[v2]",
        f"[v0][v1]xfade=transition=fade:duration={x}:offset={seg - x}[x1]",
        f"[x1][v2]xfade=transition=fade:duration={x}:offset={2 * seg - 2 * x}[x2]",
        f"[3:v]scale=384:216,format=yuva420p,lut=a=val*0.8,setpts=PTS-STARTPTS+{ps}/TB[pip]",
        "[x2][pip]overlay=x=W*0.8-w/2:y=H*0.2-h/2:eof_action=pass[o]",
        f"[o]drawtext=fontfile={FONT}:text='Viarte Studio':fontsize=72:fontcolor=white:x=(w-text_w)/2:y=(h-text_h)/2"
        f":alpha='{alpha}':enable='between(t,{ts},{ts + tlen})',format=yuv420p[v]",
        f"[0:a]afade=t=out:st={seg - x}:d={x}[a0]",
        f"[1:a]afade=t=in:d={x},afade=t=out:st={seg - x}:d={x},adelay={int((seg - x) * 1000)}:all=1[a1]",
        f"[2:a]afade=t=in:d={x},adelay={int((2 * seg - 2 * x) * 1000)}:all=1[a2]",
        f"[4:a]volume=0.5,afade=t=in:d=2,afade=t=out:st={d - 3}:d=3[m]",
        f"[a0][a1][a2][m]amix=inputs=4:normalize=0:duration=longest,atrim=end={d}[a]",
    ])
    return [
        "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-ss", str(a0), "-t", str(seg), "-i", str(src[n0]),
        "-ss", str(a1), "-t", str(seg), "-i", str(src[n1]),
        "-ss", str(a2), "-t", str(seg), "-i", str(src[n2]),
        "-t", str(pl), "-i", str(src["pip"]),
        "-i", str(src["music"]),
        "-filter_complex", graph, "-map", "[v]", "-map", "[a]", "-t", str(d),
        "-c:v", "libx264", "-preset", X264["preset"], "-crf", str(X264["crf"]), "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "192k", "-movflags", "+faststart", str(out),
    ]


def run_hand_written(edit: Edit, src: dict[str, Path], out: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(hand_written(edit, src, out), check=True)
    return time.perf_counter() - t0


def run_moviepy(edit: Edit, src: dict[str, Path], out: Path) -> float:
    from moviepy import (
        AudioFileClip,
        CompositeAudioClip,
        CompositeVideoClip,
        TextClip,
        VideoFileClip,
        afx,
        vfx,
    )

    t0 = time.perf_counter()
    layers = []
    for i, ((name, s0, s1), start) in enumerate(zip(edit.clips, edit.starts, strict=True)):
        clip = VideoFileClip(str(src[name])).subclipped(s0, s1).with_start(start)
        if i:
            clip = clip.with_effects([vfx.CrossFadeIn(edit.x)])
        layers.append(clip)
    ps, pl = edit.pip
    layers.append(
        VideoFileClip(str(src["pip"]), audio=False).subclipped(0, pl).resized(0.6).with_opacity(0.8)
        .with_position((W * 0.8 - 192, H * 0.2 - 108)).with_start(ps)
    )
    ts, tlen, tf = edit.title
    layers.append(
        TextClip(font=FONT, text="Viarte Studio", font_size=72, color="white").with_start(ts).with_duration(tlen)
        .with_position("center").with_effects([vfx.CrossFadeIn(tf), vfx.CrossFadeOut(tf)])
    )
    video = CompositeVideoClip(layers, size=(W, H)).with_duration(edit.d)
    music = AudioFileClip(str(src["music"])).with_effects([afx.MultiplyVolume(0.5), afx.AudioFadeIn(2), afx.AudioFadeOut(3)])
    video = video.with_audio(CompositeAudioClip([video.audio, music]).with_duration(edit.d))
    video.write_videofile(
        str(out), fps=FPS, codec="libx264", preset=X264["preset"], audio_codec="aac", audio_bitrate="192k",
        ffmpeg_params=["-crf", str(X264["crf"]), "-pix_fmt", "yuv420p", "-movflags", "+faststart"], logger=None,
    )
    return time.perf_counter() - t0


def check(path: Path, seconds: float) -> str:
    info = json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)],
        capture_output=True, check=True).stdout)
    v = next(s for s in info["streams"] if s["codec_type"] == "video")
    has_audio = any(s["codec_type"] == "audio" for s in info["streams"])
    return f"{v['width']}x{v['height']} {float(info['format']['duration']):.2f}s audio={has_audio}"


def bench_render(seconds: float, skip_moviepy: bool, rounds: int) -> None:
    src = make_sources(seconds)
    edit = Edit(seconds)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        hand_times: list[float] = []
        service_times: list[float] = []
        # Interleaved rounds, best of each: the machine is shared, so one slow moment must not
        # decide a ratio.
        for _ in range(rounds):
            hand_times.append(run_hand_written(edit, src, work / "hand.mp4"))
            service_times.append(asyncio.run(run_service(edit, src, work / "service")))
        movie = None if skip_moviepy else run_moviepy(edit, src, work / "moviepy.mp4")
        hand, service = min(hand_times), min(service_times)
        print(f"render {seconds:g}s {W}x{H}@{FPS} x264 {X264['preset']} crf {X264['crf']}, best of {rounds} interleaved rounds")
        print(f"  hand-written ffmpeg : {hand:7.2f} s   {check(work / 'hand.mp4', seconds)}   rounds {_fmt(hand_times)}")
        print(f"  service (engine)    : {service:7.2f} s   {check(work / 'service' / 'render.mp4', seconds)}   rounds {_fmt(service_times)}")
        print(f"  service / hand      : {service / hand:7.2f}x   (goal <= 1.00x)")
        if movie is not None:
            print(f"  moviepy (1 round)   : {movie:7.2f} s   {check(work / 'moviepy.mp4', seconds)}")
            print(f"  moviepy / service   : {movie / service:7.2f}x   (goal >= 2.50x faster)")
            print(f"  moviepy / hand      : {movie / hand:7.2f}x")


def bench_ramp(seconds: float, rounds: int) -> None:
    src = make_sources(seconds)
    sources = {"a": _source(src["a"])}
    out_len = min(20.0, seconds / 3)
    kfs = [tl.Keyframe(time_seconds=0, value=0.5), tl.Keyframe(time_seconds=out_len / 3, value=2.0, easing=tl.EASING_EASE_IN_OUT),
           tl.Keyframe(time_seconds=2 * out_len / 3, value=1.0, easing=tl.EASING_EASE_OUT)]

    def build(ramped: bool, trim: float) -> tl.Timeline:
        t = tl.Timeline(canvas=tl.Canvas(width=W, height=H, fps=FPS))
        c = t.tracks.add(kind=tl.TRACK_KIND_VIDEO).clips.add(asset_id="a", source_start_seconds=2, source_end_seconds=2 + trim)
        if ramped:
            c.filters.speed_keyframes.extend(kfs)
        else:
            c.speed = trim / out_len
        return t

    from services.render.timeline.plan import Keyframe
    from services.render.timeline.ramp import SpeedRamp

    ease = {tl.EASING_UNSPECIFIED: "linear", tl.EASING_EASE_IN_OUT: "ease_in_out", tl.EASING_EASE_OUT: "ease_out"}
    trim = SpeedRamp(tuple(Keyframe(k.time_seconds, k.value, ease[k.easing]) for k in kfs)).source_at(out_len)
    ramp_times: list[float] = []
    const_times: list[float] = []
    facts: dict[bool, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(rounds):
            for ramped, times in ((False, const_times), (True, ramp_times)):
                t0 = time.perf_counter()
                plan = plan_timeline(build(ramped, trim), sources, Limits())
                out = asyncio.run(render_plan(plan, Path(tmp) / f"{ramped}-{i}", EncoderOptions("libx264", dict(X264))))
                times.append(time.perf_counter() - t0)
                facts[ramped] = check(out.video, out_len)
    ramp, const = min(ramp_times), min(const_times)
    print(f"speed ramp {out_len:g}s {W}x{H}@{FPS} ({trim:.2f} s of source), best of {rounds} interleaved rounds")
    print(f"  constant speed      : {const:7.2f} s   {facts[False]}   rounds {_fmt(const_times)}")
    print(f"  ramp (0.5x-2x-1x)   : {ramp:7.2f} s   {facts[True]}   rounds {_fmt(ramp_times)}")
    print(f"  ramp / constant     : {ramp / const:7.2f}x")


def _stamp(seen: list[float]) -> Callable[[object], None]:
    return lambda _progress: seen.append(time.perf_counter())


def _fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in values) + "]"


def bench_upscale(frames: int, size: tuple[int, int], rounds: int) -> None:
    import numpy as np
    import torch

    from services.render.upscale.rrdbnet import build_tiny, load_rrdbnet
    from services.render.upscale.worker import upscale_batch

    w, h = size
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model_dir = root / "models"
        weights = build_tiny(model_dir / "RealESRGAN_x2plus.pth", num_feat=64, num_block=23, num_grow_ch=32)
        clip = root / "in.mp4"
        ffmpeg("-f", "lavfi", "-i", f"testsrc2=s={w}x{h}:r=30", "-f", "lavfi", "-i", "sine=f=440", "-frames:v", str(frames),
               "-t", str(frames / 30), "-c:v", "libx264", "-crf", "12", "-pix_fmt", "yuv420p", "-c:a", "aac", str(clip))
        batch = 4
        config = RenderConfig(model_dir=str(model_dir), upscale_batch_size=batch, upscale_allow_tiny=False)
        # raw loop: the same network on frames already decoded into memory
        raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(clip), "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
                             capture_output=True, check=True).stdout
        arr = torch.from_numpy(np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3).copy()).permute(0, 3, 1, 2)
        model = load_rrdbnet(weights)
        upscale_batch(model, arr[:1].float() / 255)  # warm-up, as the worker's first batch is
        frames = len(arr)
        raw_times, service_times, steady_times, warm_times = asyncio.run(
            _upscale_rounds(config, clip, root, model, arr, batch, rounds)
        )
        raw_s, service_s, steady, warm = min(raw_times), min(service_times), min(steady_times), min(warm_times)
        print(f"upscale x2 RRDBNet 64f/23b, {frames} frames {w}x{h} -> {2 * w}x{2 * h}, batch {batch}, "
              f"{torch.get_num_threads()} threads, best of {rounds} interleaved rounds")
        print(f"  raw loop            : {raw_s:7.2f} s  {frames / raw_s:6.2f} frames/s   rounds {_fmt(raw_times)}")
        print(f"  service (steady)    : {steady:7.2f} s  {frames / steady:6.2f} frames/s   ratio {steady / raw_s:5.2f}x (goal <= 1.10x)"
              f"   rounds {_fmt(steady_times)}")
        print(f"  service, cold worker: {service_s:7.2f} s  {frames / service_s:6.2f} frames/s   ratio {service_s / raw_s:5.2f}x"
              f"  (+ worker process start, torch import, model load)   rounds {_fmt(service_times)}")
        print(f"  service, warm worker: {warm:7.2f} s  {frames / warm:6.2f} frames/s   ratio {warm / raw_s:5.2f}x"
              f"  (kept warm between jobs)   rounds {_fmt(warm_times)}")
        print(f"  warm worker saves   : {service_s - warm:7.2f} s per job   cold / warm {service_s / warm:5.2f}x")


async def _upscale_rounds(
    config: RenderConfig, clip: Path, root: Path, model: object, arr: object, batch: int, rounds: int
) -> tuple[list[float], list[float], list[float], list[float]]:
    """Interleaved rounds (shared machine): raw loop, a cold worker per job, then a warm pooled one."""
    from services.render.upscale.worker import upscale_batch

    frames = len(arr)  # type: ignore[arg-type]
    raw_times: list[float] = []
    service_times: list[float] = []
    steady_times: list[float] = []
    warm_times: list[float] = []
    pool = UpscalePool(idle_seconds=600)
    try:
        await upscale_video(config, str(clip), root / "warmup.mp4", pool=pool)  # the pool's first job starts it
        for _ in range(rounds):
            t0 = time.perf_counter()
            for i in range(0, frames, batch):
                upscale_batch(model, arr[i : i + batch].float() / 255)  # type: ignore[arg-type, index]
            raw_times.append(time.perf_counter() - t0)
            seen: list[float] = []
            t0 = time.perf_counter()
            result = await upscale_video(config, str(clip), root / "out.mp4", on_progress=_stamp(seen))
            service_times.append(time.perf_counter() - t0)
            assert result.frame == frames
            # Progress comes per frame as it reaches the encoder; from the end of the first batch on
            # the pipeline is in its steady state (worker started, torch imported, model loaded).
            steady_times.append((seen[-1] - seen[batch - 1]) / (frames - batch) * frames)
            t0 = time.perf_counter()
            result = await upscale_video(config, str(clip), root / "warm.mp4", pool=pool)
            warm_times.append(time.perf_counter() - t0)
            assert result.frame == frames and pool.started == 1
    finally:
        await pool.close()
    return raw_times, service_times, steady_times, warm_times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--skip-moviepy", action="store_true")
    parser.add_argument("--skip-upscale", action="store_true")
    parser.add_argument("--skip-render", action="store_true")
    parser.add_argument("--skip-ramp", action="store_true")
    parser.add_argument("--skip-job", action="store_true")
    parser.add_argument("--job-rounds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--upscale-frames", type=int, default=24)
    parser.add_argument("--upscale-size", default="64x36")
    args = parser.parse_args()
    if not args.skip_render:
        bench_render(args.seconds, args.skip_moviepy, args.rounds)
    if not args.skip_job:
        from bench.render_job import bench_job

        asyncio.run(bench_job(args.seconds, make_sources(args.seconds), args.job_rounds, FONT))
    if not args.skip_ramp:
        bench_ramp(args.seconds, args.rounds)
    if not args.skip_upscale:
        w, h = (int(v) for v in args.upscale_size.split("x"))
        bench_upscale(args.upscale_frames, (w, h), args.rounds)


if __name__ == "__main__":
    main()
