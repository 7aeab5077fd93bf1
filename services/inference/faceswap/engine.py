"""Face swap on RGB frames with insightface: SCRFD detection, ArcFace identity, INSwapper paste-back.

One `FaceSwapEngine` is loaded per worker process and reused by every job (face swap jobs and the
generation job's auto face swap). Frames are RGB ``uint8`` arrays ``H x W x 3``; insightface works
in BGR, so the engine converts at its edges.
"""

from __future__ import annotations

import enum
import logging
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from services.inference.faceswap.config import FaceSwapConfig
from services.kit.errors import ServiceError

__all__ = [
    "DEFAULT_SIMILARITY_THRESHOLD",
    "FaceModelPaths",
    "FaceSelector",
    "FaceSwapCancelled",
    "FaceSwapEngine",
    "SelectorMode",
    "SourceFace",
    "SwapStats",
    "default_providers",
    "load_engine",
    "model_paths",
]

log = logging.getLogger(__name__)
# insightface's face_align calls a scikit-image API that warns on every aligned face.
warnings.filterwarnings("ignore", category=FutureWarning, module="insightface.utils.face_align")

Frame = NDArray[np.uint8]
DEFAULT_SIMILARITY_THRESHOLD = 0.3


class SelectorMode(enum.Enum):
    ALL = "all"
    INDEX = "index"  # one face, counted left to right
    REFERENCE = "reference"  # faces whose identity matches a reference face


class FaceSwapCancelled(Exception):
    """`should_cancel()` answered True between two frames."""


@dataclass(frozen=True)
class SourceFace:
    """The identity to put in (an insightface ``Face`` with its embedding)."""

    face: Any

    @property
    def embedding(self) -> NDArray[np.float32]:
        return np.asarray(self.face.normed_embedding, dtype=np.float32)


@dataclass(frozen=True)
class FaceSelector:
    mode: SelectorMode = SelectorMode.ALL
    index: int = 0
    # REFERENCE mode: the normalised embedding of the face to replace.
    reference: NDArray[np.float32] | None = None
    threshold: float = DEFAULT_SIMILARITY_THRESHOLD


@dataclass
class SwapStats:
    frame_count: int = 0
    frames_swapped: int = 0
    frames_without_face: int = 0
    faces_swapped: int = 0

    def add(self, faces: int) -> None:
        self.frame_count += 1
        self.faces_swapped += faces
        if faces:
            self.frames_swapped += 1
        else:
            self.frames_without_face += 1


@dataclass
class _Models:
    analysis: Any  # insightface.app.FaceAnalysis
    swapper: Any  # insightface.model_zoo.inswapper.INSwapper
    providers: list[str] = field(default_factory=list)


