"""Issue 20's render row: a render *job* (CreateRenderJob → SUCCEEDED, over the real auth, storage
with SeaweedFS and render servers on loopback: inputs read through presigned URLs, the MP4 and its
poster stored as assets) against one hand-written ffmpeg command reading the same media from local
files. Used by bench/render_vs_peers.py (``--job``), which owns the source media.

The timeline (as the issue states it): 60 s 1280x720 30 fps, three clips joined by 1 s crossfades, a
320x180 picture-in-picture at 80 % opacity for 10 s, a boxed title with 0.5 s fades, music with 2 s
fades, the clips' own audio muted; x264 fast / CRF 23 (the job's standard quality), AAC 192k.

Three rows, interleaved in each round: the row as filed (the job's defaults, whose mix is loudness
normalised in two passes, vs the command, which does not normalise), and two that make the same
sound on both sides: the job's defaults vs an expert's two-pass loudnorm export, and the job with
normalisation off vs the command as filed. Each prints the CPU-seconds both sides spent.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import statistics
import subprocess
import tempfile
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.machine import TICK_SECONDS, cpu_jiffies
from viarte.render.v1 import timeline_pb2 as tl

W, H, FPS = 1280, 720, 30
TITLE = (1.0, 5.0, 0.5)  # start, length, fade
BOX = ("#000000", 20)  # colour at the box's 50 % opacity (hand-written: black@0.5), padding


class IssueEdit:
    def __init__(self, seconds: float) -> None:
        self.d = seconds
        self.x = 1.0
        self.seg = (seconds + 2 * self.x) / 3
        seg = self.seg
        self.clips = [("a", 2.0, 2.0 + seg), ("b", 1.0, 1.0 + seg), ("a", 5.0, 5.0 + seg)]
        self.starts = [0.0, seg - self.x, 2 * seg - 2 * self.x]
        self.pip = (seconds / 6, min(10.0, seconds / 4))  # start, length (the source lasts 0.3 x seconds)


def issue_timeline(edit: IssueEdit, ids: dict[str, str]) -> tl.Timeline:
    t = tl.Timeline(canvas=tl.Canvas(width=W, height=H, fps=FPS, duration_seconds=edit.d))
    main = t.tracks.add(kind=tl.TRACK_KIND_VIDEO)
    for i, ((name, s0, s1), start) in enumerate(zip(edit.clips, edit.starts, strict=True)):
        c = main.clips.add(asset_id=ids[name], start_seconds=start, source_start_seconds=s0, source_end_seconds=s1, volume=0.0)
        if i:
            c.transition_in.CopyFrom(tl.Transition(kind=tl.TRANSITION_KIND_CROSSFADE, duration_seconds=edit.x))
    pip = t.tracks.add(kind=tl.TRACK_KIND_VIDEO).clips.add(
        asset_id=ids["pip"], start_seconds=edit.pip[0], source_end_seconds=edit.pip[1], volume=0.0)
    pip.transform.scale.value, pip.transform.x.value, pip.transform.y.value = 0.25, 0.8, 0.2  # 320x180
    pip.transform.opacity.value = 0.8
    start, length, fade = TITLE
    t.tracks.add(kind=tl.TRACK_KIND_TEXT).clips.add(
        start_seconds=start, duration_seconds=length, fade_in_seconds=fade, fade_out_seconds=fade,
        text=tl.TextStyle(text="Viarte Studio", font_size=72, box=True, box_color=BOX[0] + "80", box_padding=BOX[1]),
    )
    t.tracks.add(kind=tl.TRACK_KIND_AUDIO).clips.add(
        asset_id=ids["music"], source_end_seconds=edit.d, volume=0.5, fade_in_seconds=2, fade_out_seconds=2)
    return t


def issue_command(edit: IssueEdit, src: dict[str, Path], out: Path, font: str, loudnorm: str = "") -> list[str]:
    """What an expert would type for the issue's edit: one ffmpeg run, local files, same codecs.
    ``loudnorm``: the second pass of loudnorm's documented two-pass recipe (`loudnorm_second_pass`)."""
    (n0, a0, _), (n1, a1, _), (n2, a2, _) = edit.clips
    d, x, seg = edit.d, edit.x, edit.seg
    ps, pl = edit.pip
    ts, tlen, tf = TITLE
    alpha = f"if(lt(t,{ts + tf}),(t-{ts})/{tf},if(gt(t,{ts + tlen - tf}),({ts + tlen}-t)/{tf},1))"
    graph = ";".join([
        "[0:v]setpts=PTS-STARTPTS[v0]", "[1:v]setpts=PTS-STARTPTS[v1]", "[2:v]setpts=PTS-STARTPTS[v2]",
        f"[v0][v1]xfade=transition=fade:duration={x}:offset={seg - x}[x1]",
        f"[x1][v2]xfade=transition=fade:duration={x}:offset={2 * seg - 2 * x}[x2]",
        f"[3:v]scale=320:180,format=yuva420p,lut=a=val*0.8,setpts=PTS-STARTPTS+{ps}/TB[pip]",
        "[x2][pip]overlay=x=W*0.8-w/2:y=H*0.2-h/2:eof_action=pass[o]",
        f"[o]drawtext=fontfile={font}:text='Viarte Studio':fontsize=72:fontcolor=white:x=(w-text_w)/2:y=(h-text_h)/2"
        f":box=1:boxcolor=black@0.5:boxborderw={BOX[1]}"
        f":alpha='{alpha}':enable='between(t,{ts},{ts + tlen})',format=yuv420p[v]",
        f"[4:a]{_music_chain(edit)}{',' + loudnorm if loudnorm else ''}[a]",
    ])
    return [
        "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-ss", str(a0), "-t", str(seg), "-i", str(src[n0]),
        "-ss", str(a1), "-t", str(seg), "-i", str(src[n1]),
        "-ss", str(a2), "-t", str(seg), "-i", str(src[n2]),
        "-t", str(pl), "-i", str(src["pip"]),
        "-i", str(src["music"]),
        "-filter_complex", graph, "-map", "[v]", "-map", "[a]", "-t", str(d),
        "-c:v", "libx264", "-preset", "fast", "-crf", "23", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "192k", "-ar", "48000", "-movflags", "+faststart", str(out),
    ]


