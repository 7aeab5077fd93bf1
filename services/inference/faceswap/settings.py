"""Face swap configuration fields (they live on the inference service's config) and model loading."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from services.kit.config import ServiceConfig

if TYPE_CHECKING:
    from services.inference.faceswap.engine import FaceSwapEngine

__all__ = ["FaceModelPaths", "FaceSwapConfig", "FaceSwapSettings", "load_engine", "model_paths"]


class FaceSwapSettings(Protocol):
    @property
    def face_models_dir(self) -> str: ...
    @property
    def face_pack(self) -> str: ...
    @property
    def face_swapper(self) -> str: ...
    @property
    def face_use_tiny(self) -> bool: ...
    @property
    def face_det_size(self) -> int: ...
    @property
    def face_providers(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class FaceSwapConfig(ServiceConfig):
    """A stand-alone config with the face swap fields (tests, benches)."""

    service_name = "inference"
    # Holds `<face_pack>/` (a FaceAnalysis pack: detection + recognition) and `<face_swapper>`.
    # "" = <repo>/.cache/models/faces.
    face_models_dir: str = ""
    face_pack: str = "buffalo_l"
    face_swapper: str = "inswapper_128.onnx"
    # Build and use the tiny random-weight models (offline, tests) instead of the real pack.
    face_use_tiny: bool = False
    # Detector input size (square); 640 for real packs.
    face_det_size: int = 640
    # onnxruntime providers; empty = CUDA when available, else CPU.
    face_providers: tuple[str, ...] = ()


@dataclass(frozen=True)
class FaceModelPaths:
    models_dir: Path
    swapper_path: Path


def model_paths(settings: FaceSwapSettings) -> FaceModelPaths:
    """Where the models are; builds the tiny ones on first use when `face_use_tiny`."""
    from services.inference.faceswap.tiny import build_tiny_face_models, default_cache_dir

    root = Path(settings.face_models_dir) if settings.face_models_dir else default_cache_dir()
    if settings.face_use_tiny:
        tiny = build_tiny_face_models(root)
        return FaceModelPaths(tiny.models_dir, tiny.swapper_path)
    return FaceModelPaths(root / settings.face_pack, root / settings.face_swapper)


def load_engine(settings: FaceSwapSettings) -> FaceSwapEngine:
    from services.inference.faceswap.engine import FaceSwapEngine

    paths = model_paths(settings)
    size = settings.face_det_size
    return FaceSwapEngine(
        paths.models_dir, paths.swapper_path, list(settings.face_providers) or None, det_size=(size, size)
    )
