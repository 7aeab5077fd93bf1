"""`python -m services.render`: run the render service from environment config (VIARTE_RENDER_*)."""

from services.kit.server import run
from services.render.config import RenderConfig
from services.render.server import build

if __name__ == "__main__":
    run(RenderConfig, build)