def _music_chain(edit: IssueEdit) -> str:
    return f"volume=0.5,afade=t=in:d=2,afade=t=out:st={edit.d - 2}:d=2,atrim=end={edit.d}"


# The job's default mix normalisation (AudioMix unset): -14 LUFS integrated, LRA 7, -1 dBTP.
_LOUDNORM = "loudnorm=I=-14:LRA=7:TP=-1"


def loudnorm_second_pass(edit: IssueEdit, src: dict[str, Path]) -> str:
    """Pass 1 of loudnorm's documented two-pass recipe (what an expert types for a normalised
    export: measure the mix, then one linear gain); returns pass 2's filter."""
    run = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "info", "-i", str(src["music"]), "-filter_complex",
         f"[0:a]{_music_chain(edit)},{_LOUDNORM}:print_format=json", "-f", "null", "-"],
        capture_output=True, text=True, check=True)
    m = json.loads(run.stderr[run.stderr.rindex("{"):run.stderr.rindex("}") + 1])
    return (f"{_LOUDNORM}:measured_I={m['input_i']}:measured_LRA={m['input_lra']}:measured_TP={m['input_tp']}"
            f":measured_thresh={m['input_thresh']}:offset={m['target_offset']}:linear=true,aresample=48000")


async def _job(channel: Any, user: Any, timeline: tl.Timeline) -> tuple[float, Any, dict[str, float]]:
    """Seconds from create to SUCCEEDED, the result, and the job's stage timeline (s after create)."""
    from viarte.render.v1 import render_pb2, render_pb2_grpc
    from viarte.type.v1 import job_pb2

    renders = render_pb2_grpc.RenderServiceStub(channel)
    t0 = time.perf_counter()
    created = time.time()
    job = (await renders.CreateRenderJob(render_pb2.CreateRenderJobRequest(parameters=render_pb2.RenderParameters(
        timeline=timeline, quality=render_pb2.QUALITY_PRESET_STANDARD)), metadata=user.metadata)).job
    marks: dict[str, float] = {}
    state = 0
    async for message in renders.WatchRenderJob(render_pb2.WatchRenderJobRequest(id=job.id), metadata=user.metadata):
        if not message.HasField("event"):
            continue
        ev = message.event
        state = ev.state
        name = job_pb2.Stage.Name(ev.progress.stage) if ev.progress.stage else job_pb2.JobState.Name(ev.state)
        at = ev.time.ToMicroseconds() / 1e6 - created
        marks.setdefault(f"first {name}", at)
        marks[f"last {name}"] = at
    elapsed = time.perf_counter() - t0
    assert state == job_pb2.JOB_STATE_SUCCEEDED, f"render ended {job_pb2.JobState.Name(state)}"
    result = (await renders.GetRenderJob(render_pb2.GetRenderJobRequest(id=job.id), metadata=user.metadata)).job.result
    marks["client done"] = elapsed
    return elapsed, result, marks


