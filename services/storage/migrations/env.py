"""Alembic environment of the storage service (applied at startup by `services.kit.db.upgrade`)."""

from sqlmodel import SQLModel

import services.storage.models  # noqa: F401  (registers the storage tables on SQLModel.metadata)
from services.kit.db import run_alembic_env

run_alembic_env(SQLModel.metadata)
