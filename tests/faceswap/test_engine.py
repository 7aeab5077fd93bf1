"""The face swap engine and pipeline on the tiny models, through insightface's real code paths."""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from insightface.model_zoo.arcface_onnx import ArcFaceONNX
from insightface.model_zoo.inswapper import INSwapper
from insightface.model_zoo.scrfd import SCRFD

from services.inference.faceswap.engine import (
    FaceSelector,
    FaceSwapCancelled,
    FaceSwapEngine,
    SelectorMode,
    SwapStats,
)
from services.inference.faceswap.media import probe_video
from services.inference.faceswap.pipeline import swap_image, swap_video
from services.inference.faceswap.tiny import build_tiny_face_models
from services.kit.errors import ServiceError
from tests.faceswap.helpers import face_image, image_bytes, make_video, read_video_frames


def test_tiny_models_route_to_insightface_classes(engine: FaceSwapEngine, tiny_face_models, tmp_path: Path) -> None:
    models = engine._models.analysis.models
    assert isinstance(models["detection"], SCRFD) and models["detection"].use_kps
    rec = models["recognition"]
    assert isinstance(rec, ArcFaceONNX) and rec.input_size == (112, 112) and rec.input_mean == 127.5
    swapper = engine._models.swapper
    assert isinstance(swapper, INSwapper) and swapper.emap.shape == (512, 512) and swapper.input_size == (128, 128)
    # the swapper lives outside the FaceAnalysis folder, and building again changes nothing
    assert tiny_face_models.swapper_path.parent != tiny_face_models.models_dir
    before = {p: p.stat().st_mtime_ns for p in tiny_face_models.models_dir.parent.rglob("*.onnx")}
    build_tiny_face_models(tiny_face_models.models_dir.parent)
    assert {p: p.stat().st_mtime_ns for p in tiny_face_models.models_dir.parent.rglob("*.onnx")} == before


@pytest.mark.parametrize(("w", "h"), [(128, 128), (160, 96), (96, 160), (320, 180)])
def test_tiny_detector_rule(engine: FaceSwapEngine, w: int, h: int) -> None:
    [face] = engine.detect(face_image(w, h, seed=3))
    x1, y1, x2, y2 = face.bbox
    side = min(w, h) / 2
    assert abs((x1 + x2) / 2 - w / 2) <= 2 and abs((y1 + y2) / 2 - h / 2) <= 2
    assert abs((x2 - x1) - side) <= 2 and face.kps.shape == (5, 2) and face.det_score > 0.9
    assert engine.detect(face_image(w, h, seed=3, face=False)) == []


def test_source_without_face_is_no_face_in_source(engine: FaceSwapEngine) -> None:
    with pytest.raises(ServiceError) as info:
        engine.source_face(face_image(128, 128, face=False))
    assert info.value.reason == "NO_FACE_IN_SOURCE"
    with pytest.raises(ServiceError) as info:
        engine.reference_embedding(face_image(128, 128, face=False))
    assert info.value.reason == "NO_FACE_IN_REFERENCE"


def _face_box(w: int, h: int) -> tuple[slice, slice]:
    side = min(w, h) // 2
    return slice((h - side) // 2, (h + side) // 2), slice((w - side) // 2, (w + side) // 2)


def test_swap_all_changes_faces_only_and_counts_frames(engine: FaceSwapEngine) -> None:
    w, h = 160, 96
    frames = [face_image(w, h, seed=1, face=i % 3 != 2) for i in range(6)]
    source = engine.source_face(face_image(128, 128, seed=2))
    stats, seen = SwapStats(), []
    out = list(engine.swap_frames(frames, source, FaceSelector(), on_frame=lambda i, s: seen.append(i), stats=stats))
    assert seen == [1, 2, 3, 4, 5, 6]
    assert (stats.frame_count, stats.frames_swapped, stats.frames_without_face, stats.faces_swapped) == (6, 4, 2, 4)
    rows, cols = _face_box(w, h)
    for i, (before, after) in enumerate(zip(frames, out, strict=True)):
        if i % 3 == 2:
            assert after is before  # passed through untouched
            continue
        changed = np.abs(after.astype(int) - before.astype(int)).sum(axis=2) > 0
        assert changed[rows, cols].mean() > 0.5  # the face was replaced
        outside = changed.copy()
        outside[max(rows.start - 12, 0) : rows.stop + 12, max(cols.start - 12, 0) : cols.stop + 12] = False
        assert not outside.any()  # nothing else was touched


def test_swap_depends_on_the_source_identity(engine: FaceSwapEngine) -> None:
    frame = face_image(128, 128, seed=1)
    a, _ = engine.swap_frame(frame, engine.source_face(face_image(128, 128, seed=2)), FaceSelector())
    b, _ = engine.swap_frame(frame, engine.source_face(face_image(128, 128, seed=5)), FaceSelector())
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 1.0


def test_index_selector(engine: FaceSwapEngine) -> None:
    frame, source = face_image(128, 128, seed=1), engine.source_face(face_image(128, 128, seed=2))
    assert engine.swap_frame(frame, source, FaceSelector(SelectorMode.INDEX, index=0))[1] == 1
    out, n = engine.swap_frame(frame, source, FaceSelector(SelectorMode.INDEX, index=1))
    assert n == 0 and out is frame


def test_reference_selector_uses_similarity_threshold(engine: FaceSwapEngine) -> None:
    source = engine.source_face(face_image(128, 128, seed=2))
    same = engine.reference_embedding(face_image(128, 128, seed=1))  # the identity in the frame
    other = engine.reference_embedding(face_image(128, 128, seed=9))
    frame = face_image(128, 128, seed=1)
    assert engine.swap_frame(frame, source, FaceSelector(SelectorMode.REFERENCE, reference=same, threshold=0.5))[1] == 1
    assert engine.swap_frame(frame, source, FaceSelector(SelectorMode.REFERENCE, reference=other, threshold=0.5))[1] == 0


def test_cancel_between_frames(engine: FaceSwapEngine) -> None:
    frames = [face_image(96, 96, seed=1) for _ in range(5)]
    source = engine.source_face(face_image(96, 96, seed=2))
    stats = SwapStats()
    with pytest.raises(FaceSwapCancelled):
        for _ in engine.swap_frames(frames, source, FaceSelector(), should_cancel=lambda: stats.frame_count >= 2, stats=stats):
            pass
    assert stats.frame_count == 2


def _blocks(frame: np.ndarray) -> np.ndarray:
    h, w, _ = frame.shape
    return frame[: h // 8 * 8, : w // 8 * 8].astype(float).mean(axis=2).reshape(h // 8, 8, w // 8, 8).mean(axis=(1, 3))


def _streams(path: Path) -> list[dict]:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)], capture_output=True, check=True)
    return json.loads(out.stdout)["streams"]


