"""Alembic environment of the inference service (applied at startup by `services.kit.db.upgrade`)."""

from sqlmodel import SQLModel

import services.inference.assistant.ratelimit  # (registers the rate buckets on SQLModel.metadata)
import services.kit.jobs.tables  # noqa: F401  (the job tables live in this service's database)
from services.kit.db import run_alembic_env

run_alembic_env(SQLModel.metadata)
