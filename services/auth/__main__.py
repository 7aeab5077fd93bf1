"""`python -m services.auth`: run the auth service from environment config (VIARTE_AUTH_*)."""

from services.auth.config import AuthConfig
from services.auth.server import build
from services.kit.server import run

if __name__ == "__main__":
    run(AuthConfig, build)
