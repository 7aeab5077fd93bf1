"""Alembic environment of the auth service (applied at startup by `services.kit.db.upgrade`)."""

from sqlmodel import SQLModel

import services.auth.models  # noqa: F401  (registers the auth tables on SQLModel.metadata)
from services.kit.db import run_alembic_env

run_alembic_env(SQLModel.metadata)
