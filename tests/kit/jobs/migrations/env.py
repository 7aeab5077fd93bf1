"""Alembic env for the kit job tests: the job tables alone, as a service migration creates them."""

from sqlmodel import SQLModel

import services.kit.jobs.tables  # noqa: F401
from services.kit.db import run_alembic_env

run_alembic_env(SQLModel.metadata)