async def _register(auth_address: str) -> Any:
    import secrets
    import uuid
    from dataclasses import dataclass

    import grpc

    from viarte.auth.v1 import auth_pb2, auth_pb2_grpc

    @dataclass
    class User:
        metadata: tuple[tuple[str, str], ...]

    async with grpc.aio.insecure_channel(auth_address) as channel:
        answer = await auth_pb2_grpc.AuthServiceStub(channel).Register(auth_pb2.RegisterRequest(
            email=f"bench-{uuid.uuid4().hex[:8]}@viarte.test", password="pw-" + secrets.token_urlsafe(12)))
    return User((("authorization", f"Bearer {answer.tokens.access_token}"),))


def _frames(path: Path) -> int:
    out = subprocess.run(["ffprobe", "-v", "error", "-count_packets", "-select_streams", "v:0", "-show_entries",
                          "stream=nb_read_packets", "-of", "csv=p=0", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


@dataclass
class _Pair:
    """One comparison: a hand-written side (one or more commands) and a job's timeline."""

    label: str
    hand: list[list[str]]
    timeline: tl.Timeline
    hand_times: list[float] = field(default_factory=list)
    job_times: list[float] = field(default_factory=list)
    hand_cpu: list[float] = field(default_factory=list)
    job_cpu: list[float] = field(default_factory=list)
    job_parts: list[dict[str, float]] = field(default_factory=list)
    machine: dict[str, list[float]] = field(default_factory=lambda: {"hand": [], "job": []})
    result: Any = None
    marks: dict[str, float] = field(default_factory=dict)


async def bench_job(seconds: float, src: dict[str, Path], rounds: int, font: str) -> None:
    from tests.fixtures.auth import running_auth, test_auth_config
    from tests.fixtures.render import render_test_config, running_render
    from tests.fixtures.storage import running_s3, running_storage, test_storage_config

    edit = IssueEdit(seconds)
    with tempfile.TemporaryDirectory(prefix="bench-render-job-") as tmp:
        base = Path(tmp)
        async with AsyncExitStack() as stack:
            # Tokens outlive a long run on a loaded machine (the default 15 min did not).
            auth = await stack.enter_async_context(running_auth(test_auth_config(str(base / "auth"), access_token_ttl_seconds=4 * 3600)))
            s3 = await stack.enter_async_context(running_s3(base / "s3"))
            storage = await stack.enter_async_context(running_storage(test_storage_config(base / "storage", s3, auth), s3))
            render = await stack.enter_async_context(running_render(render_test_config(
                base / "render", auth, storage, max_duration_seconds=max(60.0, seconds))))
            user = await _register(auth.address)
            types = {"a": "video/mp4", "b": "video/mp4", "pip": "video/mp4", "music": "audio/mp4"}
            ids = {k: await storage.upload(user, await asyncio.to_thread(p.read_bytes), p.name, types[k]) for k, p in src.items()}
            timeline = issue_timeline(edit, ids)
            unnormalised = tl.Timeline()
            unnormalised.CopyFrom(timeline)
            unnormalised.mix.disable_loudness_normalization = True
            # The job normalises its mix by default (-14 LUFS, two passes); the command as filed does
            # not. Beside that row, the two same-sound ones: an expert's two-pass loudnorm export vs
            # the job's defaults, and the filed command vs the job with normalisation off.
            plain = issue_command(edit, src, base / "hand.mp4", font)
            measure = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "info", "-i", str(src["music"]), "-filter_complex",
                       f"[0:a]{_music_chain(edit)},{_LOUDNORM}:print_format=json", "-f", "null", "-"]
            normalised = issue_command(edit, src, base / "hand-loudnorm.mp4", font, loudnorm_second_pass(edit, src))
            pairs = [
                _Pair("as filed: job (defaults: mix normalised) vs hand (not normalised)", [plain], timeline),
                _Pair("same sound: job (defaults) vs hand two-pass loudnorm", [measure, normalised], timeline),
                _Pair("same sound: job (normalisation off) vs hand (not normalised)", [plain], unnormalised),
            ]
            await _job(render.channel, user, timeline)  # warm: encoder choice, caps, first connections
            # CPU-seconds each one costs: the hand command's ffmpeg; for the job this process (the
            # auth, storage and render servers run in it) with the ffmpeg/ffprobe runs it reaped, and
            # SeaweedFS. Both keep the cores busy, so the job's wall time can't drop below its
            # CPU-seconds / cores: the floor the ratio is held to on this machine. The whole
            # machine's busy CPU-seconds are printed beside them (other work included).
            meter = _CpuMeter(s3.pid)
            for _ in range(rounds):  # interleaved: a shared machine must not decide the ratio
                for pair in pairs:
                    busy0, before, t0 = cpu_jiffies()[0], meter.now(), time.perf_counter()
                    for command in pair.hand:
                        await asyncio.to_thread(subprocess.run, command, check=True, capture_output=True)
                    pair.hand_times.append(time.perf_counter() - t0)
                    busy1, between = cpu_jiffies()[0], meter.now()
                    pair.hand_cpu.append(sum(meter.spent(before, between).values()))
                    elapsed, pair.result, pair.marks = await _job(render.channel, user, pair.timeline)
                    pair.job_times.append(elapsed)
                    parts = meter.spent(between, meter.now())
                    pair.job_cpu.append(sum(parts.values()))
                    pair.job_parts.append(parts)
                    pair.machine["hand"].append((busy1 - busy0) * TICK_SECONDS)
                    pair.machine["job"].append((cpu_jiffies()[0] - busy1) * TICK_SECONDS)
            result = pairs[0].result
            video = await storage.download(user, result.video_asset_id)
            poster = await storage.download(user, result.poster_asset_id)
            (base / "job.mp4").write_bytes(video)
            job_frames, hand_frames = _frames(base / "job.mp4"), _frames(base / "hand.mp4")
    print(f"render job, issue 20's {seconds:g}s {W}x{H}@{FPS} timeline (x264 fast crf 23, job stores MP4 + poster), "
          f"median of {rounds} interleaved rounds; frames: job {job_frames}, hand {hand_frames}")
    cores = os.cpu_count() or 1
    for pair in pairs:
        hand, job = statistics.median(pair.hand_times), statistics.median(pair.job_times)
        hc, jc = statistics.median(pair.hand_cpu), statistics.median(pair.job_cpu)
        mh, mj = statistics.median(pair.machine["hand"]), statistics.median(pair.machine["job"])
        print(f"  {pair.label}")
        print(f"    hand-written ffmpeg (local files): {hand:7.2f} s   rounds {_fmt(pair.hand_times)}")
        print(f"    render job (create → SUCCEEDED)  : {job:7.2f} s   rounds {_fmt(pair.job_times)}")
        print(f"    job / hand                       : {job / hand:7.3f}x  best-of {min(pair.job_times) / min(pair.hand_times):.3f}x"
              "  (goal <= 1.00x)")
        print(f"    CPU-s, its own processes         : hand {hc:6.1f} ({hc / hand / cores:.0%} of {cores} cores)   "
              f"job {jc:6.1f} ({jc / job / cores:.0%})   job - hand {jc - hc:+.1f};  job's by part: " + ", ".join(
                  f"{k} {statistics.median(p[k] for p in pair.job_parts):.1f}" for k in _CpuMeter.PARTS))
        print(f"    CPU-s, whole machine             : hand {mh:6.1f}   job {mj:6.1f}   (other work included)")
        print(f"    job's floor at its CPU-s (CPU-s / {cores} cores) / hand: {jc / cores / hand:.3f}x")
    print(f"  job output (as filed): MP4 {len(video)} bytes sha256 {hashlib.sha256(video).hexdigest()[:16]}, "
          f"poster {len(poster)} bytes sha256 {hashlib.sha256(poster).hexdigest()[:16]}")
    print("  last job, s after create: " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(pairs[0].marks.items(), key=lambda kv: kv[1])))


class _CpuMeter:
    """CPU-seconds so far, by part: this process (the servers, the client), the ffmpeg/ffprobe runs
    it reaped, and SeaweedFS."""

    PARTS = ("servers", "ffmpeg", "seaweedfs")

    def __init__(self, s3_pid: int | None) -> None:
        import psutil

        self._own = psutil.Process()
        self._s3 = psutil.Process(s3_pid) if s3_pid else None

    def now(self) -> dict[str, float]:
        t = self._own.cpu_times()
        s3 = self._s3.cpu_times() if self._s3 is not None else None
        return {"servers": t.user + t.system, "ffmpeg": t.children_user + t.children_system,
                "seaweedfs": s3.user + s3.system if s3 is not None else 0.0}

    @staticmethod
    def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        return {k: after[k] - before[k] for k in before}


def _fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in values) + "]"
