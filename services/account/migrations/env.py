"""Alembic environment of the account service (applied at startup by `services.kit.db.upgrade`)."""

from sqlmodel import SQLModel

import services.account.models  # noqa: F401  (registers the account tables on SQLModel.metadata)
from services.kit.db import run_alembic_env

run_alembic_env(SQLModel.metadata)
