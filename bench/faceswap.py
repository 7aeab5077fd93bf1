"""How close is the face swap job path to a bare loop over the same insightface calls?

Same run, same frames, same engine (models loaded once):
  - raw: frames already decoded in memory; per frame `det_model.detect` + `INSwapper.get` (paste
         back) per face, i.e. what a hand-written insightface script does, nothing else;
  - script: what a user would hand-write for the same result from the same files: ffprobe, an
         ffmpeg decode pipe (BGR), the source face from the source picture, per frame detect + swap
         (paste back), an ffmpeg encode pipe with the job's codec settings (x264 veryfast CRF 18,
         yuv420p, the target's audio copied, faststart) — the fair baseline for the job;
  - job: the worker-side job work `run_face_swap_work` on the encoded video: probe, ffmpeg decode
         pipe, source-face preparation, selection, swap, progress callbacks, ffmpeg H.264 encode
         with the audio muxed in (decode and encode overlap with the models in their own threads).
Rounds alternate to cancel drift; printed: frames/s of each, the job/script time ratio (goal ≤ 1.05)
and job/raw (the in-memory floor), and whether the job's and the script's videos decode to the
same frames.

    .venv/bin/python bench/faceswap.py [--frames 48] [--size 640x360] [--rounds 3] \
        [--models-dir DIR --pack buffalo_l --swapper inswapper_128.onnx]   # real packs (else tiny)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from services.inference.faceswap.config import FaceSwapConfig
from services.inference.faceswap.engine import FaceSwapEngine, load_engine
from services.inference.faceswap.media import decode_image
from services.inference.faceswap.tiny import face_image
from services.inference.faceswap.worker import run_face_swap_work
from services.inference.worker.protocol import FaceSwapWork
from viarte.inference.v1 import face_swap_pb2


def build_heavy_swapper(path: Path, channels: int = 64, layers: int = 6) -> Path:
    """An INSwapper-signature model with a real conv trunk at 128x128 (about
    128^2 * channels^2 * 9 * 2 * (layers - 2) FLOPs, ~4.8 GFLOP by default), so the per-frame model
    cost is of the order of a real swapper instead of the near-free tiny one."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from services.inference.faceswap.tiny import _Graph, _model

    rng = np.random.default_rng(7)
    g = _Graph("heavy")
    x = g.op("Relu", g.op("Conv", "target", g.const(rng.normal(0, 0.3, (channels, 3, 3, 3))), pads=[1, 1, 1, 1]))
    for _ in range(layers - 2):
        w = g.const(rng.normal(0, 1 / np.sqrt(9 * channels), (channels, channels, 3, 3)))
        x = g.op("Relu", g.op("Conv", x, w, pads=[1, 1, 1, 1]))
    x = g.op("Conv", x, g.const(rng.normal(0, 0.1, (3, channels, 3, 3))), pads=[1, 1, 1, 1])
    bias = g.op("Reshape", g.op("Gemm", "source", g.const(rng.normal(0, 2.0, (512, 3)))), g.const(np.array([1, 3, 1, 1])))
    g.output("Sigmoid", [g.op("Add", x, bias)], "output")
    g.inits.append(numpy_helper.from_array(rng.normal(0, 0.04, (512, 512)).astype(np.float32), "emap"))
    graph = helper.make_graph(
        g.nodes, "heavy_inswapper",
        [helper.make_tensor_value_info("target", TensorProto.FLOAT, [1, 3, 128, 128]),
         helper.make_tensor_value_info("source", TensorProto.FLOAT, [1, 512])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 128, 128])],
        g.inits,
    )
    onnx.save(_model(graph), path)
    return path


def _encode_png(frame: np.ndarray) -> bytes:
    from services.inference.faceswap.media import encode_image

    return encode_image(frame, "PNG")[0]


def make_inputs(tmp: Path, frames: int, width: int, height: int) -> tuple[Path, Path]:
    pictures = [face_image(width, height, seed=1 + (i % 4)) for i in range(frames)]
    video = tmp / "target.mp4"
    cmd = [
        "ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", "24",
        "-i", "pipe:0", "-f", "lavfi", "-i", f"sine=frequency=440:duration={frames / 24}",
        "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(video),
    ]
    subprocess.run(cmd, input=b"".join(p.tobytes() for p in pictures), check=True)
    source = tmp / "source.png"
    source.write_bytes(_encode_png(face_image(256, 256, seed=99)))
    return video, source


def decoded_frames(video: Path, width: int, height: int) -> list[np.ndarray]:
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(video), "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
        capture_output=True, check=True,
    ).stdout
    size = width * height * 3
    return [np.frombuffer(raw[i : i + size], np.uint8).reshape(height, width, 3) for i in range(0, len(raw), size)]


def raw_loop(engine: FaceSwapEngine, frames_bgr: list[np.ndarray], source_face: object) -> float:
    det = engine._models.analysis.det_model
    swapper = engine._models.swapper
    from insightface.app.common import Face

    started = time.perf_counter()
    for img in frames_bgr:
        bboxes, kpss = det.detect(img, max_num=0)
        for i in range(bboxes.shape[0]):
            face = Face(bbox=bboxes[i, :4], kps=kpss[i], det_score=bboxes[i, 4])
            img = swapper.get(img, face, source_face, paste_back=True)
    return time.perf_counter() - started


