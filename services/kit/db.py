"""Database conventions: SQLModel tables, one SQLite file per service by default (any SQLAlchemy
URL, PostgreSQL in production), Alembic migrations per service, blocking work off the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session
from sqlmodel import create_engine

__all__ = ["insert_missing", "make_engine", "run_alembic_env", "run_db", "upgrade", "version_table"]

P = ParamSpec("P")
T = TypeVar("T")


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            # WAL lets readers work while a writer commits; busy_timeout waits instead of failing.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def insert_missing(session: Session, model: Any, key: str, /, **values: Any) -> None:
    """``INSERT ... ON CONFLICT (key) DO NOTHING``: creates a row that concurrent transactions, in this
    process or another replica, may create too. The first step of every shared limit (throttles,
    rate buckets, quota owners): insert the row if missing, then lock it (``session.get(...,
    with_for_update=True, populate_existing=True)``; PostgreSQL: ``SELECT ... FOR UPDATE``) and decide.
    Inserting first also makes SQLite take its write lock at once, so the transaction never has to
    upgrade a read lock under concurrency (which fails with "database is locked")."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    session.execute(insert(model).values(**values).on_conflict_do_nothing(index_elements=[key]))


def upgrade(engine: Engine, migrations_dir: Path) -> None:
    """Apply the service's Alembic migrations up to head on ``engine``."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(migrations_dir))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")


def version_table(script_location: str | Path) -> str:
    """``alembic_version_<service>``: services sharing one database keep separate histories."""
    return f"alembic_version_{Path(script_location).resolve().parent.name}"


def run_alembic_env(target_metadata: Any) -> None:
    """The body of every service's ``migrations/env.py``: online migrations on the connection that
    :func:`upgrade` passes in (or the URL given with ``alembic -x url=...``)."""
    from alembic import context

    connection = context.config.attributes.get("connection")
    if connection is None:
        url = context.get_x_argument(as_dictionary=True)["url"]
        with make_engine(url).begin() as own:
            _migrate(context, own, target_metadata)
    else:
        _migrate(context, connection, target_metadata)


def _migrate(context: Any, connection: Any, target_metadata: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=version_table(context.config.get_main_option("script_location") or "."),
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_db(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run blocking database work in a thread so the event loop keeps serving streams."""
    return await asyncio.to_thread(fn, *args, **kwargs)