def default_providers() -> list[str]:
    """CUDA when this onnxruntime build has it, CPU always as the fallback."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    if "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class FaceSwapEngine:
    """Loads a FaceAnalysis pack (detection + recognition) and an INSwapper model once."""

    def __init__(
        self,
        models_dir: str | Path,
        swapper_path: str | Path,
        providers: Sequence[str] | None = None,
        *,
        det_size: tuple[int, int] = (640, 640),
        det_thresh: float = 0.5,
    ) -> None:
        self.models_dir = Path(models_dir)
        self.swapper_path = Path(swapper_path)
        self._check_files()
        self.providers = list(providers) if providers is not None else default_providers()
        self._models = self._load(det_size, det_thresh)

    # -- loading ---------------------------------------------------------------------------------
    def _check_files(self) -> None:
        if not self.models_dir.is_dir() or not any(self.models_dir.glob("*.onnx")):
            raise ServiceError.failed_precondition(
                "FACE_MODELS_UNAVAILABLE", f"no face analysis models in {self.models_dir}"
            )
        if not self.swapper_path.is_file():
            raise ServiceError.failed_precondition(
                "FACE_MODELS_UNAVAILABLE", f"face swapper model missing: {self.swapper_path}"
            )

    def _load(self, det_size: tuple[int, int], det_thresh: float) -> _Models:
        from insightface.app import FaceAnalysis
        from insightface.model_zoo import get_model

        # Landmark and gender/age models of full packs are not needed for swapping.
        analysis = FaceAnalysis(
            name=str(self.models_dir), allowed_modules=["detection", "recognition"], providers=self.providers
        )
        ctx_id = 0 if self.providers[0] == "CUDAExecutionProvider" else -1
        analysis.prepare(ctx_id=ctx_id, det_thresh=det_thresh, det_size=det_size)
        if "recognition" not in analysis.models:
            raise ServiceError.failed_precondition(
                "FACE_MODELS_UNAVAILABLE", f"no recognition model in {self.models_dir}"
            )
        swapper = get_model(str(self.swapper_path), providers=self.providers)
        log.info("face models loaded from %s on %s", self.models_dir, self.providers)
        return _Models(analysis=analysis, swapper=swapper, providers=self.providers)

    @property
    def device(self) -> str:
        return "cuda" if self.providers[0] == "CUDAExecutionProvider" else "cpu"

    @property
    def estimated_memory_bytes(self) -> int:
        """Weights on the device plus ORT workspace, for the worker's memory accounting."""
        files = [*self.models_dir.glob("*.onnx"), self.swapper_path]
        return int(sum(os.path.getsize(f) for f in files) * 1.5)

    # -- identities ------------------------------------------------------------------------------
    def source_face(self, image: Frame) -> SourceFace:
        """The largest face of the source image; NO_FACE_IN_SOURCE when there is none."""
        face = self._largest_face(image)
        if face is None:
            raise ServiceError.failed_precondition("NO_FACE_IN_SOURCE", "no face found in the source image")
        return SourceFace(face)

    def reference_embedding(self, image: Frame) -> NDArray[np.float32]:
        face = self._largest_face(image)
        if face is None:
            raise ServiceError.failed_precondition("NO_FACE_IN_REFERENCE", "no face found in the reference image")
        embedding: NDArray[np.float32] = np.asarray(face.normed_embedding, dtype=np.float32)
        return embedding

    def has_face(self, image: Frame) -> bool:
        return bool(self.detect(image))

    def _largest_face(self, image: Frame) -> Any:
        faces = self._models.analysis.get(_bgr(image))
        if not faces:
            return None
        return max(faces, key=lambda f: float((f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1])))

    # -- swapping --------------------------------------------------------------------------------
    def detect(self, image: Frame) -> list[Any]:
        """Faces of an RGB frame, left to right (detection only, no embeddings)."""
        return self._detect_bgr(_bgr(image))

    def _detect_bgr(self, bgr: Frame) -> list[Any]:
        from insightface.app.common import Face

        bboxes, kpss = self._models.analysis.det_model.detect(bgr, max_num=0)
        faces = [
            Face(bbox=bboxes[i, :4], kps=kpss[i] if kpss is not None else None, det_score=bboxes[i, 4])
            for i in range(bboxes.shape[0])
        ]
        return sorted(faces, key=lambda f: float(f.bbox[0]))

    def select(self, bgr: Frame, faces: list[Any], selector: FaceSelector) -> list[Any]:
        if selector.mode is SelectorMode.ALL:
            return faces
        if selector.mode is SelectorMode.INDEX:
            return [faces[selector.index]] if 0 <= selector.index < len(faces) else []
        if selector.reference is None:
            raise ValueError("REFERENCE selector without a reference embedding")
        if not faces:
            return []
        embeddings = self._embed(bgr, faces)
        sims = embeddings @ selector.reference
        return [f for f, s in zip(faces, sims, strict=True) if float(s) >= selector.threshold]

    def _embed(self, bgr: Frame, faces: list[Any]) -> NDArray[np.float32]:
        """Normalised embeddings of all faces of a frame in one recogniser batch."""
        from insightface.utils import face_align

        rec = self._models.analysis.models["recognition"]
        crops = [face_align.norm_crop(bgr, landmark=f.kps, image_size=rec.input_size[0]) for f in faces]
        feats = np.asarray(rec.get_feat(crops), dtype=np.float32)
        normed: NDArray[np.float32] = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
        return normed

    def swap_frame(self, image: Frame, source: SourceFace, selector: FaceSelector, *, bgr: bool = False) -> tuple[Frame, int]:
        """One frame with the selected faces swapped, and how many were swapped. Frames are RGB;
        `bgr=True` takes and returns BGR (the ffmpeg pipes decode to BGR to save two copies)."""
        img = _checked(image) if bgr else _bgr(image)
        targets = self.select(img, self._detect_bgr(img), selector)
        if not targets:
            return image, 0  # untouched
        for target in targets:
            img = self._models.swapper.get(img, target, source.face, paste_back=True)
        return (img if bgr else np.ascontiguousarray(img[:, :, ::-1])), len(targets)

    def swap_frames(
        self,
        frames: Iterable[Frame],
        source: SourceFace,
        selector: FaceSelector,
        on_frame: Callable[[int, SwapStats], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
        stats: SwapStats | None = None,
        *,
        bgr: bool = False,
    ) -> Iterator[Frame]:
        """Swaps frame by frame (lazily, so decode and encode can overlap with it).

        `on_frame(i, stats)` runs after frame i (1-based); `should_cancel()` is checked before each
        frame and raises `FaceSwapCancelled`. Frames without a selected face come back untouched and
        are counted in `stats.frames_without_face`.
        """
        stats = stats if stats is not None else SwapStats()
        for frame in frames:
            if should_cancel is not None and should_cancel():
                raise FaceSwapCancelled()
            out, faces = self.swap_frame(frame, source, selector, bgr=bgr)
            stats.add(faces)
            if on_frame is not None:
                on_frame(stats.frame_count, stats)
            yield out


def _checked(image: Frame) -> Frame:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ServiceError.invalid_argument("UNSUPPORTED_MEDIA", f"expected a uint8 H x W x 3 frame, got {image.shape}")
    return image


def _bgr(image: Frame) -> Frame:
    return np.ascontiguousarray(_checked(image)[:, :, ::-1])


@dataclass(frozen=True)
class FaceModelPaths:
    models_dir: Path
    swapper_path: Path


def model_paths(config: FaceSwapConfig) -> FaceModelPaths:
    """Where the models are; builds the tiny ones on first use when `face_use_tiny`."""
    from services.inference.faceswap.tiny import build_tiny_face_models, default_cache_dir

    root = Path(config.face_models_dir) if config.face_models_dir else default_cache_dir()
    if config.face_use_tiny:
        tiny = build_tiny_face_models(root)
        return FaceModelPaths(tiny.models_dir, tiny.swapper_path)
    return FaceModelPaths(root / config.face_pack, root / config.face_swapper)


def load_engine(config: FaceSwapConfig) -> FaceSwapEngine:
    paths = model_paths(config)
    size = config.face_det_size
    return FaceSwapEngine(paths.models_dir, paths.swapper_path, list(config.face_providers) or None, det_size=(size, size))
