"""`python -m services.inference`: run the inference service from environment config (VIARTE_INFERENCE_*)."""

from services.inference.config import InferenceConfig
from services.inference.server import build
from services.kit.server import run

if __name__ == "__main__":
    run(InferenceConfig, build)
