"""`python -m services.account`: run the account service from environment config (VIARTE_ACCOUNT_*)."""

from services.account.config import AccountConfig
from services.account.server import build
from services.kit.server import run

if __name__ == "__main__":
    run(AccountConfig, build)
