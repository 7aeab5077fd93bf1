"""FaceSwapConfig: the face models, one part of the inference service's config.

`InferenceConfig` is composed of this part (through `WorkerConfig`), so each field keeps its flat
environment name (``VIARTE_INFERENCE_FACE_PACK`` ...) and is declared only here; every device worker
receives it whole inside its `WorkerConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FaceSwapConfig"]


@dataclass(frozen=True)
class FaceSwapConfig:
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