def script_path(engine: FaceSwapEngine, video: Path, source: Path, out: Path) -> float:
    """The hand-written decode -> swap -> encode script (see the module docstring)."""
    import json

    from insightface.app.common import Face

    started = time.perf_counter()
    streams = json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(video)], capture_output=True, check=True
    ).stdout)["streams"]
    v = next(s for s in streams if s["codec_type"] == "video")
    width, height, fps = int(v["width"]), int(v["height"]), v["avg_frame_rate"]
    import cv2

    source_faces = engine._models.analysis.get(cv2.imread(str(source)))
    source_face = max(source_faces, key=lambda f: float((f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1])))
    dec = subprocess.Popen(["ffmpeg", "-v", "error", "-i", str(video), "-map", "0:v:0", "-f", "rawvideo",
                            "-pix_fmt", "bgr24", "pipe:1"], stdout=subprocess.PIPE)
    enc = subprocess.Popen(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s",
                            f"{width}x{height}", "-r", fps, "-i", "pipe:0", "-i", str(video), "-map", "0:v:0",
                            "-map", "1:a:0", "-c:a", "copy", "-c:v", "libx264", "-preset", "veryfast", "-crf", "18",
                            "-pix_fmt", "yuv420p", "-movflags", "+faststart", "-shortest", str(out)],
                           stdin=subprocess.PIPE)
    assert dec.stdout is not None and enc.stdin is not None
    det, swapper, size = engine._models.analysis.det_model, engine._models.swapper, width * height * 3
    while len(buf := dec.stdout.read(size)) == size:
        img = np.frombuffer(buf, np.uint8).reshape(height, width, 3)
        bboxes, kpss = det.detect(img, max_num=0)
        for i in range(bboxes.shape[0]):
            img = swapper.get(img, Face(bbox=bboxes[i, :4], kps=kpss[i], det_score=bboxes[i, 4]), source_face,
                              paste_back=True)
        enc.stdin.write(np.ascontiguousarray(img).tobytes())
    enc.stdin.close()
    assert dec.wait() == 0 and enc.wait() == 0
    return time.perf_counter() - started


def video_frames_md5(path: Path) -> str:
    """One digest over the decoded frames of the first video stream (container bytes may differ)."""
    return subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v:0", "-f", "md5", "-"],
                          capture_output=True, check=True, text=True).stdout.strip()


def job_path(engine: FaceSwapEngine, video: Path, source: Path, tmp: Path) -> tuple[float, int]:
    options = face_swap_pb2.FaceSwapOptions(source_face_asset_id="bench")
    work = FaceSwapWork(str(video), True, str(source), str(tmp), options.SerializeToString(), "video/mp4")
    ticks = []
    started = time.perf_counter()
    outcome = run_face_swap_work(engine, work, ticks.append, lambda: False)
    return time.perf_counter() - started, outcome.faces_swapped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models-dir", default="")
    parser.add_argument("--pack", default="buffalo_l")
    parser.add_argument("--swapper", default="inswapper_128.onnx")
    parser.add_argument("--det-size", type=int, default=640)
    parser.add_argument("--heavy", action="store_true", help="tiny detector + a ~4.8 GFLOP swapper trunk")
    args = parser.parse_args()
    warnings.simplefilter("ignore", FutureWarning)
    width, height = (int(v) for v in args.size.split("x"))
    config = FaceSwapConfig(
        face_models_dir=args.models_dir, face_pack=args.pack, face_swapper=args.swapper,
        face_use_tiny=not args.models_dir, face_det_size=args.det_size,
    )
    engine = load_engine(config)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if args.heavy:
            engine = FaceSwapEngine(engine.models_dir, build_heavy_swapper(tmp / "heavy_swapper.onnx"),
                                    engine.providers, det_size=(args.det_size, args.det_size))
        video, source = make_inputs(tmp, args.frames, width, height)
        frames_bgr = [np.ascontiguousarray(f[:, :, ::-1]) for f in decoded_frames(video, width, height)]
        source_face = engine.source_face(decode_image(source.read_bytes())[0]).face
        n = len(frames_bgr)
        raw_loop(engine, frames_bgr[:4], source_face)  # warm-up (sessions, caches)
        raw_times, script_times, job_times = [], [], []
        for r in range(args.rounds):
            out = tmp / f"round{r}"
            out.mkdir()
            raw_times.append(raw_loop(engine, frames_bgr, source_face))
            script_times.append(script_path(engine, video, source, out / "script.mp4"))
            seconds, faces = job_path(engine, video, source, out)
            job_times.append(seconds)
            assert faces == n, f"job swapped {faces} faces in {n} frames"
        job_output = tmp / "round0" / "swapped.mp4"
        same = video_frames_md5(job_output) == video_frames_md5(tmp / "round0" / "script.mp4")
    raw, script, job = (statistics.median(t) for t in (raw_times, script_times, job_times))
    models = "tiny random-weight models" if not args.models_dir else f"{args.models_dir}/{args.pack} + {args.swapper}"
    if args.heavy:
        models = "tiny detector/recogniser + ~4.8 GFLOP swapper"
    print(f"face swap, {n} frames {width}x{height}, {models}, providers {engine.providers}, det {args.det_size}")
    print(f"{'path':<6}{'median s':>10}{'frames/s':>10}")
    print(f"{'raw':<6}{raw:>10.3f}{n / raw:>10.1f}")
    print(f"{'script':<6}{script:>10.3f}{n / script:>10.1f}")
    print(f"{'job':<6}{job:>10.3f}{n / job:>10.1f}")
    for name, base, goal in (("script", script_times, "goal <= 1.05"), ("raw", raw_times, "the in-memory floor")):
        ratios = sorted(j / b for j, b in zip(job_times, base, strict=True))
        print(f"job/{name} time ratio: {job / statistics.median(base):.3f} (median of rounds "
              f"{statistics.median(ratios):.3f}, range {ratios[0]:.3f}..{ratios[-1]:.3f}; {goal})")
    print(f"job and script videos decode to the same frames: {'yes' if same else 'NO'}")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