def test_swap_video_keeps_audio_timing_and_counts(engine: FaceSwapEngine, tmp_path: Path) -> None:
    w, h = 160, 96
    frames = [face_image(w, h, seed=1, face=i < 8) for i in range(12)]
    target = make_video(tmp_path / "in.mp4", frames, fps=12)
    source = engine.source_face(face_image(128, 128, seed=2))
    ticks = []
    result = swap_video(engine, target, "video/mp4", tmp_path / "out.mp4", source, FaceSelector(), on_progress=ticks.append)
    stats = result.stats
    assert (stats.frame_count, stats.frames_swapped, stats.frames_without_face) == (12, 8, 4)
    assert [t.frame for t in ticks if t.stage == "face_swap"] == list(range(1, 13))
    assert {t.total_frames for t in ticks} == {12} and ticks[-1].stage == "encoding"
    info = probe_video(result.path, "video/mp4")
    assert (info.width, info.height, info.fps, info.frame_count) == (w, h, Fraction(12), 12)
    kinds = {s["codec_type"]: s["codec_name"] for s in _streams(result.path)}
    assert kinds == {"video": "h264", "audio": "aac"}
    out = read_video_frames(result.path, w, h)
    # Compared on 8x8 block means (H.264 4:2:0 smears per-pixel noise): swapped frames differ in
    # the face, frames without a face stay the same.
    rows, cols = _face_box(w, h)
    assert np.abs(_blocks(out[0])[rows.start // 8 : rows.stop // 8, cols.start // 8 : cols.stop // 8]
                  - _blocks(frames[0])[rows.start // 8 : rows.stop // 8, cols.start // 8 : cols.stop // 8]).mean() > 20
    assert np.abs(_blocks(out[10]) - _blocks(frames[10])).max() < 4


def test_swap_video_without_audio(engine: FaceSwapEngine, tmp_path: Path) -> None:
    target = make_video(tmp_path / "silent.mp4", [face_image(64, 64, seed=1)] * 3, audio=False)
    source = engine.source_face(face_image(64, 64, seed=2))
    result = swap_video(engine, target, "video/mp4", tmp_path / "out.mp4", source, FaceSelector())
    assert [s["codec_type"] for s in _streams(result.path)] == ["video"] and result.stats.frames_swapped == 3


@pytest.mark.parametrize(("fmt", "content_type"), [("PNG", "image/png"), ("JPEG", "image/jpeg")])
def test_swap_image_keeps_format(engine: FaceSwapEngine, fmt: str, content_type: str) -> None:
    source = engine.source_face(face_image(128, 128, seed=2))
    data, ctype, _suffix, stats = swap_image(engine, image_bytes(face_image(120, 90, seed=1), fmt), source, FaceSelector())
    assert ctype == content_type and stats.frames_swapped == 1
    assert data.startswith(b"\x89PNG" if fmt == "PNG" else b"\xff\xd8")


def test_unsupported_media(engine: FaceSwapEngine, tmp_path: Path) -> None:
    bogus = tmp_path / "notes.mp4"
    bogus.write_text("not a video")
    with pytest.raises(ServiceError) as info:
        probe_video(bogus, "video/mp4")
    assert info.value.reason == "UNSUPPORTED_MEDIA"
    with pytest.raises(ServiceError) as info:
        swap_image(engine, b"GIF89a-not-really", engine.source_face(face_image(64, 64, seed=2)), FaceSelector())
    assert info.value.reason == "UNSUPPORTED_MEDIA"
