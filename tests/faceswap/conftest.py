"""Face swap fixtures: the tiny face models (built once into <repo>/.cache/models/faces) and an engine."""

from __future__ import annotations

import pytest

from services.inference.faceswap.config import FaceSwapConfig
from services.inference.faceswap.engine import FaceSwapEngine
from services.inference.faceswap.tiny import TinyFaceModels, build_tiny_face_models


@pytest.fixture(scope="session")
def tiny_face_models() -> TinyFaceModels:
    return build_tiny_face_models()


@pytest.fixture(scope="session")
def face_settings(tiny_face_models: TinyFaceModels) -> FaceSwapConfig:
    return FaceSwapConfig(
        face_models_dir=str(tiny_face_models.models_dir.parent), face_use_tiny=True, face_det_size=320,
        face_providers=("CPUExecutionProvider",),
    )


@pytest.fixture(scope="session")
def engine(tiny_face_models: TinyFaceModels) -> FaceSwapEngine:
    return FaceSwapEngine(
        tiny_face_models.models_dir, tiny_face_models.swapper_path, ["CPUExecutionProvider"], det_size=(320, 320)
    )
