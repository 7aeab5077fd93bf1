"""Alembic environment of the render service (applied at startup by `services.kit.db.upgrade`)."""

from sqlmodel import SQLModel

import services.kit.jobs.tables
import services.render.models  # noqa: F401  (registers the render tables)
from services.kit.db import run_alembic_env

run_alembic_env(SQLModel.metadata)
